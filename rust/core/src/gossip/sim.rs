//! A deterministic simulator: whole clusters of the real [`Swim`] state machine on a simulated
//! network with latency, jitter, loss and partitions, on a virtual clock.
//!
//! Every member holds the full membership, as memberlist does, but the members' views are
//! copy-on-write over one shared table of the converged cluster (see [`super::members`]): memory
//! grows with the number of changes each member has seen, not with `n²`, so 100,000 members fit.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::config::Config;
use super::members::SharedTable;
use super::swim::{Event, Member, Output, Swim};
use super::wire::Message;
use super::NodeState;
use crate::error::{Error, Result};

/// The most members a simulation accepts.
pub const MAX_NODES: usize = 1_000_000;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: usize,
    pub seed: u64,
    /// One-way latency of every packet.
    pub latency: Duration,
    /// Extra uniform random latency, 0..jitter.
    pub jitter: Duration,
    /// Probability that a packet is lost.
    pub loss: f64,
    /// Simulated time to run.
    pub duration: Duration,
    /// When node 0 announces an update (a new incarnation) whose spread is measured.
    pub update_at: Duration,
    /// Members crashed (stop for good) at `crash_at`: the last `crashes` members.
    pub crashes: usize,
    pub crash_at: Duration,
    /// Split the cluster in two halves from `partition.0` until `partition.1`.
    pub partition: Option<(Duration, Duration)>,
    /// Slow members (members 1 to `slow`): each handles every packet `slow_delay` late (a
    /// process starved of CPU), and stops for `pause` once every `pause_every` (each at its own
    /// phase), as a process stopped by a long GC or SIGSTOP would. What arrives meanwhile waits
    /// in its socket buffer and is handled when it resumes.
    pub slow: usize,
    pub slow_delay: Duration,
    pub pause: Duration,
    pub pause_every: Duration,
    pub swim: Config,
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// Times (since `update_at`) at which each member learnt node 0's update, sorted.
    pub update_learnt: Vec<Duration>,
    /// Per crashed member: when the first live member suspected it, and when the last one
    /// declared it dead (None if not everyone did).
    pub detection: Vec<(Option<Duration>, Option<Duration>)>,
    /// Dead events about members that had not crashed (false positives), counted per viewer.
    pub false_positives: usize,
    /// Suspect events about healthy members (neither crashed nor slow), counted per viewer.
    pub false_suspicions: usize,
    pub packets: u64,
    pub bytes: u64,
    /// Simulated seconds actually run.
    pub seconds: f64,
}

/// A packet in flight, ordered by arrival time, then by when it was sent (deterministic).
struct Packet {
    at: Duration,
    id: u64,
    to: usize,
    from: SocketAddr,
    messages: Vec<Message>,
}

impl PartialEq for Packet {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.id) == (other.at, other.id)
    }
}

impl Eq for Packet {}

impl PartialOrd for Packet {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Packet {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.id).cmp(&(other.at, other.id))
    }
}

fn addr(i: usize) -> SocketAddr {
    // 10.x.y.z:7946 for member i: distinct addresses for up to 16M members.
    let i = i as u32;
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 7946))
}

fn index(a: SocketAddr) -> Option<usize> {
    match a.ip() {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            Some(((o[1] as usize) << 16) | ((o[2] as usize) << 8) | o[3] as usize)
        }
        std::net::IpAddr::V6(_) => None,
    }
}

/// Runs a simulation.
pub fn simulate(cfg: &SimConfig) -> Result<SimReport> {
    let mut sim = Sim::new(cfg)?;
    while sim.now < cfg.duration {
        sim.step()?;
    }
    Ok(sim.finish())
}

struct Sim<'a> {
    cfg: &'a SimConfig,
    rng: SmallRng,
    nodes: Vec<Swim>,
    alive: Vec<bool>,
    /// Members from this index on crash at `crash_at`.
    crashed_from: usize,
    wake: BinaryHeap<Reverse<(Duration, usize)>>,
    /// When each member is due to wake; older entries in `wake` are stale and skipped.
    scheduled: Vec<Duration>,
    in_flight: BinaryHeap<Reverse<Packet>>,
    next_id: u64,
    report: SimReport,
    learnt: Vec<Option<Duration>>,
    dead_seen: Vec<usize>,
    updated: bool,
    crashed: bool,
    now: Duration,
}

impl<'a> Sim<'a> {
    fn new(cfg: &'a SimConfig) -> Result<Sim<'a>> {
        let n = cfg.nodes;
        if !(2..=MAX_NODES).contains(&n) {
            return Err(Error::InvalidArgument(format!(
                "the simulator runs 2 to {MAX_NODES} members, got {n}"
            )));
        }
        if !(0.0..1.0).contains(&cfg.loss) {
            return Err(Error::InvalidArgument(format!(
                "loss must be in [0, 1), got {}",
                cfg.loss
            )));
        }
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        // Start converged: every member knows every other (as after a round of push-pulls), and
        // a long-converged cluster has nothing left to gossip.
        let table = Arc::new(SharedTable::new(
            (0..n)
                .map(|i| Member {
                    name: format!("n{i}"),
                    addr: addr(i),
                    meta: Vec::new(),
                    incarnation: 1,
                    state: NodeState::Alive,
                    since: Duration::ZERO,
                    vsn: vec![1, 5, 2, 2, 5, 4],
                })
                .collect(),
        ));
        let mut nodes: Vec<Swim> = Vec::with_capacity(n);
        for i in 0..n {
            // Stagger the timers so members do not all probe in the same instant.
            let start = Duration::from_micros(rng.random_range(0..1_000_000));
            nodes.push(Swim::with_table(
                cfg.swim.clone(),
                &table,
                &format!("n{i}"),
                cfg.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                start,
            )?);
        }
        let crashed_from = n - cfg.crashes.min(n - 1);
        let scheduled: Vec<Duration> = nodes.iter().map(Swim::next_deadline).collect();
        let wake = scheduled
            .iter()
            .enumerate()
            .map(|(i, &t)| Reverse((t, i)))
            .collect();
        Ok(Sim {
            cfg,
            rng,
            nodes,
            alive: vec![true; n],
            crashed_from,
            wake,
            scheduled,
            in_flight: BinaryHeap::new(),
            next_id: 0,
            report: SimReport {
                detection: vec![(None, None); n - crashed_from],
                ..SimReport::default()
            },
            learnt: vec![None; n],
            dead_seen: vec![0; n - crashed_from],
            updated: false,
            crashed: false,
            now: Duration::ZERO,
        })
    }

    fn cut(&self, a: usize, b: usize) -> bool {
        let half = self.cfg.nodes / 2;
        self.cfg
            .partition
            .is_some_and(|(from, to)| self.now >= from && self.now < to && (a < half) != (b < half))
    }

    /// Advances to the next timer or packet and handles it.
    fn step(&mut self) -> Result<()> {
        let end = self.cfg.duration;
        let next_wake = self.wake.peek().map_or(end, |r| r.0 .0);
        let next_packet = self.in_flight.peek().map_or(end, |r| r.0.at);
        self.now = next_wake.min(next_packet).min(end);
        if !self.updated && self.now >= self.cfg.update_at {
            self.updated = true;
            self.nodes[0].update_meta(b"v2".to_vec())?;
            self.learnt[0] = Some(Duration::ZERO);
            self.reschedule(0);
        }
        if !self.crashed && self.cfg.crashes > 0 && self.now >= self.cfg.crash_at {
            self.crashed = true;
            let from = self.crashed_from;
            self.alive[from..].fill(false);
        }
        if self.now >= end {
            return Ok(());
        }
        if next_packet <= next_wake {
            let Some(Reverse(mut p)) = self.in_flight.pop() else {
                return Ok(());
            };
            if let Some(resume) = self.paused_until(p.to) {
                p.at = resume; // waits in the socket buffer
                self.in_flight.push(Reverse(p));
            } else if self.alive[p.to] {
                self.nodes[p.to].handle_packet(p.from, &p.messages, self.now);
                self.route(p.to);
                self.reschedule(p.to);
            }
        } else if let Some(Reverse((t, i))) = self.wake.pop() {
            if t != self.scheduled[i] {
                return Ok(()); // superseded by an earlier wake
            }
            if let Some(resume) = self.paused_until(i) {
                self.scheduled[i] = resume;
                self.wake.push(Reverse((resume, i)));
                return Ok(());
            }
            if self.alive[i] {
                self.nodes[i].tick(self.now);
                self.route(i);
            }
            self.scheduled[i] = Duration::MAX;
            self.reschedule(i);
        }
        Ok(())
    }

    /// When member `i`, if paused now, resumes.
    fn paused_until(&self, i: usize) -> Option<Duration> {
        let cfg = self.cfg;
        if i == 0 || i > cfg.slow || cfg.pause.is_zero() || cfg.pause_every.is_zero() {
            return None;
        }
        let every = cfg.pause_every.as_nanos() as u64;
        // A fixed, spread-out phase per member (Fibonacci hashing of its index).
        let phase = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % every;
        let into = (self.now.as_nanos() as u64 + every - phase) % every;
        let pause = cfg.pause.as_nanos() as u64;
        (into < pause).then(|| self.now + Duration::from_nanos(pause - into))
    }

    /// Wakes member `i` earlier if what it just handled brought its next deadline forward.
    fn reschedule(&mut self, i: usize) {
        let next = self.nodes[i]
            .next_deadline()
            .max(self.now + Duration::from_millis(1));
        if next < self.scheduled[i] {
            self.scheduled[i] = next;
            self.wake.push(Reverse((next, i)));
        }
    }

    fn route(&mut self, i: usize) {
        for o in self.nodes[i].drain() {
            match o {
                Output::Packet { to, messages } => self.send(i, to, messages),
                Output::PushPull { to, .. } => {
                    // A stream exchange, done at once when both ends are up and connected.
                    let Some(j) = index(to) else { continue };
                    if j < self.cfg.nodes && self.alive[j] && !self.cut(i, j) {
                        let mine = self.nodes[i].state_for(&self.nodes[j], false);
                        let theirs = self.nodes[j].state_for(&self.nodes[i], false);
                        self.nodes[j].merge_remote_state(&mine, self.now);
                        self.nodes[i].merge_remote_state(&theirs, self.now);
                        // The other end's events count too (a verdict learnt by push-pull).
                        self.route(j);
                        self.reschedule(j);
                    }
                }
                Output::StreamPing {
                    to,
                    seq_no,
                    deadline,
                    ..
                } => {
                    // A TCP ping: answered when the member is up, running and reachable (a
                    // stopped process's kernel accepts the connection but nobody answers), and
                    // in time if the round trip, slow ends included, beats the probe's deadline.
                    // TCP does not lose packets; it retransmits, which the round trip ignores.
                    let Some(j) = index(to) else { continue };
                    let slow = |k: usize| (1..=self.cfg.slow).contains(&k);
                    let rtt = self.cfg.latency * 2
                        + self.cfg.slow_delay * (u32::from(slow(i)) + u32::from(slow(j)));
                    if j < self.cfg.nodes
                        && self.alive[j]
                        && !self.cut(i, j)
                        && self.paused_until(j).is_none()
                        && self.now + rtt < deadline
                    {
                        self.nodes[i].stream_ack(seq_no);
                    }
                }
                Output::Event(e) => self.on_event(i, &e),
                Output::User(_) => {}
            }
        }
    }

    fn send(&mut self, i: usize, to: SocketAddr, messages: Vec<Message>) {
        let Some(j) = index(to) else { return };
        self.report.packets += 1;
        self.report.bytes += messages.iter().map(|m| m.encoded_len() as u64).sum::<u64>();
        if j >= self.cfg.nodes || self.rng.random_bool(self.cfg.loss) || self.cut(i, j) {
            return;
        }
        let jitter = self.cfg.jitter.as_nanos() as u64;
        let mut delay = self.cfg.latency
            + Duration::from_nanos(if jitter == 0 {
                0
            } else {
                self.rng.random_range(0..jitter)
            });
        if (1..=self.cfg.slow).contains(&j) {
            delay += self.cfg.slow_delay;
        }
        self.next_id += 1;
        self.in_flight.push(Reverse(Packet {
            at: self.now + delay,
            id: self.next_id,
            to: j,
            from: addr(i),
            messages,
        }));
    }

    fn on_event(&mut self, i: usize, e: &Event) {
        match e {
            Event::Suspect(name) | Event::Dead(name) => {
                let dead = matches!(e, Event::Dead(_));
                let k: usize = name[1..].parse().unwrap_or(usize::MAX);
                if self.crashed && (self.crashed_from..self.cfg.nodes).contains(&k) {
                    let slot = k - self.crashed_from;
                    let since = self.now.saturating_sub(self.cfg.crash_at);
                    let d = &mut self.report.detection[slot];
                    d.0.get_or_insert(since);
                    if dead {
                        self.dead_seen[slot] += 1;
                        if self.dead_seen[slot] == self.crashed_from {
                            d.1 = Some(since);
                        }
                    }
                } else if dead {
                    self.report.false_positives += 1;
                } else if !(1..=self.cfg.slow).contains(&k) {
                    self.report.false_suspicions += 1;
                }
            }
            Event::Update(m) if m.name == "n0" && self.updated && self.learnt[i].is_none() => {
                self.learnt[i] = Some(self.now.saturating_sub(self.cfg.update_at));
            }
            _ => {}
        }
    }

    fn finish(mut self) -> SimReport {
        self.report.seconds = self.now.as_secs_f64();
        let mut times: Vec<Duration> = self.learnt[..self.crashed_from]
            .iter()
            .flatten()
            .copied()
            .collect();
        times.sort();
        self.report.update_learnt = times;
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(n: usize) -> SimConfig {
        SimConfig {
            nodes: n,
            seed: 7,
            latency: Duration::from_millis(5),
            jitter: Duration::from_millis(5),
            loss: 0.0,
            duration: Duration::from_secs(40),
            update_at: Duration::from_secs(2),
            crashes: 1,
            crash_at: Duration::from_secs(5),
            partition: None,
            slow: 0,
            slow_delay: Duration::ZERO,
            pause: Duration::ZERO,
            pause_every: Duration::ZERO,
            swim: Config::lan(),
        }
    }

    #[test]
    fn updates_reach_everyone_and_a_crash_is_detected_by_all() {
        let r = simulate(&base(60)).unwrap();
        assert_eq!(
            r.update_learnt.len(),
            59,
            "every live member learnt the update"
        );
        // Gossip every 200 ms to 3 members: log-ish spread, well under the suspicion timeout.
        assert!(*r.update_learnt.last().unwrap() < Duration::from_secs(5));
        let (first, all) = r.detection[0];
        assert!(first.is_some() && all.is_some(), "{:?}", r.detection);
        let (min, max) = Config::lan().suspicion_timeouts(60);
        assert!(all.unwrap() >= min && all.unwrap() <= max + Duration::from_secs(10));
        assert_eq!(r.false_positives, 0);
        assert!(r.packets > 0 && r.bytes > r.packets);
    }

    #[test]
    fn loss_slows_but_does_not_stop_detection_and_runs_are_reproducible() {
        let lossy = SimConfig {
            loss: 0.1,
            ..base(30)
        };
        let a = simulate(&lossy).unwrap();
        let b = simulate(&lossy).unwrap();
        assert_eq!(a.update_learnt, b.update_learnt);
        assert_eq!(a.detection, b.detection);
        assert_eq!(a.packets, b.packets);
        assert!(
            a.detection[0].1.is_some(),
            "all live members declare the crash"
        );
        assert_eq!(a.update_learnt.len(), 29);
    }

    #[test]
    fn a_partition_is_suspected_then_healed() {
        let cfg = SimConfig {
            crashes: 0,
            partition: Some((Duration::from_secs(5), Duration::from_secs(7))),
            duration: Duration::from_secs(20),
            ..base(20)
        };
        let r = simulate(&cfg).unwrap();
        // Two seconds of split is shorter than the suspicion timeout: suspicions are refuted,
        // nobody is declared dead.
        assert_eq!(r.false_positives, 0);
        assert!(simulate(&SimConfig {
            nodes: 1,
            ..base(2)
        })
        .is_err());
    }
}
