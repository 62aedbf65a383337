//! Data parallelism for batch work, on scoped threads.
//!
//! Scoped threads end before the call returns, so nothing outlives a batch: no global pool that a
//! `fork()` in the host process could leave locked, which is why this is not rayon.

use std::num::NonZeroUsize;
use std::thread;

/// Below this many items per thread, spawning costs more than it saves.
pub const MIN_PER_THREAD: usize = 16 * 1024;

/// How many threads `items` items of work get: `requested` (0: one per core), but no more than
/// leaves each at least `min_per_thread` items, and at least one.
pub fn threads_for(items: usize, requested: usize, min_per_thread: usize) -> usize {
    let requested = if requested == 0 {
        thread::available_parallelism().map_or(1, NonZeroUsize::get)
    } else {
        requested
    };
    requested.min(items / min_per_thread.max(1)).max(1)
}

/// Fills `out` by calling `f(start, chunk)` on contiguous chunks, one per core when `out` is large;
/// `start` is the chunk's offset in `out`.
pub fn for_each_chunk<T: Send>(out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync) {
    let threads = threads_for(out.len(), 0, MIN_PER_THREAD);
    if threads == 1 {
        f(0, out);
        return;
    }
    let per = out.len().div_ceil(threads);
    let f = &f;
    thread::scope(|s| {
        let mut chunks = out.chunks_mut(per).enumerate();
        // The calling thread takes the first chunk itself.
        let (_, first) = chunks.next().expect("out is not empty");
        for (i, chunk) in chunks {
            s.spawn(move || f(i * per, chunk));
        }
        f(0, first);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_filled_once_with_its_own_index() {
        for len in [0, 1, 10, MIN_PER_THREAD * 2 + 7, MIN_PER_THREAD * 5] {
            let mut out = vec![usize::MAX; len];
            for_each_chunk(&mut out, |start, chunk| {
                for (i, o) in chunk.iter_mut().enumerate() {
                    assert_eq!(*o, usize::MAX);
                    *o = start + i;
                }
            });
            assert!(out.iter().enumerate().all(|(i, &o)| i == o), "len {len}");
        }
    }
}
