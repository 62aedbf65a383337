//! `LamportClock`.

use distcore_core::clocks::LamportClock;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::vector::extract_counter;
use crate::errors::PyDistError;

/// A Lamport clock: one counter, lock-free and safe to share between threads.
///
/// Parameters
/// ----------
/// value : int
///     The starting value (default 0).
///
/// Examples
/// --------
/// >>> from distcore.clocks import LamportClock
/// >>> c = LamportClock()
/// >>> c.tick(), c.tick()
/// (1, 2)
/// >>> c.update(10)   # a message stamped 10 arrives: max(2, 10) + 1
/// 11
/// >>> c.witness(5)   # Serf's Witness: an older time changes nothing
/// 11
/// >>> c.value
/// 11
#[pyclass(module = "distcore._core", name = "LamportClock", frozen)]
pub struct PyLamportClock {
    clock: LamportClock,
}

#[pymethods]
impl PyLamportClock {
    #[new]
    #[pyo3(signature = (value = None))]
    fn py_new(value: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let start = value.map_or(Ok(0), extract_counter)?;
        Ok(PyLamportClock {
            clock: LamportClock::new(start),
        })
    }

    /// The current value.
    #[getter]
    fn value(&self) -> u64 {
        self.clock.value()
    }

    /// A local event: adds one and returns the new value.
    ///
    /// Raises
    /// ------
    /// CounterOverflowError
    ///     At 2**64-1 (the clock is unchanged).
    fn tick(&self) -> Result<u64, PyDistError> {
        Ok(self.clock.tick()?)
    }

    /// A receive event for a message stamped ``remote``: ``max(value, remote) + 1``, returned.
    fn update(&self, remote: &Bound<'_, PyAny>) -> PyResult<u64> {
        let remote = extract_counter(remote)?;
        Ok(self.clock.update(remote).map_err(PyDistError)?)
    }

    /// Serf's ``Witness``: moves to ``remote + 1`` when ``remote >= value``, else does nothing.
    /// Returns the value after.
    fn witness(&self, remote: &Bound<'_, PyAny>) -> PyResult<u64> {
        let remote = extract_counter(remote)?;
        Ok(self.clock.witness(remote).map_err(PyDistError)?)
    }

    fn __int__(&self) -> u64 {
        self.clock.value()
    }

    fn __repr__(&self) -> String {
        format!("LamportClock({})", self.clock.value())
    }

    fn __copy__(&self) -> Self {
        PyLamportClock {
            clock: LamportClock::new(self.clock.value()),
        }
    }

    fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> Self {
        self.__copy__()
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let args = PyTuple::new(py, [slf.get().clock.value()])?;
        PyTuple::new(py, [slf.get_type().into_any(), args.into_any()])
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyLamportClock>()
}
