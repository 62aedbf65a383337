//! `HLC` and `HLCTimestamp`.

use std::time::{SystemTime, UNIX_EPOCH};

use distcore_core::clocks::hlc::{MAX_LOGICAL, MAX_WALL_MS};
use distcore_core::clocks::{Hlc, Timestamp};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::{PyBytes, PyInt, PyTuple};

use crate::errors::{type_name, PyDistError};

/// A hybrid logical clock timestamp: ``(wall_ms, logical)``, packed into one sortable int.
///
/// ``int(ts)`` is ``wall_ms << 16 | logical``: the high 48 bits are milliseconds since the Unix
/// epoch, the low 16 bits the logical counter; comparing ints compares timestamps. ``bytes(ts)``
/// is that int as 8 big-endian bytes (byte order = time order); ``str(ts)`` is ISO 8601 UTC with
/// milliseconds and the counter, e.g. ``2026-11-28T22:40:01.123Z/00042`` (fixed width, so
/// strings sort like timestamps). Immutable and hashable.
///
/// Examples
/// --------
/// >>> from distcore.clocks import HLCTimestamp
/// >>> ts = HLCTimestamp(1_764_369_601_123, 42)
/// >>> str(ts)
/// '2025-11-28T22:40:01.123Z/00042'
/// >>> HLCTimestamp.parse(str(ts)) == ts == HLCTimestamp.from_int(int(ts))
/// True
/// >>> int(ts) == 1_764_369_601_123 << 16 | 42
/// True
// A free list: timestamps are made and dropped at the rate of HLC.now() calls.
#[pyclass(
    module = "distcore._core",
    name = "HLCTimestamp",
    frozen,
    freelist = 64
)]
pub struct PyTimestamp {
    ts: Timestamp,
}

fn u64_arg(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<u64> {
    if !obj.is_instance_of::<PyInt>() || obj.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be an int, not {}",
            type_name(obj)
        )));
    }
    obj.extract::<u64>().map_err(|_| {
        PyDistError(distcore_core::Error::CounterOverflow(format!(
            "{what} must be in 0..2**64-1, got {obj}"
        )))
        .into()
    })
}

/// A timestamp from an ``HLCTimestamp`` or its int form.
fn timestamp_arg(obj: &Bound<'_, PyAny>) -> PyResult<Timestamp> {
    if let Ok(t) = obj.cast::<PyTimestamp>() {
        return Ok(t.get().ts);
    }
    if obj.is_instance_of::<PyInt>() {
        return u64_arg(obj, "an HLC timestamp").map(Timestamp);
    }
    Err(PyTypeError::new_err(format!(
        "expected an HLCTimestamp or its int form, not {}",
        type_name(obj)
    )))
}

#[pymethods]
impl PyTimestamp {
    #[new]
    #[pyo3(signature = (wall_ms, logical = None))]
    fn py_new(wall_ms: &Bound<'_, PyAny>, logical: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let wall = u64_arg(wall_ms, "wall_ms")?;
        let logical = logical.map_or(Ok(0), |l| u64_arg(l, "logical"))?;
        Ok(PyTimestamp {
            ts: Timestamp::new(wall, logical).map_err(PyDistError)?,
        })
    }

    /// The timestamp whose ``int()`` is ``value``.
    #[staticmethod]
    fn from_int(value: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyTimestamp {
            ts: Timestamp(u64_arg(value, "an HLC timestamp")?),
        })
    }

    /// Parses ``str(ts)``; a ``DecodeError`` for anything else.
    #[staticmethod]
    fn parse(text: &str) -> Result<Self, PyDistError> {
        Ok(PyTimestamp {
            ts: Timestamp::parse(text)?,
        })
    }

    /// Decodes ``bytes(ts)`` (exactly 8 bytes); a ``DecodeError`` for anything else.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> Result<Self, PyDistError> {
        Ok(PyTimestamp {
            ts: Timestamp::from_bytes(data)?,
        })
    }

    /// Milliseconds since the Unix epoch (the physical part, ``l``).
    #[getter]
    fn wall_ms(&self) -> u64 {
        self.ts.wall_ms()
    }

    /// The logical counter (``c``).
    #[getter]
    fn logical(&self) -> u64 {
        self.ts.logical()
    }

    /// The physical part in nanoseconds since the Unix epoch.
    #[getter]
    fn wall_ns(&self) -> u128 {
        u128::from(self.ts.wall_ms()) * 1_000_000
    }

    fn __int__(&self) -> u64 {
        self.ts.0
    }

    fn __index__(&self) -> u64 {
        self.ts.0
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.ts.to_bytes())
    }

    fn __str__(&self) -> String {
        self.ts.to_string()
    }

    fn __repr__(&self) -> String {
        format!(
            "HLCTimestamp({}, {})  # {}",
            self.ts.wall_ms(),
            self.ts.logical(),
            self.ts
        )
    }

    fn __hash__(&self) -> u64 {
        // Python reduces it modulo its hash width; equal timestamps hash equal.
        self.ts.0
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Ok(other) = other.cast::<PyTimestamp>() else {
            return Ok(py.NotImplemented());
        };
        let (a, b) = (self.ts, other.get().ts);
        pyo3::IntoPyObjectExt::into_py_any(op.matches(a.cmp(&b)), py)
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let ctor = slf.get_type().getattr("from_int")?;
        let args = PyTuple::new(py, [slf.get().ts.0])?;
        PyTuple::new(py, [ctor, args.into_any()])
    }
}

/// A hybrid logical clock (Kulkarni et al. 2014): timestamps that follow physical time, never go
/// backwards, and order causally related events.
///
/// ``now()`` stamps a local or send event, ``update(remote)`` a receive event. Each returns an
/// :class:`HLCTimestamp` greater than every one the clock returned or received before, also when
/// the wall clock jumps backwards, and from many threads at once (lock-free; no two calls return
/// the same timestamp). Its physical part never lags physical time (at millisecond resolution).
/// When 65536 events share one millisecond the counter carries into the millisecond, so the
/// clock runs ahead of physical time by at most what bursts push it, and never fails.
///
/// Parameters
/// ----------
/// max_offset : float
///     Seconds (default 0.5). ``update`` refuses, with ``ClockSkewError`` and without changing
///     the clock, a remote timestamp further ahead of local physical time than this.
/// physical : callable, optional
///     Returns physical time as int nanoseconds since the Unix epoch (default: the system
///     clock, read in Rust). A ``distcore.timesync.SyncedClock``'s ``now_ns`` fits.
/// last : HLCTimestamp or int, optional
///     A timestamp the clock must stay after (e.g. the last one persisted before a restart).
///
/// Examples
/// --------
/// >>> from distcore.clocks import HLC, HLCTimestamp
/// >>> t = iter([5_000_000_000, 5_000_000_000, 4_000_000_000])  # a wall clock that jumps back
/// >>> clock = HLC(physical=lambda: next(t))
/// >>> [str(clock.now()) for _ in range(3)]
/// ['1970-01-01T00:00:05.000Z/00000', '1970-01-01T00:00:05.000Z/00001', '1970-01-01T00:00:05.000Z/00002']
#[pyclass(module = "distcore._core", name = "HLC", frozen)]
pub struct PyHlc {
    hlc: Hlc,
    physical: Option<Py<PyAny>>,
}

fn system_ns() -> u64 {
    // A system clock before 1970 is taken as 1970: the HLC then runs on its counter.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl PyHlc {
    fn physical_ns(&self, py: Python<'_>) -> PyResult<u64> {
        match &self.physical {
            None => Ok(system_ns()),
            Some(f) => {
                let v = f.bind(py).call0()?;
                if !v.is_instance_of::<PyInt>() {
                    return Err(PyTypeError::new_err(format!(
                        "the physical clock must return int nanoseconds, not {}",
                        type_name(&v)
                    )));
                }
                v.extract::<u64>().map_err(|_| {
                    PyValueError::new_err(format!(
                        "the physical clock returned {v}, not nanoseconds since 1970"
                    ))
                })
            }
        }
    }
}

#[pymethods]
impl PyHlc {
    #[new]
    #[pyo3(signature = (max_offset = 0.5, physical = None, last = None))]
    fn py_new(
        max_offset: f64,
        physical: Option<Bound<'_, PyAny>>,
        last: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if !(max_offset.is_finite() && max_offset >= 0.0) {
            return Err(PyValueError::new_err(format!(
                "max_offset must be a finite number of seconds >= 0, got {max_offset}"
            )));
        }
        let physical = physical.filter(|p| !p.is_none());
        if let Some(p) = &physical {
            if !p.is_callable() {
                return Err(PyTypeError::new_err(
                    "physical must be a callable returning int nanoseconds",
                ));
            }
        }
        let last = last.map_or(Ok(Timestamp(0)), timestamp_arg)?;
        let max_offset_ms = (max_offset * 1000.0).round().min(MAX_WALL_MS as f64) as u64;
        Ok(PyHlc {
            hlc: Hlc::starting_at(last, max_offset_ms),
            physical: physical.map(Bound::unbind),
        })
    }

    /// A timestamp for a local or send event.
    fn now(&self, py: Python<'_>) -> PyResult<PyTimestamp> {
        let pt = self.physical_ns(py)?;
        Ok(PyTimestamp {
            ts: self.hlc.now(pt).map_err(PyDistError)?,
        })
    }

    /// A timestamp for receiving a message stamped ``remote`` (an HLCTimestamp or its int).
    ///
    /// Raises
    /// ------
    /// ClockSkewError
    ///     If ``remote`` is more than ``max_offset`` ahead of local physical time; the clock
    ///     is unchanged.
    fn update(&self, py: Python<'_>, remote: &Bound<'_, PyAny>) -> PyResult<PyTimestamp> {
        let remote = timestamp_arg(remote)?;
        let pt = self.physical_ns(py)?;
        Ok(PyTimestamp {
            ts: self.hlc.update(remote, pt).map_err(PyDistError)?,
        })
    }

    /// The last timestamp this clock returned.
    #[getter]
    fn last(&self) -> PyTimestamp {
        PyTimestamp {
            ts: self.hlc.last(),
        }
    }

    /// The bound on remote timestamps, in seconds.
    #[getter]
    fn max_offset(&self) -> f64 {
        self.hlc.max_offset_ms() as f64 / 1000.0
    }

    /// The physical clock, or None for the system clock.
    #[getter]
    fn physical(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.physical.as_ref().map(|p| p.clone_ref(py))
    }

    fn __repr__(&self) -> String {
        format!(
            "HLC(max_offset={}, last={})",
            self.max_offset(),
            self.hlc.last()
        )
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let me = slf.get();
        let args = (me.max_offset(), me.physical(py), me.hlc.last().0).into_pyobject(py)?;
        PyTuple::new(py, [slf.get_type().into_any(), args.into_any()])
    }

    fn __copy__(slf: &Bound<'_, Self>) -> Self {
        let me = slf.get();
        PyHlc {
            hlc: Hlc::starting_at(me.hlc.last(), me.hlc.max_offset_ms()),
            physical: me.physical(slf.py()),
        }
    }

    fn __deepcopy__(slf: &Bound<'_, Self>, _memo: &Bound<'_, PyAny>) -> Self {
        Self::__copy__(slf)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTimestamp>()?;
    m.add_class::<PyHlc>()?;
    m.add("HLC_MAX_WALL_MS", MAX_WALL_MS)?;
    m.add("HLC_MAX_LOGICAL", MAX_LOGICAL)?;
    Ok(())
}
