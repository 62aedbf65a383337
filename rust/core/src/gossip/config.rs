//! Configuration with memberlist's defaults, and the formulas that scale it with cluster size.

use std::time::Duration;

const fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// The knobs of SWIM + Lifeguard, named as memberlist names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Time between probes of one member (scaled up by the local health score).
    pub probe_interval: Duration,
    /// Time to wait for an ack before probing indirectly.
    pub probe_timeout: Duration,
    /// Members asked to probe a member that missed its ack (`IndirectChecks`, SWIM's k).
    pub indirect_checks: usize,
    /// Broadcasts are sent `retransmit_mult * ceil(log10(n + 1))` times.
    pub retransmit_mult: u32,
    /// Suspicion lasts at least `suspicion_mult * max(1, log10(n)) * probe_interval`.
    pub suspicion_mult: u32,
    /// ... and at most this many times that minimum, before confirmations shorten it.
    pub suspicion_max_timeout_mult: u32,
    /// Time between full-state exchanges with a random member (scaled with n past 32 members).
    pub push_pull_interval: Duration,
    /// Time between gossip rounds.
    pub gossip_interval: Duration,
    /// Members gossiped to per round.
    pub gossip_nodes: usize,
    /// How long dead members are still gossiped to (so they can refute).
    pub gossip_to_the_dead_time: Duration,
    /// Lifeguard: the health score ranges over 0..awareness_max_multiplier.
    pub awareness_max_multiplier: u32,
    /// Timeout of stream (TCP) operations.
    pub tcp_timeout: Duration,
    /// Largest UDP packet sent.
    pub udp_buffer_size: usize,
    /// LZW-compress packets and streams.
    pub enable_compression: bool,
    /// The memberlist protocol version spoken (2 to 5).
    pub protocol_version: u8,
    /// Lifeguard on (memberlist's behaviour): the health score stretches probes, suspicion
    /// timeouts start long and shrink with confirmations, a probe of a suspect carries the
    /// suspicion (buddy system). Off gives the original SWIM, for comparison: fixed probe timing,
    /// a fixed suspicion timeout at its minimum, no buddy system.
    pub lifeguard: bool,
    /// When a probe's ack is late, also ping the member over TCP (to members speaking protocol 3
    /// or later) and do not suspect it if that answers (memberlist's fallback ping; the
    /// opposite of its `DisableTcpPings`).
    pub tcp_pings: bool,
}

impl Config {
    /// memberlist's `DefaultLANConfig`.
    pub fn lan() -> Config {
        Config {
            probe_interval: ms(1000),
            probe_timeout: ms(500),
            indirect_checks: 3,
            retransmit_mult: 4,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            push_pull_interval: ms(30_000),
            gossip_interval: ms(200),
            gossip_nodes: 3,
            gossip_to_the_dead_time: ms(30_000),
            awareness_max_multiplier: 8,
            tcp_timeout: ms(10_000),
            udp_buffer_size: 1400,
            enable_compression: true,
            protocol_version: 2,
            lifeguard: true,
            tcp_pings: true,
        }
    }

    /// memberlist's `DefaultWANConfig`: slower, more tolerant.
    pub fn wan() -> Config {
        Config {
            probe_interval: ms(5000),
            probe_timeout: ms(3000),
            suspicion_mult: 6,
            push_pull_interval: ms(60_000),
            gossip_interval: ms(500),
            gossip_nodes: 4,
            gossip_to_the_dead_time: ms(60_000),
            tcp_timeout: ms(30_000),
            ..Config::lan()
        }
    }

    /// memberlist's `DefaultLocalConfig`: for loopback and tests.
    pub fn local() -> Config {
        Config {
            probe_timeout: ms(200),
            indirect_checks: 1,
            retransmit_mult: 2,
            suspicion_mult: 3,
            push_pull_interval: ms(15_000),
            gossip_interval: ms(100),
            gossip_to_the_dead_time: ms(15_000),
            tcp_timeout: ms(1000),
            ..Config::lan()
        }
    }

    /// How many times a broadcast is sent in a cluster of `n` members.
    pub fn retransmit_limit(&self, n: usize) -> usize {
        retransmit_limit(self.retransmit_mult, n)
    }

    /// The shortest and longest suspicion timeouts for `n` members.
    pub fn suspicion_timeouts(&self, n: usize) -> (Duration, Duration) {
        let min = suspicion_timeout(self.suspicion_mult, n, self.probe_interval);
        if self.lifeguard {
            (min, min * self.suspicion_max_timeout_mult)
        } else {
            (min, min)
        }
    }

    /// Independent confirmations that bring a suspicion down to its minimum timeout.
    pub fn suspicion_confirmations(&self, n: usize) -> usize {
        // memberlist: k = SuspicionMult - 2, none when too few members could confirm.
        let k = (self.suspicion_mult as usize).saturating_sub(2);
        if n.saturating_sub(2) < k {
            0
        } else {
            k
        }
    }

    /// The push-pull interval for `n` members.
    pub fn push_pull_interval_for(&self, n: usize) -> Duration {
        push_pull_scale(self.push_pull_interval, n)
    }
}

/// `retransmit_mult * ceil(log10(n + 1))` (memberlist's `retransmitLimit`; log10, not ln).
pub fn retransmit_limit(retransmit_mult: u32, n: usize) -> usize {
    let scale = ((n + 1) as f64).log10().ceil() as usize;
    retransmit_mult as usize * scale
}

/// `suspicion_mult * max(1, log10(max(1, n))) * interval`, with memberlist's millisecond
/// rounding of the scale (`suspicionTimeout`).
pub fn suspicion_timeout(suspicion_mult: u32, n: usize, interval: Duration) -> Duration {
    let scale = (n.max(1) as f64).log10().max(1.0);
    let scale_milli = (scale * 1000.0) as u32;
    interval * suspicion_mult * scale_milli / 1000
}

/// Members beyond which the push-pull interval grows (`pushPullScaleThreshold`).
pub const PUSH_PULL_SCALE_THRESHOLD: usize = 32;

/// `interval * (ceil(log2(n) - log2(32)) + 1)` past 32 members, else `interval`.
pub fn push_pull_scale(interval: Duration, n: usize) -> Duration {
    if n <= PUSH_PULL_SCALE_THRESHOLD {
        return interval;
    }
    let mult = ((n as f64).log2() - (PUSH_PULL_SCALE_THRESHOLD as f64).log2()).ceil() + 1.0;
    interval * mult as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_formulas_match_memberlists_table() {
        let c = Config::lan();
        // N, retransmits, suspicion min, max, push-pull (reference table from the formulas).
        for (n, tx, min, max, pp) in [
            (3, 4, 4.0, 24.0, 30),
            (10, 8, 4.0, 24.0, 30),
            (32, 8, 6.02, 36.12, 30),
            (100, 12, 8.0, 48.0, 90),
            (1000, 16, 12.0, 72.0, 180),
            (10_000, 20, 16.0, 96.0, 300),
        ] {
            assert_eq!(c.retransmit_limit(n), tx, "n={n}");
            let (lo, hi) = c.suspicion_timeouts(n);
            assert!((lo.as_secs_f64() - min).abs() < 0.01, "n={n}: {lo:?}");
            assert!((hi.as_secs_f64() - max).abs() < 0.05, "n={n}: {hi:?}");
            assert_eq!(
                c.push_pull_interval_for(n),
                Duration::from_secs(pp),
                "n={n}"
            );
        }
        assert_eq!(c.suspicion_confirmations(3), 0);
        assert_eq!(c.suspicion_confirmations(10), 2);
        let w = Config::wan();
        assert_eq!(w.suspicion_timeouts(10).0, Duration::from_secs(30));
        assert_eq!(Config::local().indirect_checks, 1);
    }
}
