//! Lifeguard's local health awareness: a score that grows when this node seems slow (missed
//! acks, missed nacks, having to refute) and stretches its probe interval and timeout.

use std::time::Duration;

/// The health score, 0 (healthy) to `max - 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Awareness {
    max: u32,
    score: u32,
}

impl Awareness {
    /// A healthy node whose score is capped at `max - 1` (memberlist's `AwarenessMaxMultiplier`).
    pub fn new(max: u32) -> Awareness {
        Awareness {
            max: max.max(1),
            score: 0,
        }
    }

    /// The current score.
    pub fn score(&self) -> u32 {
        self.score
    }

    /// Adds `delta` (negative when a probe succeeded), clamped to `0..max`.
    pub fn apply(&mut self, delta: i32) {
        let next = i64::from(self.score) + i64::from(delta);
        self.score = next.clamp(0, i64::from(self.max - 1)) as u32;
    }

    /// `timeout * (score + 1)`.
    pub fn scale(&self, timeout: Duration) -> Duration {
        timeout * (self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_is_clamped_and_scales_timeouts() {
        let mut a = Awareness::new(8);
        a.apply(-1);
        assert_eq!(a.score(), 0);
        a.apply(3);
        assert_eq!(a.scale(Duration::from_millis(500)), Duration::from_secs(2));
        a.apply(100);
        assert_eq!(a.score(), 7);
        assert_eq!(a.scale(Duration::from_secs(1)), Duration::from_secs(8));
    }
}
