//! Jump consistent hash (Lamping & Veach 2014, arXiv:1406.2294) and a ring of named nodes on top of it.
//!
//! Nodes are buckets `0..n` in insertion order. Adding a node appends a bucket and moves about
//! 1/(n+1) of the keys, all onto the new node. Removing the last node moves only its keys. Removing
//! any other node moves the last node into the freed bucket (O(1)), so the keys of two nodes move: the
//! removed node's keys go to the node that took its bucket, and the last bucket's keys spread over all.
//! Jump has no weights: a weight other than 1 is refused.

use std::collections::HashMap;

use crate::hashing::nodes::{check_unit_weight, fmix64, NodeSet, Placement};
use crate::{Error, Result};

const MULTIPLIER: u64 = 2_862_933_555_777_941_757;
const TWO_POW_31: f64 = 2_147_483_648.0;

/// The bucket in `0..buckets` of a 64-bit key, bit-exact with the paper's C++ and `jump.hash`.
///
/// `buckets` must be at least 1.
#[inline]
pub fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    assert!(buckets > 0, "jump_hash needs at least one bucket");
    let n = i64::from(buckets);
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < n {
        b = j;
        key = key.wrapping_mul(MULTIPLIER).wrapping_add(1);
        j = ((b + 1) as f64 * (TWO_POW_31 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

/// Keys looked up together: independent chains overlap in the CPU and no loop exit is mispredicted.
const LANES: usize = 8;

/// [`jump_hash`] over many keys; `out` must be as long as `keys`.
pub fn jump_hash_batch(keys: &[u64], buckets: u32, out: &mut [u32]) {
    assert!(buckets > 0, "jump_hash needs at least one bucket");
    assert_eq!(keys.len(), out.len(), "output length must match the keys");
    let n = i64::from(buckets);
    let mut key_chunks = keys.chunks_exact(LANES);
    let mut out_chunks = out.chunks_exact_mut(LANES);
    for (ks, os) in (&mut key_chunks).zip(&mut out_chunks) {
        let mut key = [0u64; LANES];
        key.copy_from_slice(ks);
        let mut b = [-1i64; LANES];
        let mut j = [0i64; LANES];
        // Every lane steps in lockstep; a finished lane keeps its state (the selects become cmovs).
        while j.iter().any(|&jl| jl < n) {
            for l in 0..LANES {
                let live = j[l] < n;
                let nk = key[l].wrapping_mul(MULTIPLIER).wrapping_add(1);
                let nj = ((j[l] + 1) as f64 * (TWO_POW_31 / ((nk >> 33) + 1) as f64)) as i64;
                b[l] = if live { j[l] } else { b[l] };
                key[l] = if live { nk } else { key[l] };
                j[l] = if live { nj } else { j[l] };
            }
        }
        for (o, bl) in os.iter_mut().zip(b) {
            *o = bl as u32;
        }
    }
    for (o, &k) in out_chunks
        .into_remainder()
        .iter_mut()
        .zip(key_chunks.remainder())
    {
        *o = jump_hash(k, buckets);
    }
}

/// Named nodes placed by jump hash: node `i` is bucket `i`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JumpRing {
    nodes: NodeSet,
}

impl JumpRing {
    /// An empty ring.
    pub fn new() -> Self {
        Self::default()
    }

    /// A ring over `names`, in that order.
    pub fn with_nodes<I, S>(names: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_weighted_nodes(names.into_iter().map(|n| (n, 1.0)))
    }

    /// A ring over `(name, weight)` pairs; every weight must be 1.
    pub fn with_weighted_nodes<I, S>(nodes: I) -> Result<Self>
    where
        I: IntoIterator<Item = (S, f64)>,
        S: Into<String>,
    {
        let nodes = NodeSet::with_nodes(nodes)?;
        for &w in nodes.weights() {
            check_unit_weight("jump hash", w)?;
        }
        Ok(Self { nodes })
    }

    fn buckets(&self) -> Result<u32> {
        if self.nodes.is_empty() {
            Err(Error::EmptyRing)
        } else {
            Ok(self.nodes.len() as u32)
        }
    }
}

impl Placement for JumpRing {
    fn nodes(&self) -> &NodeSet {
        &self.nodes
    }

    #[inline]
    fn locate(&self, hash: u64) -> Result<usize> {
        Ok(jump_hash(hash, self.buckets()?) as usize)
    }

    fn locate_into(&self, hashes: &[u64], out: &mut [u32]) -> Result<()> {
        jump_hash_batch(hashes, self.buckets()?, out);
        Ok(())
    }

    /// Replica `r` is jump hash of the `r`-th rehash of the key over the buckets not chosen yet,
    /// with the last remaining bucket moved into each chosen one (a partial Fisher-Yates shuffle).
    fn preference(&self, hash: u64, n: usize) -> Result<Vec<usize>> {
        let mut size = self.buckets()?;
        let count = n.min(size as usize);
        let mut moved: HashMap<u32, u32> = HashMap::new();
        let mut out = Vec::with_capacity(count);
        let mut h = hash;
        for _ in 0..count {
            let slot = jump_hash(h, size);
            out.push(*moved.get(&slot).unwrap_or(&slot) as usize);
            size -= 1;
            let last = *moved.get(&size).unwrap_or(&size);
            moved.insert(slot, last);
            h = fmix64(h.wrapping_add(0x9e37_79b9_7f4a_7c15));
        }
        Ok(out)
    }

    fn add_node(&mut self, name: &str, weight: f64) -> Result<()> {
        self.nodes.check_new(name, weight)?;
        check_unit_weight("jump hash", weight)?;
        if self.nodes.len() >= u32::MAX as usize {
            return Err(Error::InvalidArgument(
                "jump hash holds at most 2^32-1 nodes".into(),
            ));
        }
        self.nodes.push(name.to_owned(), weight).map(|_| ())
    }

    fn remove_node(&mut self, name: &str) -> Result<()> {
        self.nodes.swap_remove(name).map(|_| ())
    }

    fn shares(&self) -> Vec<f64> {
        let n = self.nodes.len();
        vec![1.0 / n as f64; n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::nodes::sample_hash;
    use proptest::prelude::*;

    fn ring(n: usize) -> JumpRing {
        JumpRing::with_nodes((0..n).map(|i| format!("node{i}"))).unwrap()
    }

    #[test]
    fn matches_reference_values() {
        // From the `jump` package (jump-consistent-hash 3.6.0): jump.hash(k, n).
        assert_eq!(jump_hash(u64::MAX, 10), 9);
        assert_eq!(jump_hash(123_456_789, 1000), 294);
        assert_eq!(jump_hash(0, 1), 0);
        assert_eq!(jump_hash(0, 100), 0);
        assert_eq!(jump_hash(1, 100), 55);
        assert_eq!(jump_hash((1 << 40) + 7, 100), 81);
        assert_eq!(jump_hash(0xdead_beef_cafe_babe, 100), 89);
    }

    proptest! {
        #[test]
        fn batch_equals_single(keys in proptest::collection::vec(any::<u64>(), 0..40), n in 1u32..5000) {
            let mut out = vec![0; keys.len()];
            jump_hash_batch(&keys, n, &mut out);
            for (k, o) in keys.iter().zip(out) {
                prop_assert_eq!(o, jump_hash(*k, n));
            }
        }

        #[test]
        fn growing_moves_keys_only_onto_the_new_bucket(key in any::<u64>(), n in 1u32..2000) {
            let before = jump_hash(key, n);
            let after = jump_hash(key, n + 1);
            prop_assert!(after == before || after == n);
        }
    }

    #[test]
    fn adding_a_node_moves_about_one_share_onto_it() {
        let mut r = ring(10);
        let keys: Vec<u64> = (0..100_000).map(sample_hash).collect();
        let before: Vec<usize> = keys.iter().map(|&k| r.locate(k).unwrap()).collect();
        r.add_node("new", 1.0).unwrap();
        let mut moved = 0;
        for (&k, &b) in keys.iter().zip(&before) {
            let a = r.locate(k).unwrap();
            if a != b {
                assert_eq!(a, 10);
                moved += 1;
            }
        }
        let frac = f64::from(moved) / keys.len() as f64;
        assert!((frac - 1.0 / 11.0).abs() < 0.005, "moved {frac}");
    }

    #[test]
    fn removing_a_middle_node_swaps_the_last_into_its_slot() {
        let mut r = ring(5);
        r.remove_node("node1").unwrap();
        assert_eq!(r.nodes().names(), ["node0", "node4", "node2", "node3"]);
        let keys: Vec<u64> = (0..20_000).map(sample_hash).collect();
        let r5 = ring(5);
        for &k in &keys {
            let before = r5.nodes().name(r5.locate(k).unwrap()).to_owned();
            let after = r.nodes().name(r.locate(k).unwrap());
            // Only node1's and node4's keys may move.
            if before != "node1" && before != "node4" {
                assert_eq!(before, after);
            }
        }
    }

    #[test]
    fn weights_other_than_one_and_empty_lookups_are_refused() {
        let mut r = ring(2);
        assert!(matches!(
            r.add_node("x", 2.0),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            r.add_node("x", -1.0),
            Err(Error::InvalidWeight(_))
        ));
        assert_eq!(
            r.add_node("node0", 1.0),
            Err(Error::DuplicateNode("node0".into()))
        );
        assert_eq!(
            r.remove_node("nope"),
            Err(Error::UnknownNode("nope".into()))
        );
        assert_eq!(r.nodes().len(), 2);
        assert_eq!(JumpRing::new().locate(1), Err(Error::EmptyRing));
        assert!(JumpRing::with_weighted_nodes([("a", 3.0)]).is_err());
    }

    #[test]
    fn preference_lists_are_distinct_and_start_with_the_owner() {
        let r = ring(7);
        for i in 0..2000 {
            let h = sample_hash(i);
            let p = r.preference(h, 10).unwrap();
            assert_eq!(p.len(), 7);
            assert_eq!(p[0], r.locate(h).unwrap());
            let mut s = p.clone();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), 7);
        }
    }

    #[test]
    fn balance_is_near_perfect() {
        let r = ring(10);
        let shares = r.sampled_shares(200_000).unwrap();
        let peak = shares.iter().copied().fold(0.0, f64::max) * 10.0;
        assert!(peak < 1.02, "peak/mean {peak}");
    }
}
