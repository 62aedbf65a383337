//! Maglev hashing (Eisenbud et al., NSDI'16 §3.4) with Envoy's weighting.
//!
//! A lookup table of prime size `M` (default 65537) is filled by letting each node in turn take the
//! next free slot of its own permutation `offset + j * skip (mod M)`, where
//! `offset = xxh3_64(name, 0) % M` and `skip = xxh3_64(name, 1) % (M - 1) + 1` (as Envoy, with xxh3).
//! Nodes take turns in name order, so the table does not depend on insertion order. With weights a
//! node takes a turn only when `iteration * weight >= target`, and each turn raises its target by the
//! largest weight (Envoy's "target weight / iteration" scheme): a node with half the largest weight
//! takes every second turn. Every node gets at least one entry.
//!
//! A key hash `h` goes to `table[h % M]` (one multiply-based exact remainder and one load).
//! `preference(h, n)` walks the table forward from `h % M` and keeps the first `n` distinct nodes.
//! Any change rebuilds the table in O(M log M); removing a node moves its keys and, as the paper
//! says, also a small share of the others (measured 0.4-0.6% of the table at M = 65537).

use crate::hashing::hashfn::xxh3_64;
use crate::hashing::nodes::{NodeSet, Placement};
use crate::{Error, Result};

/// The default table size (Envoy's, and the paper's example).
pub const DEFAULT_TABLE_SIZE: u64 = 65_537;
/// The largest table size accepted (Envoy's limit too): the build stays well under a second.
pub const MAX_TABLE_SIZE: u64 = 5_000_011;

const EMPTY: u32 = u32::MAX;

/// True when `n` is prime (trial division; `n` is at most a few million here).
pub fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n % 2 == 0 || n % 3 == 0 {
        return false;
    }
    let mut d = 5;
    while d * d <= n {
        if n % d == 0 || n % (d + 2) == 0 {
            return false;
        }
        d += 6;
    }
    true
}

/// Exact `h % m` for any 64-bit `h` and a fixed `m < 2^32`, with multiplications instead of a division
/// (Lemire, Kaser & Kurz, "Faster remainder by direct computation", 2019: `c = ceil(2^128 / m)`,
/// `h % m = ((c * h mod 2^128) * m) >> 128`, exact because 128 >= 64 + 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastMod {
    m: u64,
    c: u128,
}

impl FastMod {
    /// A reducer for `2 <= m < 2^32`.
    pub fn new(m: u64) -> Self {
        assert!((2..1 << 32).contains(&m), "FastMod needs 2 <= m < 2^32");
        Self {
            m,
            c: u128::MAX / u128::from(m) + 1,
        }
    }

    /// `h % m`.
    #[inline]
    pub fn remainder(self, h: u64) -> u64 {
        let low = self.c.wrapping_mul(u128::from(h));
        let lo = low as u64;
        let hi = (low >> 64) as u64;
        let carry = (u128::from(lo) * u128::from(self.m)) >> 64;
        ((u128::from(hi) * u128::from(self.m) + carry) >> 64) as u64
    }
}

/// Maglev over named, weighted nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct MaglevRing {
    nodes: NodeSet,
    modulo: FastMod,
    /// Node index per slot; empty when there are no nodes.
    table: Vec<u32>,
}

fn check_table_size(m: u64, nodes: usize) -> Result<()> {
    if !is_prime(m) {
        return Err(Error::InvalidArgument(format!(
            "table size must be prime, got {m}"
        )));
    }
    if m > MAX_TABLE_SIZE {
        return Err(Error::InvalidArgument(format!(
            "table size must be at most {MAX_TABLE_SIZE}, got {m}"
        )));
    }
    if (nodes as u64) > m {
        return Err(Error::InvalidArgument(format!(
            "table size must be at least the number of nodes ({nodes}), got {m}"
        )));
    }
    Ok(())
}

/// Fills a table of size `m` for `nodes` (see the module docs).
fn build(nodes: &NodeSet, m: u64) -> Vec<u32> {
    struct Turn {
        node: u32,
        pos: u64,
        skip: u64,
        weight: f64,
        target: f64,
    }
    if nodes.is_empty() {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    order.sort_unstable_by(|&a, &b| nodes.name(a).cmp(nodes.name(b)));
    // Relative to the largest weight, so the heaviest node's targets are exact integers.
    let max_weight = nodes.weights().iter().copied().fold(0.0, f64::max);
    let mut turns: Vec<Turn> = order
        .into_iter()
        .map(|i| {
            let name = nodes.name(i).as_bytes();
            Turn {
                node: i as u32,
                pos: xxh3_64(name, 0) % m,
                skip: xxh3_64(name, 1) % (m - 1) + 1,
                weight: nodes.weight(i) / max_weight,
                target: 0.0,
            }
        })
        .collect();
    let size = m as usize;
    let mut table = vec![EMPTY; size];
    let mut filled = 0;
    let mut iteration = 1.0_f64;
    while filled < size {
        for t in &mut turns {
            if iteration * t.weight < t.target {
                continue;
            }
            t.target += 1.0;
            // `skip` is in 1..m and m is prime, so the permutation reaches every slot.
            while table[t.pos as usize] != EMPTY {
                t.pos += t.skip;
                if t.pos >= m {
                    t.pos -= m;
                }
            }
            table[t.pos as usize] = t.node;
            filled += 1;
            if filled == size {
                break;
            }
        }
        iteration += 1.0;
    }
    table
}

impl MaglevRing {
    /// An empty ring with a table of prime size `table_size`.
    pub fn new(table_size: u64) -> Result<Self> {
        Self::with_nodes(std::iter::empty::<(String, f64)>(), table_size)
    }

    /// A ring over `(name, weight)` pairs with a table of prime size `table_size`.
    pub fn with_nodes<I, S>(nodes: I, table_size: u64) -> Result<Self>
    where
        I: IntoIterator<Item = (S, f64)>,
        S: Into<String>,
    {
        check_table_size(table_size, 0)?;
        let nodes = NodeSet::with_nodes(nodes)?;
        check_table_size(table_size, nodes.len())?;
        let table = build(&nodes, table_size);
        Ok(Self {
            nodes,
            modulo: FastMod::new(table_size),
            table,
        })
    }

    /// The table size `M`.
    pub fn table_size(&self) -> u64 {
        self.modulo.m
    }

    /// The lookup table: a node index per slot (empty when there are no nodes).
    pub fn table(&self) -> &[u32] {
        &self.table
    }

    /// Table entries per node, in index order.
    pub fn entries(&self) -> Vec<u64> {
        let mut counts = vec![0u64; self.nodes.len()];
        for &i in &self.table {
            counts[i as usize] += 1;
        }
        counts
    }

    /// Changes a node's weight and rebuilds the table.
    pub fn set_weight(&mut self, name: &str, weight: f64) -> Result<()> {
        let mut nodes = self.nodes.clone();
        nodes.set_weight(name, weight)?;
        self.replace(nodes);
        Ok(())
    }

    fn replace(&mut self, nodes: NodeSet) {
        self.table = build(&nodes, self.table_size());
        self.nodes = nodes;
    }

    #[inline]
    fn slot(&self, hash: u64) -> usize {
        self.modulo.remainder(hash) as usize
    }
}

impl Placement for MaglevRing {
    fn nodes(&self) -> &NodeSet {
        &self.nodes
    }

    #[inline]
    fn locate(&self, hash: u64) -> Result<usize> {
        if self.table.is_empty() {
            return Err(Error::EmptyRing);
        }
        Ok(self.table[self.slot(hash)] as usize)
    }

    fn locate_into(&self, hashes: &[u64], out: &mut [u32]) -> Result<()> {
        assert_eq!(hashes.len(), out.len(), "output length must match the keys");
        if self.table.is_empty() {
            return Err(Error::EmptyRing);
        }
        for (o, &h) in out.iter_mut().zip(hashes) {
            *o = self.table[self.slot(h)];
        }
        Ok(())
    }

    fn preference(&self, hash: u64, n: usize) -> Result<Vec<usize>> {
        if self.table.is_empty() {
            return Err(Error::EmptyRing);
        }
        let count = n.min(self.nodes.len());
        let mut seen = vec![false; self.nodes.len()];
        let mut out = Vec::with_capacity(count);
        let start = self.slot(hash);
        // Every node has at least one entry, so one pass around the table finds them all.
        for &i in self.table[start..].iter().chain(&self.table[..start]) {
            if out.len() == count {
                break;
            }
            if !seen[i as usize] {
                seen[i as usize] = true;
                out.push(i as usize);
            }
        }
        Ok(out)
    }

    fn add_node(&mut self, name: &str, weight: f64) -> Result<()> {
        self.nodes.check_new(name, weight)?;
        check_table_size(self.table_size(), self.nodes.len() + 1)?;
        let mut nodes = self.nodes.clone();
        nodes.push(name.to_owned(), weight)?;
        self.replace(nodes);
        Ok(())
    }

    fn remove_node(&mut self, name: &str) -> Result<()> {
        let mut nodes = self.nodes.clone();
        nodes.remove(name)?;
        self.replace(nodes);
        Ok(())
    }

    fn shares(&self) -> Vec<f64> {
        let m = self.table_size() as f64;
        self.entries().into_iter().map(|c| c as f64 / m).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::nodes::sample_hash;
    use proptest::prelude::*;

    fn ring(n: usize, m: u64) -> MaglevRing {
        MaglevRing::with_nodes((0..n).map(|i| (format!("backend-{i}"), 1.0)), m).unwrap()
    }

    fn peak_to_mean(r: &MaglevRing) -> f64 {
        let e = r.entries();
        let mean = r.table_size() as f64 / e.len() as f64;
        *e.iter().max().unwrap() as f64 / mean
    }

    #[test]
    fn primes() {
        let small: Vec<u64> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(small, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65_537) && is_prime(MAX_TABLE_SIZE) && !is_prime(65_536));
        assert!(!is_prime(25) && !is_prime(49) && !is_prime(65_535));
    }

    proptest! {
        #[test]
        fn fast_mod_is_exact(h in any::<u64>(), m in 2u64..1 << 32) {
            prop_assert_eq!(FastMod::new(m).remainder(h), h % m);
        }
    }

    #[test]
    fn fast_mod_edges() {
        for m in [2, 3, 65_537, MAX_TABLE_SIZE, (1 << 32) - 1, (1 << 31) + 11] {
            let f = FastMod::new(m);
            for h in [
                0,
                1,
                m - 1,
                m,
                m + 1,
                u64::MAX,
                u64::MAX - 1,
                u64::MAX / m * m,
                1 << 63,
            ] {
                assert_eq!(f.remainder(h), h % m, "{h} % {m}");
            }
        }
    }

    #[test]
    fn balance_within_one_percent_for_up_to_100_nodes() {
        for n in [1, 2, 3, 10, 37, 100] {
            let p = peak_to_mean(&ring(n, DEFAULT_TABLE_SIZE));
            assert!(p <= 1.01, "n={n} peak/mean {p}");
        }
    }

    #[test]
    fn bad_table_sizes_are_refused() {
        for m in [0, 1, 4, 65_536, 100_000] {
            let e = MaglevRing::new(m).unwrap_err();
            assert_eq!(
                e,
                Error::InvalidArgument(format!("table size must be prime, got {m}"))
            );
        }
        assert!(MaglevRing::new(5_000_077).is_err());
        let err = MaglevRing::with_nodes([("a", 1.0), ("b", 1.0), ("c", 1.0)], 2).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
        let mut r = ring(3, 3);
        let before = r.clone();
        assert!(matches!(
            r.add_node("x", 1.0),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(r, before);
    }

    #[test]
    fn table_does_not_depend_on_insertion_order() {
        let a = MaglevRing::with_nodes([("x", 1.0), ("y", 2.0), ("z", 1.0)], 251).unwrap();
        let b = MaglevRing::with_nodes([("z", 1.0), ("y", 2.0), ("x", 1.0)], 251).unwrap();
        let names = |r: &MaglevRing| -> Vec<String> {
            r.table()
                .iter()
                .map(|&i| r.nodes().name(i as usize).to_owned())
                .collect()
        };
        assert_eq!(names(&a), names(&b));
    }

    #[test]
    fn weights_give_proportional_entries() {
        let r = MaglevRing::with_nodes([("a", 1.0), ("b", 2.0), ("c", 4.0), ("d", 0.5)], 65_537)
            .unwrap();
        let total: f64 = r.nodes().total_weight();
        for (share, w) in r.shares().iter().zip(r.nodes().weights()) {
            assert!((share - w / total).abs() < 0.001, "{:?}", r.shares());
        }
        // A tiny weight still gets an entry.
        let r = MaglevRing::with_nodes([("a", 1e9), ("b", 1.0)], 65_537).unwrap();
        assert_eq!(r.entries()[1], 1);
    }

    #[test]
    fn removing_a_node_moves_its_keys_and_few_others() {
        let mut r = ring(10, DEFAULT_TABLE_SIZE);
        let keys: Vec<u64> = (0..100_000).map(sample_hash).collect();
        let before: Vec<String> = keys.iter().map(|&k| r.get_name(k)).collect();
        r.remove_node("backend-4").unwrap();
        let mut others_moved = 0;
        for (&k, b) in keys.iter().zip(&before) {
            let a = r.get_name(k);
            assert_ne!(a, "backend-4");
            if b != "backend-4" && *b != a {
                others_moved += 1;
            }
        }
        let frac = f64::from(others_moved) / keys.len() as f64;
        assert!(frac < 0.02, "{frac} of the other keys moved");
        let mid: Vec<String> = keys.iter().map(|&k| r.get_name(k)).collect();
        r.add_node("new", 1.0).unwrap();
        let (mut onto_new, mut elsewhere) = (0, 0);
        for (&k, m) in keys.iter().zip(&mid) {
            let a = r.get_name(k);
            if a == "new" {
                onto_new += 1;
            } else if a != *m {
                elsewhere += 1;
            }
        }
        let frac = f64::from(onto_new) / keys.len() as f64;
        assert!((frac - 0.1).abs() < 0.01, "{frac} moved onto the new node");
        assert!(f64::from(elsewhere) / (keys.len() as f64) < 0.02);
    }

    #[test]
    fn preference_walks_the_table() {
        let r = ring(5, 251);
        for i in 0..1000 {
            let h = sample_hash(i);
            let p = r.preference(h, 9).unwrap();
            assert_eq!(p.len(), 5);
            assert_eq!(p[0], r.locate(h).unwrap());
            let start = (h % 251) as usize;
            let t = r.table();
            let second = (0..t.len())
                .map(|j| t[(start + j) % t.len()] as usize)
                .find(|&i| i != p[0]);
            assert_eq!(Some(p[1]), second);
        }
        assert_eq!(MaglevRing::new(7).unwrap().locate(3), Err(Error::EmptyRing));
    }

    impl MaglevRing {
        fn get_name(&self, h: u64) -> String {
            self.nodes().name(self.locate(h).unwrap()).to_owned()
        }
    }
}
