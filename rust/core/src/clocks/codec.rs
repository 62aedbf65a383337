//! The building blocks of the clocks' binary encodings, which are stable across versions.
//!
//! Every encoding starts with a 2-byte magic and a format version byte, then fields in this
//! order-preserving, canonical form:
//! - unsigned integers as LEB128 varints (at most 10 bytes, no redundant trailing zero groups);
//! - signed integers zigzag-mapped, then as varints;
//! - a [`NodeId`] as a tag byte (0 = integer, 1 = string) then the zigzag varint, or the varint
//!   byte length and the UTF-8 bytes.
//!
//! Decoders reject anything that is not the canonical encoding (truncation, trailing bytes, over-
//! long varints, invalid UTF-8, unknown tags), so each value has exactly one encoding.

use super::id::RawId;
use super::NodeId;
use crate::error::{Error, Result};

const TAG_INT: u8 = 0;
const TAG_STR: u8 = 1;

/// Appends the encodings of values to a byte vector.
#[derive(Default)]
pub struct Writer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// A writer whose output starts with `magic` and `version`.
    pub fn with_header(magic: [u8; 2], version: u8) -> Self {
        let mut buf = Vec::with_capacity(16);
        buf.extend_from_slice(&magic);
        buf.push(version);
        Writer { buf }
    }

    /// An unsigned LEB128 varint.
    pub fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// A signed integer, zigzag-mapped then as a varint.
    pub fn ivarint(&mut self, v: i64) {
        self.uvarint(((v << 1) ^ (v >> 63)) as u64);
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.uvarint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// A node id.
    pub fn node_id(&mut self, id: &NodeId) {
        match id {
            NodeId::Int(i) => {
                self.buf.push(TAG_INT);
                self.ivarint(*i);
            }
            NodeId::Str(s) => {
                self.buf.push(TAG_STR);
                self.bytes(s.as_bytes());
            }
        }
    }
}

/// Reads values back, refusing anything non-canonical with [`Error::Decode`].
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader of `data` that first checks the header; `what` names the value in errors.
    pub fn with_header(
        data: &'a [u8],
        magic: [u8; 2],
        version: u8,
        what: &'static str,
    ) -> Result<Self> {
        if data.len() < 3 || data[..2] != magic {
            return Err(Error::Decode(format!(
                "not an encoded {what}: expected it to start with {:?}",
                String::from_utf8_lossy(&magic)
            )));
        }
        if data[2] != version {
            return Err(Error::Decode(format!(
                "unsupported {what} encoding version {} (this build reads {version})",
                data[2]
            )));
        }
        Ok(Reader { data, pos: 3, what })
    }

    /// An error at the current position.
    pub fn error(&self, reason: &str) -> Error {
        Error::Decode(format!(
            "malformed {} at byte {}: {reason}",
            self.what, self.pos
        ))
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(self.error("trailing bytes"))
        }
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| self.error("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    /// An unsigned LEB128 varint in its shortest form.
    pub fn uvarint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let part = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(self.error("varint overflows 64 bits"));
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(self.error("overlong varint"));
                }
                return Ok(v);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    /// A zigzag signed varint.
    pub fn ivarint(&mut self) -> Result<i64> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A count of items that each take at least `min_item_bytes`: bounded by what is left, so a
    /// lying length cannot make the decoder allocate more than the input's size.
    pub fn count(&mut self, min_item_bytes: usize) -> Result<usize> {
        let n = self.uvarint()?;
        let max = self.remaining() / min_item_bytes.max(1);
        if n > max as u64 {
            return Err(self.error("count larger than the data"));
        }
        Ok(n as usize)
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.uvarint()?;
        if n > self.remaining() as u64 {
            return Err(self.error("truncated"));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.data[start..self.pos])
    }

    /// A node id.
    pub fn node_id(&mut self) -> Result<NodeId> {
        Ok(match self.raw_node_id()? {
            RawId::Int(i) => NodeId::Int(i),
            RawId::Str(s) => NodeId::str(s),
        })
    }

    /// A node id borrowed from the input, not interned yet (see [`NodeId::many`]).
    pub fn raw_node_id(&mut self) -> Result<RawId<'a>> {
        match self.u8()? {
            TAG_INT => Ok(RawId::Int(self.ivarint()?)),
            TAG_STR => {
                let b = self.bytes()?;
                let s = std::str::from_utf8(b).map_err(|_| self.error("node id is not UTF-8"))?;
                Ok(RawId::Str(s))
            }
            _ => Err(self.error("unknown node id tag")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overlong() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut w = Writer::with_header(*b"T1", 1);
            w.uvarint(v);
            let mut r = Reader::with_header(&w.buf, *b"T1", 1, "test").unwrap();
            assert_eq!(r.uvarint().unwrap(), v);
            r.finish().unwrap();
        }
        for v in [0, -1, 1, i64::MIN, i64::MAX] {
            let mut w = Writer::with_header(*b"T1", 1);
            w.ivarint(v);
            let mut r = Reader::with_header(&w.buf, *b"T1", 1, "test").unwrap();
            assert_eq!(r.ivarint().unwrap(), v);
        }
        // 0x80 0x00 encodes 0 in two bytes: not canonical.
        let mut r = Reader::with_header(b"T1\x01\x80\x00", *b"T1", 1, "test").unwrap();
        assert!(r.uvarint().is_err());
        let mut r = Reader::with_header(
            b"T1\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02",
            *b"T1",
            1,
            "test",
        )
        .unwrap();
        assert!(r.uvarint().is_err());
    }

    #[test]
    fn header_and_node_ids() {
        assert!(Reader::with_header(b"XX\x01", *b"T1", 1, "test").is_err());
        assert!(Reader::with_header(b"T1\x02", *b"T1", 1, "test").is_err());
        let mut w = Writer::with_header(*b"T1", 1);
        w.node_id(&NodeId::from("héllo"));
        w.node_id(&NodeId::from(-5));
        let mut r = Reader::with_header(&w.buf, *b"T1", 1, "test").unwrap();
        assert_eq!(r.node_id().unwrap(), NodeId::from("héllo"));
        assert_eq!(r.node_id().unwrap(), NodeId::from(-5));
        r.finish().unwrap();
    }
}
