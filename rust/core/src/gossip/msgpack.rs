//! The msgpack dialect of memberlist (hashicorp/go-msgpack's `MsgpackHandle` defaults).
//!
//! Structs are maps keyed by the Go field names; `[]byte` fields (addresses, metadata, `Vsn`)
//! are written in the old "raw" (str) format, which go-msgpack decodes into `[]byte`; integers
//! take their shortest form. Reading is lenient where Go is: a byte field may come as str or bin.

use rmpv::Value;

use crate::error::{Error, Result};

/// Writes one struct as a msgpack map, field by field.
pub struct MapWriter<'a> {
    out: &'a mut Vec<u8>,
}

fn io_never_fails<T>(r: std::result::Result<T, impl std::fmt::Debug>) -> T {
    // Writing into a Vec cannot fail.
    r.expect("writing msgpack into a Vec")
}

impl<'a> MapWriter<'a> {
    /// Starts a map of `fields` entries.
    pub fn new(out: &'a mut Vec<u8>, fields: u32) -> Self {
        io_never_fails(rmp::encode::write_map_len(out, fields));
        MapWriter { out }
    }

    fn key(&mut self, name: &str) {
        io_never_fails(rmp::encode::write_str(self.out, name));
    }

    /// An unsigned integer field.
    pub fn uint(&mut self, name: &str, v: u64) -> &mut Self {
        self.key(name);
        io_never_fails(rmp::encode::write_uint(self.out, v));
        self
    }

    /// A string field.
    pub fn str(&mut self, name: &str, v: &str) -> &mut Self {
        self.key(name);
        io_never_fails(rmp::encode::write_str(self.out, v));
        self
    }

    /// A `[]byte` field, in the raw (str) format Go writes.
    pub fn bytes(&mut self, name: &str, v: &[u8]) -> &mut Self {
        self.key(name);
        io_never_fails(rmp::encode::write_str_len(self.out, v.len() as u32));
        self.out.extend_from_slice(v);
        self
    }

    /// A boolean field.
    pub fn bool(&mut self, name: &str, v: bool) -> &mut Self {
        self.key(name);
        io_never_fails(rmp::encode::write_bool(self.out, v));
        self
    }
}

/// Reads one msgpack value from the front of `buf`, advancing it.
pub fn read_value(buf: &mut &[u8], what: &str) -> Result<Value> {
    rmpv::decode::read_value(buf).map_err(|e| decode_error(what, &e.to_string()))
}

/// True if `buf` ends before one whole msgpack value (so a stream reader should wait for more).
pub fn is_truncated(buf: &[u8]) -> bool {
    let mut probe = buf;
    matches!(
        rmpv::decode::read_value(&mut probe),
        Err(rmpv::decode::Error::InvalidMarkerRead(e) | rmpv::decode::Error::InvalidDataRead(e))
            if e.kind() == std::io::ErrorKind::UnexpectedEof
    )
}

pub(crate) fn decode_error(what: &str, reason: &str) -> Error {
    Error::Decode(format!("malformed memberlist {what}: {reason}"))
}

/// The fields of a msgpack map, looked up by name.
pub struct Fields<'a> {
    what: &'static str,
    pairs: &'a [(Value, Value)],
}

impl<'a> Fields<'a> {
    /// The map in `v`, or an error naming `what`.
    pub fn of(v: &'a Value, what: &'static str) -> Result<Self> {
        match v {
            Value::Map(pairs) => Ok(Fields { what, pairs }),
            _ => Err(decode_error(what, "body is not a map")),
        }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.pairs
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(_, v)| v)
    }

    fn bad(&self, name: &str, want: &str) -> Error {
        decode_error(self.what, &format!("field {name} is not {want}"))
    }

    /// An unsigned integer field no larger than `max`; a missing field is 0 (Go's zero value).
    pub fn uint(&self, name: &str, max: u64) -> Result<u64> {
        match self.get(name) {
            None | Some(Value::Nil) => Ok(0),
            Some(v) => v
                .as_u64()
                .filter(|&n| n <= max)
                .ok_or_else(|| self.bad(name, &format!("an integer in 0..={max}"))),
        }
    }

    /// A string field; missing is "".
    pub fn str(&self, name: &str) -> Result<String> {
        match self.get(name) {
            None | Some(Value::Nil) => Ok(String::new()),
            Some(Value::String(s)) => s
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| self.bad(name, "UTF-8 text")),
            Some(Value::Binary(b)) => {
                String::from_utf8(b.clone()).map_err(|_| self.bad(name, "UTF-8 text"))
            }
            Some(_) => Err(self.bad(name, "a string")),
        }
    }

    /// A `[]byte` field (str or bin format); missing is empty.
    pub fn bytes(&self, name: &str) -> Result<Vec<u8>> {
        match self.get(name) {
            None | Some(Value::Nil) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
            Some(Value::Binary(b)) => Ok(b.clone()),
            // An array of small ints is how some encoders write []uint8.
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_u64()
                        .and_then(|n| u8::try_from(n).ok())
                        .ok_or_else(|| self.bad(name, "bytes"))
                })
                .collect(),
            Some(_) => Err(self.bad(name, "bytes")),
        }
    }

    /// A boolean field; missing is false.
    pub fn bool(&self, name: &str) -> Result<bool> {
        match self.get(name) {
            None | Some(Value::Nil) => Ok(false),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(_) => Err(self.bad(name, "a boolean")),
        }
    }
}

/// serf's node metadata for `tags`: `0xff`, then a msgpack map of strings.
pub fn encode_serf_tags(tags: &std::collections::BTreeMap<String, String>) -> Vec<u8> {
    let mut out = vec![0xff];
    io_never_fails(rmp::encode::write_map_len(&mut out, tags.len() as u32));
    for (k, v) in tags {
        io_never_fails(rmp::encode::write_str(&mut out, k));
        io_never_fails(rmp::encode::write_str(&mut out, v));
    }
    out
}

/// The tags in serf's node metadata; without serf's `0xff` prefix the metadata is a bare role
/// (`{"role": text}`), as serf reads it.
pub fn decode_serf_tags(meta: &[u8]) -> Result<std::collections::BTreeMap<String, String>> {
    let mut tags = std::collections::BTreeMap::new();
    let Some((&0xff, mut rest)) = meta.split_first() else {
        tags.insert(
            "role".to_owned(),
            String::from_utf8_lossy(meta).into_owned(),
        );
        return Ok(tags);
    };
    let value = read_value(&mut rest, "serf tags")?;
    let Value::Map(pairs) = value else {
        return Err(decode_error("serf tags", "not a map"));
    };
    for (k, v) in pairs {
        match (k.as_str(), v.as_str()) {
            (Some(k), Some(v)) => {
                tags.insert(k.to_owned(), v.to_owned());
            }
            _ => return Err(decode_error("serf tags", "keys and values must be strings")),
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serf_tags_round_trip_and_bare_roles() {
        let tags = std::collections::BTreeMap::from([
            ("role".to_owned(), "web".to_owned()),
            ("dc".to_owned(), "a".to_owned()),
        ]);
        let meta = encode_serf_tags(&tags);
        assert_eq!(&meta[..2], b"\xff\x82");
        assert_eq!(decode_serf_tags(&meta).unwrap(), tags);
        assert_eq!(decode_serf_tags(b"db").unwrap()["role"], "db");
        assert!(decode_serf_tags(b"\xff\x01").is_err());
    }
}
