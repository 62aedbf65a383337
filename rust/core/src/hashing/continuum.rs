//! A sorted ring of points with an O(1) prefix index, shared by every ketama flavour.
//!
//! Peers disagree on two details, so both are parameters: which of several equal points wins
//! ([`Tie`]) and whether a key that hashes exactly onto a point goes to that point or past it
//! ([`Search`]).

/// A position on the ring: 32-bit for the memcached family, 128-bit for uhashring's default mode.
pub trait Point: Copy + Ord + Send + Sync {
    /// Width in bits.
    const BITS: u32;
    /// The top `bits` bits, used as the prefix-index bucket.
    fn top(self, bits: u32) -> usize;
    /// The point as a float, for share arithmetic.
    fn to_f64(self) -> f64;
    /// Sorts `(point, owner)` pairs by point, keeping equal points in insertion order (as glibc's
    /// qsort, a merge sort, does for twemproxy).
    fn sort_stable(entries: &mut [(Self, u32)]);
}

impl Point for u32 {
    const BITS: u32 = 32;
    #[inline]
    fn top(self, bits: u32) -> usize {
        (self >> (32 - bits)) as usize
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn sort_stable(entries: &mut [(u32, u32)]) {
        radix_sort_u32(entries);
    }
}

impl Point for u128 {
    const BITS: u32 = 128;
    #[inline]
    fn top(self, bits: u32) -> usize {
        (self >> (128 - bits)) as usize
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn sort_stable(entries: &mut [(u128, u32)]) {
        entries.sort_by_key(|e| e.0);
    }
}

/// Which server owns a point that several servers produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tie {
    /// The first inserted (twemproxy: first in sorted-name order; libmemcached: config order).
    First,
    /// The last inserted (uhashring, whose `ring[point] = node` overwrites).
    Last,
}

/// Where a key hash lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// The first point >= hash, wrapping (twemproxy, libmemcached, libketama).
    AtOrAfter,
    /// The first point > hash, wrapping (uhashring's `bisect_right`).
    After,
}

/// Sorted points, each with the index of the server that owns it.
#[derive(Debug, Clone)]
pub struct Continuum<P: Point> {
    points: Vec<P>,
    owners: Vec<u32>,
    /// `index[b]` is the first position whose point has top bits >= b; `index.len() == 2^bits + 1`.
    index: Vec<u32>,
    bits: u32,
    search: Search,
}

impl<P: Point> Continuum<P> {
    /// Builds from `(point, owner)` in insertion order. Equal points are kept (peers keep them too)
    /// but all of them are given to the winner of `tie`; with `dedupe` only one of them remains.
    pub fn build(entries: Vec<(P, u32)>, tie: Tie, search: Search, dedupe: bool) -> Self {
        let mut entries = entries;
        P::sort_stable(&mut entries);
        let mut points: Vec<P> = Vec::with_capacity(entries.len());
        let mut owners: Vec<u32> = Vec::with_capacity(entries.len());
        // Walk runs of equal points: every point of a run goes to the run's winner.
        let mut run = 0;
        while run < entries.len() {
            let p = entries[run].0;
            let mut end = run + 1;
            while end < entries.len() && entries[end].0 == p {
                end += 1;
            }
            let winner = match tie {
                Tie::First => entries[run].1,
                Tie::Last => entries[end - 1].1,
            };
            let copies = if dedupe { 1 } else { end - run };
            points.extend(std::iter::repeat_n(p, copies));
            owners.extend(std::iter::repeat_n(winner, copies));
            run = end;
        }
        drop(entries);
        // About one bucket per point keeps the scan inside a bucket to a point or two, and the
        // index small enough for the cache (at most 2^18 buckets, 1 MiB).
        let want = points.len().max(1).next_power_of_two().trailing_zeros();
        let bits = want.clamp(4, 18).min(P::BITS);
        // index[b] = number of points whose top bits are < b: a histogram, then a prefix sum.
        let mut index = vec![0u32; (1 << bits) + 1];
        for p in &points {
            index[p.top(bits) + 1] += 1;
        }
        for b in 1..index.len() {
            index[b] += index[b - 1];
        }
        Continuum {
            points,
            owners,
            index,
            bits,
            search,
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when there are no points.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The sorted points.
    pub fn points(&self) -> &[P] {
        &self.points
    }

    /// The owner of each point.
    pub fn owners(&self) -> &[u32] {
        &self.owners
    }

    /// The position a hash lands on (after wrapping), or `None` on an empty ring.
    #[inline]
    pub fn position(&self, h: P) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let b = h.top(self.bits);
        let lo = self.index[b] as usize;
        let hi = self.index[b + 1] as usize;
        let bucket = &self.points[lo..hi];
        let k = match self.search {
            Search::AtOrAfter => bucket.partition_point(|&p| p < h),
            Search::After => bucket.partition_point(|&p| p <= h),
        };
        let pos = lo + k;
        Some(if pos == self.points.len() { 0 } else { pos })
    }

    /// The owner of the point a hash lands on.
    #[inline]
    pub fn owner(&self, h: P) -> Option<u32> {
        self.position(h).map(|p| self.owners[p])
    }

    /// Up to `n` distinct owners walking clockwise from position `start` (replica lists).
    pub fn distinct_from(&self, start: usize, n: usize, out: &mut Vec<u32>) {
        out.clear();
        if n == 0 {
            return;
        }
        let len = self.points.len();
        for step in 0..len {
            let o = self.owners[(start + step) % len];
            if !out.contains(&o) {
                out.push(o);
                if out.len() == n {
                    break;
                }
            }
        }
    }

    /// How many points each owner holds (owners < `n_owners`).
    pub fn points_per_owner(&self, n_owners: usize) -> Vec<u32> {
        let mut counts = vec![0u32; n_owners];
        for &o in &self.owners {
            counts[o as usize] += 1;
        }
        counts
    }

    /// The share of the hash space each owner receives: the arc that ends at each of its points.
    pub fn shares(&self, n_owners: usize) -> Vec<f64> {
        let mut shares = vec![0f64; n_owners];
        let Some(&last) = self.points.last() else {
            return shares;
        };
        let full = 2f64.powi(P::BITS as i32);
        let mut prev = last.to_f64() - full;
        for (p, &o) in self.points.iter().zip(&self.owners) {
            let cur = p.to_f64();
            shares[o as usize] += (cur - prev) / full;
            prev = cur;
        }
        shares
    }
}

/// Stable LSD radix sort of `(point, owner)` by point: two passes of 16 bits, O(n).
fn radix_sort_u32(entries: &mut [(u32, u32)]) {
    let mut buf = vec![(0u32, 0u32); entries.len()];
    for shift in [0u32, 16] {
        let mut counts = vec![0usize; (1 << 16) + 1];
        for e in entries.iter() {
            counts[((e.0 >> shift) & 0xffff) as usize + 1] += 1;
        }
        for d in 1..counts.len() {
            counts[d] += counts[d - 1];
        }
        for e in entries.iter() {
            let d = ((e.0 >> shift) & 0xffff) as usize;
            buf[counts[d]] = *e;
            counts[d] += 1;
        }
        entries.copy_from_slice(&buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(points: &[u32], tie: Tie, search: Search) -> Continuum<u32> {
        let entries = points
            .iter()
            .enumerate()
            .map(|(i, &p)| (p, i as u32))
            .collect();
        Continuum::build(entries, tie, search, false)
    }

    #[test]
    fn lookup_is_lower_bound_with_wrap() {
        let c = ring(&[100, 200, 300], Tie::First, Search::AtOrAfter);
        assert_eq!(c.owner(0), Some(0));
        assert_eq!(c.owner(100), Some(0));
        assert_eq!(c.owner(101), Some(1));
        assert_eq!(c.owner(300), Some(2));
        assert_eq!(c.owner(301), Some(0));
        assert_eq!(c.owner(u32::MAX), Some(0));
    }

    #[test]
    fn after_search_skips_an_exact_hit() {
        let c = ring(&[100, 200, 300], Tie::First, Search::After);
        assert_eq!(c.owner(100), Some(1));
        assert_eq!(c.owner(300), Some(0));
    }

    #[test]
    fn ties_go_to_the_first_or_last_inserted() {
        let first = ring(&[5, 7, 5], Tie::First, Search::AtOrAfter);
        assert_eq!(first.owner(5), Some(0));
        assert_eq!(first.owners(), &[0, 0, 1]);
        let last = ring(&[5, 7, 5], Tie::Last, Search::AtOrAfter);
        assert_eq!(last.owner(5), Some(2));
    }

    #[test]
    fn prefix_index_agrees_with_binary_search() {
        let mut x = 0x1234_5678u32;
        let mut pts = Vec::new();
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            pts.push(x);
        }
        let c = ring(&pts, Tie::First, Search::AtOrAfter);
        let sorted = c.points().to_vec();
        for k in 0..20_000u32 {
            let h = k.wrapping_mul(2_654_435_761);
            let want = sorted.partition_point(|&p| p < h) % sorted.len();
            assert_eq!(c.position(h), Some(want));
        }
    }

    #[test]
    fn radix_sort_is_a_stable_sort() {
        let mut x = 0x9e37_79b9u32;
        let mut entries: Vec<(u32, u32)> = (0..50_000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Few distinct high bits and many duplicates, to exercise both passes and ties.
                (x & 0x0003_00ff, i)
            })
            .collect();
        let mut want = entries.clone();
        want.sort_by_key(|e| e.0);
        radix_sort_u32(&mut entries);
        assert_eq!(entries, want);
    }

    #[test]
    fn empty_ring_has_no_owner() {
        let c = ring(&[], Tie::First, Search::AtOrAfter);
        assert_eq!(c.owner(1), None);
    }
}
