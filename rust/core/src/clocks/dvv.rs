//! Dotted version vectors in the compact form of Riak's DVVSet (Gonçalves, Almeida, Baquero,
//! Fonte): the sibling values of one key together with the causal history that makes them
//! concurrent.
//!
//! A clock is a list of entries sorted by node id, each `(id, counter, values)`: the node's
//! events `1..=counter` are all known, and `values` (newest first) are the values written by its
//! last `values.len()` events that are still current, so the newest value has the dot
//! `(id, counter)`. Values without a dot (a client's new value, a reconciled value) are
//! *anonymous*. The semantics follow `dvvset.erl` (ricardobcl/Dotted-Version-Vectors); see
//! `docs/clocks-dvv.md` for the Riak read-modify-write flow.

use std::cmp::Ordering;
use std::convert::Infallible;

use super::codec::{Reader, Writer};
use super::{NodeId, VectorClock};
use crate::error::{Error, Result};

const MAGIC: [u8; 2] = *b"DV";
const VERSION: u8 = 1;

/// One node's entry of a [`DvvSet`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry<V> {
    /// The node (server, replica) whose events these are.
    pub id: NodeId,
    /// How many events of the node are known (always > 0 and >= `values.len()`).
    pub counter: u64,
    /// Values of the node's latest events still current, newest first: `values[k]` has the dot
    /// `(id, counter - k)`.
    pub values: Vec<V>,
}

/// Where the winner of [`DvvSet::lww`] was found.
#[derive(Clone, Copy)]
enum Slot {
    Entry(usize),
    Anonymous,
}

/// A dotted version vector set: sibling values with their causal history.
///
/// `==` on this type is structural (ids, counters and values, in order); [`DvvSet::equal`] is
/// dvvset's equality of causal histories only.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DvvSet<V> {
    entries: Vec<Entry<V>>,
    anonymous: Vec<V>,
}

impl<V> Default for DvvSet<V> {
    fn default() -> Self {
        DvvSet {
            entries: Vec::new(),
            anonymous: Vec::new(),
        }
    }
}

fn overflow(id: &NodeId) -> Error {
    Error::CounterOverflow(format!("the counter of node {id} would pass 2**64-1"))
}

/// Whether some counter of `a` is below `b`'s (`.0`) and whether some is above (`.1`); a missing
/// id counts 0.
fn counter_order<V, W>(a: &[Entry<V>], b: &[Entry<W>]) -> (bool, bool) {
    let (mut below, mut above) = (false, false);
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].id.cmp(&b[j].id) {
            Ordering::Less => {
                above = true;
                i += 1;
            }
            Ordering::Greater => {
                below = true;
                j += 1;
            }
            Ordering::Equal => {
                below |= a[i].counter < b[j].counter;
                above |= a[i].counter > b[j].counter;
                i += 1;
                j += 1;
            }
        }
        if below && above {
            return (true, true);
        }
    }
    (below || j < b.len(), above || i < a.len())
}

/// The entry that knows what both know: the larger counter, and of its values only those whose
/// dots neither side has seen superseded.
fn merge_entry<V: Clone>(a: &Entry<V>, b: &Entry<V>) -> Entry<V> {
    let (hi, lo) = if a.counter >= b.counter {
        (a, b)
    } else {
        (b, a)
    };
    // Dots at or below `obsolete` are known by one side without their value: overwritten.
    let obsolete = (hi.counter - hi.values.len() as u64).max(lo.counter - lo.values.len() as u64);
    let keep = (hi.counter - obsolete) as usize;
    Entry {
        id: hi.id.clone(),
        counter: hi.counter,
        values: hi.values[..keep].to_vec(),
    }
}

fn sync_entries<V: Clone>(a: &[Entry<V>], b: &[Entry<V>]) -> Vec<Entry<V>> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].id.cmp(&b[j].id) {
            Ordering::Less => {
                out.push(a[i].clone());
                i += 1;
            }
            Ordering::Greater => {
                out.push(b[j].clone());
                j += 1;
            }
            Ordering::Equal => {
                out.push(merge_entry(&a[i], &b[j]));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

impl<V> DvvSet<V> {
    /// The clock with no history and no values (the identity of [`DvvSet::sync`]).
    pub fn empty() -> Self {
        DvvSet::default()
    }

    /// A clock without causal history holding `values` as anonymous values (dvvset `new/1`).
    pub fn new(values: Vec<V>) -> Self {
        DvvSet {
            entries: Vec::new(),
            anonymous: values,
        }
    }

    /// A clock with the causal history `context` (a version vector, normally from
    /// [`DvvSet::join`] of what a client read) holding `values` as anonymous values (dvvset `new/2`).
    pub fn new_with_context(context: &VectorClock, values: Vec<V>) -> Self {
        DvvSet {
            entries: context
                .entries()
                .map(|(id, c)| Entry {
                    id: id.clone(),
                    counter: c,
                    values: Vec::new(),
                })
                .collect(),
            anonymous: values,
        }
    }

    /// A clock from its parts, in any order of ids. Entries with counter 0 and no values are
    /// dropped (a missing node counts 0); a repeated id or more values than the counter is an
    /// [`Error::InvalidArgument`].
    pub fn from_parts(
        entries: impl IntoIterator<Item = (NodeId, u64, Vec<V>)>,
        anonymous: Vec<V>,
    ) -> Result<Self> {
        let mut es: Vec<Entry<V>> = Vec::new();
        for (id, counter, values) in entries {
            if values.len() as u64 > counter {
                return Err(Error::InvalidArgument(format!(
                    "node {id} has {} values but counter {counter}: at most one value per event",
                    values.len()
                )));
            }
            if counter > 0 {
                es.push(Entry {
                    id,
                    counter,
                    values,
                });
            }
        }
        es.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(w) = es.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(Error::InvalidArgument(format!(
                "node {} appears twice",
                w[0].id
            )));
        }
        Ok(DvvSet {
            entries: es,
            anonymous,
        })
    }

    /// The entries, sorted by node id.
    pub fn entries(&self) -> &[Entry<V>] {
        &self.entries
    }

    /// The anonymous values (without a dot).
    pub fn anonymous(&self) -> &[V] {
        &self.anonymous
    }

    /// The causal history as a version vector (dvvset `join/1`).
    pub fn join(&self) -> VectorClock {
        VectorClock::from_entries(self.entries.iter().map(|e| (e.id.clone(), e.counter)))
            .expect("entries have distinct ids")
    }

    /// Number of values, with a dot or anonymous (dvvset `size/1`).
    pub fn size(&self) -> usize {
        self.anonymous.len() + self.entries.iter().map(|e| e.values.len()).sum::<usize>()
    }

    /// The node ids of the causal history, sorted (dvvset `ids/1`).
    pub fn ids(&self) -> Vec<NodeId> {
        self.entries.iter().map(|e| e.id.clone()).collect()
    }

    /// Every value: the anonymous ones, then each entry's, newest first (dvvset `values/1`).
    pub fn values(&self) -> Vec<&V> {
        self.anonymous
            .iter()
            .chain(self.entries.iter().flat_map(|e| e.values.iter()))
            .collect()
    }

    /// True if this clock's history is strictly older than `other`'s, so its values are
    /// outdated (dvvset `less/2`; the values themselves are not looked at).
    pub fn less<W>(&self, other: &DvvSet<W>) -> bool {
        let (below, above) = counter_order(&self.entries, &other.entries);
        below && !above
    }

    /// True if both clocks have the same causal history: the same ids, counters and number of
    /// values per id (dvvset `equal/2`; the values and anonymous values are not looked at).
    pub fn equal<W>(&self, other: &DvvSet<W>) -> bool {
        self.entries.len() == other.entries.len()
            && self.entries.iter().zip(&other.entries).all(|(a, b)| {
                a.id == b.id && a.counter == b.counter && a.values.len() == b.values.len()
            })
    }

    /// The same clock with `f` applied to every value (dvvset `map/2`).
    pub fn map<W>(&self, mut f: impl FnMut(&V) -> W) -> DvvSet<W> {
        match self.try_map(|v| Ok::<W, Infallible>(f(v))) {
            Ok(c) => c,
            Err(never) => match never {},
        }
    }

    /// [`DvvSet::map`] with a function that may fail; the first error is returned.
    pub fn try_map<W, E>(
        &self,
        mut f: impl FnMut(&V) -> std::result::Result<W, E>,
    ) -> std::result::Result<DvvSet<W>, E> {
        let mut entries = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            entries.push(Entry {
                id: e.id.clone(),
                counter: e.counter,
                values: e
                    .values
                    .iter()
                    .map(&mut f)
                    .collect::<std::result::Result<_, E>>()?,
            });
        }
        let anonymous = self
            .anonymous
            .iter()
            .map(&mut f)
            .collect::<std::result::Result<_, E>>()?;
        Ok(DvvSet { entries, anonymous })
    }

    /// The history with no values in the entries.
    fn bare_entries<W>(&self) -> Vec<Entry<W>> {
        self.entries
            .iter()
            .map(|e| Entry {
                id: e.id.clone(),
                counter: e.counter,
                values: Vec::new(),
            })
            .collect()
    }

    /// The newest value by `le(a, b)` ("a is older than or as old as b"), among the newest value
    /// of each entry then the anonymous values; a tie goes to the later one. `None` if the clock
    /// holds no values.
    fn try_find_last<E>(
        &self,
        mut le: impl FnMut(&V, &V) -> std::result::Result<bool, E>,
    ) -> std::result::Result<Option<(Slot, &V)>, E> {
        let candidates = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.values.first().map(|v| (Slot::Entry(i), v)))
            .chain(self.anonymous.iter().map(|v| (Slot::Anonymous, v)));
        let mut best: Option<(Slot, &V)> = None;
        for (slot, v) in candidates {
            best = match best {
                Some((_, b)) if le(b, v)? => Some((slot, v)),
                Some(b) => Some(b),
                None => Some((slot, v)),
            };
        }
        Ok(best)
    }

    /// The newest value by `le` (dvvset `last/2`); see [`DvvSet::lww`] for which values compete.
    pub fn last(&self, mut le: impl FnMut(&V, &V) -> bool) -> Option<&V> {
        match self.try_last(|a, b| Ok::<bool, Infallible>(le(a, b))) {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// [`DvvSet::last`] with a comparison that may fail.
    pub fn try_last<E>(
        &self,
        le: impl FnMut(&V, &V) -> std::result::Result<bool, E>,
    ) -> std::result::Result<Option<&V>, E> {
        Ok(self.try_find_last(le)?.map(|(_, v)| v))
    }
}

impl<V: Clone> DvvSet<V> {
    /// The clock that knows what both know, keeping every value not made obsolete by the other
    /// side's history (dvvset `sync/2`). Anonymous values of concurrent clocks are kept once
    /// each, `eq` deciding which are the same.
    pub fn try_sync_pair_by<E>(
        &self,
        other: &DvvSet<V>,
        mut eq: impl FnMut(&V, &V) -> std::result::Result<bool, E>,
    ) -> std::result::Result<Self, E> {
        let anonymous = if self.less(other) {
            other.anonymous.clone()
        } else if other.less(self) {
            self.anonymous.clone()
        } else {
            let mut out = self.anonymous.clone();
            for v in &other.anonymous {
                let mut seen = false;
                for u in &self.anonymous {
                    if eq(u, v)? {
                        seen = true;
                        break;
                    }
                }
                if !seen {
                    out.push(v.clone());
                }
            }
            out
        };
        Ok(DvvSet {
            entries: sync_entries(&self.entries, &other.entries),
            anonymous,
        })
    }

    /// Syncs a list of clocks left to right (dvvset `sync/1`); the empty list gives the empty clock.
    pub fn try_sync_by<'a, E>(
        clocks: impl IntoIterator<Item = &'a DvvSet<V>>,
        mut eq: impl FnMut(&V, &V) -> std::result::Result<bool, E>,
    ) -> std::result::Result<Self, E>
    where
        V: 'a,
    {
        let mut it = clocks.into_iter();
        let Some(first) = it.next() else {
            return Ok(DvvSet::empty());
        };
        let mut acc = first.clone();
        for c in it {
            acc = acc.try_sync_pair_by(c, &mut eq)?;
        }
        Ok(acc)
    }

    /// [`DvvSet::try_sync_by`] with `==` on the values.
    pub fn sync<'a>(clocks: impl IntoIterator<Item = &'a DvvSet<V>>) -> Self
    where
        V: PartialEq + 'a,
    {
        match Self::try_sync_by(clocks, |a, b| Ok::<bool, Infallible>(a == b)) {
            Ok(c) => c,
            Err(never) => match never {},
        }
    }

    /// The server's step of a write (dvvset `update/2` and `update/3`).
    ///
    /// `self` is the client's clock: the context it read plus exactly one new anonymous value
    /// (from [`DvvSet::new_with_context`]). The result knows the client's context and, if given,
    /// the `server`'s stored clock, plus one new event of node `id` whose dot carries the new
    /// value; the server's values not seen by the client remain as siblings. Fails with
    /// [`Error::InvalidArgument`] unless the client clock holds exactly one anonymous value, and
    /// with [`Error::CounterOverflow`] if `id`'s counter is already `u64::MAX`.
    pub fn update(&self, server: Option<&DvvSet<V>>, id: &NodeId) -> Result<Self> {
        let [value] = self.anonymous.as_slice() else {
            return Err(Error::InvalidArgument(format!(
                "the client clock must hold exactly one new value, not {}",
                self.anonymous.len()
            )));
        };
        let (mut entries, anonymous) = match server {
            None => (self.entries.clone(), Vec::new()),
            Some(s) => {
                // Synced without the new value: the server's anonymous values stay unless the
                // client's context is strictly newer than the server's history.
                let anonymous = if s.less(self) {
                    Vec::new()
                } else {
                    s.anonymous.clone()
                };
                (sync_entries(&self.entries, &s.entries), anonymous)
            }
        };
        match entries.binary_search_by(|e| e.id.cmp(id)) {
            Ok(i) => {
                let e = &mut entries[i];
                e.counter = e.counter.checked_add(1).ok_or_else(|| overflow(id))?;
                e.values.insert(0, value.clone());
            }
            Err(i) => entries.insert(
                i,
                Entry {
                    id: id.clone(),
                    counter: 1,
                    values: vec![value.clone()],
                },
            ),
        }
        Ok(DvvSet { entries, anonymous })
    }

    /// The same history with only the newest value (dvvset `lww/2`): `le(a, b)` says whether `a`
    /// is older than or as old as `b`. The candidates are the newest value of each entry (in id
    /// order) then the anonymous values; a tie goes to the later candidate. The winner keeps its
    /// dot (or stays anonymous). `None` if the clock holds no values.
    pub fn lww(&self, mut le: impl FnMut(&V, &V) -> bool) -> Option<Self> {
        match self.try_lww(|a, b| Ok::<bool, Infallible>(le(a, b))) {
            Ok(c) => c,
            Err(never) => match never {},
        }
    }

    /// [`DvvSet::lww`] with a comparison that may fail.
    pub fn try_lww<E>(
        &self,
        le: impl FnMut(&V, &V) -> std::result::Result<bool, E>,
    ) -> std::result::Result<Option<Self>, E> {
        let Some((slot, v)) = self.try_find_last(le)? else {
            return Ok(None);
        };
        let mut entries = self.bare_entries();
        let anonymous = match slot {
            Slot::Entry(i) => {
                entries[i].values.push(v.clone());
                Vec::new()
            }
            Slot::Anonymous => vec![v.clone()],
        };
        Ok(Some(DvvSet { entries, anonymous }))
    }

    /// The same history with the one anonymous value `f(values)` (dvvset `reconcile/2`).
    #[must_use]
    pub fn reconcile(&self, f: impl FnOnce(Vec<&V>) -> V) -> Self {
        match self.try_reconcile(|vs| Ok::<V, Infallible>(f(vs))) {
            Ok(c) => c,
            Err(never) => match never {},
        }
    }

    /// [`DvvSet::reconcile`] with a function that may fail.
    pub fn try_reconcile<E>(
        &self,
        f: impl FnOnce(Vec<&V>) -> std::result::Result<V, E>,
    ) -> std::result::Result<Self, E> {
        let v = f(self.values())?;
        Ok(DvvSet {
            entries: self.bare_entries(),
            anonymous: vec![v],
        })
    }

    /// The stable binary encoding: `b"DV"`, version 1, the entry count, each entry's node id,
    /// counter, value count and values (in id order, values newest first), then the anonymous
    /// value count and values. Each value is written by `value` (see [`super::codec`]).
    pub fn encode(&self, mut value: impl FnMut(&V, &mut Writer)) -> Vec<u8> {
        let mut w = Writer::with_header(MAGIC, VERSION);
        w.uvarint(self.entries.len() as u64);
        for e in &self.entries {
            w.node_id(&e.id);
            w.uvarint(e.counter);
            w.uvarint(e.values.len() as u64);
            for v in &e.values {
                value(v, &mut w);
            }
        }
        w.uvarint(self.anonymous.len() as u64);
        for v in &self.anonymous {
            value(v, &mut w);
        }
        w.buf
    }

    /// Decodes [`DvvSet::encode`]'s output, each value read by `value` (which must consume at
    /// least one byte). Ids must be strictly increasing, counters > 0 and no smaller than their
    /// value counts, and nothing may follow; anything else is an [`Error::Decode`].
    pub fn decode(
        data: &[u8],
        mut value: impl FnMut(&mut Reader<'_>) -> Result<V>,
    ) -> Result<Self> {
        let mut r = Reader::with_header(data, MAGIC, VERSION, "dotted version vector set")?;
        // An entry takes at least 4 bytes: id tag, one id byte, counter, value count.
        let n = r.count(4)?;
        let mut entries: Vec<Entry<V>> = Vec::with_capacity(n);
        for _ in 0..n {
            let id = r.node_id()?;
            if entries.last().is_some_and(|last| last.id >= id) {
                return Err(r.error("node ids out of order or repeated"));
            }
            let counter = r.uvarint()?;
            if counter == 0 {
                return Err(r.error("zero counter"));
            }
            let k = r.count(1)?;
            if k as u64 > counter {
                return Err(r.error("more values than events"));
            }
            let mut values = Vec::with_capacity(k);
            for _ in 0..k {
                values.push(value(&mut r)?);
            }
            entries.push(Entry {
                id,
                counter,
                values,
            });
        }
        let k = r.count(1)?;
        let mut anonymous = Vec::with_capacity(k);
        for _ in 0..k {
            anonymous.push(value(&mut r)?);
        }
        r.finish()?;
        Ok(DvvSet { entries, anonymous })
    }
}

#[cfg(test)]
// The scenarios keep the one-letter clock names of dvvset.erl's eunit tests they re-derive.
#[allow(clippy::many_single_char_names)]
mod tests {
    use super::*;
    use crate::clocks::Order;
    use proptest::prelude::*;

    type D = DvvSet<&'static str>;

    fn id(s: &str) -> NodeId {
        NodeId::from(s)
    }

    fn d(entries: &[(&str, u64, &[&'static str])], anon: &[&'static str]) -> D {
        DvvSet::from_parts(
            entries.iter().map(|(i, c, v)| (id(i), *c, v.to_vec())),
            anon.to_vec(),
        )
        .unwrap()
    }

    fn write(context: &D, v: &'static str, server: Option<&D>, node: &str) -> D {
        DvvSet::new_with_context(&context.join(), vec![v])
            .update(server, &id(node))
            .unwrap()
    }

    fn vv(pairs: &[(&str, u64)]) -> VectorClock {
        VectorClock::from_entries(pairs.iter().map(|(k, v)| (id(k), *v))).unwrap()
    }

    #[test]
    fn join_is_the_history() {
        let a = DvvSet::new(vec!["v1"]);
        let a1 = a.update(None, &id("a")).unwrap();
        let b1 = write(&a1, "v2", Some(&a1), "b");
        assert_eq!(a.join(), VectorClock::new());
        assert_eq!(a1.join(), vv(&[("a", 1)]));
        assert_eq!(b1.join(), vv(&[("a", 1), ("b", 1)]));
    }

    #[test]
    fn update_adds_one_event_and_keeps_unseen_siblings() {
        let a0 = DvvSet::new(vec!["v1"]).update(None, &id("a")).unwrap();
        let a1 = write(&a0, "v2", Some(&a0), "a");
        let a2 = write(&a1, "v3", Some(&a1), "b");
        let a3 = write(&a0, "v4", Some(&a1), "b");
        let a4 = write(&a0, "v5", Some(&a1), "a");
        assert_eq!(a0, d(&[("a", 1, &["v1"])], &[]));
        assert_eq!(a1, d(&[("a", 2, &["v2"])], &[]));
        assert_eq!(a2, d(&[("a", 2, &[]), ("b", 1, &["v3"])], &[]));
        assert_eq!(a3, d(&[("a", 2, &["v2"]), ("b", 1, &["v4"])], &[]));
        assert_eq!(a4, d(&[("a", 3, &["v5", "v2"])], &[]));
    }

    #[test]
    fn update_without_context_keeps_everything() {
        let a0 = DvvSet::new(vec!["v1"]).update(None, &id("a")).unwrap();
        let vv1 = a0.join();
        let a1 = DvvSet::new(vec!["v2"]).update(Some(&a0), &id("a")).unwrap();
        let a2 = DvvSet::new_with_context(&vv1, vec!["v3"])
            .update(Some(&a1), &id("a"))
            .unwrap();
        assert_eq!(a1, d(&[("a", 2, &["v2", "v1"])], &[]));
        // v3 was written having seen v1, so v1 is gone; v2 is concurrent with v3.
        assert_eq!(a2, d(&[("a", 3, &["v3", "v2"])], &[]));
    }

    #[test]
    fn update_needs_one_value_and_checks_overflow() {
        assert!(matches!(
            DvvSet::<u8>::new(vec![]).update(None, &id("a")),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            DvvSet::new(vec![1, 2]).update(None, &id("a")),
            Err(Error::InvalidArgument(_))
        ));
        let full = DvvSet::from_parts([(id("a"), u64::MAX, vec![1])], vec![]).unwrap();
        let client = DvvSet::new_with_context(&full.join(), vec![2]);
        assert!(matches!(
            client.update(Some(&full), &id("a")),
            Err(Error::CounterOverflow(_))
        ));
        assert_eq!(
            client.update(Some(&full), &id("b")).unwrap().ids(),
            vec![id("a"), id("b")]
        );
    }

    #[test]
    fn sync_conformance() {
        let x = d(&[("x", 1, &[])], &[]);
        let a = DvvSet::new(vec!["v1"]).update(None, &id("a")).unwrap();
        let y = DvvSet::new(vec!["v2"]).update(None, &id("b")).unwrap();
        let a1 = DvvSet::new_with_context(&a.join(), vec!["v2"])
            .update(None, &id("a"))
            .unwrap();
        let a3 = DvvSet::new_with_context(&a1.join(), vec!["v3"])
            .update(None, &id("b"))
            .unwrap();
        let a4 = DvvSet::new_with_context(&a1.join(), vec!["v3"])
            .update(None, &id("c"))
            .unwrap();
        let w = d(&[("a", 1, &[])], &[]);
        let z = d(&[("a", 2, &["v2", "v1"])], &[]);
        assert_eq!(DvvSet::sync([&w, &z]), d(&[("a", 2, &["v2"])], &[]));
        assert_eq!(DvvSet::sync([&w, &z]), DvvSet::sync([&z, &w]));
        assert_eq!(DvvSet::sync([&a, &a1]), DvvSet::sync([&a1, &a]));
        assert_eq!(
            DvvSet::sync([&a4, &a3]),
            d(&[("a", 2, &[]), ("b", 1, &["v3"]), ("c", 1, &["v3"])], &[])
        );
        assert_eq!(DvvSet::sync([&a4, &a3]), DvvSet::sync([&a3, &a4]));
        assert_eq!(
            DvvSet::sync([&x, &a]),
            d(&[("a", 1, &["v1"]), ("x", 1, &[])], &[])
        );
        assert_eq!(DvvSet::sync([&x, &a]), DvvSet::sync([&a, &x]));
        assert_eq!(
            DvvSet::sync([&a, &y]),
            d(&[("a", 1, &["v1"]), ("b", 1, &["v2"])], &[])
        );
        assert_eq!(DvvSet::sync([&y, &a]), DvvSet::sync([&a, &y]));
        let l = a4.lww(|p, q| p <= q).unwrap();
        assert_eq!(l, DvvSet::sync([&a4, &l]));
        assert_eq!(DvvSet::<u8>::sync([]), DvvSet::empty());
    }

    #[test]
    fn less_conformance() {
        let a = DvvSet::new(vec!["v1"]).update(None, &id("a")).unwrap();
        let up = |ctx: &D, v, node| {
            DvvSet::new_with_context(&ctx.join(), vec![v])
                .update(None, &id(node))
                .unwrap()
        };
        let b = up(&a, "v2", "a");
        let b2 = up(&a, "v2", "b");
        let b3 = up(&a, "v2", "z");
        let c = write(&b, "v3", Some(&a), "c");
        let dd = write(&c, "v4", Some(&b2), "d");
        for (p, q) in [
            (&a, &b),
            (&a, &c),
            (&b, &c),
            (&b, &dd),
            (&b2, &dd),
            (&a, &dd),
        ] {
            assert!(p.less(q));
        }
        for (p, q) in [
            (&b2, &c),
            (&b, &b2),
            (&b2, &b),
            (&a, &a),
            (&c, &c),
            (&dd, &b2),
            (&b3, &dd),
        ] {
            assert!(!p.less(q));
        }
    }

    #[test]
    fn equal_size_ids_values_map() {
        let a = d(&[("a", 4, &["v5", "v0"]), ("c", 1, &["v3"])], &["v0"]);
        let b = d(
            &[("a", 4, &["v555", "v0"]), ("b", 0, &[]), ("c", 1, &["v3"])],
            &[],
        );
        let c = d(&[("a", 4, &["v5", "v0"])], &["v6", "v1"]);
        assert!(a.equal(&b) && b.equal(&a));
        assert!(!a.equal(&c) && !b.equal(&c));
        assert_eq!(a.size(), 4);
        assert_eq!(DvvSet::new(vec!["v1"]).size(), 1);
        assert_eq!(b.ids(), vec![id("a"), id("c")]);
        assert_eq!(a.values(), vec![&"v0", &"v5", &"v0", &"v3"]);
        let m = d(&[("a", 4, &["5", "0"]), ("c", 1, &["2"])], &["20", "10"]).map(|v| v.len() * 2);
        assert_eq!(m.values(), vec![&4, &4, &2, &2, &2]);
        assert!(m.equal(&a));
    }

    #[test]
    fn lww_last_reconcile_conformance() {
        let le = |a: &u32, b: &u32| a <= b;
        let x = DvvSet::from_parts(
            [
                (id("a"), 4, vec![5, 2]),
                (id("b"), 1, vec![]),
                (id("c"), 1, vec![3]),
            ],
            vec![],
        )
        .unwrap();
        let y = DvvSet::from_parts(
            x.entries
                .iter()
                .map(|e| (e.id.clone(), e.counter, e.values.clone())),
            vec![10, 0],
        )
        .unwrap();
        let z =
            DvvSet::from_parts([(id("a"), 4, vec![5, 2]), (id("b"), 1, vec![1])], vec![3]).unwrap();
        assert_eq!(x.last(le), Some(&5));
        assert_eq!(y.last(le), Some(&10));
        let bare = |anon: Vec<u32>| {
            DvvSet::from_parts(
                [
                    (id("a"), 4, vec![]),
                    (id("b"), 1, vec![]),
                    (id("c"), 1, vec![]),
                ],
                anon,
            )
            .unwrap()
        };
        assert_eq!(
            x.lww(le).unwrap(),
            DvvSet::from_parts(
                [
                    (id("a"), 4, vec![5]),
                    (id("b"), 1, vec![]),
                    (id("c"), 1, vec![])
                ],
                vec![]
            )
            .unwrap()
        );
        assert_eq!(y.lww(le).unwrap(), bare(vec![10]));
        assert_eq!(
            z.lww(le).unwrap(),
            DvvSet::from_parts([(id("a"), 4, vec![5]), (id("b"), 1, vec![])], vec![]).unwrap()
        );
        // Pairs (value, timestamp): only the newest value of each entry competes.
        let t = DvvSet::from_parts(
            [
                (id("a"), 4, vec![(5, 1_002_345), (7, 1_002_340)]),
                (id("b"), 1, vec![(4, 1_001_340)]),
            ],
            vec![(2, 1_001_140)],
        )
        .unwrap();
        let l = t.lww(|p: &(u32, u32), q| p.1 <= q.1).unwrap();
        assert_eq!(l.values(), vec![&(5, 1_002_345)]);
        assert_eq!(l.entries()[0].values.len(), 1);
        // Ties go to the later candidate.
        let tie = DvvSet::from_parts(
            [(id("a"), 1, vec![(1, 0)]), (id("b"), 1, vec![(2, 0)])],
            vec![],
        )
        .unwrap();
        assert_eq!(tie.last(|p: &(u32, u32), q| p.1 <= q.1), Some(&(2, 0)));
        assert_eq!(DvvSet::<u32>::empty().last(le), None);
        assert!(DvvSet::<u32>::empty().lww(le).is_none());

        assert_eq!(x.reconcile(|vs| vs.into_iter().sum()), bare(vec![10]));
        assert_eq!(y.reconcile(|vs| vs.into_iter().sum()), bare(vec![20]));
        assert_eq!(
            x.reconcile(|vs| *vs.into_iter().min().unwrap()),
            bare(vec![2])
        );
        assert_eq!(
            y.reconcile(|vs| *vs.into_iter().min().unwrap()),
            bare(vec![0])
        );
    }

    #[test]
    fn from_parts_validates() {
        assert!(DvvSet::from_parts([(id("a"), 1, vec![1, 2])], vec![]).is_err());
        assert!(DvvSet::from_parts([(id("a"), 1, vec![]), (id("a"), 2, vec![])], vec![0]).is_err());
        let c = DvvSet::from_parts([(id("b"), 1, vec![1]), (id("a"), 0, vec![])], vec![]).unwrap();
        assert_eq!(c.ids(), vec![id("b")]);
    }

    fn enc(c: &DvvSet<u32>) -> Vec<u8> {
        c.encode(|v, w| w.uvarint(u64::from(*v)))
    }

    fn dec(b: &[u8]) -> Result<DvvSet<u32>> {
        DvvSet::decode(b, |r| {
            u32::try_from(r.uvarint()?).map_err(|_| r.error("value too large"))
        })
    }

    #[test]
    fn encoding_round_trips_and_is_strict() {
        let c = DvvSet::from_parts(
            [
                (id("a"), 4, vec![5, 2]),
                (NodeId::from(-3), 1 << 40, vec![]),
                (id("c"), 1, vec![3]),
            ],
            vec![7, 7],
        )
        .unwrap();
        assert_eq!(dec(&enc(&c)).unwrap(), c);
        assert_eq!(dec(b"DV\x01\x00\x00").unwrap(), DvvSet::empty());
        for bad in [
            &b""[..],
            b"DV\x01",
            b"DV\x02\x00\x00",
            b"DV\x01\x00\x00\x00",                             // trailing
            b"DV\x01\x01\x00\x02\x00\x00\x00",                 // zero counter
            b"DV\x01\x01\x00\x02\x01\x02\x01\x01\x00",         // more values than events
            b"DV\x01\x02\x00\x04\x01\x00\x00\x02\x01\x00\x00", // ids out of order
            b"DV\x01\x00\x05\x01",                             // count larger than the data
        ] {
            assert!(matches!(dec(bad), Err(Error::Decode(_))), "{bad:?}");
        }
    }

    // Random histories: clients read from one server and write to another, servers sync with
    // each other; every clock that ever existed is a candidate for the laws below.
    #[derive(Debug, Clone)]
    enum Op {
        Write { read: usize, to: usize, blind: bool },
        Sync { from: usize, to: usize },
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                3 => (0..3usize, 0..3usize, any::<bool>())
                    .prop_map(|(read, to, blind)| Op::Write { read, to, blind }),
                1 => (0..3usize, 0..3usize).prop_map(|(from, to)| Op::Sync { from, to }),
            ],
            0..24,
        )
    }

    fn history(ops: &[Op]) -> Vec<DvvSet<u32>> {
        let mut servers = vec![DvvSet::<u32>::empty(); 3];
        let mut seen = servers.clone();
        let mut next = 0u32;
        for op in ops {
            match *op {
                Op::Write { read, to, blind } => {
                    next += 1;
                    let client = if blind {
                        DvvSet::new(vec![next])
                    } else {
                        DvvSet::new_with_context(&servers[read].join(), vec![next])
                    };
                    servers[to] = client
                        .update(Some(&servers[to]), &NodeId::from(to as i64))
                        .unwrap();
                    seen.push(servers[to].clone());
                }
                Op::Sync { from, to } => {
                    servers[to] = DvvSet::sync([&servers[to], &servers[from]]);
                    seen.push(servers[to].clone());
                }
            }
        }
        seen.extend(servers);
        seen
    }

    fn normal(c: &DvvSet<u32>) -> DvvSet<u32> {
        let mut c = c.clone();
        c.anonymous.sort_unstable();
        c
    }

    fn pick(h: &[DvvSet<u32>], i: usize) -> &DvvSet<u32> {
        &h[i % h.len()]
    }

    /// The dots of a clock's values: value -> (id, counter of its event).
    fn dots(c: &DvvSet<u32>) -> Vec<(u32, NodeId, u64)> {
        c.entries
            .iter()
            .flat_map(|e| {
                e.values
                    .iter()
                    .enumerate()
                    .map(|(k, v)| (*v, e.id.clone(), e.counter - k as u64))
            })
            .collect()
    }

    proptest! {
        #[test]
        fn sync_is_commutative_associative_idempotent(
            ops in ops(), i in any::<usize>(), j in any::<usize>(), k in any::<usize>()
        ) {
            let h = history(&ops);
            let (a, b, c) = (pick(&h, i), pick(&h, j), pick(&h, k));
            prop_assert_eq!(normal(&DvvSet::sync([a, b])), normal(&DvvSet::sync([b, a])));
            let left = DvvSet::sync([&DvvSet::sync([a, b]), c]);
            let right = DvvSet::sync([a, &DvvSet::sync([b, c])]);
            prop_assert_eq!(normal(&left), normal(&right));
            prop_assert_eq!(&DvvSet::sync([a, a]), a);
        }

        #[test]
        fn less_agrees_with_join_and_sync_dominates(
            ops in ops(), i in any::<usize>(), j in any::<usize>()
        ) {
            let h = history(&ops);
            let (a, b) = (pick(&h, i), pick(&h, j));
            prop_assert_eq!(a.less(b), a.join().compare(&b.join()) == Order::Before);
            let s = DvvSet::sync([a, b]);
            prop_assert!(s.join().dominates(&a.join()) && s.join().dominates(&b.join()));
            prop_assert!(!s.less(a) && !s.less(b));
        }

        #[test]
        fn sync_keeps_exactly_the_values_not_overwritten(
            ops in ops(), i in any::<usize>(), j in any::<usize>()
        ) {
            let h = history(&ops);
            let (a, b) = (pick(&h, i), pick(&h, j));
            let s = DvvSet::sync([a, b]);
            let kept = dots(&s);
            for (x, y) in [(a, b), (b, a)] {
                let other = dots(y);
                for dot in dots(x) {
                    // A value is overwritten when the other side knows its event but not the value.
                    let overwritten = y.join().get(&dot.1) >= dot.2 && !other.contains(&dot);
                    prop_assert_eq!(kept.contains(&dot), !overwritten, "{:?}", dot);
                }
            }
            for dot in &kept {
                prop_assert!(dots(a).contains(dot) || dots(b).contains(dot));
            }
        }

        #[test]
        fn encoding_round_trips(ops in ops(), i in any::<usize>()) {
            let h = history(&ops);
            let a = pick(&h, i);
            prop_assert_eq!(&dec(&enc(a)).unwrap(), a);
        }

        #[test]
        fn decoding_random_bytes_never_panics(tail in prop::collection::vec(any::<u8>(), 0..40)) {
            let mut data = b"DV\x01".to_vec();
            data.extend(tail);
            if let Ok(c) = dec(&data) {
                prop_assert_eq!(enc(&c), data);
            }
        }
    }
}
