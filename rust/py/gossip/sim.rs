//! `simulate`: the deterministic cluster simulator, for Python.

use std::time::Duration;

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
/// two halves for that time. Every member holds the full membership, so memory grows with
/// ``nodes ** 2`` (up to 20,000 members are accepted).
///
/// Returns
/// -------
/// dict
///     ``update_learnt`` (seconds after ``update_at`` at which each live member learnt the
///     update, sorted), ``detection`` (per crashed member: seconds until the first suspicion and
///     until every live member declared it dead, or None), ``false_positives`` (dead events
///     about members that had not crashed), ``packets``, ``bytes``, ``seconds`` (simulated).
///
/// Examples
/// --------
/// >>> from distcore.gossip import simulate
/// >>> r = simulate(30, duration=30.0, seed=1)
/// >>> len(r["update_learnt"]), r["false_positives"], r["detection"][0][1] is not None
/// (29, 0, True)
#[pyfunction]
#[pyo3(signature = (nodes, *, seed = 0, latency = 0.005, jitter = 0.005, loss = 0.0, duration = 60.0, update_at = 2.0, crashes = 1, crash_at = 5.0, partition = None, config = None))]
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
        swim: config.map_or_else(distcore_core::gossip::Config::lan, |c| {
            c.get().config.clone()
        }),
    };
    let report = py.detach(|| run(&cfg)).map_err(PyDistError)?;
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
    d.set_item("packets", report.packets)?;
    d.set_item("bytes", report.bytes)?;
    d.set_item("seconds", report.seconds)?;
    Ok(d)
}
