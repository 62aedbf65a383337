//! Vector clocks (Fidge/Mattern) and version vectors: a counter per node, sorted by node id.

use std::cmp::Ordering as CmpOrdering;

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
/// Entries are kept sorted by [`NodeId`] with no zero counters (a missing node counts 0), so the
/// representation of a clock is unique, equality is structural, and compare and merge are a
/// single pass over both entry lists.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct VectorClock {
    entries: Vec<(NodeId, u64)>,
}

impl std::fmt::Debug for VectorClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

impl VectorClock {
    /// The clock that knows no events.
    pub fn new() -> Self {
        VectorClock::default()
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
        Ok(VectorClock { entries: v })
    }

    /// The entries, sorted by node id, all counters > 0.
    pub fn entries(&self) -> &[(NodeId, u64)] {
        &self.entries
    }

    /// Number of nodes with a non-zero counter.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no node has a counter.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of all counters: strictly larger for a clock that happened after another.
    pub fn total(&self) -> u128 {
        self.entries.iter().map(|e| u128::from(e.1)).sum()
    }

    fn find(&self, id: &NodeId) -> std::result::Result<usize, usize> {
        self.entries.binary_search_by(|e| e.0.cmp(id))
    }

    /// The counter of `id` (0 if absent).
    pub fn get(&self, id: &NodeId) -> u64 {
        self.find(id).map_or(0, |i| self.entries[i].1)
    }

    /// Adds `by` to the counter of `id` and returns the new value; fails, changing nothing, if it
    /// would pass `u64::MAX`.
    pub fn increment(&mut self, id: &NodeId, by: u64) -> Result<u64> {
        match self.find(id) {
            Ok(i) => {
                let e = &mut self.entries[i].1;
                *e = e.checked_add(by).ok_or_else(|| {
                    Error::CounterOverflow(format!("the counter of node {id} would pass 2**64-1"))
                })?;
                Ok(*e)
            }
            Err(_) if by == 0 => Ok(0),
            Err(i) => {
                self.entries.insert(i, (id.clone(), by));
                Ok(by)
            }
        }
    }

    /// Sets the counter of `id` (0 removes it).
    pub fn set(&mut self, id: &NodeId, value: u64) {
        match (self.find(id), value) {
            (Ok(i), 0) => {
                self.entries.remove(i);
            }
            (Ok(i), v) => self.entries[i].1 = v,
            (Err(_), 0) => {}
            (Err(i), v) => self.entries.insert(i, (id.clone(), v)),
        }
    }

    /// Removes `id`; returns its counter (0 if it was absent).
    pub fn remove(&mut self, id: &NodeId) -> u64 {
        self.find(id).map_or(0, |i| self.entries.remove(i).1)
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&NodeId, u64) -> bool) {
        self.entries.retain(|e| keep(&e.0, e.1));
    }

    /// The pointwise maximum (least upper bound) of two clocks.
    #[must_use]
    pub fn merged(&self, other: &VectorClock) -> VectorClock {
        let (a, b) = (&self.entries, &other.entries);
        let mut out = Vec::with_capacity(a.len().max(b.len()));
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                CmpOrdering::Less => {
                    out.push(a[i].clone());
                    i += 1;
                }
                CmpOrdering::Greater => {
                    out.push(b[j].clone());
                    j += 1;
                }
                CmpOrdering::Equal => {
                    out.push((a[i].0.clone(), a[i].1.max(b[j].1)));
                    i += 1;
                    j += 1;
                }
            }
        }
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        VectorClock { entries: out }
    }

    /// Replaces this clock with its merge with `other`.
    pub fn merge(&mut self, other: &VectorClock) {
        // Common case: other adds nothing new, or only raises counters in place.
        if self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
                .all(|(a, b)| a.0 == b.0)
        {
            for (a, b) in self.entries.iter_mut().zip(&other.entries) {
                a.1 = a.1.max(b.1);
            }
        } else {
            *self = self.merged(other);
        }
    }

    /// How this clock relates to `other` under happens-before; one pass, stops early once the
    /// clocks are known to be concurrent.
    pub fn compare(&self, other: &VectorClock) -> Order {
        let (a, b) = (&self.entries, &other.entries);
        // less: some counter of self is below other's; greater: some counter is above.
        let (mut less, mut greater) = (false, false);
        let (mut i, mut j) = (0, 0);
        if a.len() == b.len() {
            // Same nodes in the same places is the common case (ids are interned, so the key
            // comparison is a pointer comparison); fall back to the general walk at the first
            // difference.
            while i < a.len() && a[i].0 == b[i].0 {
                less |= a[i].1 < b[i].1;
                greater |= a[i].1 > b[i].1;
                i += 1;
            }
            if less && greater {
                return Order::Concurrent;
            }
            j = i;
        }
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                CmpOrdering::Less => {
                    greater = true;
                    i += 1;
                }
                CmpOrdering::Greater => {
                    less = true;
                    j += 1;
                }
                CmpOrdering::Equal => {
                    less |= a[i].1 < b[j].1;
                    greater |= a[i].1 > b[j].1;
                    i += 1;
                    j += 1;
                }
            }
            if less && greater {
                return Order::Concurrent;
            }
        }
        greater |= i < a.len();
        less |= j < b.len();
        match (less, greater) {
            (false, false) => Order::Equal,
            (true, false) => Order::Before,
            (false, true) => Order::After,
            (true, true) => Order::Concurrent,
        }
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
        w.uvarint(self.entries.len() as u64);
        for (id, c) in &self.entries {
            w.node_id(id);
            w.uvarint(*c);
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
        let mut raw: Vec<(RawId<'_>, u64)> = Vec::with_capacity(n);
        for _ in 0..n {
            let id = r.raw_node_id()?;
            let c = r.uvarint()?;
            if c == 0 {
                return Err(r.error("zero counter"));
            }
            if raw.last().is_some_and(|last| last.0 >= id) {
                return Err(r.error("node ids out of order or repeated"));
            }
            raw.push((id, c));
        }
        // Intern only once the whole input is known to be valid, under one lock.
        let ids = NodeId::many(raw.iter().map(|e| e.0));
        Ok(VectorClock {
            entries: ids.into_iter().zip(raw.iter().map(|e| e.1)).collect(),
        })
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
    fn duplicate_ids_refused() {
        assert!(
            VectorClock::from_entries([(NodeId::from("a"), 1), (NodeId::from("a"), 2)]).is_err()
        );
    }
}
