//! Vector clocks (Fidge/Mattern) and version vectors: a counter per node, sorted by node id.

use std::cmp::Ordering as CmpOrdering;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use super::codec::{Reader, Writer};
use super::id::RawId;
use super::NodeId;
use crate::error::{Error, Result};

/// How two clocks relate under happens-before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Order {
    /// Every counter of the left is <= the right's and one is smaller: left happened before.
    Before,
    /// The mirror of [`Order::Before`].
    After,
    /// Every counter is the same.
    Equal,
    /// Each has a counter the other lacks: neither happened before the other.
    Concurrent,
}

impl Order {
    /// The relation seen from the other side.
    #[must_use]
    pub fn reverse(self) -> Order {
        match self {
            Order::Before => Order::After,
            Order::After => Order::Before,
            o => o,
        }
    }
}

const MAGIC: [u8; 2] = *b"VC";
const VERSION: u8 = 1;

/// A vector clock: for each node, how many events of that node are known.
///
/// The node ids are kept sorted with no zero counters (a missing node counts 0), so a clock has
/// one representation, equality is structural, and compare and merge are one pass. Ids and
/// counters live in separate arrays, and the id array is shared (`Arc`) between clocks that name
/// the same nodes (copies, and clocks derived by incrementing or merging known nodes): comparing
/// or merging such clocks only walks two `u64` slices. Otherwise the ids are compared one by one,
/// by pointer for interned strings.
#[derive(Clone)]
pub struct VectorClock {
    ids: Arc<[NodeId]>,
    counters: Vec<u64>,
}

impl Default for VectorClock {
    fn default() -> Self {
        VectorClock {
            ids: Arc::from(Vec::new()),
            counters: Vec::new(),
        }
    }
}

impl PartialEq for VectorClock {
    fn eq(&self, other: &Self) -> bool {
        self.counters == other.counters && same_ids(&self.ids, &other.ids)
    }
}

impl Eq for VectorClock {}

impl Hash for VectorClock {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.ids.hash(state);
        self.counters.hash(state);
    }
}

impl std::fmt::Debug for VectorClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.entries()).finish()
    }
}

fn same_ids(a: &Arc<[NodeId]>, b: &Arc<[NodeId]>) -> bool {
    Arc::ptr_eq(a, b) || a[..] == b[..]
}

/// `(less, greater)`: whether some counter of `a` is below, and some above, `b`'s at the same
/// position. Clocks that are compared mostly agree, so whole blocks are first tested for equality
/// (a `memcmp`) and only differing blocks are looked at counter by counter.
fn counters_cmp(a: &[u64], b: &[u64]) -> (bool, bool) {
    const BLOCK: usize = 32;
    let (mut less, mut greater) = (false, false);
    for (xa, xb) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
        if xa == xb {
            continue;
        }
        for (x, y) in xa.iter().zip(xb) {
            less |= x < y;
            greater |= x > y;
        }
        if less && greater {
            break;
        }
    }
    (less, greater)
}

/// Arrays of ids seen recently, by a fingerprint of their contents; weak, so they are freed with
/// the last clock that uses them.
type IdArrays = HashMap<u64, Weak<[NodeId]>>;

/// How many id arrays [`id_array`] remembers before it starts over.
const ID_ARRAYS_LIMIT: usize = 4096;

/// The shared array for these ids: clocks over the same nodes end up with the same `Arc`, even
/// when built separately (from dicts, from bytes), so comparing them is a pointer comparison
/// plus the counters.
fn id_array(ids: Vec<NodeId>) -> Arc<[NodeId]> {
    static ARRAYS: OnceLock<Mutex<IdArrays>> = OnceLock::new();
    if ids.is_empty() {
        return Arc::from(ids);
    }
    let mut h = DefaultHasher::new();
    for id in &ids {
        match id {
            NodeId::Int(i) => (0u8, *i).hash(&mut h),
            // Interned strings: the address stands for the text (a fingerprint, not identity:
            // candidates are compared in full below).
            NodeId::Str(s) => (1u8, Arc::as_ptr(s).cast::<u8>() as usize).hash(&mut h),
        }
    }
    let key = h.finish();
    let mut arrays = ARRAYS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = arrays.get(&key).and_then(Weak::upgrade) {
        if known[..] == ids[..] {
            return known;
        }
    }
    if arrays.len() >= ID_ARRAYS_LIMIT {
        arrays.retain(|_, w| w.strong_count() > 0);
        if arrays.len() >= ID_ARRAYS_LIMIT {
            arrays.clear();
        }
    }
    let fresh: Arc<[NodeId]> = Arc::from(ids);
    arrays.insert(key, Arc::downgrade(&fresh));
    fresh
}

fn overflow(id: &NodeId) -> Error {
    Error::CounterOverflow(format!("the counter of node {id} would pass 2**64-1"))
}

impl VectorClock {
    /// The clock that knows no events.
    pub fn new() -> Self {
        VectorClock::default()
    }

    fn from_sorted(ids: Vec<NodeId>, counters: Vec<u64>) -> Self {
        VectorClock {
            ids: id_array(ids),
            counters,
        }
    }

    /// A clock from (node, counter) pairs in any order; zero counters are dropped.
    pub fn from_entries(entries: impl IntoIterator<Item = (NodeId, u64)>) -> Result<Self> {
        let mut v: Vec<(NodeId, u64)> = entries.into_iter().filter(|e| e.1 > 0).collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = v.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::DuplicateNode(match &w[0].0 {
                NodeId::Str(s) => s.to_string(),
                NodeId::Int(i) => i.to_string(),
            }));
        }
        let (ids, counters) = v.into_iter().unzip();
        Ok(VectorClock::from_sorted(ids, counters))
    }

    /// The (node, counter) entries, sorted by node id, all counters > 0.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (&NodeId, u64)> + Clone + '_ {
        self.ids.iter().zip(self.counters.iter().copied())
    }

    /// The node ids, sorted.
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// The counters, in node-id order.
    pub fn counters(&self) -> &[u64] {
        &self.counters
    }

    /// Number of nodes with a non-zero counter.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    /// True if no node has a counter.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// Sum of all counters: strictly larger for a clock that happened after another.
    pub fn total(&self) -> u128 {
        self.counters.iter().map(|&c| u128::from(c)).sum()
    }

    fn find(&self, id: &NodeId) -> std::result::Result<usize, usize> {
        self.ids.binary_search(id)
    }

    /// The counter of `id` (0 if absent).
    pub fn get(&self, id: &NodeId) -> u64 {
        self.find(id).map_or(0, |i| self.counters[i])
    }

    /// Adds `by` to the counter of `id` and returns the new value; fails, changing nothing, if it
    /// would pass `u64::MAX`.
    pub fn increment(&mut self, id: &NodeId, by: u64) -> Result<u64> {
        match self.find(id) {
            Ok(i) => {
                let c = &mut self.counters[i];
                *c = c.checked_add(by).ok_or_else(|| overflow(id))?;
                Ok(*c)
            }
            Err(_) if by == 0 => Ok(0),
            Err(i) => {
                self.insert_at(i, id, by);
                Ok(by)
            }
        }
    }

    fn insert_at(&mut self, i: usize, id: &NodeId, value: u64) {
        let mut ids = self.ids.to_vec();
        ids.insert(i, id.clone());
        self.ids = id_array(ids);
        self.counters.insert(i, value);
    }

    /// Sets the counter of `id` (0 removes it).
    pub fn set(&mut self, id: &NodeId, value: u64) {
        match (self.find(id), value) {
            (Ok(i), 0) => {
                self.remove_at(i);
            }
            (Ok(i), v) => self.counters[i] = v,
            (Err(_), 0) => {}
            (Err(i), v) => self.insert_at(i, id, v),
        }
    }

    fn remove_at(&mut self, i: usize) -> u64 {
        let mut ids = self.ids.to_vec();
        ids.remove(i);
        self.ids = id_array(ids);
        self.counters.remove(i)
    }

    /// Removes `id`; returns its counter (0 if it was absent).
    pub fn remove(&mut self, id: &NodeId) -> u64 {
        self.find(id).map_or(0, |i| self.remove_at(i))
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&NodeId, u64) -> bool) {
        let kept: Vec<bool> = self.entries().map(|(k, c)| keep(k, c)).collect();
        if kept.iter().all(|&k| k) {
            return;
        }
        let (ids, counters) = self
            .entries()
            .zip(&kept)
            .filter(|e| *e.1)
            .map(|((k, c), _)| (k.clone(), c))
            .unzip();
        *self = VectorClock::from_sorted(ids, counters);
    }

    /// The pointwise maximum (least upper bound) of two clocks.
    #[must_use]
    pub fn merged(&self, other: &VectorClock) -> VectorClock {
        let mut out = self.clone();
        out.merge(other);
        out
    }

    /// Replaces this clock with its merge with `other`.
    pub fn merge(&mut self, other: &VectorClock) {
        if same_ids(&self.ids, &other.ids) {
            // Same nodes: a pointwise max of the counters, the id array stays shared.
            for (a, b) in self.counters.iter_mut().zip(&other.counters) {
                *a = (*a).max(*b);
            }
            if !Arc::ptr_eq(&self.ids, &other.ids) {
                self.ids = Arc::clone(&other.ids);
            }
            return;
        }
        let (ids, counters) = {
            let (mut a, mut b) = (self.entries().peekable(), other.entries().peekable());
            let mut ids = Vec::with_capacity(self.len().max(other.len()));
            let mut counters = Vec::with_capacity(ids.capacity());
            loop {
                let next = match (a.peek(), b.peek()) {
                    (Some(x), Some(y)) => match x.0.cmp(y.0) {
                        CmpOrdering::Less => a.next(),
                        CmpOrdering::Greater => b.next(),
                        CmpOrdering::Equal => {
                            let both = (x.0, x.1.max(y.1));
                            a.next();
                            b.next();
                            Some(both)
                        }
                    },
                    (Some(_), None) => a.next(),
                    (None, Some(_)) => b.next(),
                    (None, None) => break,
                };
                let (id, c) = next.expect("one side has an entry");
                ids.push(id.clone());
                counters.push(c);
            }
            (ids, counters)
        };
        // Prefer the other clock's id array when the merge added nothing to it.
        self.ids = if ids.len() == other.ids.len() {
            Arc::clone(&other.ids)
        } else {
            id_array(ids)
        };
        self.counters = counters;
    }

    /// How this clock relates to `other` under happens-before.
    pub fn compare(&self, other: &VectorClock) -> Order {
        let (less, greater) = if same_ids(&self.ids, &other.ids) {
            counters_cmp(&self.counters, &other.counters)
        } else {
            self.compare_general(other)
        };
        match (less, greater) {
            (false, false) => Order::Equal,
            (true, false) => Order::Before,
            (false, true) => Order::After,
            (true, true) => Order::Concurrent,
        }
    }

    /// `(less, greater)` for clocks over different nodes: one merge-like walk that stops once
    /// both are known.
    fn compare_general(&self, other: &VectorClock) -> (bool, bool) {
        let (a, b) = (&self.ids, &other.ids);
        let (ca, cb) = (&self.counters, &other.counters);
        let (mut less, mut greater) = (false, false);
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].cmp(&b[j]) {
                CmpOrdering::Less => {
                    greater = true;
                    i += 1;
                }
                CmpOrdering::Greater => {
                    less = true;
                    j += 1;
                }
                CmpOrdering::Equal => {
                    less |= ca[i] < cb[j];
                    greater |= ca[i] > cb[j];
                    i += 1;
                    j += 1;
                }
            }
            if less && greater {
                return (true, true);
            }
        }
        (less || j < b.len(), greater || i < a.len())
    }

    /// True if every counter is >= `other`'s (this clock happened after or is equal).
    pub fn dominates(&self, other: &VectorClock) -> bool {
        matches!(self.compare(other), Order::After | Order::Equal)
    }

    /// The stable binary encoding: `b"VC"`, version 1, the entry count, then each entry's node
    /// id and counter (see [`super::codec`]), in node-id order.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_header(MAGIC, VERSION);
        self.encode_body(&mut w);
        w.buf
    }

    /// Writes the entry count and entries (no header), for encodings that embed a clock.
    pub fn encode_body(&self, w: &mut Writer) {
        w.uvarint(self.len() as u64);
        for (id, c) in self.entries() {
            w.node_id(id);
            w.uvarint(c);
        }
    }

    /// Decodes [`VectorClock::encode`]'s output; anything else is an [`Error::Decode`].
    pub fn decode(data: &[u8]) -> Result<VectorClock> {
        let mut r = Reader::with_header(data, MAGIC, VERSION, "vector clock")?;
        let vc = Self::decode_body(&mut r)?;
        r.finish()?;
        Ok(vc)
    }

    /// Reads what [`VectorClock::encode_body`] wrote; entries must be in strictly increasing
    /// node-id order with counters > 0.
    pub fn decode_body(r: &mut Reader<'_>) -> Result<VectorClock> {
        // An entry takes at least 3 bytes: tag, one id byte, one counter byte.
        let n = r.count(3)?;
        let mut raw: Vec<RawId<'_>> = Vec::with_capacity(n);
        let mut counters = Vec::with_capacity(n);
        for _ in 0..n {
            let id = r.raw_node_id()?;
            let c = r.uvarint()?;
            if c == 0 {
                return Err(r.error("zero counter"));
            }
            if raw.last().is_some_and(|last| *last >= id) {
                return Err(r.error("node ids out of order or repeated"));
            }
            raw.push(id);
            counters.push(c);
        }
        // Intern only once the whole input is known to be valid, under one lock.
        Ok(VectorClock::from_sorted(NodeId::many(raw), counters))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vc(pairs: &[(&str, u64)]) -> VectorClock {
        VectorClock::from_entries(pairs.iter().map(|(k, v)| (NodeId::from(*k), *v))).unwrap()
    }

    #[test]
    fn compare_all_four_ways() {
        let a = vc(&[("a", 1), ("b", 2)]);
        assert_eq!(a.compare(&a.clone()), Order::Equal);
        assert_eq!(a.compare(&vc(&[("a", 1), ("b", 3)])), Order::Before);
        assert_eq!(
            a.compare(&vc(&[("a", 1), ("b", 2), ("c", 1)])),
            Order::Before
        );
        assert_eq!(a.compare(&vc(&[("a", 1)])), Order::After);
        assert_eq!(a.compare(&vc(&[("a", 2), ("b", 1)])), Order::Concurrent);
        assert_eq!(a.compare(&vc(&[("c", 1)])), Order::Concurrent);
        assert_eq!(VectorClock::new().compare(&a), Order::Before);
        assert_eq!(a.compare(&vc(&[("b", 2), ("c", 1)])), Order::Concurrent);
    }

    #[test]
    fn merge_is_pointwise_max_and_zero_is_absent() {
        let mut a = vc(&[("a", 1), ("b", 5)]);
        let b = vc(&[("b", 3), ("c", 2), ("x", 0)]);
        assert_eq!(b.len(), 2);
        a.merge(&b);
        assert_eq!(a, vc(&[("a", 1), ("b", 5), ("c", 2)]));
        let mut same = vc(&[("a", 1), ("b", 1)]);
        same.merge(&vc(&[("a", 3), ("b", 0)]));
        assert_eq!(same, vc(&[("a", 3), ("b", 1)]));
    }

    #[test]
    fn increment_overflow_changes_nothing() {
        let mut a = vc(&[("a", u64::MAX - 1)]);
        assert_eq!(a.increment(&NodeId::from("a"), 1).unwrap(), u64::MAX);
        assert!(matches!(
            a.increment(&NodeId::from("a"), 1),
            Err(Error::CounterOverflow(_))
        ));
        assert_eq!(a.get(&NodeId::from("a")), u64::MAX);
        assert_eq!(a.increment(&NodeId::from("new"), 0).unwrap(), 0);
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn encoding_round_trips_and_is_strict() {
        let a = VectorClock::from_entries([
            (NodeId::from("node-1"), 7),
            (NodeId::from(3), 1 << 40),
            (NodeId::from(-9), 1),
        ])
        .unwrap();
        let bytes = a.encode();
        assert_eq!(VectorClock::decode(&bytes).unwrap(), a);
        assert_eq!(
            VectorClock::decode(b"VC\x01\x00").unwrap(),
            VectorClock::new()
        );
        for bad in [
            &b""[..],
            b"VC",
            b"VC\x02\x00",
            b"VC\x01\x00\x00",                     // trailing
            b"VC\x01\x01\x00\x02\x00",             // zero counter
            b"VC\x01\x02\x00\x04\x01\x00\x02\x01", // ids out of order
            b"VC\x01\x01\x01\x02\xff\xfe\x01",     // not UTF-8
            b"VC\x01\x05\x00\x02\x01",             // count larger than the data
        ] {
            assert!(
                matches!(VectorClock::decode(bad), Err(Error::Decode(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn clocks_over_the_same_nodes_share_their_id_array() {
        let first = vc(&[("a", 1), ("b", 2), ("c", 3)]);
        let decoded = VectorClock::decode(&vc(&[("a", 5), ("b", 1), ("c", 3)]).encode()).unwrap();
        assert!(Arc::ptr_eq(&first.ids, &decoded.ids));
        assert_eq!(first.compare(&decoded), Order::Concurrent);
        let mut grown = first.clone();
        grown.increment(&NodeId::from("d"), 1).unwrap();
        assert!(!Arc::ptr_eq(&first.ids, &grown.ids));
        assert_eq!(first.compare(&grown), Order::Before);
        grown.remove(&NodeId::from("d"));
        assert!(Arc::ptr_eq(&first.ids, &grown.ids));
        // Long clocks: the blocks that are equal are skipped, the differing ones decide.
        let long: Vec<(NodeId, u64)> = (0..100).map(|i| (NodeId::from(i), 7)).collect();
        let older = VectorClock::from_entries(long.clone()).unwrap();
        let mut newer = VectorClock::from_entries(long).unwrap();
        assert_eq!(older.compare(&newer), Order::Equal);
        newer.increment(&NodeId::from(99), 1).unwrap();
        assert_eq!(older.compare(&newer), Order::Before);
        newer.set(&NodeId::from(3), 1);
        assert_eq!(older.compare(&newer), Order::Concurrent);
    }

    #[test]
    fn duplicate_ids_refused() {
        assert!(
            VectorClock::from_entries([(NodeId::from("a"), 1), (NodeId::from("a"), 2)]).is_err()
        );
    }
}
