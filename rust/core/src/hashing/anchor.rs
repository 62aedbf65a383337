//! `AnchorHash` (Mendelson, Vargaftik, Barabash, Lorenz, Keslassy & Orda, arXiv:1812.09674, Algorithm 3).
//!
//! A fixed set of `capacity` buckets (the anchor) of which `n` are working, one per node. Removing any
//! node is O(1) and moves only its keys; adding a node re-uses the most recently removed bucket (a
//! LIFO stack, as the paper), so removing and re-adding restores every key exactly. The capacity is
//! fixed up front (default `max(2 n, 16)`); lookups cost about `(1 + ln(capacity / n))^2` steps.
//! Arrays as the paper: `A[b]` is 0 for a working bucket, else the working-set size right after `b`
//! was removed; `K` follows replacements; `W` and `L` are the working set and each bucket's place in
//! it; `R` is the stack of removed buckets. The first bucket of a key hash `k` is `k` mapped onto
//! `0..capacity` (multiply-shift) and `h_b(k)` is `fmix64(k ^ salt(b))` mapped onto `0..A[b]`.
//! Jump-like node indices: removing a node moves the last node into its index (O(1)).
//! No weights: a weight other than 1 is refused.

use std::collections::HashMap;

use crate::hashing::nodes::{check_unit_weight, fmix64, reduce, NodeSet, Placement};
use crate::{Error, Result};

const NONE: u32 = u32::MAX;

/// The capacity used when none is given: room for as many nodes again, at least 16.
pub fn default_capacity(nodes: usize) -> usize {
    (2 * nodes).max(16)
}

#[inline]
fn salt(b: usize) -> u64 {
    (b as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Read access to the `A` and `K` arrays, so replica lookups can overlay virtual removals.
trait Arrays {
    fn a(&self, b: usize) -> u32;
    fn k(&self, b: usize) -> u32;
}

/// The bucket state of Algorithm 3.
#[derive(Debug, Clone, PartialEq)]
struct Anchor {
    a: Vec<u32>,
    k: Vec<u32>,
    w: Vec<u32>,
    l: Vec<u32>,
    r: Vec<u32>,
    n: u32,
}

impl Arrays for Anchor {
    #[inline]
    fn a(&self, b: usize) -> u32 {
        self.a[b]
    }
    #[inline]
    fn k(&self, b: usize) -> u32 {
        self.k[b]
    }
}

/// GETBUCKET over any view of the arrays; needs at least one working bucket.
#[inline]
fn get_bucket<V: Arrays>(v: &V, capacity: usize, key: u64) -> usize {
    let mut b = reduce(key, capacity as u64) as usize;
    loop {
        let ab = v.a(b);
        if ab == 0 {
            return b;
        }
        let mut h = reduce(fmix64(key ^ salt(b)), u64::from(ab)) as usize;
        // h was removed before b: follow its replacements into b's working set.
        while v.a(h) >= ab {
            h = v.k(h) as usize;
        }
        b = h;
    }
}

impl Anchor {
    /// INITANCHOR(capacity, working).
    fn new(capacity: usize, working: usize) -> Self {
        let ids: Vec<u32> = (0..capacity as u32).collect();
        let mut anchor = Self {
            a: vec![0; capacity],
            k: ids.clone(),
            w: ids.clone(),
            l: ids,
            r: Vec::with_capacity(capacity),
            n: working as u32,
        };
        for b in (working..capacity).rev() {
            anchor.r.push(b as u32);
            anchor.a[b] = b as u32;
        }
        anchor
    }

    /// ADDBUCKET: re-uses the last removed bucket.
    fn add_bucket(&mut self) -> Option<u32> {
        let b = self.r.pop()?;
        let bi = b as usize;
        self.a[bi] = 0;
        let moved = self.w[self.n as usize] as usize;
        self.l[moved] = self.n;
        self.w[self.l[bi] as usize] = b;
        self.k[bi] = b;
        self.n += 1;
        Some(b)
    }

    /// REMOVEBUCKET.
    fn remove_bucket(&mut self, b: u32) {
        let bi = b as usize;
        self.r.push(b);
        self.n -= 1;
        self.a[bi] = self.n;
        let last = self.w[self.n as usize];
        self.w[self.l[bi] as usize] = last;
        self.k[bi] = last;
        self.l[last as usize] = self.l[bi];
    }
}

/// The arrays with some extra buckets removed virtually (for replica lists), without copying them.
struct Overlay<'a> {
    base: &'a Anchor,
    a: HashMap<usize, u32>,
    k: HashMap<usize, u32>,
    w: HashMap<usize, u32>,
    l: HashMap<usize, u32>,
    n: u32,
}

impl Arrays for Overlay<'_> {
    fn a(&self, b: usize) -> u32 {
        *self.a.get(&b).unwrap_or(&self.base.a[b])
    }
    fn k(&self, b: usize) -> u32 {
        *self.k.get(&b).unwrap_or(&self.base.k[b])
    }
}

impl Overlay<'_> {
    fn w(&self, i: usize) -> u32 {
        *self.w.get(&i).unwrap_or(&self.base.w[i])
    }
    fn l(&self, b: usize) -> u32 {
        *self.l.get(&b).unwrap_or(&self.base.l[b])
    }

    /// REMOVEBUCKET on the overlay.
    fn remove_bucket(&mut self, b: usize) {
        self.n -= 1;
        self.a.insert(b, self.n);
        let last = self.w(self.n as usize);
        let lb = self.l(b);
        self.w.insert(lb as usize, last);
        self.k.insert(b, last);
        self.l.insert(last as usize, lb);
    }
}

/// `AnchorHash` over named nodes with O(1) removal of any node.
#[derive(Debug, Clone, PartialEq)]
pub struct AnchorRing {
    nodes: NodeSet,
    anchor: Anchor,
    /// Node index per bucket (`NONE` when removed), and bucket per node index.
    bucket_node: Vec<u32>,
    node_bucket: Vec<u32>,
}

impl AnchorRing {
    /// An empty ring with room for `capacity` nodes.
    pub fn new(capacity: usize) -> Result<Self> {
        Self::with_nodes(std::iter::empty::<String>(), Some(capacity))
    }

    /// A ring over `names` (buckets `0..n` in that order) with room for `capacity` nodes
    /// (default [`default_capacity`]).
    pub fn with_nodes<I, S>(names: I, capacity: Option<usize>) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_weighted_nodes(names.into_iter().map(|n| (n, 1.0)), capacity)
    }

    /// As [`AnchorRing::with_nodes`] from `(name, weight)` pairs; every weight must be 1.
    pub fn with_weighted_nodes<I, S>(nodes: I, capacity: Option<usize>) -> Result<Self>
    where
        I: IntoIterator<Item = (S, f64)>,
        S: Into<String>,
    {
        let nodes = NodeSet::with_nodes(nodes)?;
        for &w in nodes.weights() {
            check_unit_weight("anchor hash", w)?;
        }
        let n = nodes.len();
        let capacity = capacity.unwrap_or_else(|| default_capacity(n));
        if capacity == 0 || capacity >= NONE as usize {
            return Err(Error::InvalidArgument(format!(
                "capacity must be between 1 and 2^32-2, got {capacity}"
            )));
        }
        if capacity < n {
            return Err(Error::InvalidArgument(format!(
                "capacity must be at least the number of nodes ({n}), got {capacity}"
            )));
        }
        let mut bucket_node = vec![NONE; capacity];
        for (b, slot) in bucket_node.iter_mut().enumerate().take(n) {
            *slot = b as u32;
        }
        Ok(Self {
            nodes,
            anchor: Anchor::new(capacity, n),
            bucket_node,
            node_bucket: (0..n as u32).collect(),
        })
    }

    /// The number of buckets (the most nodes the ring can hold).
    pub fn capacity(&self) -> usize {
        self.anchor.a.len()
    }

    /// The bucket a node occupies.
    pub fn bucket_of(&self, name: &str) -> Result<usize> {
        Ok(self.node_bucket[self.nodes.index_of(name)?] as usize)
    }

    /// The bucket of a pre-hashed key.
    pub fn bucket(&self, hash: u64) -> Result<usize> {
        if self.nodes.is_empty() {
            return Err(Error::EmptyRing);
        }
        Ok(get_bucket(&self.anchor, self.capacity(), hash))
    }
}

impl Placement for AnchorRing {
    fn nodes(&self) -> &NodeSet {
        &self.nodes
    }

    #[inline]
    fn locate(&self, hash: u64) -> Result<usize> {
        Ok(self.bucket_node[self.bucket(hash)?] as usize)
    }

    fn locate_into(&self, hashes: &[u64], out: &mut [u32]) -> Result<()> {
        assert_eq!(hashes.len(), out.len(), "output length must match the keys");
        if self.nodes.is_empty() {
            return Err(Error::EmptyRing);
        }
        let cap = self.capacity();
        for (o, &h) in out.iter_mut().zip(hashes) {
            *o = self.bucket_node[get_bucket(&self.anchor, cap, h)];
        }
        Ok(())
    }

    /// Failover order: replica `r` is where the key would go if replicas `0..r` were removed.
    fn preference(&self, hash: u64, n: usize) -> Result<Vec<usize>> {
        if self.nodes.is_empty() {
            return Err(Error::EmptyRing);
        }
        let count = n.min(self.nodes.len());
        let mut view = Overlay {
            base: &self.anchor,
            a: HashMap::new(),
            k: HashMap::new(),
            w: HashMap::new(),
            l: HashMap::new(),
            n: self.anchor.n,
        };
        let mut out = Vec::with_capacity(count);
        for r in 0..count {
            let b = get_bucket(&view, self.capacity(), hash);
            out.push(self.bucket_node[b] as usize);
            if r + 1 < count {
                view.remove_bucket(b);
            }
        }
        Ok(out)
    }

    /// Adds a node in the most recently removed bucket; refused when all buckets are in use.
    fn add_node(&mut self, name: &str, weight: f64) -> Result<()> {
        self.nodes.check_new(name, weight)?;
        check_unit_weight("anchor hash", weight)?;
        if self.anchor.r.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "the anchor is full: capacity {}",
                self.capacity()
            )));
        }
        let b = self
            .anchor
            .add_bucket()
            .expect("a removed bucket is available");
        let i = self.nodes.push(name.to_owned(), weight)?;
        self.bucket_node[b as usize] = i as u32;
        self.node_bucket.push(b);
        Ok(())
    }

    /// Removes any node in O(1); only its keys move.
    fn remove_node(&mut self, name: &str) -> Result<()> {
        let i = self.nodes.swap_remove(name)?;
        let b = self.node_bucket.swap_remove(i);
        // With no working bucket left A[b] is 0; lookups on the empty ring never read it.
        self.anchor.remove_bucket(b);
        self.bucket_node[b as usize] = NONE;
        if let Some(&moved) = self.node_bucket.get(i) {
            self.bucket_node[moved as usize] = i as u32;
        }
        Ok(())
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

    fn ring(n: usize, cap: usize) -> AnchorRing {
        AnchorRing::with_nodes((0..n).map(|i| format!("n{i}")), Some(cap)).unwrap()
    }

    fn owners(r: &AnchorRing, keys: &[u64]) -> Vec<String> {
        keys.iter()
            .map(|&k| r.nodes().name(r.locate(k).unwrap()).to_owned())
            .collect()
    }

    proptest! {
        #[test]
        fn arbitrary_removals_move_only_the_removed_nodes_keys(
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..12)
        ) {
            let keys: Vec<u64> = (0..3000).map(sample_hash).collect();
            let mut r = ring(16, 24);
            let mut before = owners(&r, &keys);
            for p in picks {
                if r.nodes().len() == 1 {
                    break;
                }
                let victim = r.nodes().name(p.index(r.nodes().len())).to_owned();
                r.remove_node(&victim).unwrap();
                let after = owners(&r, &keys);
                for (b, a) in before.iter().zip(&after) {
                    prop_assert!(b == a || *b == victim);
                    prop_assert_ne!(a, &victim);
                }
                before = after;
            }
        }

        #[test]
        fn remove_then_add_restores_every_key(
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..8)
        ) {
            let keys: Vec<u64> = (0..2000).map(sample_hash).collect();
            let mut r = ring(12, 20);
            let start = r.clone();
            let original = owners(&r, &keys);
            let mut removed = Vec::new();
            for p in picks {
                let victim = r.nodes().name(p.index(r.nodes().len())).to_owned();
                r.remove_node(&victim).unwrap();
                removed.push(victim);
                if r.nodes().len() == 1 {
                    break;
                }
            }
            while let Some(name) = removed.pop() {
                r.add_node(&name, 1.0).unwrap();
            }
            prop_assert_eq!(owners(&r, &keys), original);
            prop_assert_eq!(&r.anchor, &start.anchor);
        }

        #[test]
        fn replicas_are_the_failover_order(h in any::<u64>(), victim in any::<prop::sample::Index>()) {
            let mut r = ring(9, 20);
            let v = r.nodes().name(victim.index(9)).to_owned();
            r.remove_node(&v).unwrap();
            let p: Vec<String> = r.preference(h, 4).unwrap().into_iter().map(|i| r.nodes().name(i).to_owned()).collect();
            prop_assert_eq!(p.len(), 4);
            let mut failed = r.clone();
            for (j, name) in p.iter().enumerate() {
                prop_assert_eq!(failed.nodes().name(failed.locate(h).unwrap()), name.as_str(), "replica {}", j);
                failed.remove_node(name).unwrap();
            }
        }
    }

    #[test]
    fn adding_moves_about_one_share_onto_the_new_node() {
        let keys: Vec<u64> = (0..60_000).map(sample_hash).collect();
        let mut r = ring(10, 32);
        let before = owners(&r, &keys);
        r.add_node("new", 1.0).unwrap();
        let after = owners(&r, &keys);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                assert_eq!(a, "new");
                moved += 1;
            }
        }
        let frac = f64::from(moved) / keys.len() as f64;
        assert!((frac - 1.0 / 11.0).abs() < 0.01, "moved {frac}");
    }

    #[test]
    fn balance_is_near_uniform_after_removals() {
        let mut r = ring(40, 64);
        for i in (0..40).step_by(3) {
            r.remove_node(&format!("n{i}")).unwrap();
        }
        let n = r.nodes().len() as f64;
        let shares = r.sampled_shares(300_000).unwrap();
        let peak = shares.iter().copied().fold(0.0, f64::max) * n;
        assert!(peak < 1.08, "peak/mean {peak}");
    }

    #[test]
    fn capacity_limits_and_errors() {
        let mut r = ring(2, 2);
        assert!(matches!(
            r.add_node("x", 1.0),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            r.add_node("x", 2.0),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(
            r.add_node("n0", 1.0),
            Err(Error::DuplicateNode("n0".into()))
        );
        assert_eq!(r.remove_node("zz"), Err(Error::UnknownNode("zz".into())));
        assert_eq!(r.nodes().len(), 2);
        assert!(AnchorRing::with_nodes(["a", "b", "c"], Some(2)).is_err());
        assert!(AnchorRing::new(0).is_err());
        assert_eq!(AnchorRing::with_nodes(["a"], None).unwrap().capacity(), 16);
        assert_eq!(
            AnchorRing::with_nodes((0..20).map(|i| i.to_string()), None)
                .unwrap()
                .capacity(),
            40
        );
    }

    #[test]
    fn emptying_and_refilling_works() {
        let mut r = ring(3, 8);
        let keys: Vec<u64> = (0..1000).map(sample_hash).collect();
        let original = owners(&r, &keys);
        for name in ["n1", "n0", "n2"] {
            r.remove_node(name).unwrap();
        }
        assert_eq!(r.locate(5), Err(Error::EmptyRing));
        for name in ["n2", "n0", "n1"] {
            r.add_node(name, 1.0).unwrap();
        }
        assert_eq!(owners(&r, &keys), original);
        let mut e = AnchorRing::new(4).unwrap();
        assert_eq!(e.locate(1), Err(Error::EmptyRing));
        e.add_node("only", 1.0).unwrap();
        assert_eq!(e.locate(1), Ok(0));
    }
}
