//! Lifeguard's dynamic suspicion timeout: a suspicion starts at its longest timeout and shrinks
//! towards the shortest as independent members confirm it (memberlist's `suspicion.go`).

use std::collections::BTreeSet;
use std::time::Duration;

/// One suspicion of one member, on a clock the caller supplies (sans-IO).
#[derive(Debug, Clone)]
pub struct Suspicion {
    /// Confirmations that bring the timeout down to `min` (0: always `min`).
    k: usize,
    min: Duration,
    max: Duration,
    start: Duration,
    /// Who accused or confirmed; the first accuser does not count as a confirmation.
    confirmed_by: BTreeSet<String>,
}

impl Suspicion {
    /// A suspicion raised by `from` at time `now`.
    pub fn new(from: &str, k: usize, min: Duration, max: Duration, now: Duration) -> Suspicion {
        Suspicion {
            k,
            min,
            max: max.max(min),
            start: now,
            confirmed_by: BTreeSet::from([from.to_owned()]),
        }
    }

    /// Independent confirmations so far.
    pub fn confirmations(&self) -> usize {
        self.confirmed_by.len() - 1
    }

    /// Counts `from`'s confirmation once; false if it was already counted or k is reached.
    pub fn confirm(&mut self, from: &str) -> bool {
        if self.confirmations() >= self.k || self.confirmed_by.contains(from) {
            return false;
        }
        self.confirmed_by.insert(from.to_owned())
    }

    /// The total timeout now: `max - log(n + 1) / log(k + 1) * (max - min)`, at least `min`,
    /// truncated to whole milliseconds as memberlist does.
    pub fn timeout(&self) -> Duration {
        if self.k < 1 {
            return self.min;
        }
        let n = self.confirmations() as f64;
        let frac = (n + 1.0).ln() / (self.k as f64 + 1.0).ln();
        let raw = self.max.as_secs_f64() - frac * (self.max.as_secs_f64() - self.min.as_secs_f64());
        Duration::from_millis((1000.0 * raw).floor() as u64).max(self.min)
    }

    /// When the member is declared dead unless the suspicion is refuted.
    pub fn deadline(&self) -> Duration {
        self.start + self.timeout()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn confirmations_shrink_the_timeout_logarithmically() {
        let mut s = Suspicion::new("a", 3, 2 * S, 30 * S, 100 * S);
        assert_eq!(s.deadline(), 130 * S);
        assert!(!s.confirm("a"), "the accuser is not a confirmation");
        assert!(s.confirm("b"));
        assert!(!s.confirm("b"));
        // n=1, k=3: 30 - ln2/ln4 * 28 = 16 s
        assert_eq!(s.timeout(), 16 * S);
        assert!(s.confirm("c"));
        assert!(s.confirm("d"));
        assert_eq!(s.timeout(), 2 * S);
        assert!(!s.confirm("e"), "k reached");
        assert_eq!(s.deadline(), 102 * S);
        let fixed = Suspicion::new("a", 0, 4 * S, 24 * S, Duration::ZERO);
        assert_eq!(fixed.deadline(), 4 * S);
    }
}
