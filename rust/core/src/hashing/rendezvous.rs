//! Weighted rendezvous (highest random weight) hashing: Thaler & Ravishankar 1996, with the
//! logarithmic weighting of Schindelhauer & Schomaker 2005.
//!
//! Each node has a seed `xxh3_64(name, 0)`. For a key hash `h`, node `i` draws
//! `x = fmix64(h ^ seed_i)`, maps it to `u` in (0, 1) and scores `-w_i / ln(u)`; the key goes to the
//! highest score, and `preference(h, n)` is the top `n`. A node's share is exactly `w_i / sum(w)`,
//! adding a node moves keys only onto it, and removing one moves only its keys. With equal weights
//! the score is monotonic in `x`, so the unweighted path compares `x` directly (no logarithm).
//! Exact ties (two names with the same seed) go to the smaller name.

use std::cmp::Ordering;

use crate::hashing::hashfn::xxh3_64;
use crate::hashing::nodes::{fmix64, NodeSet, Placement};
use crate::{Error, Result};

/// Rendezvous hashing over named, weighted nodes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RendezvousRing {
    nodes: NodeSet,
    seeds: Vec<u64>,
    /// `1 / w` per node; the weighted score compares `ln(u) / w`, the same order as `-w / ln(u)`.
    inv_weights: Vec<f64>,
    uniform: bool,
    /// Two names share a seed (never seen in practice): ties must then be broken by name.
    seed_collision: bool,
}

/// The node's draw for a key.
#[inline]
fn draw(hash: u64, seed: u64) -> u64 {
    fmix64(hash ^ seed)
}

/// `u` in (0, 1) from the top 52 bits of `x`: `(k + 1/2) / 2^52` is exact and never 0 or 1.
#[inline]
fn unit(x: u64) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 52) as f64;
    ((x >> 12) as f64 + 0.5) * SCALE
}

/// `ln(u)`.
#[inline]
fn ln_unit(x: u64) -> f64 {
    unit(x).ln()
}

impl RendezvousRing {
    /// An empty ring.
    pub fn new() -> Self {
        Self {
            uniform: true,
            ..Self::default()
        }
    }

    /// A ring over `(name, weight)` pairs.
    pub fn with_nodes<I, S>(nodes: I) -> Result<Self>
    where
        I: IntoIterator<Item = (S, f64)>,
        S: Into<String>,
    {
        let nodes = NodeSet::with_nodes(nodes)?;
        let mut ring = Self {
            seeds: nodes
                .names()
                .iter()
                .map(|n| xxh3_64(n.as_bytes(), 0))
                .collect(),
            nodes,
            ..Self::new()
        };
        ring.refresh_weights();
        Ok(ring)
    }

    /// Changes a node's weight: only keys between that node and others move.
    pub fn set_weight(&mut self, name: &str, weight: f64) -> Result<()> {
        self.nodes.set_weight(name, weight)?;
        self.refresh_weights();
        Ok(())
    }

    /// The score of node `i` for a key hash, `-w / ln(u)`.
    pub fn score(&self, hash: u64, i: usize) -> f64 {
        -self.nodes.weight(i) / ln_unit(draw(hash, self.seeds[i]))
    }

    fn refresh_weights(&mut self) {
        self.inv_weights = self.nodes.weights().iter().map(|w| 1.0 / w).collect();
        self.uniform = self.nodes.uniform();
        let mut seeds = self.seeds.clone();
        seeds.sort_unstable();
        self.seed_collision = seeds.windows(2).any(|s| s[0] == s[1]);
    }

    /// Orders node `a` before `b` when it scores higher (ties: smaller name).
    fn cmp_nodes(&self, hash: u64, a: usize, b: usize) -> Ordering {
        let by_score = if self.uniform {
            draw(hash, self.seeds[b]).cmp(&draw(hash, self.seeds[a]))
        } else {
            let sa = ln_unit(draw(hash, self.seeds[a])) * self.inv_weights[a];
            let sb = ln_unit(draw(hash, self.seeds[b])) * self.inv_weights[b];
            sb.total_cmp(&sa)
        };
        by_score.then_with(|| self.nodes.name(a).cmp(self.nodes.name(b)))
    }

    #[inline]
    fn best_uniform(&self, hash: u64) -> usize {
        if self.seed_collision {
            return self.best_by_cmp(hash);
        }
        // Distinct seeds give distinct draws, so no ties; the selects compile to cmovs, as the
        // winner changes unpredictably and a branch would be mispredicted about ln(n) times a key.
        let mut best = 0;
        let mut best_x = draw(hash, self.seeds[0]);
        for (i, &seed) in self.seeds.iter().enumerate().skip(1) {
            let x = draw(hash, seed);
            let better = x > best_x;
            best = if better { i } else { best };
            best_x = if better { x } else { best_x };
        }
        best
    }

    /// The weighted winner: the node with the least `-ln(u) / w`, computing few logarithms.
    ///
    /// Since `1 - u <= -ln(u)`, `(1 - u) / w` bounds a node's value from below. The node with the
    /// least bound gives an exact value `v`; only nodes whose bound is at most `v` can win, and only
    /// they (usually one or two) get a logarithm. The answer is the one a full scan gives.
    #[inline]
    fn best_weighted(&self, hash: u64) -> usize {
        // Keeps the pruning safe from the last-bit rounding of `ln` and of the bounds.
        const MARGIN: f64 = 1.0 - 1e-9;
        if self.seed_collision {
            return self.best_by_cmp(hash);
        }
        let bound = |seed: u64, inv: f64| (1.0 - unit(draw(hash, seed))) * inv;
        let mut probe = 0;
        let mut probe_bound = f64::INFINITY;
        for (i, (&seed, &inv)) in self.seeds.iter().zip(&self.inv_weights).enumerate() {
            let b = bound(seed, inv);
            let lower = b < probe_bound;
            probe = if lower { i } else { probe };
            probe_bound = if lower { b } else { probe_bound };
        }
        let v = -(ln_unit(draw(hash, self.seeds[probe])) * self.inv_weights[probe]);
        let mut best = probe;
        let mut best_s = f64::NEG_INFINITY;
        for (i, (&seed, &inv)) in self.seeds.iter().zip(&self.inv_weights).enumerate() {
            if bound(seed, inv) * MARGIN <= v {
                let s = ln_unit(draw(hash, seed)) * inv;
                if s > best_s {
                    best = i;
                    best_s = s;
                }
            }
        }
        best
    }

    /// The winner by the full order, ties included (the slow path for colliding seeds).
    fn best_by_cmp(&self, hash: u64) -> usize {
        (1..self.nodes.len()).fold(0, |best, i| {
            if self.cmp_nodes(hash, i, best).is_lt() {
                i
            } else {
                best
            }
        })
    }

    fn check_not_empty(&self) -> Result<()> {
        if self.nodes.is_empty() {
            Err(Error::EmptyRing)
        } else {
            Ok(())
        }
    }
}

impl Placement for RendezvousRing {
    fn nodes(&self) -> &NodeSet {
        &self.nodes
    }

    #[inline]
    fn locate(&self, hash: u64) -> Result<usize> {
        self.check_not_empty()?;
        Ok(if self.uniform {
            self.best_uniform(hash)
        } else {
            self.best_weighted(hash)
        })
    }

    fn locate_into(&self, hashes: &[u64], out: &mut [u32]) -> Result<()> {
        assert_eq!(hashes.len(), out.len(), "output length must match the keys");
        self.check_not_empty()?;
        if self.uniform {
            for (o, &h) in out.iter_mut().zip(hashes) {
                *o = self.best_uniform(h) as u32;
            }
        } else {
            for (o, &h) in out.iter_mut().zip(hashes) {
                *o = self.best_weighted(h) as u32;
            }
        }
        Ok(())
    }

    fn preference(&self, hash: u64, n: usize) -> Result<Vec<usize>> {
        self.check_not_empty()?;
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        let count = n.min(order.len());
        if count == 0 {
            return Ok(Vec::new());
        }
        if count < order.len() {
            order.select_nth_unstable_by(count - 1, |&a, &b| self.cmp_nodes(hash, a, b));
            order.truncate(count);
        }
        order.sort_unstable_by(|&a, &b| self.cmp_nodes(hash, a, b));
        Ok(order)
    }

    fn add_node(&mut self, name: &str, weight: f64) -> Result<()> {
        self.nodes.push(name.to_owned(), weight)?;
        self.seeds.push(xxh3_64(name.as_bytes(), 0));
        self.refresh_weights();
        Ok(())
    }

    fn remove_node(&mut self, name: &str) -> Result<()> {
        let i = self.nodes.remove(name)?;
        self.seeds.remove(i);
        self.refresh_weights();
        Ok(())
    }

    fn shares(&self) -> Vec<f64> {
        let total = self.nodes.total_weight();
        self.nodes.weights().iter().map(|w| w / total).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::nodes::sample_hash;
    use proptest::prelude::*;

    fn ring(n: usize) -> RendezvousRing {
        RendezvousRing::with_nodes((0..n).map(|i| (format!("node{i}"), 1.0))).unwrap()
    }

    fn owners(r: &RendezvousRing, keys: &[u64]) -> Vec<String> {
        keys.iter()
            .map(|&k| r.nodes().name(r.locate(k).unwrap()).to_owned())
            .collect()
    }

    #[test]
    fn adding_moves_only_onto_the_new_node_and_removing_only_its_keys() {
        let keys: Vec<u64> = (0..50_000).map(sample_hash).collect();
        let mut r = ring(10);
        let before = owners(&r, &keys);
        r.add_node("new", 1.0).unwrap();
        let after = owners(&r, &keys);
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        assert!(before.iter().zip(&after).all(|(b, a)| b == a || a == "new"));
        let frac = moved as f64 / keys.len() as f64;
        assert!((frac - 1.0 / 11.0).abs() < 0.01, "moved {frac}");
        r.remove_node("node3").unwrap();
        let removed = owners(&r, &keys);
        assert!(after
            .iter()
            .zip(&removed)
            .all(|(b, a)| b == a || b == "node3"));
    }

    #[test]
    fn shares_follow_weights() {
        let r = RendezvousRing::with_nodes([("a", 1.0), ("b", 2.0), ("c", 5.0)]).unwrap();
        let sampled = r.sampled_shares(400_000).unwrap();
        for (s, e) in sampled.iter().zip(r.shares()) {
            assert!((s - e).abs() < 0.005, "{sampled:?}");
        }
    }

    #[test]
    fn weighted_and_unweighted_paths_agree_on_equal_weights() {
        let u = ring(12);
        let mut w = ring(12);
        w.set_weight("node0", 2.0).unwrap();
        w.set_weight("node0", 1.0).unwrap();
        assert!(w.uniform);
        // Force the weighted path with equal weights and compare.
        w.uniform = false;
        for i in 0..20_000 {
            let h = sample_hash(i);
            assert_eq!(u.locate(h), w.locate(h));
            assert_eq!(u.preference(h, 4), w.preference(h, 4));
        }
    }

    #[test]
    fn insertion_order_does_not_matter() {
        let a = RendezvousRing::with_nodes([("x", 1.0), ("y", 3.0), ("z", 2.0)]).unwrap();
        let b = RendezvousRing::with_nodes([("z", 2.0), ("x", 1.0), ("y", 3.0)]).unwrap();
        for i in 0..5000 {
            let h = sample_hash(i);
            let pa: Vec<&str> = a
                .preference(h, 3)
                .unwrap()
                .into_iter()
                .map(|j| a.nodes().name(j))
                .collect();
            let pb: Vec<&str> = b
                .preference(h, 3)
                .unwrap()
                .into_iter()
                .map(|j| b.nodes().name(j))
                .collect();
            assert_eq!(pa, pb);
        }
    }

    #[test]
    fn errors_leave_the_ring_unchanged() {
        let mut r = ring(3);
        let before = r.clone();
        assert_eq!(
            r.add_node("node1", 1.0),
            Err(Error::DuplicateNode("node1".into()))
        );
        assert!(matches!(r.add_node("x", 0.0), Err(Error::InvalidWeight(_))));
        assert!(matches!(
            r.set_weight("node1", f64::NAN),
            Err(Error::InvalidWeight(_))
        ));
        assert_eq!(r.remove_node("x"), Err(Error::UnknownNode("x".into())));
        assert_eq!(r, before);
        assert_eq!(RendezvousRing::new().locate(0), Err(Error::EmptyRing));
    }

    #[test]
    fn the_pruned_weighted_scan_equals_a_full_scan() {
        let weights = [0.1, 1.0, 1.0, 2.5, 7.0, 0.01, 3.0, 1e6, 1e-6, 42.0];
        let r = RendezvousRing::with_nodes(
            weights
                .iter()
                .enumerate()
                .map(|(i, &w)| (format!("w{i}"), w)),
        )
        .unwrap();
        for i in 0..200_000 {
            let h = sample_hash(i);
            let full = (0..weights.len())
                .max_by(|&a, &b| {
                    let sa = ln_unit(draw(h, r.seeds[a])) * r.inv_weights[a];
                    let sb = ln_unit(draw(h, r.seeds[b])) * r.inv_weights[b];
                    sa.total_cmp(&sb).then(b.cmp(&a))
                })
                .unwrap();
            assert_eq!(r.locate(h).unwrap(), full, "key {i}");
        }
    }

    #[test]
    fn draws_map_strictly_inside_the_unit_interval() {
        for x in [0, 1, u64::MAX, u64::MAX - 1, 1 << 63, (1 << 12) - 1] {
            let u = unit(x);
            assert!(u > 0.0 && u < 1.0 && ln_unit(x) < 0.0, "{x}");
        }
    }

    #[test]
    fn colliding_seeds_tie_to_the_smaller_name() {
        let mut r = RendezvousRing::with_nodes([("b", 1.0), ("a", 1.0)]).unwrap();
        r.seeds[0] = r.seeds[1];
        r.refresh_weights();
        assert!(r.seed_collision);
        for i in 0..100 {
            assert_eq!(r.nodes().name(r.locate(sample_hash(i)).unwrap()), "a");
        }
    }

    proptest! {
        #[test]
        fn preference_is_the_sorted_scores(h in any::<u64>(), n in 0usize..12) {
            let mut r = ring(9);
            r.set_weight("node2", 3.5).unwrap();
            let p = r.preference(h, n).unwrap();
            prop_assert_eq!(p.len(), n.min(9));
            if let Some(&first) = p.first() {
                prop_assert_eq!(first, r.locate(h).unwrap());
            }
            for w in p.windows(2) {
                prop_assert!(r.score(h, w[0]) >= r.score(h, w[1]));
            }
            let mut out = vec![0u32; 1];
            r.locate_into(&[h], &mut out).unwrap();
            prop_assert_eq!(out[0] as usize, r.locate(h).unwrap());
        }
    }
}
