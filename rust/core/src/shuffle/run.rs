//! Sorted runs: the shuffle's intermediate data, in memory or on disk, and the k-way merge that
//! combines them.
//!
//! A run is a sequence of records `varint(key length) key varint(state length) state`, sorted by
//! partition and, within one partition, by key bytes, with no key twice in a partition. Its
//! partition index (`offsets[p]..offsets[p + 1]`, byte ranges) is kept beside it, not in it. A
//! map task's output is one run; the reduce task of partition `p` merges the `p` ranges of every
//! map task's run ([`Merge`]), in map-task order, so `first`/`last`/`collect` see input order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use super::reduce::{Reducer, State};
use crate::error::{Error, Result};

/// Appends `n` as LEB128.
pub fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends one record.
pub fn put_record(out: &mut Vec<u8>, key: &[u8], state: &[u8]) {
    put_varint(out, key.len() as u64);
    out.extend_from_slice(key);
    put_varint(out, state.len() as u64);
    out.extend_from_slice(state);
}

fn io_error(e: &io::Error, what: &str) -> Error {
    Error::Io(format!("{what}: {e}"))
}

/// A run held in memory, shared without copying (a `Vec`, or bytes a caller owns).
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Where a run's range is read from.
enum Input {
    Memory {
        data: SharedBytes,
        at: usize,
        end: usize,
    },
    File {
        reader: BufReader<File>,
        left: u64,
    },
}

/// Reads the records of one range of one run, in order.
pub struct Source {
    input: Input,
    /// The key of the record last read.
    pub key: Vec<u8>,
    /// Its state bytes.
    pub state: Vec<u8>,
}

impl Source {
    /// The records of `data[start..end]`.
    pub fn memory(data: SharedBytes, start: usize, end: usize) -> Result<Self> {
        let len = (*data).as_ref().len();
        if start > end || end > len {
            return Err(Error::InvalidArgument(format!(
                "run range {start}..{end} is outside its {len} bytes"
            )));
        }
        Ok(Self {
            input: Input::Memory {
                data,
                at: start,
                end,
            },
            key: Vec::new(),
            state: Vec::new(),
        })
    }

    /// The records of the file at `path`, bytes `start..end`.
    pub fn file(path: &Path, start: u64, end: u64) -> Result<Self> {
        let name = path.display().to_string();
        let mut f = File::open(path).map_err(|e| io_error(&e, &name))?;
        f.seek(SeekFrom::Start(start))
            .map_err(|e| io_error(&e, &name))?;
        let reader = BufReader::with_capacity(256 << 10, f);
        Ok(Self {
            input: Input::File {
                reader,
                left: end.saturating_sub(start),
            },
            key: Vec::new(),
            state: Vec::new(),
        })
    }

    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.bytes(&mut b)?;
        Ok(b[0])
    }

    fn bytes(&mut self, out: &mut [u8]) -> Result<()> {
        let corrupt = || Error::Decode("a shuffle run ends inside a record".into());
        match &mut self.input {
            Input::Memory { data, at, end } => {
                if *at + out.len() > *end {
                    return Err(corrupt());
                }
                out.copy_from_slice(&(**data).as_ref()[*at..*at + out.len()]);
                *at += out.len();
            }
            Input::File { reader, left } => {
                if (out.len() as u64) > *left {
                    return Err(corrupt());
                }
                reader
                    .read_exact(out)
                    .map_err(|e| io_error(&e, "reading a shuffle run"))?;
                *left -= out.len() as u64;
            }
        }
        Ok(())
    }

    fn varint(&mut self) -> Result<usize> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7F) << shift;
            if b < 0x80 {
                return usize::try_from(n).map_err(|_| Error::Decode("record too long".into()));
            }
        }
        Err(Error::Decode("bad length in a shuffle run".into()))
    }

    fn done(&self) -> bool {
        match &self.input {
            Input::Memory { at, end, .. } => at >= end,
            Input::File { left, .. } => *left == 0,
        }
    }

    /// Reads the next record into `key` and `state`; false at the end of the range.
    pub fn advance(&mut self) -> Result<bool> {
        if self.done() {
            return Ok(false);
        }
        let klen = self.varint()?;
        let mut key = std::mem::take(&mut self.key);
        key.resize(klen, 0);
        self.bytes(&mut key)?;
        self.key = key;
        let slen = self.varint()?;
        let mut state = std::mem::take(&mut self.state);
        state.resize(slen, 0);
        self.bytes(&mut state)?;
        self.state = state;
        Ok(true)
    }
}

/// The k-way merge of sorted sources: each key once, its states merged in source order.
pub struct Merge {
    reducer: Reducer,
    sources: Vec<Source>,
    /// The current key of every source that has one, with the source's index (ties: lower first).
    heap: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
}

impl Merge {
    /// Merges `sources` (earlier input first) for `reducer`.
    pub fn new(reducer: Reducer, sources: Vec<Source>) -> Result<Self> {
        let mut m = Self {
            reducer,
            sources,
            heap: BinaryHeap::new(),
        };
        for i in 0..m.sources.len() {
            m.refill(i)?;
        }
        Ok(m)
    }

    fn refill(&mut self, i: usize) -> Result<()> {
        if self.sources[i].advance()? {
            let key = std::mem::take(&mut self.sources[i].key);
            self.heap.push(Reverse((key, i)));
        }
        Ok(())
    }

    /// The next key in order and its merged state; `None` at the end.
    pub fn next_group(&mut self) -> Result<Option<(Vec<u8>, State)>> {
        let Some(Reverse((key, i))) = self.heap.pop() else {
            return Ok(None);
        };
        let mut state = State::read(self.reducer, &self.sources[i].state)?;
        self.refill(i)?;
        while let Some(Reverse((next, _))) = self.heap.peek() {
            if *next != key {
                break;
            }
            let Reverse((spare, j)) = self.heap.pop().expect("peeked");
            let later = State::read(self.reducer, &self.sources[j].state)?;
            state.merge(self.reducer, later)?;
            // Hand the key buffer back for reuse.
            self.sources[j].key = spare;
            self.refill(j)?;
        }
        Ok(Some((key, state)))
    }
}

/// Writes records and notes where each partition starts.
pub struct RunWriter<W: Write> {
    out: W,
    written: u64,
    offsets: Vec<u64>,
    buf: Vec<u8>,
}

impl<W: Write> RunWriter<W> {
    /// A writer for `partitions` partitions.
    pub fn new(out: W, partitions: u32) -> Self {
        let mut offsets = Vec::with_capacity(partitions as usize + 1);
        offsets.push(0);
        Self {
            out,
            written: 0,
            offsets,
            buf: Vec::with_capacity(1 << 16),
        }
    }

    /// Ends every partition before `partition` (which is then the one being written).
    pub fn start_partition(&mut self, partition: u32) {
        while self.offsets.len() <= partition as usize {
            self.offsets.push(self.written + self.buf.len() as u64);
        }
    }

    /// Appends a record to the current partition.
    pub fn record(&mut self, key: &[u8], state: &State) -> Result<()> {
        let mut st = Vec::new();
        state.write(&mut st);
        self.raw(key, &st)
    }

    /// Appends a record whose state is already in the spill format.
    pub fn raw(&mut self, key: &[u8], state: &[u8]) -> Result<()> {
        put_record(&mut self.buf, key, state);
        if self.buf.len() >= 1 << 16 {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> Result<()> {
        self.out
            .write_all(&self.buf)
            .map_err(|e| io_error(&e, "writing a shuffle run"))?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Ends the run: the sink and the partition offsets (`partitions + 1` of them).
    pub fn finish(mut self, partitions: u32) -> Result<(W, Vec<u64>)> {
        self.flush_buf()?;
        self.out
            .flush()
            .map_err(|e| io_error(&e, "writing a shuffle run"))?;
        while self.offsets.len() <= partitions as usize {
            self.offsets.push(self.written);
        }
        Ok((self.out, self.offsets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shuffle::codec::{encode, Value};

    fn run_of(pairs: &[(&str, u64)]) -> Arc<Vec<u8>> {
        let mut w = RunWriter::new(Vec::new(), 1);
        for (k, n) in pairs {
            w.record(&encode(&Value::Str((*k).into())), &State::Count(*n))
                .unwrap();
        }
        let (data, offsets) = w.finish(1).unwrap();
        assert_eq!(offsets, vec![0, data.len() as u64]);
        Arc::new(data)
    }

    #[test]
    fn merge_combines_equal_keys_in_order() {
        let a = run_of(&[("a", 1), ("c", 2)]);
        let b = run_of(&[("b", 5), ("c", 3)]);
        let sources = vec![
            Source::memory(a.clone(), 0, a.len()).unwrap(),
            Source::memory(b.clone(), 0, b.len()).unwrap(),
        ];
        let mut m = Merge::new(Reducer::Count, sources).unwrap();
        let mut got = Vec::new();
        while let Some((k, s)) = m.next_group().unwrap() {
            got.push((k, s));
        }
        let want: Vec<(Vec<u8>, State)> = [("a", 1), ("b", 5), ("c", 5)]
            .iter()
            .map(|(k, n)| (encode(&Value::Str((*k).into())), State::Count(*n)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_truncated_run_is_a_decode_error() {
        let a = run_of(&[("abc", 1)]);
        let mut s = Source::memory(a.clone(), 0, a.len() - 1).unwrap();
        assert!(matches!(s.advance(), Err(Error::Decode(_))));
        assert!(Source::memory(a.clone(), 0, a.len() + 1).is_err());
    }
}
