//! `CausalDelivery`: the causal-broadcast buffer.

use distcore_core::clocks::causal::{Message, Received};
use distcore_core::clocks::{CausalDelivery, NodeId};
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::id::{extract_node_id, node_id_to_py};
use super::vector::{clock_of, PyVectorClock};
use crate::errors::PyDistError;

/// A causal-broadcast delivery buffer (Birman, Schiper and Stephenson).
///
/// Every node stamps what it broadcasts with ``broadcast()``; a receiver passes each arriving
/// message to ``receive``, which delivers it only once everything that happened before it was
/// delivered, holding it until then. Safe to share between threads (a lock inside).
///
/// Parameters
/// ----------
/// me : str or int
///     This node's id.
///
/// Examples
/// --------
/// >>> from distcore.clocks import CausalDelivery
/// >>> a, c = CausalDelivery("a"), CausalDelivery("c")
/// >>> first, second = a.broadcast(), a.broadcast()
/// >>> c.receive("a", second, "second")       # held: "first" is missing
/// []
/// >>> c.waiting_for()
/// {'a': (1, 1)}
/// >>> [payload for _, _, payload in c.receive("a", first, "first")]
/// ['first', 'second']
#[pyclass(module = "distcore._core", name = "CausalDelivery", frozen)]
pub struct PyCausalDelivery {
    inner: Mutex<CausalDelivery<Py<PyAny>>>,
}

fn message_tuple<'py>(py: Python<'py>, m: &Message<Py<PyAny>>) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            node_id_to_py(py, &m.sender)?,
            Bound::new(py, PyVectorClock::wrap(m.clock.clone()))?.into_any(),
            m.payload.bind(py).clone(),
        ],
    )
}

fn ranges_dict<'py>(
    py: Python<'py>,
    ranges: &[(NodeId, u64, u64)],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, first, last) in ranges {
        d.set_item(node_id_to_py(py, k)?, (first, last))?;
    }
    Ok(d)
}

impl PyCausalDelivery {
    /// `(me, delivered, held)`: what `_restore` needs to rebuild this buffer.
    /// Taken under one lock, so no message is seen both held and delivered, or neither.
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let inner = self.inner.lock();
        let held = inner
            .held()
            .map(|m| message_tuple(py, m))
            .collect::<PyResult<Vec<_>>>()?;
        PyTuple::new(
            py,
            [
                node_id_to_py(py, inner.me())?,
                Bound::new(py, PyVectorClock::wrap(inner.delivered().clone()))?.into_any(),
                PyList::new(py, held)?.into_any(),
            ],
        )
    }
}

#[pymethods]
impl PyCausalDelivery {
    #[new]
    fn py_new(me: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyCausalDelivery {
            inner: Mutex::new(CausalDelivery::new(extract_node_id(me)?)),
        })
    }

    /// This node's id.
    #[getter]
    fn me<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        node_id_to_py(py, self.inner.lock().me())
    }

    /// Stamps a broadcast by this node (counted as delivered here); send the returned
    /// VectorClock with the message.
    fn broadcast(&self) -> Result<PyVectorClock, PyDistError> {
        Ok(PyVectorClock::wrap(self.inner.lock().broadcast()?))
    }

    /// Takes a message from ``sender`` stamped ``clock``; returns the messages now delivered,
    /// in causal order, as ``(sender, clock, payload)`` tuples: empty if this one is held (or a
    /// duplicate, which is dropped).
    ///
    /// Raises
    /// ------
    /// ValueError
    ///     If ``clock`` does not count the message in ``sender``'s entry.
    fn receive<'py>(
        &self,
        py: Python<'py>,
        sender: &Bound<'py, PyAny>,
        clock: &Bound<'py, PyAny>,
        payload: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let sender = extract_node_id(sender)?;
        let clock = (*clock_of(clock)?).clone();
        let got = self
            .inner
            .lock()
            .receive(sender, clock, payload.unbind())
            .map_err(PyDistError)?;
        match got {
            Received::Delivered(msgs) => PyList::new(
                py,
                msgs.iter()
                    .map(|m| message_tuple(py, m))
                    .collect::<PyResult<Vec<_>>>()?,
            ),
            Received::Held | Received::Duplicate => Ok(PyList::empty(py)),
        }
    }

    /// For each node, how many of its broadcasts were delivered here (a copy).
    #[getter]
    fn delivered(&self) -> PyVectorClock {
        PyVectorClock::wrap(self.inner.lock().delivered().clone())
    }

    /// The held messages as ``(sender, clock, payload)``, by sender then sequence.
    fn held<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let inner = self.inner.lock();
        PyList::new(
            py,
            inner
                .held()
                .map(|m| message_tuple(py, m))
                .collect::<PyResult<Vec<_>>>()?,
        )
    }

    /// What the held messages wait for: ``{node: (first, last)}``, the missing broadcasts'
    /// sequence numbers per node.
    fn waiting_for<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        ranges_dict(py, &self.inner.lock().waiting_for())
    }

    /// Pickles as this node's id, its delivered clock and the held messages (payloads must
    /// pickle); unpickling receives the held messages again, so they stay held.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let restore = slf.get_type().getattr("_restore")?;
        PyTuple::new(py, [restore, slf.get().state(py)?.into_any()])
    }

    /// Rebuilds a pickled buffer (see ``__reduce__``).
    #[staticmethod]
    fn _restore(
        me: &Bound<'_, PyAny>,
        delivered: &Bound<'_, PyAny>,
        held: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let delivered = (*clock_of(delivered)?).clone();
        let mut inner = CausalDelivery::resume(extract_node_id(me)?, delivered);
        for msg in held.try_iter()? {
            let (sender, clock, payload): (Bound<'_, PyAny>, Bound<'_, PyAny>, Bound<'_, PyAny>) =
                msg?.extract()?;
            let clock = (*clock_of(&clock)?).clone();
            inner
                .receive(extract_node_id(&sender)?, clock, payload.unbind())
                .map_err(PyDistError)?;
        }
        Ok(PyCausalDelivery {
            inner: Mutex::new(inner),
        })
    }

    fn __copy__(&self, py: Python<'_>) -> PyResult<Self> {
        let (me, delivered, held) = self.state(py)?.extract()?;
        Self::_restore(&me, &delivered, &held)
    }

    fn __deepcopy__(&self, py: Python<'_>, memo: &Bound<'_, PyAny>) -> PyResult<Self> {
        let deepcopy = py.import("copy")?.getattr("deepcopy")?;
        let (me, delivered, held) = deepcopy.call1((self.state(py)?, memo))?.extract()?;
        Self::_restore(&me, &delivered, &held)
    }

    fn __len__(&self) -> usize {
        self.inner.lock().held_count()
    }

    fn __repr__(&self) -> String {
        let inner = self.inner.lock();
        format!(
            "CausalDelivery({}, delivered={:?}, held={})",
            inner.me(),
            inner.delivered(),
            inner.held_count()
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCausalDelivery>()
}
