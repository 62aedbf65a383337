//! Named nodes shared by the placement algorithms, and the [`Placement`] interface they implement.
//!
//! A [`NodeSet`] keeps unique names with finite positive weights in index order; every ring returns
//! node indices into it, so a batch lookup is an array of small integers.

use std::collections::HashMap;

use crate::hashing::hashfn::xxh3_64;
use crate::{Error, Result};

/// Hashes a string or bytes key to the 64-bit value every placement ring works on.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key, 0)
}

/// `MurmurHash3`'s 64-bit finalizer: a bijection with full avalanche.
#[inline]
pub(crate) fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Maps a 64-bit hash onto `0..n` without a division (Lemire's multiply-shift).
#[inline]
pub(crate) fn reduce(hash: u64, n: u64) -> u64 {
    ((u128::from(hash) * u128::from(n)) >> 64) as u64
}

/// The `i`-th well-mixed 64-bit value of a fixed stream (`SplitMix64`), used to sample key spaces.
#[inline]
pub(crate) fn sample_hash(i: u64) -> u64 {
    fmix64(
        i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(0x632b_e59b_d9b4_e019),
    )
}

/// Accepts a weight that is finite and > 0.
pub fn check_weight(weight: f64) -> Result<f64> {
    if weight.is_finite() && weight > 0.0 {
        Ok(weight)
    } else {
        Err(Error::InvalidWeight(weight))
    }
}

/// Accepts only weight 1, for algorithms that have no weights (`algorithm` names it in the error).
pub fn check_unit_weight(algorithm: &str, weight: f64) -> Result<()> {
    if weight.total_cmp(&1.0).is_eq() {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{algorithm} has no weights: weight must be 1, got {weight}"
        )))
    }
}

/// Unique node names with weights, in index order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSet {
    names: Vec<String>,
    weights: Vec<f64>,
    index: HashMap<String, usize>,
    /// Sum of the weights, recomputed on every change (a running sum would drift).
    total: f64,
}

impl NodeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from `(name, weight)` pairs, refusing duplicates and bad weights.
    pub fn with_nodes<I, S>(nodes: I) -> Result<Self>
    where
        I: IntoIterator<Item = (S, f64)>,
        S: Into<String>,
    {
        let mut set = Self::new();
        for (name, weight) in nodes {
            set.push(name.into(), weight)?;
        }
        Ok(set)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Names in index order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Weights in index order.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The name at `index`.
    pub fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    /// The weight at `index`.
    pub fn weight(&self, index: usize) -> f64 {
        self.weights[index]
    }

    /// Sum of the weights.
    pub fn total_weight(&self) -> f64 {
        self.total
    }

    /// True when every weight is the same (the algorithms take faster unweighted paths then).
    pub fn uniform(&self) -> bool {
        self.weights
            .windows(2)
            .all(|w| w[0].total_cmp(&w[1]).is_eq())
    }

    /// The index of `name`, if present.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The index of `name`, or [`Error::UnknownNode`].
    pub fn index_of(&self, name: &str) -> Result<usize> {
        self.position(name)
            .ok_or_else(|| Error::UnknownNode(name.to_owned()))
    }

    /// True when `name` is in the set.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Checks that `name` could be added with `weight`, without adding it.
    pub fn check_new(&self, name: &str, weight: f64) -> Result<()> {
        if self.contains(name) {
            return Err(Error::DuplicateNode(name.to_owned()));
        }
        check_weight(weight).map(|_| ())
    }

    /// Appends a node; returns its index.
    pub fn push(&mut self, name: String, weight: f64) -> Result<usize> {
        self.check_new(&name, weight)?;
        let i = self.names.len();
        self.index.insert(name.clone(), i);
        self.names.push(name);
        self.weights.push(weight);
        // The same left fold as re-summing, in O(1).
        self.total += weight;
        Ok(i)
    }

    /// Removes a node keeping the others in order (O(n)); returns the index it had.
    pub fn remove(&mut self, name: &str) -> Result<usize> {
        let i = self.index_of(name)?;
        self.index.remove(name);
        self.names.remove(i);
        self.weights.remove(i);
        for (j, n) in self.names.iter().enumerate().skip(i) {
            self.index.insert(n.clone(), j);
        }
        self.retotal();
        Ok(i)
    }

    /// Removes a node by moving the last one into its index (O(1)); returns that index.
    pub fn swap_remove(&mut self, name: &str) -> Result<usize> {
        let i = self.index_of(name)?;
        self.index.remove(name);
        self.names.swap_remove(i);
        let removed = self.weights.swap_remove(i);
        if let Some(moved) = self.names.get(i) {
            self.index.insert(moved.clone(), i);
        }
        // O(1): subtract rather than re-sum (exact for the unit weights of the rings that use this).
        self.total = if self.names.is_empty() {
            0.0
        } else {
            self.total - removed
        };
        Ok(i)
    }

    /// Changes a node's weight; returns its index.
    pub fn set_weight(&mut self, name: &str, weight: f64) -> Result<usize> {
        let i = self.index_of(name)?;
        self.weights[i] = check_weight(weight)?;
        self.retotal();
        Ok(i)
    }

    fn retotal(&mut self) {
        self.total = self.weights.iter().sum();
    }
}

/// What every placement ring offers: lookups by pre-hashed key, replicas, membership changes, shares.
///
/// Indices returned are indices into [`Placement::nodes`].
pub trait Placement {
    /// The nodes, in index order.
    fn nodes(&self) -> &NodeSet;

    /// The index of the node that owns a pre-hashed key.
    fn locate(&self, hash: u64) -> Result<usize>;

    /// Looks up many pre-hashed keys at once; `out` must be as long as `hashes`.
    fn locate_into(&self, hashes: &[u64], out: &mut [u32]) -> Result<()> {
        assert_eq!(hashes.len(), out.len(), "output length must match the keys");
        for (o, &h) in out.iter_mut().zip(hashes) {
            *o = self.locate(h)? as u32;
        }
        Ok(())
    }

    /// Up to `n` distinct node indices in preference order (the first is [`Placement::locate`]'s).
    fn preference(&self, hash: u64, n: usize) -> Result<Vec<usize>>;

    /// Adds a node; the ring is unchanged on error.
    fn add_node(&mut self, name: &str, weight: f64) -> Result<()>;

    /// Removes a node; the ring is unchanged on error.
    fn remove_node(&mut self, name: &str) -> Result<()>;

    /// Each node's exact share of the key space, in index order (sums to 1 unless empty).
    fn shares(&self) -> Vec<f64>;

    /// Each node's share measured on `samples` pseudo-random keys, in index order.
    fn sampled_shares(&self, samples: u64) -> Result<Vec<f64>> {
        let mut counts = vec![0u64; self.nodes().len()];
        for i in 0..samples {
            counts[self.locate(sample_hash(i))?] += 1;
        }
        Ok(counts
            .into_iter()
            .map(|c| c as f64 / samples.max(1) as f64)
            .collect())
    }

    /// The name of the node that owns a key (hashed with [`key_hash`]).
    fn get(&self, key: &[u8]) -> Result<&str> {
        let i = self.locate(key_hash(key))?;
        Ok(self.nodes().name(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_bad_weights_and_unknown_names_are_refused() {
        let mut s = NodeSet::with_nodes([("a", 1.0), ("b", 2.0)]).unwrap();
        assert_eq!(
            s.push("a".into(), 1.0),
            Err(Error::DuplicateNode("a".into()))
        );
        for w in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                s.push("c".into(), w),
                Err(Error::InvalidWeight(_))
            ));
            assert!(matches!(s.set_weight("a", w), Err(Error::InvalidWeight(_))));
        }
        assert_eq!(s.remove("zz"), Err(Error::UnknownNode("zz".into())));
        assert_eq!(s.names(), ["a", "b"]);
        assert_eq!(s.weights(), [1.0, 2.0]);
    }

    #[test]
    fn remove_keeps_order_and_swap_remove_moves_the_last() {
        let mut s = NodeSet::with_nodes(["a", "b", "c", "d"].map(|n| (n, 1.0))).unwrap();
        assert_eq!(s.remove("b"), Ok(1));
        assert_eq!(s.names(), ["a", "c", "d"]);
        assert_eq!(s.index_of("d"), Ok(2));
        assert_eq!(s.swap_remove("a"), Ok(0));
        assert_eq!(s.names(), ["d", "c"]);
        assert_eq!(s.index_of("d"), Ok(0));
        assert_eq!(s.swap_remove("c"), Ok(1));
        assert_eq!(s.names(), ["d"]);
    }

    #[test]
    fn reduce_stays_in_range() {
        for h in [0, 1, u64::MAX, 1 << 63] {
            assert!(reduce(h, 7) < 7);
        }
        assert_eq!(reduce(u64::MAX, 1), 0);
    }
}
