//! The map side of the shuffle: a hash table that folds each key's values as they arrive
//! (map-side combining), spills itself to disk as a sorted run when it outgrows its memory
//! budget, and ends as one run sorted by (partition, key), the spills merged in.
//!
//! Keys go to partitions by distcore's seeded hash (XXH3-64 of the encoded key, scaled to the
//! partition count by a multiply-shift), never by Python's `hash()`, so every process and every
//! machine agrees on where a key goes.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashTable;
use smallvec::SmallVec;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::reduce::{Reducer, State};
use super::run::{Merge, RunWriter, Source};
use crate::error::{Error, Result};

/// The partition of `key` (encoded) among `partitions`, with `seed`.
pub fn partition(key: &[u8], seed: u64, partitions: u32) -> u32 {
    partition_of_hash(xxh3_64_with_seed(key, seed), partitions)
}

fn partition_of_hash(hash: u64, partitions: u32) -> u32 {
    ((u128::from(hash) * u128::from(partitions)) >> 64) as u32
}

/// A key in the table: short keys (most words, ids, numbers) live inside the entry, so a probe
/// touches one cache line instead of two.
type Key = SmallVec<[u8; INLINE_KEY]>;

/// Bytes of a key kept inside its entry.
const INLINE_KEY: usize = 24;

struct Entry {
    hash: u64,
    partition: u32,
    key: Key,
    state: State,
}

/// Bytes of one slot of the table: the entry and its control byte.
const SLOT: usize = std::mem::size_of::<Entry>() + 1;

/// What a combiner did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Values taken in.
    pub records_in: u64,
    /// Distinct keys written out.
    pub records_out: u64,
    /// Runs spilled to disk.
    pub spills: u64,
    /// Bytes written to spill files.
    pub spilled_bytes: u64,
    /// Bytes of the final run.
    pub output_bytes: u64,
}

/// A spilled run: its file and its partition offsets.
struct Spill {
    path: PathBuf,
    offsets: Vec<u64>,
}

/// Distinguishes the spill files of the combiners of one process.
static SPILL_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The map side's combining table.
pub struct Combiner {
    reducer: Reducer,
    partitions: u32,
    seed: u64,
    memory_limit: usize,
    spill_dir: Option<PathBuf>,
    table: HashTable<Entry>,
    /// Heap bytes the entries own outside the table (long keys, lists, value buffers).
    heap: usize,
    spills: Vec<Spill>,
    stats: Stats,
}

impl Combiner {
    /// A combiner for `reducer` into `partitions` partitions, spilling to `spill_dir` when its
    /// table would hold more than `memory_limit` bytes (never, without a directory).
    pub fn new(
        reducer: Reducer,
        partitions: u32,
        seed: u64,
        memory_limit: usize,
        spill_dir: Option<PathBuf>,
    ) -> Result<Self> {
        if partitions == 0 {
            return Err(Error::InvalidArgument("partitions must be >= 1".into()));
        }
        Ok(Self {
            reducer,
            partitions,
            seed,
            memory_limit,
            spill_dir,
            table: HashTable::new(),
            heap: 0,
            spills: Vec::new(),
            stats: Stats::default(),
        })
    }

    /// The reducer.
    pub fn reducer(&self) -> Reducer {
        self.reducer
    }

    /// What it did so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Bytes its table holds, as the budget counts them.
    pub fn memory(&self) -> usize {
        self.heap + self.table.capacity() * SLOT
    }

    /// Folds a value into the entry of `key`: `fold(Some(state))` updates it, `fold(None)`
    /// returns the state of a new entry.
    fn upsert(
        &mut self,
        key: &[u8],
        partition: Option<u32>,
        fold: impl FnOnce(Option<&mut State>) -> Result<Option<State>>,
    ) -> Result<()> {
        let hash = xxh3_64_with_seed(key, self.seed);
        let partition = match partition {
            None => partition_of_hash(hash, self.partitions),
            Some(p) if p < self.partitions => p,
            Some(p) => {
                return Err(Error::InvalidArgument(format!(
                    "partition {p} is out of range for {} partitions",
                    self.partitions
                )))
            }
        };
        if let Some(e) = self
            .table
            .find_mut(hash, |e| e.hash == hash && *e.key == *key)
        {
            let before = e.state.heap_size();
            fold(Some(&mut e.state))?;
            self.heap = self.heap + e.state.heap_size() - before;
        } else {
            let state = fold(None)?.expect("a new entry's state");
            if self.table.len() == self.table.capacity() && self.would_outgrow() {
                // Full, and growing would pass the budget: spill, and reuse the table.
                self.spill()?;
            }
            let long_key = if key.len() > INLINE_KEY { key.len() } else { 0 };
            self.heap += long_key + state.heap_size();
            let entry = Entry {
                hash,
                partition,
                key: key.into(),
                state,
            };
            self.table.insert_unique(hash, entry, |e| e.hash);
        }
        self.maybe_spill()
    }

    /// Takes one (key, value) pair, both encoded.
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.add_to(None, key, value)
    }

    /// Takes one (key, value) pair for the given partition (a user's partitioner), or for the
    /// key's hash partition (`None`). A key keeps the partition it was first given.
    pub fn add_to(&mut self, partition: Option<u32>, key: &[u8], value: &[u8]) -> Result<()> {
        self.stats.records_in += 1;
        let r = self.reducer;
        self.upsert(key, partition, |s| match s {
            Some(s) => s.update(r, value).map(|()| None),
            None => r.start(value).map(Some),
        })
    }

    /// Takes `n` values of `key` for `count` (a combined count from a built-in mapper).
    pub fn add_count(&mut self, key: &[u8], n: u64) -> Result<()> {
        if self.reducer != Reducer::Count {
            return Err(Error::InvalidArgument(format!(
                "counts go to a count reducer, not {}",
                self.reducer.name()
            )));
        }
        self.stats.records_in += n;
        self.upsert(key, None, |s| match s {
            Some(State::Count(c)) => {
                *c += n;
                Ok(None)
            }
            Some(_) => unreachable!("a count reducer holds counts"),
            None => Ok(Some(State::Count(n))),
        })
    }

    /// Takes a state already folded elsewhere (from another run), as if its values came now.
    pub fn add_state(&mut self, key: &[u8], state: State) -> Result<()> {
        let r = self.reducer;
        self.upsert(key, None, |s| match s {
            Some(s) => s.merge(r, state).map(|()| None),
            None => Ok(Some(state)),
        })
    }

    /// Whether growing the full table would pass the memory budget. Growing allocates a table
    /// with twice the slots while the old one is still held (three times the old one's bytes),
    /// and a spill later sorts an array of one reference per entry.
    fn would_outgrow(&self) -> bool {
        if self.spill_dir.is_none() {
            return false;
        }
        // hashbrown keeps a power of two of slots, 7/8 of them usable.
        let slots = ((self.table.capacity() + 1) * 8 / 7)
            .next_power_of_two()
            .max(4);
        let grown = 3 * slots * SLOT + 2 * slots * std::mem::size_of::<usize>();
        self.heap + grown > self.memory_limit
    }

    fn maybe_spill(&mut self) -> Result<()> {
        if self.memory() <= self.memory_limit || self.spill_dir.is_none() || self.table.is_empty() {
            return Ok(());
        }
        self.spill()
    }

    /// Writes the table's entries sorted by (partition, key) to `out` (sorting references,
    /// not entries: 8 bytes each); the table is then emptied and freed.
    fn write_sorted<W: std::io::Write>(&mut self, out: W) -> Result<(W, Vec<u64>)> {
        let mut order: Vec<&Entry> = self.table.iter().collect();
        order.sort_unstable_by(|a, b| (a.partition, &a.key).cmp(&(b.partition, &b.key)));
        let mut writer = RunWriter::new(out, self.partitions);
        for e in &order {
            writer.start_partition(e.partition);
            writer.record(&e.key, &e.state)?;
        }
        self.stats.records_out = order.len() as u64;
        drop(order);
        // Kept at its size for the next run: freeing and growing it again would leave the
        // allocator holding the old tables' pages (glibc raises its mmap threshold after a free).
        self.table.clear();
        self.heap = 0;
        writer.finish(self.partitions)
    }

    fn spill(&mut self) -> Result<()> {
        let dir = self.spill_dir.clone().expect("spilling needs a directory");
        let n = SPILL_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("spill-{}-{n}.run", std::process::id()));
        let file =
            File::create(&path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        let (_, offsets) = self.write_sorted(BufWriter::new(file))?;
        self.stats.spills += 1;
        self.stats.spilled_bytes += offsets.last().copied().unwrap_or(0);
        self.spills.push(Spill { path, offsets });
        Ok(())
    }

    /// Ends the map side: writes the one sorted run of everything taken in (the spills merged)
    /// to `out`; returns `out`, the run's partition offsets (`partitions + 1`) and the stats.
    /// The spill files are removed.
    pub fn finish<W: std::io::Write>(mut self, out: W) -> Result<(W, Vec<u64>, Stats)> {
        let (out, offsets) = if self.spills.is_empty() {
            self.write_sorted(out)?
        } else {
            self.spill()?;
            self.table = HashTable::new();
            self.merge_spills(out)?
        };
        self.stats.output_bytes = offsets.last().copied().unwrap_or(0);
        Ok((out, offsets, self.stats))
    }

    fn merge_spills<W: std::io::Write>(&mut self, out: W) -> Result<(W, Vec<u64>)> {
        let mut writer = RunWriter::new(out, self.partitions);
        let mut records_out = 0;
        for p in 0..self.partitions as usize {
            let sources = self
                .spills
                .iter()
                .map(|s| Source::file(&s.path, s.offsets[p], s.offsets[p + 1]))
                .collect::<Result<Vec<_>>>()?;
            writer.start_partition(p as u32);
            let mut merge = Merge::new(self.reducer, sources)?;
            while let Some((key, state)) = merge.next_group()? {
                writer.record(&key, &state)?;
                records_out += 1;
            }
        }
        self.stats.records_out = records_out;
        writer.finish(self.partitions)
    }
}

impl Drop for Combiner {
    fn drop(&mut self) {
        for s in &self.spills {
            // Best effort: the directory is the job's and goes with it anyway.
            let _ = fs::remove_file(&s.path);
        }
    }
}

/// Whether `dir` can take spill files (it exists and is a directory).
pub fn check_spill_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Error::Io(format!("{}: not a directory", dir.display())))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::shuffle::codec::{decode, encode, Value};

    fn key(i: u64) -> Vec<u8> {
        encode(&Value::Str(format!("key-{i:06}").into()))
    }

    /// Everything a finished run holds, per partition, as (key, count) in order.
    fn read_all(data: &[u8], offsets: &[u64], reducer: Reducer) -> Vec<Vec<(Vec<u8>, State)>> {
        let data = Arc::new(data.to_vec());
        (0..offsets.len() - 1)
            .map(|p| {
                let src =
                    Source::memory(data.clone(), offsets[p] as usize, offsets[p + 1] as usize)
                        .unwrap();
                let mut m = Merge::new(reducer, vec![src]).unwrap();
                let mut out = Vec::new();
                while let Some(g) = m.next_group().unwrap() {
                    out.push(g);
                }
                out
            })
            .collect()
    }

    #[test]
    fn spilled_and_in_memory_runs_give_the_same_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut want: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        let mut small =
            Combiner::new(Reducer::Count, 4, 7, 8 << 10, Some(dir.path().into())).unwrap();
        let mut big = Combiner::new(Reducer::Count, 4, 7, usize::MAX, None).unwrap();
        for i in 0..20_000u64 {
            let k = key((i * 7919) % 3000);
            small.add(&k, &[codec_none()]).unwrap();
            big.add(&k, &[codec_none()]).unwrap();
            *want.entry(k).or_default() += 1;
        }
        let (a, oa, sa) = small.finish(Vec::new()).unwrap();
        let (b, ob, sb) = big.finish(Vec::new()).unwrap();
        assert!(sa.spills > 3, "{sa:?}");
        assert_eq!(sb.spills, 0);
        assert_eq!((sa.records_in, sa.records_out), (20_000, 3000));
        assert_eq!(a, b, "spilled or not, the same bytes");
        assert_eq!(oa, ob);
        let parts = read_all(&a, &oa, Reducer::Count);
        let mut got = BTreeMap::new();
        for (p, part) in parts.iter().enumerate() {
            assert!(
                part.windows(2).all(|w| w[0].0 < w[1].0),
                "sorted within a partition"
            );
            for (k, s) in part {
                assert_eq!(partition(k, 7, 4) as usize, p, "every key in its partition");
                let State::Count(n) = s else { panic!() };
                got.insert(k.clone(), *n);
            }
        }
        assert_eq!(got, want);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "spill files removed"
        );
    }

    fn codec_none() -> u8 {
        crate::shuffle::codec::NONE
    }

    #[test]
    fn collect_keeps_input_order_across_spills() {
        let dir = tempfile::tempdir().unwrap();
        let mut c =
            Combiner::new(Reducer::Collect, 1, 0, 4 << 10, Some(dir.path().into())).unwrap();
        for i in 0..5000i64 {
            c.add(&key((i % 3) as u64), &encode(&Value::Int(i)))
                .unwrap();
        }
        let (data, offsets, stats) = c.finish(Vec::new()).unwrap();
        assert!(stats.spills > 1);
        let part = &read_all(&data, &offsets, Reducer::Collect)[0];
        for (j, (_, state)) in part.iter().enumerate() {
            let mut out = Vec::new();
            state.finish(&mut out).unwrap();
            let Value::List(items) = decode(&out).unwrap() else {
                panic!()
            };
            let want: Vec<Value<'_>> = (0..5000)
                .filter(|i| i % 3 == j as i64)
                .map(Value::Int)
                .collect();
            assert_eq!(items, want);
        }
    }

    #[test]
    fn partitions_are_spread_evenly() {
        let mut counts = [0u32; 8];
        for i in 0..80_000 {
            counts[partition(&key(i), 0, 8) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }
}
