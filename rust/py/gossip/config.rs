//! `GossipConfig`: memberlist's configurations and scaling formulas.

use std::time::Duration;

use distcore_core::gossip::Config;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// The knobs of SWIM + Lifeguard with memberlist's defaults; durations are in seconds.
///
/// ``GossipConfig.lan()`` (the default), ``.wan()`` and ``.local()`` are memberlist's
/// ``DefaultLANConfig``, ``DefaultWANConfig`` and ``DefaultLocalConfig``; keyword arguments
/// override single fields (``GossipConfig.lan(probe_interval=0.5)``). Immutable; ``replace``
/// returns a changed copy. The formulas scale with the cluster size ``n`` as memberlist's do
/// (with log10, not ln).
///
/// Examples
/// --------
/// >>> from distcore.gossip import GossipConfig
/// >>> lan = GossipConfig.lan()
/// >>> lan.probe_interval, lan.probe_timeout, lan.gossip_interval, lan.gossip_nodes
/// (1.0, 0.5, 0.2, 3)
/// >>> lan.retransmit_limit(1000), lan.suspicion_timeouts(1000), lan.push_pull_interval_for(1000)
/// (16, (12.0, 72.0), 180.0)
/// >>> GossipConfig.local(probe_interval=0.5, probe_timeout=0.1).probe_interval
/// 0.5
#[pyclass(
    module = "distcore._core",
    name = "GossipConfig",
    frozen,
    eq,
    skip_from_py_object
)]
#[derive(Clone, PartialEq)]
pub struct PyGossipConfig {
    pub config: Config,
}

const DURATIONS: [&str; 6] = [
    "probe_interval",
    "probe_timeout",
    "push_pull_interval",
    "gossip_interval",
    "gossip_to_the_dead_time",
    "tcp_timeout",
];
const COUNTS: [&str; 7] = [
    "indirect_checks",
    "retransmit_mult",
    "suspicion_mult",
    "suspicion_max_timeout_mult",
    "gossip_nodes",
    "awareness_max_multiplier",
    "udp_buffer_size",
];

fn seconds(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let s: f64 = v
        .extract()
        .map_err(|_| PyTypeError::new_err(format!("{name} must be a number of seconds")))?;
    if !(s.is_finite() && s > 0.0) {
        return Err(PyValueError::new_err(format!(
            "{name} must be a positive number of seconds, got {s}"
        )));
    }
    Ok(Duration::from_secs_f64(s))
}

fn count(name: &str, v: &Bound<'_, PyAny>) -> PyResult<u32> {
    let n: u32 = v
        .extract()
        .map_err(|_| PyTypeError::new_err(format!("{name} must be a positive int")))?;
    if n == 0 {
        return Err(PyValueError::new_err(format!("{name} must be >= 1")));
    }
    Ok(n)
}

fn with_overrides(mut c: Config, overrides: Option<&Bound<'_, PyDict>>) -> PyResult<Config> {
    let Some(kw) = overrides else {
        return Ok(c);
    };
    for (k, v) in kw.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "probe_interval" => c.probe_interval = seconds(&key, &v)?,
            "probe_timeout" => c.probe_timeout = seconds(&key, &v)?,
            "push_pull_interval" => c.push_pull_interval = seconds(&key, &v)?,
            "gossip_interval" => c.gossip_interval = seconds(&key, &v)?,
            "gossip_to_the_dead_time" => c.gossip_to_the_dead_time = seconds(&key, &v)?,
            "tcp_timeout" => c.tcp_timeout = seconds(&key, &v)?,
            "indirect_checks" => c.indirect_checks = count(&key, &v)? as usize,
            "retransmit_mult" => c.retransmit_mult = count(&key, &v)?,
            "suspicion_mult" => c.suspicion_mult = count(&key, &v)?,
            "suspicion_max_timeout_mult" => c.suspicion_max_timeout_mult = count(&key, &v)?,
            "gossip_nodes" => c.gossip_nodes = count(&key, &v)? as usize,
            "awareness_max_multiplier" => c.awareness_max_multiplier = count(&key, &v)?,
            "udp_buffer_size" => c.udp_buffer_size = count(&key, &v)? as usize,
            "enable_compression" => c.enable_compression = v.is_truthy()?,
            "lifeguard" => c.lifeguard = v.is_truthy()?,
            "tcp_pings" => c.tcp_pings = v.is_truthy()?,
            "protocol_version" => {
                let p: u8 = v
                    .extract()
                    .ok()
                    .filter(|p| (2..=5).contains(p))
                    .ok_or_else(|| {
                        PyValueError::new_err("protocol_version must be 2, 3, 4 or 5")
                    })?;
                c.protocol_version = p;
            }
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "GossipConfig has no field {key:?}"
                )))
            }
        }
    }
    if c.probe_timeout > c.probe_interval {
        return Err(PyValueError::new_err(
            "probe_timeout must not be longer than probe_interval",
        ));
    }
    Ok(c)
}

#[pymethods]
impl PyGossipConfig {
    #[new]
    #[pyo3(signature = (**overrides))]
    fn py_new(overrides: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Self::lan(overrides)
    }

    /// memberlist's ``DefaultLANConfig``, with ``overrides``.
    #[staticmethod]
    #[pyo3(signature = (**overrides))]
    fn lan(overrides: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Ok(PyGossipConfig {
            config: with_overrides(Config::lan(), overrides)?,
        })
    }

    /// memberlist's ``DefaultWANConfig``, with ``overrides``.
    #[staticmethod]
    #[pyo3(signature = (**overrides))]
    fn wan(overrides: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Ok(PyGossipConfig {
            config: with_overrides(Config::wan(), overrides)?,
        })
    }

    /// memberlist's ``DefaultLocalConfig`` (loopback, tests), with ``overrides``.
    #[staticmethod]
    #[pyo3(signature = (**overrides))]
    fn local(overrides: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Ok(PyGossipConfig {
            config: with_overrides(Config::local(), overrides)?,
        })
    }

    /// A copy with ``overrides`` applied.
    #[pyo3(signature = (**overrides))]
    fn replace(&self, overrides: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Ok(PyGossipConfig {
            config: with_overrides(self.config.clone(), overrides)?,
        })
    }

    /// How many times a broadcast is sent among ``n`` members: ``retransmit_mult *
    /// ceil(log10(n + 1))``.
    fn retransmit_limit(&self, n: usize) -> usize {
        self.config.retransmit_limit(n)
    }

    /// ``(min, max)`` suspicion timeouts in seconds for ``n`` members: ``suspicion_mult *
    /// max(1, log10(n)) * probe_interval`` and ``suspicion_max_timeout_mult`` times that.
    fn suspicion_timeouts(&self, n: usize) -> (f64, f64) {
        let (lo, hi) = self.config.suspicion_timeouts(n);
        (lo.as_secs_f64(), hi.as_secs_f64())
    }

    /// Lifeguard: independent confirmations that bring a suspicion to its minimum timeout.
    fn suspicion_confirmations(&self, n: usize) -> usize {
        self.config.suspicion_confirmations(n)
    }

    /// The push-pull interval in seconds for ``n`` members (it grows past 32).
    fn push_pull_interval_for(&self, n: usize) -> f64 {
        self.config.push_pull_interval_for(n).as_secs_f64()
    }

    /// Every field, as keyword arguments to ``GossipConfig``.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = &self.config;
        let d = PyDict::new(py);
        for (k, v) in DURATIONS.iter().zip([
            c.probe_interval,
            c.probe_timeout,
            c.push_pull_interval,
            c.gossip_interval,
            c.gossip_to_the_dead_time,
            c.tcp_timeout,
        ]) {
            d.set_item(k, v.as_secs_f64())?;
        }
        for (k, v) in COUNTS.iter().zip([
            c.indirect_checks,
            c.retransmit_mult as usize,
            c.suspicion_mult as usize,
            c.suspicion_max_timeout_mult as usize,
            c.gossip_nodes,
            c.awareness_max_multiplier as usize,
            c.udp_buffer_size,
        ]) {
            d.set_item(k, v)?;
        }
        d.set_item("enable_compression", c.enable_compression)?;
        d.set_item("lifeguard", c.lifeguard)?;
        d.set_item("tcp_pings", c.tcp_pings)?;
        d.set_item("protocol_version", c.protocol_version)?;
        Ok(d)
    }

    /// Seconds between probes of one member (stretched by the health score).
    #[getter]
    fn probe_interval(&self) -> f64 {
        self.config.probe_interval.as_secs_f64()
    }

    /// Seconds to wait for an ack before probing indirectly.
    #[getter]
    fn probe_timeout(&self) -> f64 {
        self.config.probe_timeout.as_secs_f64()
    }

    /// Seconds between full-state exchanges (before scaling with n).
    #[getter]
    fn push_pull_interval(&self) -> f64 {
        self.config.push_pull_interval.as_secs_f64()
    }

    /// Seconds between gossip rounds.
    #[getter]
    fn gossip_interval(&self) -> f64 {
        self.config.gossip_interval.as_secs_f64()
    }

    /// Seconds dead members are still gossiped to.
    #[getter]
    fn gossip_to_the_dead_time(&self) -> f64 {
        self.config.gossip_to_the_dead_time.as_secs_f64()
    }

    /// Seconds a stream operation may take.
    #[getter]
    fn tcp_timeout(&self) -> f64 {
        self.config.tcp_timeout.as_secs_f64()
    }

    /// Members asked to probe indirectly (SWIM's k).
    #[getter]
    fn indirect_checks(&self) -> usize {
        self.config.indirect_checks
    }

    /// Broadcasts are sent retransmit_mult * ceil(log10(n + 1)) times.
    #[getter]
    fn retransmit_mult(&self) -> u32 {
        self.config.retransmit_mult
    }

    /// Scales the minimum suspicion timeout.
    #[getter]
    fn suspicion_mult(&self) -> u32 {
        self.config.suspicion_mult
    }

    /// The longest suspicion timeout, as a multiple of the shortest.
    #[getter]
    fn suspicion_max_timeout_mult(&self) -> u32 {
        self.config.suspicion_max_timeout_mult
    }

    /// Members gossiped to per round.
    #[getter]
    fn gossip_nodes(&self) -> usize {
        self.config.gossip_nodes
    }

    /// Lifeguard's health score ranges over 0..awareness_max_multiplier.
    #[getter]
    fn awareness_max_multiplier(&self) -> u32 {
        self.config.awareness_max_multiplier
    }

    /// Largest UDP packet sent, in bytes.
    #[getter]
    fn udp_buffer_size(&self) -> usize {
        self.config.udp_buffer_size
    }

    /// LZW-compress packets and streams.
    #[getter]
    fn enable_compression(&self) -> bool {
        self.config.enable_compression
    }

    /// Lifeguard on (memberlist's behaviour); off gives the original SWIM, for comparison.
    #[getter]
    fn lifeguard(&self) -> bool {
        self.config.lifeguard
    }

    /// Ping over TCP too when an ack is late (memberlist's fallback; not `DisableTcpPings`).
    #[getter]
    fn tcp_pings(&self) -> bool {
        self.config.tcp_pings
    }

    /// The memberlist protocol version spoken (2 to 5).
    #[getter]
    fn protocol_version(&self) -> u8 {
        self.config.protocol_version
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let d = self.to_dict(py)?;
        let parts = d
            .iter()
            .map(|(k, v)| Ok(format!("{}={}", k.str()?, v.repr()?)))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(format!("GossipConfig({})", parts.join(", ")))
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        // Rebuilt as GossipConfig(**fields): every field is in the dict.
        let py = slf.py();
        let partial = py.import("functools")?.getattr("partial")?;
        let ctor = partial.call(
            (py.get_type::<PyGossipConfig>(),),
            Some(&slf.get().to_dict(py)?),
        )?;
        PyTuple::new(py, [ctor, PyTuple::empty(py).into_any()])
    }
}
