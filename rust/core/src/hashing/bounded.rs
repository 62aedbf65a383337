//! Consistent hashing with bounded loads (Mirrokni, Thorup & Zadimoghaddam, arXiv:1608.01350;
//! `HAProxy`'s `hash-balance-factor`, Envoy's `hash_balance_factor`).
//!
//! A hash ring with `round(points_per_node * weight)` points per node (at least one), point `i` of a
//! node at `xxh3_64("<name>-<i>", 0)`, plus a load counter per node. With balance factor `c > 1`, a
//! node's capacity is `ceil(c * (total_load + 1) * weight / total_weight)`: the load it may reach
//! with the next assignment counted. [`BoundedLoadRing::assign`] walks clockwise from the key's point
//! (first point `>= hash`, wrapping) to the first node whose load is below its capacity and charges it
//! one; [`BoundedLoadRing::release`] gives one back. A lookup without assigning ([`Placement::locate`])
//! answers where the key would go now. The capacities sum to at least `c * (total_load + 1)`, more than
//! the total load, so the walk always finds a node: no assignment takes a node above
//! `ceil(c * average)`. A release can lower the average below a load already placed; nothing is
//! moved then (as in `HAProxy`), the next assignments go elsewhere until the loads even out.
//! Two points at the same position are ordered by node name, so the ring does not depend on
//! insertion order.

use crate::hashing::hashfn::xxh3_64;
use crate::hashing::nodes::{check_weight, NodeSet, Placement};
use crate::{Error, Result};

/// Ring points per node of weight 1 (as Envoy's and libmemcached's rings).
pub const DEFAULT_POINTS_PER_NODE: u32 = 100;
/// `HAProxy`'s recommended `hash-balance-factor 125`, brpc's and liblb's default.
pub const DEFAULT_BALANCE_FACTOR: f64 = 1.25;
/// The most points one node may have (a weight of 1e9 must not allocate the machine away).
pub const MAX_POINTS_PER_NODE: u64 = 10_000_000;

/// A consistent-hash ring that caps each node's load at `ceil(c * average)` (weighted).
#[derive(Debug, Clone, PartialEq)]
pub struct BoundedLoadRing {
    nodes: NodeSet,
    balance_factor: f64,
    points_per_node: u32,
    /// Each node's points, in index order (kept to rebuild the ring without rehashing).
    node_points: Vec<Vec<u64>>,
    /// Sorted point positions and their owners' indices.
    points: Vec<u64>,
    owners: Vec<u32>,
    /// `prefix[b]` = first point whose top `prefix_bits` bits are >= `b`: about two points per
    /// bucket, so a lookup is one load and a short scan instead of a cache-missing binary search.
    prefix: Vec<u32>,
    prefix_bits: u32,
    loads: Vec<u64>,
    total_load: u64,
}

fn check_balance_factor(c: f64) -> Result<f64> {
    if c.is_finite() && c > 1.0 {
        Ok(c)
    } else {
        Err(Error::InvalidArgument(format!(
            "balance factor must be > 1.0, got {c}"
        )))
    }
}

impl BoundedLoadRing {
    /// An empty ring with balance factor `c > 1` and `points_per_node >= 1`.
    pub fn new(balance_factor: f64, points_per_node: u32) -> Result<Self> {
        Self::with_nodes(
            std::iter::empty::<(String, f64)>(),
            balance_factor,
            points_per_node,
        )
    }

    /// A ring over `(name, weight)` pairs.
    pub fn with_nodes<I, S>(nodes: I, balance_factor: f64, points_per_node: u32) -> Result<Self>
    where
        I: IntoIterator<Item = (S, f64)>,
        S: Into<String>,
    {
        let balance_factor = check_balance_factor(balance_factor)?;
        if points_per_node == 0 {
            return Err(Error::InvalidArgument(
                "points per node must be at least 1".into(),
            ));
        }
        let nodes = NodeSet::with_nodes(nodes)?;
        let mut node_points = Vec::with_capacity(nodes.len());
        for (name, &w) in nodes.names().iter().zip(nodes.weights()) {
            node_points.push(node_points_of(name, w, points_per_node)?);
        }
        let mut ring = Self {
            loads: vec![0; nodes.len()],
            nodes,
            balance_factor,
            points_per_node,
            node_points,
            points: Vec::new(),
            owners: Vec::new(),
            prefix: Vec::new(),
            prefix_bits: 0,
            total_load: 0,
        };
        ring.rebuild();
        Ok(ring)
    }

    /// The balance factor `c`.
    pub fn balance_factor(&self) -> f64 {
        self.balance_factor
    }

    /// Ring points per node of weight 1.
    pub fn points_per_node(&self) -> u32 {
        self.points_per_node
    }

    /// Each node's current load, in index order.
    pub fn loads(&self) -> &[u64] {
        &self.loads
    }

    /// The sum of the loads.
    pub fn total_load(&self) -> u64 {
        self.total_load
    }

    /// The load node `i` may reach with the next assignment: `ceil(c * (total + 1) * w / sum(w))`.
    pub fn capacity_of(&self, i: usize) -> u64 {
        self.capacity_with(self.capacity_scale(), i)
    }

    /// [`BoundedLoadRing::capacity_of`] by name.
    pub fn capacity(&self, name: &str) -> Result<u64> {
        Ok(self.capacity_of(self.nodes.index_of(name)?))
    }

    /// Where `hash` goes and charges that node one unit of load.
    pub fn assign(&mut self, hash: u64) -> Result<usize> {
        let i = self.locate(hash)?;
        self.loads[i] += 1;
        self.total_load += 1;
        Ok(i)
    }

    /// Gives back one unit of `name`'s load.
    pub fn release(&mut self, name: &str) -> Result<()> {
        let i = self.nodes.index_of(name)?;
        if self.loads[i] == 0 {
            return Err(Error::InvalidArgument(format!(
                "node {name:?} has no load to release"
            )));
        }
        self.loads[i] -= 1;
        self.total_load -= 1;
        Ok(())
    }

    /// Sets every load to zero.
    pub fn reset_loads(&mut self) {
        self.loads.fill(0);
        self.total_load = 0;
    }

    /// Changes a node's weight (its points and its capacity); its load is kept.
    pub fn set_weight(&mut self, name: &str, weight: f64) -> Result<()> {
        let i = self.nodes.index_of(name)?;
        let points = node_points_of(name, check_weight(weight)?, self.points_per_node)?;
        self.nodes.set_weight(name, weight)?;
        self.node_points[i] = points;
        self.rebuild();
        Ok(())
    }

    #[inline]
    fn capacity_scale(&self) -> f64 {
        self.balance_factor * (self.total_load + 1) as f64 / self.nodes.total_weight()
    }

    #[inline]
    fn capacity_with(&self, scale: f64, i: usize) -> u64 {
        (scale * self.nodes.weight(i)).ceil() as u64
    }

    /// The index into `points` of the first point `>= hash`, wrapping to 0.
    #[inline]
    fn start(&self, hash: u64) -> usize {
        if self.points.is_empty() {
            return 0;
        }
        let b = (hash >> (64 - self.prefix_bits)) as usize;
        let (lo, hi) = (self.prefix[b] as usize, self.prefix[b + 1] as usize);
        let p = lo + self.points[lo..hi].partition_point(|&x| x < hash);
        if p == self.points.len() {
            0
        } else {
            p
        }
    }

    /// Owners clockwise from `hash`, once around the ring.
    fn walk(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let s = self.start(hash);
        self.owners[s..]
            .iter()
            .chain(&self.owners[..s])
            .map(|&i| i as usize)
    }

    fn rebuild(&mut self) {
        let mut all: Vec<(u64, u32)> =
            Vec::with_capacity(self.node_points.iter().map(Vec::len).sum());
        for (i, pts) in self.node_points.iter().enumerate() {
            all.extend(pts.iter().map(|&p| (p, i as u32)));
        }
        let names = self.nodes.names();
        all.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| names[a.1 as usize].cmp(&names[b.1 as usize]))
        });
        self.points = all.iter().map(|p| p.0).collect();
        self.owners = all.iter().map(|p| p.1).collect();
        // More buckets than points (at most twice as many), between 2 and 2^24.
        self.prefix_bits = (usize::BITS - self.points.len().leading_zeros()).clamp(1, 24);
        let shift = 64 - self.prefix_bits;
        let buckets = 1usize << self.prefix_bits;
        self.prefix = Vec::with_capacity(buckets + 1);
        let mut p = 0;
        for b in 0..buckets {
            while p < self.points.len() && ((self.points[p] >> shift) as usize) < b {
                p += 1;
            }
            self.prefix.push(p as u32);
        }
        self.prefix.push(self.points.len() as u32);
    }
}

/// The ring points of one node.
fn node_points_of(name: &str, weight: f64, per_node: u32) -> Result<Vec<u64>> {
    let count = (f64::from(per_node) * weight).round().max(1.0);
    if count > MAX_POINTS_PER_NODE as f64 {
        return Err(Error::InvalidArgument(format!(
            "weight {weight} gives more than {MAX_POINTS_PER_NODE} ring points"
        )));
    }
    let mut buf = Vec::with_capacity(name.len() + 12);
    Ok((0..count as u64)
        .map(|i| {
            buf.clear();
            buf.extend_from_slice(name.as_bytes());
            buf.push(b'-');
            buf.extend_from_slice(i.to_string().as_bytes());
            xxh3_64(&buf, 0)
        })
        .collect())
}

impl Placement for BoundedLoadRing {
    fn nodes(&self) -> &NodeSet {
        &self.nodes
    }

    /// The node `hash` would be assigned to now (nothing is charged).
    fn locate(&self, hash: u64) -> Result<usize> {
        if self.nodes.is_empty() {
            return Err(Error::EmptyRing);
        }
        let scale = self.capacity_scale();
        let mut fallback: Option<(f64, usize)> = None;
        for i in self.walk(hash) {
            if self.loads[i] < self.capacity_with(scale, i) {
                return Ok(i);
            }
            // Unreachable in exact arithmetic; with float rounding, the least loaded per weight.
            let ratio = self.loads[i] as f64 / self.nodes.weight(i);
            if fallback.is_none_or(|(r, _)| ratio < r) {
                fallback = Some((ratio, i));
            }
        }
        Ok(fallback.map_or(0, |(_, i)| i))
    }

    /// The first `n` distinct nodes clockwise that have spare capacity, then the full ones.
    fn preference(&self, hash: u64, n: usize) -> Result<Vec<usize>> {
        if self.nodes.is_empty() {
            return Err(Error::EmptyRing);
        }
        let count = n.min(self.nodes.len());
        let scale = self.capacity_scale();
        let mut seen = vec![false; self.nodes.len()];
        let mut spare = Vec::with_capacity(count);
        let mut full = Vec::new();
        for i in self.walk(hash) {
            if spare.len() == count || spare.len() + full.len() == self.nodes.len() {
                break;
            }
            if !seen[i] {
                seen[i] = true;
                if self.loads[i] < self.capacity_with(scale, i) {
                    spare.push(i);
                } else {
                    full.push(i);
                }
            }
        }
        spare.extend(full);
        spare.truncate(count);
        Ok(spare)
    }

    fn add_node(&mut self, name: &str, weight: f64) -> Result<()> {
        self.nodes.check_new(name, weight)?;
        let points = node_points_of(name, weight, self.points_per_node)?;
        self.nodes.push(name.to_owned(), weight)?;
        self.node_points.push(points);
        self.loads.push(0);
        self.rebuild();
        Ok(())
    }

    /// Removes a node; its load leaves the total with it.
    fn remove_node(&mut self, name: &str) -> Result<()> {
        let i = self.nodes.remove(name)?;
        self.node_points.remove(i);
        self.total_load -= self.loads.remove(i);
        self.rebuild();
        Ok(())
    }

    /// Each node's share of the ring's arcs: where keys go while no node is full.
    fn shares(&self) -> Vec<f64> {
        let mut shares = vec![0.0; self.nodes.len()];
        let Some(&last) = self.points.last() else {
            return shares;
        };
        let mut prev = last;
        for (&p, &i) in self.points.iter().zip(&self.owners) {
            // Keys in (prev, p] go to p; a single point owns the whole circle.
            let arc = p.wrapping_sub(prev);
            shares[i as usize] += if arc == 0 && self.points.len() == 1 {
                1.0
            } else {
                arc as f64 / 18_446_744_073_709_551_616.0
            };
            prev = p;
        }
        shares
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::nodes::sample_hash;
    use proptest::prelude::*;

    fn ring(n: usize, c: f64) -> BoundedLoadRing {
        BoundedLoadRing::with_nodes((0..n).map(|i| (format!("s{i}"), 1.0)), c, 100).unwrap()
    }

    #[test]
    fn loads_never_exceed_the_bound() {
        for c in [1.01, 1.25, 2.0] {
            let mut r = ring(7, c);
            for i in 0..5000 {
                r.assign(sample_hash(i)).unwrap();
                let bound = (c * r.total_load() as f64 / 7.0).ceil() as u64;
                assert!(
                    r.loads().iter().all(|&l| l <= bound),
                    "c={c} {:?}",
                    r.loads()
                );
            }
            assert_eq!(r.loads().iter().sum::<u64>(), 5000);
        }
    }

    #[test]
    fn weighted_loads_follow_weights() {
        let mut r = BoundedLoadRing::with_nodes([("a", 1.0), ("b", 3.0)], 1.1, 100).unwrap();
        for i in 0..8000 {
            r.assign(sample_hash(i)).unwrap();
        }
        let cap_b = (1.1 * 8000.0 * 3.0 / 4.0_f64).ceil() as u64;
        assert!(r.loads()[1] <= cap_b);
        assert!(r.loads()[0] <= (1.1 * 8000.0 / 4.0_f64).ceil() as u64);
    }

    #[test]
    fn the_prefix_index_finds_the_first_point_at_or_after_the_hash() {
        for n in [1, 3, 40] {
            let r = ring(n, 1.25);
            let mut probes: Vec<u64> = (0..20_000).map(sample_hash).collect();
            probes.extend(
                r.points
                    .iter()
                    .flat_map(|&p| [p, p.wrapping_sub(1), p.wrapping_add(1)]),
            );
            probes.extend([0, u64::MAX]);
            for h in probes {
                let p = r.points.partition_point(|&x| x < h);
                let expected = if p == r.points.len() { 0 } else { p };
                assert_eq!(r.start(h), expected, "n={n} h={h}");
            }
        }
    }

    #[test]
    fn without_load_it_is_plain_consistent_hashing() {
        let r = ring(5, 1.25);
        for i in 0..2000 {
            let h = sample_hash(i);
            assert_eq!(r.locate(h).unwrap(), r.walk(h).next().unwrap());
        }
        let total: f64 = r.shares().iter().sum();
        assert!((total - 1.0).abs() < 1e-9);
        let sampled = r.sampled_shares(100_000).unwrap();
        for (s, e) in sampled.iter().zip(r.shares()) {
            assert!((s - e).abs() < 0.01);
        }
    }

    #[test]
    fn release_and_errors() {
        let mut r = ring(3, 1.25);
        let i = r.assign(42).unwrap();
        let name = r.nodes().name(i).to_owned();
        r.release(&name).unwrap();
        assert_eq!(r.total_load(), 0);
        assert!(matches!(r.release(&name), Err(Error::InvalidArgument(_))));
        assert_eq!(r.release("zz"), Err(Error::UnknownNode("zz".into())));
        let before = r.clone();
        assert!(matches!(
            r.add_node("x", 1e12),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            r.set_weight("s0", -2.0),
            Err(Error::InvalidWeight(_))
        ));
        assert_eq!(
            r.add_node("s1", 1.0),
            Err(Error::DuplicateNode("s1".into()))
        );
        assert_eq!(r, before);
        for c in [1.0, 0.5, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                BoundedLoadRing::new(c, 100),
                Err(Error::InvalidArgument(_))
            ));
        }
        assert!(BoundedLoadRing::new(1.5, 0).is_err());
        let mut empty = BoundedLoadRing::new(1.5, 10).unwrap();
        assert_eq!(empty.assign(1), Err(Error::EmptyRing));
    }

    #[test]
    fn adding_a_node_moves_keys_only_onto_it() {
        let mut r = ring(10, 1.25);
        let keys: Vec<u64> = (0..50_000).map(sample_hash).collect();
        let before: Vec<String> = keys
            .iter()
            .map(|&k| r.nodes().name(r.locate(k).unwrap()).to_owned())
            .collect();
        r.add_node("new", 1.0).unwrap();
        let mut moved = 0;
        for (&k, b) in keys.iter().zip(&before) {
            let a = r.nodes().name(r.locate(k).unwrap());
            if a != b {
                assert_eq!(a, "new");
                moved += 1;
            }
        }
        let frac = f64::from(moved) / keys.len() as f64;
        assert!(frac > 0.03 && frac < 0.2, "{frac}");
    }

    proptest! {
        #[test]
        fn preference_starts_at_the_assignment_and_is_distinct(h in any::<u64>(), loads in proptest::collection::vec(0u64..4, 6)) {
            let mut r = ring(6, 1.25);
            for (i, l) in loads.iter().enumerate() {
                for _ in 0..*l {
                    r.loads[i] += 1;
                    r.total_load += 1;
                }
            }
            let p = r.preference(h, 6).unwrap();
            prop_assert_eq!(p[0], r.locate(h).unwrap());
            let mut s = p.clone();
            s.sort_unstable();
            s.dedup();
            prop_assert_eq!(s.len(), 6);
        }
    }
}
