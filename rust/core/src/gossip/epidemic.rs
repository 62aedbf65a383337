//! Dissemination in synchronous rounds, the epidemic model gossip is analysed with (Demers et
//! al. 1987, Karp et al. 2000): how many rounds a rumour needs to reach everyone by push, pull
//! or push-pull, measured on a seeded random run and next to the mean-field theory.
//!
//! In a round every member acts on the state at the round's start. Push: each informed member
//! sends the rumour to `fanout` distinct random others. Pull: each uninformed member asks
//! `fanout` distinct random others and learns it from any informed one. Push-pull does both.
//! Each message is lost with probability `loss` (a pull needs its request and its reply).
//! memberlist's own spread is push (piggybacked gossip to `GossipNodes` members every
//! `GossipInterval`) with pull as periodic push-pull anti-entropy; the full simulator measures
//! that; this model isolates the three strategies.

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::error::{Error, Result};

/// How a round spreads the rumour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Push,
    Pull,
    PushPull,
}

impl Mode {
    /// Every mode, in the order reports list them.
    pub const ALL: [Mode; 3] = [Mode::Push, Mode::Pull, Mode::PushPull];

    /// The mode's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Push => "push",
            Mode::Pull => "pull",
            Mode::PushPull => "push_pull",
        }
    }
}

/// The most members [`spread`] accepts.
pub const MAX_NODES: usize = 10_000_000;

fn check(nodes: usize, fanout: usize, loss: f64) -> Result<()> {
    if !(2..=MAX_NODES).contains(&nodes) {
        return Err(Error::InvalidArgument(format!(
            "nodes must be 2 to {MAX_NODES}, got {nodes}"
        )));
    }
    if fanout == 0 || fanout >= nodes {
        return Err(Error::InvalidArgument(format!(
            "fanout must be 1 to nodes - 1, got {fanout}"
        )));
    }
    if !(0.0..1.0).contains(&loss) {
        return Err(Error::InvalidArgument(format!(
            "loss must be in [0, 1), got {loss}"
        )));
    }
    Ok(())
}

/// `fanout` distinct random members other than `me`, into `out`.
fn pick(rng: &mut SmallRng, nodes: usize, me: usize, fanout: usize, out: &mut Vec<usize>) {
    out.clear();
    while out.len() < fanout {
        let j = rng.random_range(0..nodes);
        if j != me && !out.contains(&j) {
            out.push(j);
        }
    }
}

/// The fraction of members informed after each round (index 0: only member 0 knows), until
/// all know or `max_rounds` rounds ran.
pub fn spread(
    nodes: usize,
    fanout: usize,
    loss: f64,
    mode: Mode,
    seed: u64,
    max_rounds: usize,
) -> Result<Vec<f64>> {
    check(nodes, fanout, loss)?;
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut informed = vec![false; nodes];
    informed[0] = true;
    let mut count = 1;
    let mut coverage = vec![1.0 / nodes as f64];
    let mut targets = Vec::with_capacity(fanout);
    while count < nodes && coverage.len() <= max_rounds {
        let before = informed.clone();
        for i in 0..nodes {
            if before[i] {
                if matches!(mode, Mode::Push | Mode::PushPull) {
                    pick(&mut rng, nodes, i, fanout, &mut targets);
                    for &j in &targets {
                        if !informed[j] && !rng.random_bool(loss) {
                            informed[j] = true;
                            count += 1;
                        }
                    }
                }
            } else if matches!(mode, Mode::Pull | Mode::PushPull) {
                pick(&mut rng, nodes, i, fanout, &mut targets);
                let learnt = targets
                    .iter()
                    .any(|&j| before[j] && !rng.random_bool(loss) && !rng.random_bool(loss));
                if learnt && !informed[i] {
                    informed[i] = true;
                    count += 1;
                }
            }
        }
        coverage.push(count as f64 / nodes as f64);
    }
    Ok(coverage)
}

/// The mean-field expectation of [`spread`]: the informed fraction after each of `rounds`
/// rounds. With `s` the uninformed fraction and `I = n(1 - s)` informed members, a push round
/// misses an uninformed member with probability `(1 - f(1-loss)/(n-1))^I`, a pull round with
/// `(1 - (1-loss)² I/(n-1))^f`; push-pull multiplies the two.
pub fn theory(
    nodes: usize,
    fanout: usize,
    loss: f64,
    mode: Mode,
    rounds: usize,
) -> Result<Vec<f64>> {
    check(nodes, fanout, loss)?;
    let n = nodes as f64;
    let f = fanout as f64;
    let mut s = 1.0 - 1.0 / n;
    let mut out = vec![1.0 - s];
    for _ in 0..rounds {
        let informed = n * (1.0 - s);
        let push_miss = (1.0 - f * (1.0 - loss) / (n - 1.0)).powf(informed);
        let pull_miss = (1.0 - (1.0 - loss).powi(2) * informed / (n - 1.0)).powf(f);
        s *= match mode {
            Mode::Push => push_miss,
            Mode::Pull => pull_miss,
            Mode::PushPull => push_miss * pull_miss,
        };
        out.push(1.0 - s);
    }
    Ok(out)
}

/// The first round at which `coverage` reaches `fraction`.
pub fn rounds_to(coverage: &[f64], fraction: f64) -> Option<usize> {
    coverage.iter().position(|&c| c >= fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_pull_reaches_nearly_everyone_within_log3_n_plus_3_rounds() {
        let n = 10_000;
        let bound = (n as f64).log(3.0) + 3.0;
        let c = spread(n, 3, 0.0, Mode::PushPull, 1, 64).unwrap();
        let r = rounds_to(&c, 0.9999).unwrap();
        assert!((r as f64) <= bound, "{r} rounds > {bound}");
        // Push-pull beats push alone; the theory tracks the measured curve.
        let push = spread(n, 3, 0.0, Mode::Push, 1, 64).unwrap();
        assert!(rounds_to(&push, 0.9999).unwrap() > r);
        let t = theory(n, 3, 0.0, Mode::PushPull, 64).unwrap();
        let tr = rounds_to(&t, 0.9999).unwrap();
        assert!(tr.abs_diff(r) <= 1, "theory {tr} vs measured {r}");
    }

    #[test]
    fn loss_slows_the_spread_and_runs_are_reproducible() {
        let a = spread(2000, 3, 0.3, Mode::Pull, 5, 64).unwrap();
        assert_eq!(a, spread(2000, 3, 0.3, Mode::Pull, 5, 64).unwrap());
        let clean = spread(2000, 3, 0.0, Mode::Pull, 5, 64).unwrap();
        assert!(rounds_to(&a, 1.0).unwrap() >= rounds_to(&clean, 1.0).unwrap());
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert!(spread(1, 3, 0.0, Mode::Push, 0, 9).is_err());
        assert!(spread(10, 10, 0.0, Mode::Push, 0, 9).is_err());
        assert!(theory(10, 3, 1.0, Mode::Push, 9).is_err());
    }
}
