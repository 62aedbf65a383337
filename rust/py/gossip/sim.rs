//! `simulate` (the deterministic cluster simulator) and `epidemic` (the rounds model), for Python.

use std::time::{Duration, Instant};

use distcore_core::gossip::epidemic::{rounds_to, spread, theory, Mode};
use distcore_core::gossip::sim::{simulate as run, SimConfig};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::config::PyGossipConfig;
use crate::errors::PyDistError;

fn secs(name: &str, v: f64) -> PyResult<Duration> {
    if v.is_finite() && v >= 0.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(PyValueError::new_err(format!(
            "{name} must be a finite number of seconds >= 0, got {v}"
        )))
    }
}

/// Simulates a cluster of ``nodes`` members running the real SWIM + Lifeguard state machine on a
/// virtual clock and a simulated network (seeded: the same arguments give the same result).
///
/// The cluster starts converged. At ``update_at`` member 0 announces an update (a new
/// incarnation): its spread is the dissemination. At ``crash_at`` the last ``crashes`` members
/// stop for good: their detection is measured. ``partition=(start, end)`` splits the cluster in
/// two halves for that time. The first ``slow`` members after member 0 handle every packet
/// ``slow_delay`` seconds late (starved of CPU) and stop for ``pause`` seconds once every
/// ``pause_every`` (each at its own phase; a long GC, SIGSTOP); what reaches them meanwhile is
/// handled when they resume. Members share one copy of the
/// converged membership and keep only what changed, so 100,000 members fit in about 0.5 GB (up
/// to 1,000,000 are accepted).
///
/// Returns
/// -------
/// dict
///     ``update_learnt`` (seconds after ``update_at`` at which each live member learnt the
///     update, sorted), ``detection`` (per crashed member: seconds until the first suspicion and
///     until every live member declared it dead, or None), ``false_positives`` (dead events
///     about members that had not crashed, per viewer), ``false_suspicions`` (suspect events
///     about healthy members: neither crashed nor slow), ``packets`` and ``bytes`` (UDP, sent), ``seconds`` (simulated),
///     ``wall_seconds`` and ``node_periods_per_second`` (members x probe intervals simulated per
///     second of wall time).
///
/// Examples
/// --------
/// >>> from distcore.gossip import simulate
/// >>> r = simulate(30, duration=30.0, seed=1)
/// >>> len(r["update_learnt"]), r["false_positives"], r["detection"][0][1] is not None
/// (29, 0, True)
#[pyfunction]
#[pyo3(signature = (nodes, *, seed = 0, latency = 0.005, jitter = 0.005, loss = 0.0, duration = 60.0, update_at = 2.0, crashes = 1, crash_at = 5.0, partition = None, slow = 0, slow_delay = 0.0, pause = 0.0, pause_every = 10.0, config = None))]
#[allow(clippy::too_many_arguments)]
pub fn simulate<'py>(
    py: Python<'py>,
    nodes: usize,
    seed: u64,
    latency: f64,
    jitter: f64,
    loss: f64,
    duration: f64,
    update_at: f64,
    crashes: usize,
    crash_at: f64,
    partition: Option<(f64, f64)>,
    slow: usize,
    slow_delay: f64,
    pause: f64,
    pause_every: f64,
    config: Option<&Bound<'py, PyGossipConfig>>,
) -> PyResult<Bound<'py, PyDict>> {
    let cfg = SimConfig {
        nodes,
        seed,
        latency: secs("latency", latency)?,
        jitter: secs("jitter", jitter)?,
        loss,
        duration: secs("duration", duration)?,
        update_at: secs("update_at", update_at)?,
        crashes,
        crash_at: secs("crash_at", crash_at)?,
        partition: match partition {
            Some((a, b)) => Some((secs("partition start", a)?, secs("partition end", b)?)),
            None => None,
        },
        slow,
        slow_delay: secs("slow_delay", slow_delay)?,
        pause: secs("pause", pause)?,
        pause_every: secs("pause_every", pause_every)?,
        swim: config.map_or_else(distcore_core::gossip::Config::lan, |c| {
            c.get().config.clone()
        }),
    };
    let started = Instant::now();
    let report = py.detach(|| run(&cfg)).map_err(PyDistError)?;
    let wall = started.elapsed().as_secs_f64();
    let d = PyDict::new(py);
    d.set_item(
        "update_learnt",
        report
            .update_learnt
            .iter()
            .map(Duration::as_secs_f64)
            .collect::<Vec<_>>(),
    )?;
    d.set_item(
        "detection",
        report
            .detection
            .iter()
            .map(|(a, b)| (a.map(|x| x.as_secs_f64()), b.map(|x| x.as_secs_f64())))
            .collect::<Vec<_>>(),
    )?;
    d.set_item("false_positives", report.false_positives)?;
    d.set_item("false_suspicions", report.false_suspicions)?;
    d.set_item("packets", report.packets)?;
    d.set_item("bytes", report.bytes)?;
    d.set_item("seconds", report.seconds)?;
    d.set_item("wall_seconds", wall)?;
    // memberlist's unit of work: one member for one probe interval.
    let periods = report.seconds / cfg.swim.probe_interval.as_secs_f64();
    d.set_item(
        "node_periods_per_second",
        nodes as f64 * periods / wall.max(1e-9),
    )?;
    Ok(d)
}

/// Dissemination in synchronous rounds, the epidemic model gossip is analysed with: the fraction
/// of ``nodes`` members that know a rumour after each round, spread by push (each informed
/// member tells ``fanout`` random others), pull (each uninformed member asks ``fanout`` random
/// others) and push-pull (both), on a seeded random run and by the mean-field theory. Each
/// message is lost with probability ``loss`` (a pull needs its request and its reply).
///
/// Returns
/// -------
/// dict
///     For each of ``"push"``, ``"pull"``, ``"push_pull"``: ``coverage`` (measured, per round,
///     from round 0 where one member knows), ``theory`` (per round, at least as many rounds,
///     and on until it reaches 99.99 %), ``rounds_99`` and ``rounds_9999`` (first round reaching
///     99 % and 99.99 %, or None).
///
/// Examples
/// --------
/// >>> from distcore.gossip import epidemic
/// >>> r = epidemic(10_000, fanout=3, seed=1)
/// >>> r["push_pull"]["rounds_9999"] <= 8.4 + 3  # log3(10000) + 3
/// True
/// >>> r["push"]["rounds_9999"] > r["push_pull"]["rounds_9999"]
/// True
#[pyfunction]
#[pyo3(signature = (nodes, *, fanout = 3, loss = 0.0, seed = 0, max_rounds = 200))]
pub fn epidemic(
    py: Python<'_>,
    nodes: usize,
    fanout: usize,
    loss: f64,
    seed: u64,
    max_rounds: usize,
) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    for mode in Mode::ALL {
        let coverage = py
            .detach(|| spread(nodes, fanout, loss, mode, seed, max_rounds))
            .map_err(PyDistError)?;
        // As many rounds as the run took, or as the theory needs to reach 99.99 %.
        let mut theory = theory(nodes, fanout, loss, mode, max_rounds).map_err(PyDistError)?;
        let needed = rounds_to(&theory, 0.9999).unwrap_or(max_rounds);
        theory.truncate(needed.max(coverage.len() - 1) + 1);
        let d = PyDict::new(py);
        d.set_item("rounds_99", rounds_to(&coverage, 0.99))?;
        d.set_item("rounds_9999", rounds_to(&coverage, 0.9999))?;
        d.set_item("coverage", coverage)?;
        d.set_item("theory", theory)?;
        out.set_item(mode.name(), d)?;
    }
    Ok(out)
}
