//! `DVVSet`: Riak's compact dotted version vector set over Python values.
//!
//! The clock is immutable: every operation returns a new object, so a `DVVSet` can be shared
//! between threads freely. Values are kept as `Arc<Py<PyAny>>`: `Py` is not `Clone` without the
//! GIL (pyo3's `py-clone` feature is off), and the core clones values when it syncs clocks.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use distcore_core::clocks::codec::{Reader, Writer};
use distcore_core::clocks::DvvSet;
use distcore_core::Error;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString, PyTuple, PyType};

use super::id::{extract_node_id, node_id_to_py};
use super::vector::{clock_from_py, extract_counter, PyVectorClock};
use crate::errors::{type_name, PyDistError};

type Value = Arc<Py<PyAny>>;

fn wrap(v: Bound<'_, PyAny>) -> Value {
    Arc::new(v.unbind())
}

/// The values of `new`: any iterable but a lone str or bytes (which would split into characters).
fn values_from_py(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Value>> {
    let Some(obj) = obj else {
        return Ok(Vec::new());
    };
    if obj.is_instance_of::<PyString>()
        || obj.is_instance_of::<PyBytes>()
        || obj.is_instance_of::<PyByteArray>()
    {
        return Err(PyTypeError::new_err(format!(
            "values must be an iterable of values, not a single {}; wrap it in a list",
            type_name(obj)
        )));
    }
    obj.try_iter()?.map(|v| Ok(wrap(v?))).collect()
}

/// A value stored by `__bytes__`: tag 0 = bytes, 1 = str (UTF-8), then length-prefixed bytes.
#[derive(Clone)]
enum Blob {
    Bytes(Vec<u8>),
    Str(String),
}

fn blob_from_py(py: Python<'_>, v: &Value) -> PyResult<Blob> {
    let b = v.bind(py);
    if let Ok(s) = b.cast_exact::<PyString>() {
        return Ok(Blob::Str(s.to_str()?.to_owned()));
    }
    if let Ok(s) = b.cast_exact::<PyBytes>() {
        return Ok(Blob::Bytes(s.as_bytes().to_vec()));
    }
    Err(PyTypeError::new_err(format!(
        "only bytes and str values can be encoded, not {}; map() them to bytes first, or pickle the clock",
        type_name(b)
    )))
}

fn write_blob(b: &Blob, w: &mut Writer) {
    match b {
        Blob::Bytes(x) => {
            w.buf.push(0);
            w.bytes(x);
        }
        Blob::Str(s) => {
            w.buf.push(1);
            w.bytes(s.as_bytes());
        }
    }
}

fn read_blob(r: &mut Reader<'_>) -> Result<Blob, Error> {
    match r.u8()? {
        0 => Ok(Blob::Bytes(r.bytes()?.to_vec())),
        1 => {
            let b = r.bytes()?;
            let s = std::str::from_utf8(b).map_err(|_| r.error("str value is not UTF-8"))?;
            Ok(Blob::Str(s.to_owned()))
        }
        _ => Err(r.error("unknown value tag")),
    }
}

/// `a == b` in Python, with the identity shortcut that `list.__contains__` takes too.
fn py_eq(py: Python<'_>, a: &Value, b: &Value) -> PyResult<bool> {
    if a.as_ptr() == b.as_ptr() {
        return Ok(true);
    }
    a.bind(py).eq(b.bind(py))
}

/// "a is older than or as old as b", comparing `key(a) <= key(b)` (or the values themselves).
fn older_or_same(
    py: Python<'_>,
    key: Option<&Bound<'_, PyAny>>,
    a: &Value,
    b: &Value,
) -> PyResult<bool> {
    match key {
        None => a.bind(py).le(b.bind(py)),
        Some(k) => k.call1((a.bind(py),))?.le(k.call1((b.bind(py),))?),
    }
}

/// Riak's compact dotted version vector set (DVVSet): the sibling values of one key together
/// with the causal history that tells which values are concurrent.
///
/// A clock is a list of entries ``(node id, counter, values)`` sorted by node id, plus
/// *anonymous* values that have no dot yet (a client's new value). It is immutable: every
/// operation returns a new ``DVVSet``, so clocks can be shared between threads. Values can be
/// any Python objects; ``bytes()`` and ``from_bytes`` need them to be ``bytes`` or ``str``.
///
/// The Riak flow for one key: a client reads the stored clock's ``values()`` and its context
/// ``join()``; to write, it makes ``DVVSet.new([value], context)``; the server that takes the
/// write calls ``client.update(server_id, server=stored)`` and stores the result; replicas
/// exchange clocks with ``DVVSet.sync``. Values written without having seen each other stay as
/// siblings; a write made with a context that saw them replaces them.
///
/// Examples
/// --------
/// >>> from distcore.clocks import DVVSet
/// >>> stored = DVVSet.new(["v1"]).update("s1")
/// >>> ctx = stored.join()
/// >>> ctx
/// VectorClock({'s1': 1})
/// >>> a = DVVSet.new(["from alice"], ctx).update("s1", server=stored)
/// >>> b = DVVSet.new(["from bob"], ctx).update("s1", server=a)
/// >>> sorted(b.values())
/// ['from alice', 'from bob']
/// >>> DVVSet.new(["merged"], b.join()).update("s1", server=b).values()
/// ['merged']
#[pyclass(module = "distcore._core", frozen, name = "DVVSet")]
pub struct PyDvvSet {
    inner: DvvSet<Value>,
}

impl PyDvvSet {
    fn of(inner: DvvSet<Value>) -> Self {
        PyDvvSet { inner }
    }

    fn entries_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .inner
            .entries()
            .iter()
            .map(|e| {
                let values = PyList::new(py, e.values.iter().map(|v| v.bind(py)))?;
                PyTuple::new(
                    py,
                    [
                        node_id_to_py(py, &e.id)?,
                        e.counter.into_pyobject(py)?.into_any(),
                        values.into_any(),
                    ],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    fn anonymous_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.inner.anonymous().iter().map(|v| v.bind(py)))
    }

    fn build(
        values: Option<&Bound<'_, PyAny>>,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let values = values_from_py(values)?;
        Ok(match context {
            None => Self::of(DvvSet::new(values)),
            Some(c) => Self::of(DvvSet::new_with_context(&clock_from_py(c)?, values)),
        })
    }
}

#[pymethods]
impl PyDvvSet {
    /// ``DVVSet(values=(), context=None)`` is ``DVVSet.new(values, context)``; ``DVVSet()`` is the
    /// empty clock.
    #[new]
    #[pyo3(signature = (values = None, context = None))]
    fn py_new(
        values: Option<&Bound<'_, PyAny>>,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Self::build(values, context)
    }

    /// A clock holding ``values`` as anonymous values, with the causal history ``context``.
    ///
    /// Parameters
    /// ----------
    /// values : iterable
    ///     The new values (a client writes one). A lone ``str`` or ``bytes`` is refused: wrap it.
    /// context : mapping of node id to counter, optional
    ///     The causal context the client read, as returned by ``join()``. Without it the value
    ///     is concurrent with everything already stored.
    ///
    /// Returns
    /// -------
    /// DVVSet
    ///
    /// Raises
    /// ------
    /// TypeError
    ///     If a node id is not ``int`` or ``str`` (``bool`` is refused) or a counter not an ``int``.
    /// CounterOverflowError
    ///     If a counter is negative or does not fit in 64 bits.
    ///
    /// Examples
    /// --------
    /// >>> from distcore.clocks import DVVSet
    /// >>> DVVSet.new(["v"], {"a": 2}).join()
    /// VectorClock({'a': 2})
    #[classmethod]
    #[pyo3(name = "new", signature = (values, context = None))]
    fn new_py(
        _cls: &Bound<'_, PyType>,
        values: &Bound<'_, PyAny>,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Self::build(Some(values), context)
    }

    /// A clock from its parts, as ``entries()`` and ``anonymous()`` return them.
    ///
    /// Parameters
    /// ----------
    /// entries : iterable of (node id, counter, list of values)
    ///     In any order of node ids; values newest first, at most ``counter`` of them. Entries
    ///     with counter 0 and no values are dropped.
    /// anonymous : iterable, optional
    ///     Values without a dot.
    ///
    /// Raises
    /// ------
    /// ValueError
    ///     If a node id repeats or an entry has more values than its counter.
    ///
    /// Examples
    /// --------
    /// >>> from distcore.clocks import DVVSet
    /// >>> c = DVVSet.from_entries([("b", 1, []), ("a", 4, [5, 2])], [10])
    /// >>> c.entries()
    /// [('a', 4, [5, 2]), ('b', 1, [])]
    /// >>> c.values()
    /// [10, 5, 2]
    #[classmethod]
    #[pyo3(signature = (entries, anonymous = None))]
    fn from_entries(
        _cls: &Bound<'_, PyType>,
        entries: &Bound<'_, PyAny>,
        anonymous: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut parts = Vec::new();
        for item in entries.try_iter()? {
            let item = item?;
            let (id, counter, values): (Bound<'_, PyAny>, Bound<'_, PyAny>, Bound<'_, PyAny>) =
                item.extract().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "an entry must be a (node id, counter, values) tuple, not {}",
                        type_name(&item)
                    ))
                })?;
            let id = extract_node_id(&id)?;
            let counter = extract_counter(&counter)?;
            parts.push((id, counter, values_from_py(Some(&values))?));
        }
        let anonymous = values_from_py(anonymous)?;
        Ok(Self::of(
            DvvSet::from_parts(parts, anonymous).map_err(PyDistError::from)?,
        ))
    }

    /// The server's step of a write: this (client) clock's one new value gets a dot of node ``id``.
    ///
    /// The result knows this clock's context and the ``server``'s stored clock; the server's
    /// values that the client had not seen stay as siblings, those it had seen are dropped.
    /// Neither clock is changed.
    ///
    /// Parameters
    /// ----------
    /// id : int or str
    ///     The node (replica) taking the write.
    /// server : DVVSet, optional
    ///     The clock the node stores for this key (omit for the first write).
    ///
    /// Returns
    /// -------
    /// DVVSet
    ///     The clock to store.
    ///
    /// Raises
    /// ------
    /// ValueError
    ///     If this clock does not hold exactly one value (make it with ``DVVSet.new([value], ctx)``).
    /// TypeError
    ///     If ``id`` is not ``int`` or ``str``.
    /// CounterOverflowError
    ///     If the counter of ``id`` is already ``2**64 - 1``.
    ///
    /// Examples
    /// --------
    /// >>> from distcore.clocks import DVVSet
    /// >>> s = DVVSet.new(["v1"]).update("a")
    /// >>> s.entries()
    /// [('a', 1, ['v1'])]
    /// >>> DVVSet.new(["v2"]).update("a", server=s).entries()
    /// [('a', 2, ['v2', 'v1'])]
    /// >>> DVVSet.new(["v3"], s.join()).update("a", server=s).entries()
    /// [('a', 2, ['v3'])]
    #[pyo3(signature = (id, server = None))]
    fn update(
        &self,
        id: &Bound<'_, PyAny>,
        server: Option<&Bound<'_, PyDvvSet>>,
    ) -> PyResult<Self> {
        let id = extract_node_id(id)?;
        let server = server.map(|s| &s.get().inner);
        let c = self.inner.update(server, &id).map_err(PyDistError::from)?;
        Ok(Self::of(c))
    }

    /// The clock that knows everything the given clocks know, keeping only the values that none
    /// of them has overwritten.
    ///
    /// Sync is commutative and idempotent (up to the order of anonymous values) and associative
    /// for stored clocks (results of ``update`` and ``sync``); equal anonymous values are kept
    /// once. The anonymous values of a clock strictly older than another are dropped, as in
    /// dvvset.erl: pass a client clock to ``update``, not to ``sync``.
    ///
    /// Parameters
    /// ----------
    /// clocks : iterable of DVVSet
    ///
    /// Returns
    /// -------
    /// DVVSet
    ///     The empty clock for no clocks.
    ///
    /// Examples
    /// --------
    /// >>> from distcore.clocks import DVVSet
    /// >>> old = DVVSet.new(["v1"]).update("a")
    /// >>> new = DVVSet.new(["v2"], old.join()).update("a", server=old)
    /// >>> other = DVVSet.new(["w"]).update("b")
    /// >>> DVVSet.sync([old, new, other]).entries()
    /// [('a', 2, ['v2']), ('b', 1, ['w'])]
    #[staticmethod]
    fn sync(py: Python<'_>, clocks: &Bound<'_, PyAny>) -> PyResult<Self> {
        let clocks: Vec<Bound<'_, PyDvvSet>> = clocks
            .try_iter()?
            .map(|c| {
                let c = c?;
                c.cast_into::<PyDvvSet>().map_err(|e| {
                    PyTypeError::new_err(format!(
                        "sync() takes DVVSet clocks, not {}",
                        type_name(&e.into_inner())
                    ))
                })
            })
            .collect::<PyResult<_>>()?;
        let synced = DvvSet::try_sync_by(clocks.iter().map(|c| &c.get().inner), |a, b| {
            py_eq(py, a, b)
        })?;
        Ok(Self::of(synced))
    }

    /// The causal history as a version vector (a :class:`VectorClock`).
    ///
    /// This is the context a client keeps from a read and passes to ``DVVSet.new`` to write.
    ///
    /// Examples
    /// --------
    /// >>> from distcore.clocks import DVVSet
    /// >>> DVVSet.from_entries([("b", 1, []), (7, 3, ["x"])]).join()
    /// VectorClock({7: 3, 'b': 1})
    fn join(&self) -> PyVectorClock {
        PyVectorClock::wrap(self.inner.join())
    }

    /// Every value: the anonymous values, then each entry's values (by node id, newest first).
    ///
    /// Examples
    /// --------
    /// >>> from distcore.clocks import DVVSet
    /// >>> DVVSet.from_entries([("a", 4, [5, 2]), ("c", 1, [3])], [10]).values()
    /// [10, 5, 2, 3]
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.inner.values().into_iter().map(|v| v.bind(py)))
    }

    /// The entries ``(node id, counter, values newest first)``, sorted by node id.
    fn entries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.entries_py(py)
    }

    /// The values without a dot (a client's new value, a reconciled value).
    fn anonymous<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.anonymous_py(py)
    }

    /// True if this clock's history is strictly older than ``other``'s: its values are outdated.
    ///
    /// Examples
    /// --------
    /// >>> from distcore.clocks import DVVSet
    /// >>> a = DVVSet.new(["v1"]).update("a")
    /// >>> b = DVVSet.new(["v2"], a.join()).update("a", server=a)
    /// >>> a.less(b), b.less(a), a.less(a)
    /// (True, False, False)
    fn less(&self, other: &Bound<'_, PyDvvSet>) -> bool {
        self.inner.less(&other.get().inner)
    }

    /// The value that wins by last-writer-wins: the largest ``key(value)`` (the value itself if
    /// ``key`` is None), among the newest value of each entry and the anonymous values.
    ///
    /// Ties go to the later candidate (entries in node-id order, then the anonymous values).
    ///
    /// Raises
    /// ------
    /// ValueError
    ///     If the clock holds no values.
    ///
    /// Examples
    /// --------
    /// >>> from distcore.clocks import DVVSet
    /// >>> DVVSet.from_entries([("a", 4, [5, 2]), ("c", 1, [3])]).last()
    /// 5
    /// >>> DVVSet.from_entries([("a", 1, ["x"]), ("b", 1, ["yy"])]).last(key=len)
    /// 'yy'
    #[pyo3(signature = (key = None))]
    fn last(&self, py: Python<'_>, key: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let v = self
            .inner
            .try_last(|a, b| older_or_same(py, key, a, b))?
            .ok_or_else(|| PyValueError::new_err("the clock holds no values"))?;
        Ok(v.clone_ref(py))
    }

    /// The same history with only the winner of ``last(key)``, which keeps its dot.
    ///
    /// Raises
    /// ------
    /// ValueError
    ///     If the clock holds no values.
    ///
    /// Examples
    /// --------
    /// >>> from distcore.clocks import DVVSet
    /// >>> DVVSet.from_entries([("a", 4, [5, 2]), ("c", 1, [3])], [1]).lww().entries()
    /// [('a', 4, [5]), ('c', 1, [])]
    #[pyo3(signature = (key = None))]
    fn lww(&self, py: Python<'_>, key: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let c = self
            .inner
            .try_lww(|a, b| older_or_same(py, key, a, b))?
            .ok_or_else(|| PyValueError::new_err("the clock holds no values"))?;
        Ok(Self::of(c))
    }

    /// The same history with one anonymous value, ``f(values())``: merges the siblings.
    ///
    /// The result is a client clock: store it with ``result.update(node, server=clock)``.
    ///
    /// Examples
    /// --------
    /// >>> from distcore.clocks import DVVSet
    /// >>> c = DVVSet.from_entries([("a", 4, [5, 2]), ("c", 1, [3])]).reconcile(sum)
    /// >>> c.values(), c.join()
    /// ([10], VectorClock({'a': 4, 'c': 1}))
    fn reconcile(&self, py: Python<'_>, f: &Bound<'_, PyAny>) -> PyResult<Self> {
        let c = self.inner.try_reconcile(|vs| {
            let list = PyList::new(py, vs.into_iter().map(|v| v.bind(py)))?;
            Ok::<Value, PyErr>(wrap(f.call1((list,))?))
        })?;
        Ok(Self::of(c))
    }

    /// The same clock with ``f`` applied to every value.
    ///
    /// Examples
    /// --------
    /// >>> from distcore.clocks import DVVSet
    /// >>> DVVSet.from_entries([("a", 4, [5, 0]), ("c", 1, [2])], [20]).map(lambda v: v * 2).values()
    /// [40, 10, 0, 4]
    fn map(&self, f: &Bound<'_, PyAny>) -> PyResult<Self> {
        let c = self
            .inner
            .try_map(|v| Ok::<Value, PyErr>(wrap(f.call1((v.bind(f.py()),))?)))?;
        Ok(Self::of(c))
    }

    /// Number of values, with a dot or anonymous (also ``len(clock)``).
    fn size(&self) -> usize {
        self.inner.size()
    }

    fn __len__(&self) -> usize {
        self.inner.size()
    }

    /// The node ids of the causal history, sorted.
    ///
    /// Examples
    /// --------
    /// >>> from distcore.clocks import DVVSet
    /// >>> DVVSet.from_entries([("b", 1, []), (3, 2, ["x"])]).ids()
    /// [3, 'b']
    fn ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let ids = self
            .inner
            .entries()
            .iter()
            .map(|e| node_id_to_py(py, &e.id))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, ids)
    }

    /// Equality of causal histories only (dvvset ``equal``): same node ids, counters and number
    /// of values per node. The values themselves are not compared; compare ``entries()`` and
    /// ``anonymous()`` for that.
    fn __eq__(&self, other: &Bound<'_, PyDvvSet>) -> bool {
        self.inner.equal(&other.get().inner)
    }

    fn __hash__(&self) -> u64 {
        // Consistent with __eq__: the history only.
        let mut h = DefaultHasher::new();
        for e in self.inner.entries() {
            (&e.id, e.counter, e.values.len()).hash(&mut h);
        }
        h.finish()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "DVVSet.from_entries({}, {})",
            self.entries_py(py)?.repr()?,
            self.anonymous_py(py)?.repr()?
        ))
    }

    /// The stable binary encoding (``b"DV"``, version 1); values must be ``bytes`` or ``str``.
    ///
    /// Raises
    /// ------
    /// TypeError
    ///     If a value is not exactly ``bytes`` or ``str``; ``map()`` them first, or pickle.
    ///
    /// Examples
    /// --------
    /// >>> from distcore.clocks import DVVSet
    /// >>> c = DVVSet.new([b"v1", "v2"], {"a": 3})
    /// >>> DVVSet.from_bytes(bytes(c)).anonymous()
    /// [b'v1', 'v2']
    fn __bytes__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let blobs = self.inner.try_map(|v| blob_from_py(py, v))?;
        Ok(PyBytes::new(py, &blobs.encode(write_blob)))
    }

    /// Decodes ``bytes(clock)``.
    ///
    /// Raises
    /// ------
    /// DecodeError
    ///     If ``data`` is not exactly a valid encoding (a ``ValueError``).
    #[classmethod]
    fn from_bytes(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let bytes: Vec<u8> = if let Ok(b) = data.cast::<PyBytes>() {
            b.as_bytes().to_vec()
        } else if let Ok(b) = data.cast::<PyByteArray>() {
            b.to_vec()
        } else {
            return Err(PyTypeError::new_err(format!(
                "data must be bytes, not {}",
                type_name(data)
            )));
        };
        let blobs = py
            .detach(|| DvvSet::decode(&bytes, read_blob))
            .map_err(PyDistError::from)?;
        let c = blobs.try_map(|b| {
            Ok::<Value, PyErr>(match b {
                Blob::Bytes(x) => wrap(PyBytes::new(py, x).into_any()),
                Blob::Str(s) => wrap(PyString::new(py, s).into_any()),
            })
        })?;
        Ok(Self::of(c))
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let me = slf.get();
        let ctor = slf.get_type().getattr("from_entries")?;
        let args = PyTuple::new(
            py,
            [
                me.entries_py(py)?.into_any(),
                me.anonymous_py(py)?.into_any(),
            ],
        )?;
        Ok((ctor, args))
    }

    fn __copy__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        // Immutable: a copy is the same object.
        slf
    }

    fn __deepcopy__(&self, py: Python<'_>, memo: &Bound<'_, PyAny>) -> PyResult<Self> {
        let deepcopy = py.import("copy")?.getattr("deepcopy")?;
        let c = self
            .inner
            .try_map(|v| Ok::<Value, PyErr>(wrap(deepcopy.call1((v.bind(py), memo))?)))?;
        Ok(Self::of(c))
    }
}

/// Adds `DVVSet` to `_core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDvvSet>()
}
