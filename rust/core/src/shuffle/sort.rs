//! Sorting (key, value) pairs by key, stably, on every core: the sort behind `sort_by_key`.
//!
//! Each thread sorts a contiguous run with the standard library's stable sort (driftsort), then
//! runs are merged pairwise, the left run first on equal keys, so pairs with equal keys keep
//! their input order whatever the thread count.

use std::thread;

/// Below this many pairs per thread, one thread is faster (small in tests, to test the merge).
#[cfg(not(test))]
const MIN_PER_THREAD: usize = 1 << 16;
#[cfg(test)]
const MIN_PER_THREAD: usize = 16;

/// Merges the sorted runs `a` and `b` into `out` (`a`'s pairs first on equal keys).
fn merge(a: &[(u64, u64)], b: &[(u64, u64)], out: &mut [(u64, u64)]) {
    let (mut i, mut j) = (0, 0);
    for o in out.iter_mut() {
        if j >= b.len() || (i < a.len() && a[i].0 <= b[j].0) {
            *o = a[i];
            i += 1;
        } else {
            *o = b[j];
            j += 1;
        }
    }
}

/// How many of the first `k` pairs of the stable merge of `a` and `b` come from `a` (the merge
/// path's co-rank): lets several threads write disjoint parts of one merge.
fn co_rank(rank: usize, a: &[(u64, u64)], b: &[(u64, u64)]) -> usize {
    let (mut lo, mut hi) = (rank.saturating_sub(b.len()), rank.min(a.len()));
    loop {
        let from_a = lo + (hi - lo) / 2;
        let from_b = rank - from_a;
        if from_a > 0 && from_b < b.len() && a[from_a - 1].0 > b[from_b].0 {
            hi = from_a - 1; // took too many from a
        } else if from_b > 0 && from_a < a.len() && b[from_b - 1].0 >= a[from_a].0 {
            lo = from_a + 1; // took too few from a (a goes first on equal keys)
        } else {
            return from_a;
        }
    }
}

/// Merges `a` and `b` into `out` in `parts` pieces on as many threads.
fn merge_in_parts(a: &[(u64, u64)], b: &[(u64, u64)], out: &mut [(u64, u64)], parts: usize) {
    if parts <= 1 {
        merge(a, b, out);
        return;
    }
    let total = out.len();
    let step = total.div_ceil(parts);
    thread::scope(|s| {
        let mut rest = out;
        let (mut k0, mut i0) = (0, 0);
        while k0 < total {
            let k1 = (k0 + step).min(total);
            let i1 = co_rank(k1, a, b);
            let (piece, tail) = rest.split_at_mut(k1 - k0);
            rest = tail;
            let (pa, pb) = (&a[i0..i1], &b[k0 - i0..k1 - i1]);
            s.spawn(move || merge(pa, pb, piece));
            (k0, i0) = (k1, i1);
        }
    });
}

/// Sorts `pairs` by key, stably, on up to `threads` threads (0: one per core).
pub fn sort_pairs(pairs: &mut Vec<(u64, u64)>, threads: usize) {
    let threads = crate::par::threads_for(pairs.len(), threads, MIN_PER_THREAD);
    if threads == 1 {
        pairs.sort_by_key(|p| p.0);
        return;
    }
    let per = pairs.len().div_ceil(threads);
    thread::scope(|s| {
        for run in pairs.chunks_mut(per) {
            s.spawn(move || run.sort_by_key(|p| p.0));
        }
    });
    // Merge runs pairwise, doubling their length, alternating between two buffers; the merges of
    // one level run in parallel.
    let mut src = std::mem::take(pairs);
    let mut dst = vec![(0, 0); src.len()];
    let mut width = per;
    while width < src.len() {
        // Fewer merges than threads at the last levels: split each merge between threads.
        let merges = src.len().div_ceil(2 * width);
        let parts = (threads / merges).max(1);
        thread::scope(|s| {
            for (from, to) in src.chunks(2 * width).zip(dst.chunks_mut(2 * width)) {
                s.spawn(move || {
                    let (a, b) = from.split_at(width.min(from.len()));
                    merge_in_parts(a, b, to, parts);
                });
            }
        });
        std::mem::swap(&mut src, &mut dst);
        width *= 2;
    }
    *pairs = src;
}

/// Sorts `values` by `keys` (one length), stably; returns the sorted columns. Zipping into pairs
/// and back runs on every core too.
///
/// # Panics
/// If the columns differ in length.
pub fn sort_columns(keys: &[u64], values: &[u64], threads: usize) -> (Vec<u64>, Vec<u64>) {
    assert_eq!(keys.len(), values.len(), "columns of one length");
    let mut pairs = vec![(0u64, 0u64); keys.len()];
    crate::par::for_each_chunk(&mut pairs, |start, chunk| {
        for (i, p) in chunk.iter_mut().enumerate() {
            *p = (keys[start + i], values[start + i]);
        }
    });
    sort_pairs(&mut pairs, threads);
    let mut out_k = vec![0u64; pairs.len()];
    let mut out_v = vec![0u64; pairs.len()];
    crate::par::for_each_chunk(&mut out_k, |start, chunk| {
        for (i, k) in chunk.iter_mut().enumerate() {
            *k = pairs[start + i].0;
        }
    });
    crate::par::for_each_chunk(&mut out_v, |start, chunk| {
        for (i, v) in chunk.iter_mut().enumerate() {
            *v = pairs[start + i].1;
        }
    });
    (out_k, out_v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn equals_a_stable_sort_for_any_thread_count(
            keys in proptest::collection::vec(0u64..20, 0..500),
            threads in 1usize..6,
        ) {
            // Values record the input position: a stable sort keeps them increasing per key.
            let mut pairs: Vec<(u64, u64)> =
                keys.iter().enumerate().map(|(i, &k)| (k, i as u64)).collect();
            let mut want = pairs.clone();
            want.sort_by_key(|p| p.0);
            sort_pairs(&mut pairs, threads);
            prop_assert_eq!(pairs, want);
        }

        #[test]
        fn a_merge_split_into_parts_equals_one_merge(
            mut a in proptest::collection::vec((0u64..10, 0u64..1000), 0..200),
            mut b in proptest::collection::vec((0u64..10, 1000u64..2000), 0..200),
            parts in 1usize..7,
        ) {
            a.sort_by_key(|p| p.0);
            b.sort_by_key(|p| p.0);
            let mut one = vec![(0, 0); a.len() + b.len()];
            merge(&a, &b, &mut one);
            let mut split = vec![(0, 0); a.len() + b.len()];
            merge_in_parts(&a, &b, &mut split, parts);
            prop_assert_eq!(split, one);
        }
    }
}
