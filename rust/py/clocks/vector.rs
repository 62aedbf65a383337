//! `VectorClock` and `Ordering`, and the batch helpers over many clocks.
//!
//! A `VectorClock` is mutable and safe to share between threads: the clock sits in an
//! `RwLock<Arc<_>>`; readers take an `Arc` snapshot and drop the lock at once, so comparing two
//! clocks never holds two locks, and a batch can release the GIL while it works on snapshots.

use std::sync::Arc;

use distcore_core::clocks::causal::merge_all as merge_clocks;
use distcore_core::clocks::{causal_order, NodeId, Order, VectorClock};
use parking_lot::RwLock;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple, PyType};
use pyo3::IntoPyObjectExt;

use super::id::{extract_node_id, node_id_to_py, raw_node_id};
use crate::errors::{type_name, PyDistError};

/// How two clocks relate under happens-before.
///
/// ``BEFORE``: the left clock happened before the right one; ``AFTER``: the mirror; ``EQUAL``:
/// the same clock; ``CONCURRENT``: neither happened before the other.
#[pyclass(
    module = "distcore._core",
    name = "Ordering",
    frozen,
    eq,
    eq_int,
    hash,
    skip_from_py_object
)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum PyOrdering {
    #[pyo3(name = "BEFORE")]
    Before,
    #[pyo3(name = "AFTER")]
    After,
    #[pyo3(name = "EQUAL")]
    Equal,
    #[pyo3(name = "CONCURRENT")]
    Concurrent,
}

#[pymethods]
impl PyOrdering {
    /// The member's name, as for a Python enum: ``"BEFORE"``, ``"AFTER"``, ...
    #[getter]
    #[allow(clippy::trivially_copy_pass_by_ref)] // a pymethod receives &self
    fn name(&self) -> &'static str {
        match self {
            PyOrdering::Before => "BEFORE",
            PyOrdering::After => "AFTER",
            PyOrdering::Equal => "EQUAL",
            PyOrdering::Concurrent => "CONCURRENT",
        }
    }

    /// Pickles as ``getattr(Ordering, name)``, so unpickling gives the same member back.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let getattr = py.import("builtins")?.getattr("getattr")?;
        let args = (py.get_type::<PyOrdering>(), slf.get().name()).into_pyobject(py)?;
        PyTuple::new(py, [getattr, args.into_any()])
    }
}

impl From<Order> for PyOrdering {
    fn from(o: Order) -> Self {
        match o {
            Order::Before => PyOrdering::Before,
            Order::After => PyOrdering::After,
            Order::Equal => PyOrdering::Equal,
            Order::Concurrent => PyOrdering::Concurrent,
        }
    }
}

/// A counter from Python: an int in 0..2**64-1, else `CounterOverflowError` (or `TypeError`).
pub fn extract_counter(obj: &Bound<'_, PyAny>) -> PyResult<u64> {
    if !obj.is_instance_of::<pyo3::types::PyInt>() || obj.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "a counter must be an int, not {}",
            type_name(obj)
        )));
    }
    obj.extract::<u64>().map_err(|_| {
        PyDistError(distcore_core::Error::CounterOverflow(format!(
            "a counter must be in 0..2**64-1, got {obj}"
        )))
        .into()
    })
}

/// A vector clock: for each node (a ``str`` or an ``int``), how many of its events are known.
///
/// Entries are kept sorted by node id (ints before strs) with no zero counters, so ``compare``
/// and ``merge`` are one linear pass. The clock is mutable (``increment``, ``merge``, ``remove``,
/// ``prune``) and safe to share between threads; it is therefore not hashable.
///
/// Parameters
/// ----------
/// entries : mapping or iterable of (node, counter) pairs, optional
///     Initial counters; zero counters are dropped.
///
/// Examples
/// --------
/// >>> from distcore.clocks import VectorClock, Ordering
/// >>> a = VectorClock({"a": 1})
/// >>> b = a.copy()
/// >>> b.increment("b")
/// 1
/// >>> a.compare(b) is Ordering.BEFORE, a < b
/// (True, True)
/// >>> a.increment("a")
/// 2
/// >>> a.compare(b)
/// Ordering.CONCURRENT
/// >>> a.merged(b)
/// VectorClock({'a': 2, 'b': 1})
#[pyclass(module = "distcore._core", name = "VectorClock", frozen, subclass)]
pub struct PyVectorClock {
    clock: RwLock<Arc<VectorClock>>,
}

impl PyVectorClock {
    pub fn wrap(clock: VectorClock) -> Self {
        PyVectorClock {
            clock: RwLock::new(Arc::new(clock)),
        }
    }

    /// The current clock, without holding the lock.
    pub fn snapshot(&self) -> Arc<VectorClock> {
        Arc::clone(&self.clock.read())
    }

    /// Runs a change; the core's mutations change nothing when they fail, so no copy is needed
    /// (`make_mut` copies only while a reader holds a snapshot).
    fn write<T>(&self, f: impl FnOnce(&mut VectorClock) -> Result<T, PyDistError>) -> PyResult<T> {
        let mut guard = self.clock.write();
        Ok(f(Arc::make_mut(&mut guard))?)
    }

    /// A new object of `cls` (so subclasses such as VersionVector keep their type).
    fn new_like<'py>(cls: &Bound<'py, PyType>, clock: VectorClock) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        if cls.is(py.get_type::<PyVectorClock>()) {
            return Ok(Bound::new(py, PyVectorClock::wrap(clock))?.into_any());
        }
        let obj = cls.call0()?;
        let vc = obj.cast::<PyVectorClock>()?;
        *vc.get().clock.write() = Arc::new(clock);
        Ok(obj)
    }
}

/// The clock inside `obj`, or a `TypeError` naming what it got.
pub fn clock_of(obj: &Bound<'_, PyAny>) -> PyResult<Arc<VectorClock>> {
    obj.cast::<PyVectorClock>()
        .map(|c| c.get().snapshot())
        .map_err(|_| {
            PyTypeError::new_err(format!("expected a VectorClock, not {}", type_name(obj)))
        })
}

/// A clock from a mapping or an iterable of (node, counter) pairs.
pub fn clock_from_py(entries: &Bound<'_, PyAny>) -> PyResult<VectorClock> {
    if let Ok(c) = clock_of(entries) {
        return Ok((*c).clone());
    }
    let items: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)> = if let Ok(d) = entries.cast::<PyDict>() {
        d.iter().collect()
    } else {
        let items = if entries.hasattr("items")? {
            entries.call_method0("items")?
        } else {
            entries.clone()
        };
        items
            .try_iter()?
            .map(|item| {
                item?.extract().map_err(|_| {
                    PyTypeError::new_err("entries must be a mapping or (node, counter) pairs")
                })
            })
            .collect::<PyResult<_>>()?
    };
    // Borrow every id first, then intern them all under one lock.
    let raw = items
        .iter()
        .map(|(k, v)| Ok((raw_node_id(k)?, extract_counter(v)?)))
        .collect::<PyResult<Vec<_>>>()?;
    let ids = NodeId::many(raw.iter().map(|e| e.0));
    let pairs = ids.into_iter().zip(raw.iter().map(|e| e.1));
    Ok(VectorClock::from_entries(pairs).map_err(PyDistError)?)
}

fn clock_to_dict<'py>(py: Python<'py>, c: &VectorClock) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in c.entries() {
        d.set_item(node_id_to_py(py, k)?, v)?;
    }
    Ok(d)
}

#[pymethods]
impl PyVectorClock {
    #[new]
    #[pyo3(signature = (entries = None))]
    fn py_new(entries: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let clock = match entries {
            Some(e) if !e.is_none() => clock_from_py(e)?,
            _ => VectorClock::new(),
        };
        Ok(PyVectorClock::wrap(clock))
    }

    /// A clock from a ``{node: counter}`` mapping (zero counters are dropped).
    ///
    /// Raises
    /// ------
    /// TypeError
    ///     If a node is not a str or int, or a counter not an int.
    /// CounterOverflowError
    ///     If a counter is negative or above 2**64-1.
    #[classmethod]
    fn from_dict<'py>(
        cls: &Bound<'py, PyType>,
        entries: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Self::new_like(cls, clock_from_py(entries)?)
    }

    /// The counters as a ``{node: counter}`` dict, in node-id order.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        clock_to_dict(py, &self.snapshot())
    }

    /// Decodes ``bytes(clock)``.
    ///
    /// The format (stable across versions): ``b"VC"``, version byte 1, a LEB128 varint count,
    /// then per entry in node-id order a tag byte (0 int, 1 str), the id (zigzag varint, or
    /// varint length + UTF-8) and the counter (varint, > 0).
    ///
    /// Raises
    /// ------
    /// DecodeError
    ///     If ``data`` is not exactly such an encoding.
    #[classmethod]
    fn from_bytes<'py>(cls: &Bound<'py, PyType>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        let clock = VectorClock::decode(data).map_err(PyDistError)?;
        Self::new_like(cls, clock)
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.snapshot().encode())
    }

    /// Adds ``by`` (default 1) to ``node``'s counter and returns the new value.
    ///
    /// Raises
    /// ------
    /// CounterOverflowError
    ///     If the counter would pass 2**64-1 (the clock is unchanged).
    #[pyo3(signature = (node, by = None))]
    fn increment(&self, node: &Bound<'_, PyAny>, by: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
        let id = extract_node_id(node)?;
        let by = by.map_or(Ok(1), extract_counter)?;
        self.write(|c| Ok(c.increment(&id, by)?))
    }

    /// ``node``'s counter (0 if it has none).
    fn get(&self, node: &Bound<'_, PyAny>) -> PyResult<u64> {
        Ok(self.snapshot().get(&extract_node_id(node)?))
    }

    fn __getitem__(&self, node: &Bound<'_, PyAny>) -> PyResult<u64> {
        self.get(node)
    }

    fn __contains__(&self, node: &Bound<'_, PyAny>) -> bool {
        extract_node_id(node).is_ok_and(|id| self.snapshot().get(&id) > 0)
    }

    fn __len__(&self) -> usize {
        self.snapshot().len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.nodes(py)?.into_any().try_iter().map(Bound::into_any)
    }

    /// The node ids with a counter, in order.
    fn nodes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let snap = self.snapshot();
        let ids = snap
            .ids()
            .iter()
            .map(|k| node_id_to_py(py, k))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, ids)
    }

    /// ``(node, counter)`` pairs, in node order.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let snap = self.snapshot();
        let items = snap
            .entries()
            .map(|(k, v)| PyTuple::new(py, [node_id_to_py(py, k)?, v.into_bound_py_any(py)?]))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// The sum of all counters (it grows strictly along happens-before).
    fn total(&self) -> u128 {
        self.snapshot().total()
    }

    /// Merges ``other`` into this clock (pointwise maximum), in place.
    fn merge(&self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        let other = clock_of(other)?;
        self.write(|c| {
            c.merge(&other);
            Ok(())
        })
    }

    /// A new clock, the pointwise maximum of this one and ``other`` (their least upper bound).
    fn merged<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let other = clock_of(other)?;
        Self::new_like(&slf.get_type(), slf.get().snapshot().merged(&other))
    }

    fn __or__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if other.cast::<PyVectorClock>().is_err() {
            return Ok(slf.py().NotImplemented().into_bound(slf.py()));
        }
        Self::merged(slf, other)
    }

    fn __ior__(&self, other: &Bound<'_, PyVectorClock>) -> PyResult<()> {
        self.merge(other.as_any())
    }

    /// How this clock relates to ``other``: an :class:`Ordering`.
    ///
    /// Raises
    /// ------
    /// TypeError
    ///     If ``other`` is not a VectorClock.
    fn compare(&self, other: &Bound<'_, PyAny>) -> PyResult<PyOrdering> {
        let other = clock_of(other)?;
        Ok(self.snapshot().compare(&other).into())
    }

    /// True if this clock is after or equal to ``other`` (every counter >=).
    fn dominates(&self, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let other = clock_of(other)?;
        Ok(self.snapshot().dominates(&other))
    }

    /// True if neither clock happened before the other.
    fn concurrent_with(&self, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let other = clock_of(other)?;
        Ok(self.snapshot().compare(&other) == Order::Concurrent)
    }

    /// True if this clock happened before ``other``.
    fn happened_before(&self, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let other = clock_of(other)?;
        Ok(self.snapshot().compare(&other) == Order::Before)
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Ok(other) = other.cast::<PyVectorClock>() else {
            return Ok(py.NotImplemented());
        };
        let other = other.get();
        let order = if std::ptr::eq(self, other) {
            Order::Equal
        } else {
            self.snapshot().compare(&other.snapshot())
        };
        let result = match op {
            CompareOp::Lt => order == Order::Before,
            CompareOp::Le => matches!(order, Order::Before | Order::Equal),
            CompareOp::Eq => order == Order::Equal,
            CompareOp::Ne => order != Order::Equal,
            CompareOp::Gt => order == Order::After,
            CompareOp::Ge => matches!(order, Order::After | Order::Equal),
        };
        result.into_py_any(py)
    }

    // Mutable, so not hashable (as list and dict).
    #[classattr]
    fn __hash__(py: Python<'_>) -> Py<PyAny> {
        py.None()
    }

    /// Removes ``node`` and returns its counter (0 if it had none).
    fn remove(&self, node: &Bound<'_, PyAny>) -> PyResult<u64> {
        let id = extract_node_id(node)?;
        self.write(|c| Ok(c.remove(&id)))
    }

    /// Keeps only some entries: ``keep`` is an iterable of node ids, or a function
    /// ``(node, counter) -> bool``. Returns how many entries were removed.
    ///
    /// Pruning forgets causal history: clocks pruned differently may then compare as ordered when
    /// they were concurrent. Prune only nodes that left for good.
    fn prune(&self, keep: &Bound<'_, PyAny>) -> PyResult<usize> {
        let py = keep.py();
        let snap = self.snapshot();
        let mut kept = Vec::with_capacity(snap.len());
        if keep.is_callable() {
            for (k, v) in snap.entries() {
                if keep.call1((node_id_to_py(py, k)?, v))?.is_truthy()? {
                    kept.push(k.clone());
                }
            }
        } else {
            let ids = keep
                .try_iter()?
                .map(|x| extract_node_id(&x?))
                .collect::<PyResult<std::collections::HashSet<NodeId>>>()?;
            kept.extend(snap.ids().iter().filter(|k| ids.contains(k)).cloned());
        }
        let kept: std::collections::HashSet<NodeId> = kept.into_iter().collect();
        self.write(|c| {
            let before = c.len();
            c.retain(|k, _| kept.contains(k));
            Ok(before - c.len())
        })
    }

    /// An independent copy.
    fn copy<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Self::new_like(&slf.get_type(), (*slf.get().snapshot()).clone())
    }

    fn __copy__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Self::copy(slf)
    }

    fn __deepcopy__<'py>(
        slf: &Bound<'py, Self>,
        _memo: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Self::copy(slf)
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let ctor = slf.get_type().getattr("from_bytes")?;
        let bytes = PyBytes::new(py, &slf.get().snapshot().encode());
        PyTuple::new(py, [ctor, PyTuple::new(py, [bytes])?.into_any()])
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let d = clock_to_dict(slf.py(), &slf.get().snapshot())?;
        Ok(format!("{}({})", slf.get_type().name()?, d.repr()?))
    }
}

fn clocks_of(seq: &Bound<'_, PyAny>) -> PyResult<Vec<Arc<VectorClock>>> {
    seq.try_iter()?.map(|x| clock_of(&x?)).collect()
}

/// Compares many pairs of clocks: ``[a[i].compare(b[i]) for i ...]`` in one call.
///
/// Raises
/// ------
/// ValueError
///     If the sequences differ in length.
/// TypeError
///     If an item is not a VectorClock.
#[pyfunction]
pub fn compare_many(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<Vec<PyOrdering>> {
    // Pair by pair while both clocks are hot in cache; each comparison is short, so the GIL
    // stays held.
    let (mut ia, mut ib) = (a.try_iter()?, b.try_iter()?);
    let mut out = Vec::with_capacity(a.len().unwrap_or(0));
    loop {
        match (ia.next(), ib.next()) {
            (Some(x), Some(y)) => {
                let (x, y) = (clock_of(&x?)?, clock_of(&y?)?);
                out.push(x.compare(&y).into());
            }
            (None, None) => return Ok(out),
            _ => {
                return Err(PyValueError::new_err(
                    "compare_many needs two equally long sequences",
                ))
            }
        }
    }
}

/// The least upper bound (pointwise maximum) of many clocks, as a new VectorClock.
#[pyfunction]
pub fn merge_all(py: Python<'_>, clocks: &Bound<'_, PyAny>) -> PyResult<PyVectorClock> {
    let clocks = clocks_of(clocks)?;
    let merged = py.detach(|| {
        let refs: Vec<&VectorClock> = clocks.iter().map(AsRef::as_ref).collect();
        merge_clocks(&refs)
    });
    Ok(PyVectorClock::wrap(merged))
}

/// Sorts ``(clock, payload)`` events into an order consistent with happens-before.
///
/// If one event happened before another it comes first. Events are ordered by the sum of their
/// counters, which grows along happens-before, so events with equal sums are pairwise concurrent
/// (or equal) and form a group; within a group the order is deterministic (by the clocks'
/// entries, then input position). O(n log n).
///
/// Parameters
/// ----------
/// events : iterable of (VectorClock, payload) pairs
/// groups : bool
///     If true, return a list of groups (lists of events), each group concurrent.
///
/// Returns
/// -------
/// list
///     The same event objects, reordered (or grouped).
///
/// Examples
/// --------
/// >>> from distcore.clocks import VectorClock, causal_order
/// >>> events = [(VectorClock({"a": 1, "b": 1}), "reply"), (VectorClock({"a": 1}), "hello"),
/// ...           (VectorClock({"c": 1}), "other")]
/// >>> [p for _, p in causal_order(events)]
/// ['hello', 'other', 'reply']
/// >>> [[p for _, p in g] for g in causal_order(events, groups=True)]
/// [['hello', 'other'], ['reply']]
#[pyfunction]
#[pyo3(name = "causal_order", signature = (events, *, groups = false))]
pub fn py_causal_order<'py>(
    py: Python<'py>,
    events: &Bound<'py, PyAny>,
    groups: bool,
) -> PyResult<Bound<'py, PyList>> {
    let mut items = Vec::new();
    let mut clocks = Vec::new();
    for ev in events.try_iter()? {
        let ev = ev?;
        let clock = ev
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 2)
            .and_then(|t| t.get_item(0).ok())
            .ok_or_else(|| {
                PyTypeError::new_err(format!(
                    "events must be (VectorClock, payload) tuples, got {}",
                    type_name(&ev)
                ))
            })?;
        clocks.push(clock_of(&clock)?);
        items.push(ev);
    }
    let (order, group_of) = py.detach(|| {
        let refs: Vec<&VectorClock> = clocks.iter().map(AsRef::as_ref).collect();
        causal_order(&refs)
    });
    if !groups {
        return PyList::new(py, order.iter().map(|&i| &items[i]));
    }
    let out = PyList::empty(py);
    let mut current: Option<Bound<'py, PyList>> = None;
    for (pos, &i) in order.iter().enumerate() {
        if pos == 0 || group_of[pos] != group_of[pos - 1] {
            if let Some(g) = current.take() {
                out.append(g)?;
            }
            current = Some(PyList::empty(py));
        }
        current.as_ref().expect("group started").append(&items[i])?;
    }
    if let Some(g) = current {
        out.append(g)?;
    }
    Ok(out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyOrdering>()?;
    m.add_class::<PyVectorClock>()?;
    m.add_function(wrap_pyfunction!(compare_many, m)?)?;
    m.add_function(wrap_pyfunction!(merge_all, m)?)?;
    m.add_function(wrap_pyfunction!(py_causal_order, m)?)?;
    Ok(())
}
