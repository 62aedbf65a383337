//! Lamport clocks: one counter, safe to share between threads.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// A Lamport clock. All operations are lock-free and linearizable.
#[derive(Debug, Default)]
pub struct LamportClock {
    counter: AtomicU64,
}

fn overflow() -> Error {
    Error::CounterOverflow("the Lamport clock would pass 2**64-1".into())
}

impl LamportClock {
    /// A clock starting at `value`.
    pub fn new(value: u64) -> Self {
        LamportClock {
            counter: AtomicU64::new(value),
        }
    }

    /// The current value.
    pub fn value(&self) -> u64 {
        self.counter.load(Ordering::Acquire)
    }

    /// A local event: adds one and returns the new value.
    pub fn tick(&self) -> Result<u64> {
        self.transition(|cur| cur.checked_add(1))
    }

    /// A receive event: `max(value, remote) + 1`, returned.
    pub fn update(&self, remote: u64) -> Result<u64> {
        self.transition(|cur| cur.max(remote).checked_add(1))
    }

    /// Serf's `Witness`: moves to `remote + 1` if `remote >= value`, else leaves the clock as it
    /// is (so witnessing an old time is not an event). Returns the value after.
    pub fn witness(&self, remote: u64) -> Result<u64> {
        self.transition(|cur| {
            if remote < cur {
                Some(cur)
            } else {
                remote.checked_add(1)
            }
        })
    }

    fn transition(&self, f: impl Fn(u64) -> Option<u64>) -> Result<u64> {
        let mut cur = self.counter.load(Ordering::Acquire);
        loop {
            let next = f(cur).ok_or_else(overflow)?;
            if next == cur {
                return Ok(cur);
            }
            match self
                .counter
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(next),
                Err(seen) => cur = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_update_witness() {
        let c = LamportClock::new(0);
        assert_eq!(c.tick().unwrap(), 1);
        assert_eq!(c.update(10).unwrap(), 11);
        assert_eq!(c.update(3).unwrap(), 12);
        assert_eq!(c.witness(5).unwrap(), 12);
        assert_eq!(c.witness(12).unwrap(), 13);
        let full = LamportClock::new(u64::MAX);
        assert!(full.tick().is_err());
        assert_eq!(full.value(), u64::MAX);
    }

    #[test]
    fn ticks_from_many_threads_are_unique() {
        let c = LamportClock::new(0);
        let seen: Vec<Vec<u64>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..10_000).map(|_| c.tick().unwrap()).collect()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<u64> = seen.into_iter().flatten().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 40_000);
        assert_eq!(c.value(), 40_000);
    }
}
