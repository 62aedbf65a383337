//! `_core.UhashringCore`: the native half of `distcore.hashing.HashRing`, uhashring 2.5's drop-in.
//!
//! The Python facade keeps uhashring's node confs and calls `sync` after each change; this class
//! holds the points and does every lookup. Python code (`str(key)`, a custom `hash_fn`) only runs
//! while no lock is held, and a rebuild swaps in a new snapshot, so readers never wait on Python.

use std::sync::Arc;

use distcore_core::hashing::uhashring::{
    ketama_hash, MetaPoints, Mode, Node, UhashRing, MAX_POINTS,
};
use distcore_core::Error;
use numpy::{IntoPyArray, PyArray1};
use parking_lot::RwLock;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList, PyString, PyTuple};

use super::batch::maybe_detach;
use crate::errors::PyDistError;

/// Texts copied out of Python objects into one buffer, so a batch can run without the GIL.
#[derive(Default)]
pub(super) struct Texts {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Texts {
    /// Appends one text.
    pub(super) fn push(&mut self, text: &[u8]) {
        self.bytes.extend_from_slice(text);
        self.ends.push(self.bytes.len());
    }

    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The texts in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, &e)| &self.bytes[s..e])
    }
}

/// The items of a list, a tuple or any iterable.
pub(super) fn items<'py>(seq: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(l) = seq.cast::<PyList>() {
        Ok(l.iter().collect())
    } else if let Ok(t) = seq.cast::<PyTuple>() {
        Ok(t.iter().collect())
    } else if seq.is_instance_of::<PyString>() {
        Err(PyTypeError::new_err(
            "keys must be a sequence of keys, not a str",
        ))
    } else {
        seq.try_iter()?.collect()
    }
}

/// `str(key)`: the key itself when it is exactly a str, else its `__str__`.
pub(super) fn key_text<'py>(key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyString>> {
    match key.cast_exact::<PyString>() {
        Ok(s) => Ok(s.clone()),
        Err(_) => key.str(),
    }
}

/// Calls `f` with the UTF-8 of `str(key)`: uhashring hashes `str(key).encode("utf-8")`.
#[inline]
fn with_text<R>(key: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(s) = key.cast_exact::<PyString>() {
        return Ok(f(s.to_str()?.as_bytes()));
    }
    let s = key.str()?;
    Ok(f(s.to_str()?.as_bytes()))
}

/// A custom `hash_fn`'s value as a ring position: an int in `[0, 2**128)`.
fn position_value(v: &Bound<'_, PyAny>) -> PyResult<u128> {
    if !v.is_instance_of::<PyInt>() {
        let t = v
            .get_type()
            .name()
            .map_or_else(|_| "?".to_owned(), |n| n.to_string());
        return Err(PyTypeError::new_err(format!(
            "hash_fn must return an int, not {t}"
        )));
    }
    v.extract::<u128>()
        .map_err(|_| PyValueError::new_err("hash_fn must return an int in [0, 2**128)"))
}

/// How keys and points are hashed.
enum Hasher {
    /// uhashring's default: md5 of `str(key)` as a 128-bit int.
    Md5,
    /// `hash_fn="ketama"`: the first little-endian md5 word of `str(key)`.
    Ketama,
    /// A user callable, given the key itself and `f"{name}-{w}"` for points.
    Custom(Py<PyAny>),
}

struct State {
    ring: UhashRing,
    /// Each node's name object and conf dict, in table (owner index) order.
    names: Vec<Py<PyAny>>,
    confs: Vec<Py<PyAny>>,
}

/// The points and lookups of a uhashring-compatible ring (private: use ``distcore.hashing.HashRing``).
#[pyclass(frozen, subclass, module = "distcore._core", name = "UhashringCore")]
pub struct PyUhashringCore {
    hasher: Hasher,
    state: RwLock<Arc<State>>,
}

impl PyUhashringCore {
    /// The position of `key`'s hash on the ring's scale (128-bit meta, 32-bit ketama).
    #[inline]
    fn key_hash(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<u128> {
        match &self.hasher {
            Hasher::Md5 => with_text(key, distcore_core::hashing::uhashring::meta_hash),
            Hasher::Ketama => with_text(key, |t| u128::from(ketama_hash(t, 0))),
            Hasher::Custom(f) => position_value(&f.bind(py).call1((key,))?),
        }
    }

    fn snapshot(&self) -> Arc<State> {
        self.state.read().clone()
    }

    /// The sorted position `key` lands on, with the snapshot it was found in.
    fn locate(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<(Arc<State>, usize)> {
        let h = self.key_hash(py, key)?;
        let st = self.snapshot();
        let pos = st.ring.position(h).ok_or(PyDistError(Error::EmptyRing))?;
        Ok((st, pos))
    }

    /// A custom hash's points for `f"{label}-{w}"`, `w` in `0..count`.
    fn custom_points(
        py: Python<'_>,
        f: &Py<PyAny>,
        label: &str,
        count: u64,
    ) -> PyResult<Vec<u128>> {
        let f = f.bind(py);
        let mut out = Vec::with_capacity(count as usize);
        for w in 0..count {
            let text = PyString::new(py, &format!("{label}-{w}"));
            out.push(position_value(&f.call1((text,))?)?);
        }
        Ok(out)
    }
}

#[pymethods]
impl PyUhashringCore {
    /// ``hash_fn``: ``None`` (md5), ``"ketama"`` or a callable; ``replicas`` is ketama's.
    #[new]
    #[pyo3(signature = (hash_fn = None, replicas = 4))]
    fn new(hash_fn: Option<&Bound<'_, PyAny>>, replicas: i64) -> PyResult<Self> {
        let hasher = match hash_fn {
            None => Hasher::Md5,
            Some(f)
                if f.cast::<PyString>()
                    .is_ok_and(|s| s.to_str().is_ok_and(|s| s == "ketama")) =>
            {
                Hasher::Ketama
            }
            Some(f) if f.is_callable() => Hasher::Custom(f.clone().unbind()),
            Some(_) => {
                return Err(PyTypeError::new_err(
                    "hash_fn should be a callable function",
                ))
            }
        };
        let mode = match hasher {
            Hasher::Ketama => {
                let replicas = u32::try_from(replicas)
                    .ok()
                    .filter(|&r| r <= 4)
                    .ok_or_else(|| {
                        PyValueError::new_err(format!("replicas must be 0 to 4, got {replicas}"))
                    })?;
                Mode::Ketama { replicas }
            }
            _ => Mode::Meta,
        };
        let ring = UhashRing::new(mode).map_err(PyDistError::from)?;
        Ok(PyUhashringCore {
            hasher,
            state: RwLock::new(Arc::new(State {
                ring,
                names: Vec::new(),
                confs: Vec::new(),
            })),
        })
    }

    /// Replaces the node table with ``nodes`` (``(id, name, conf, vnodes, weight)`` in uhashring's
    /// ``_nodes`` order). ``changed=None`` keeps every point; a list of ids recreates those nodes'
    /// points (meta) or rebuilds the whole ring (ketama), and drops the points of nodes not listed.
    #[pyo3(signature = (nodes, changed = None))]
    fn sync(
        &self,
        py: Python<'_>,
        nodes: &Bound<'_, PyAny>,
        changed: Option<Vec<u64>>,
    ) -> PyResult<()> {
        let mut table = Vec::new();
        let mut names = Vec::new();
        let mut confs = Vec::new();
        for item in items(nodes)? {
            let (id, name, conf, vnodes, weight): (
                u64,
                Bound<'_, PyAny>,
                Bound<'_, PyAny>,
                u64,
                u64,
            ) = item.extract()?;
            let label = key_text(&name)?.to_str()?.to_owned();
            table.push(Node {
                id,
                label,
                vnodes,
                weight,
            });
            names.push(name.unbind());
            confs.push(conf.unbind());
        }
        // Python runs first, with no lock held: a custom hash_fn's points.
        let mut given = Vec::new();
        if let (Hasher::Custom(f), Some(ids)) = (&self.hasher, &changed) {
            for &id in ids {
                let node = table
                    .iter()
                    .find(|n| n.id == id)
                    .ok_or_else(|| PyDistError(Error::UnknownNode(id.to_string())))?;
                let count = node
                    .vnodes
                    .checked_mul(node.weight)
                    .filter(|&c| c <= MAX_POINTS);
                let Some(count) = count else {
                    return Err(PyValueError::new_err(format!(
                        "node {:?}: vnodes * weight is more than {MAX_POINTS} points",
                        node.label
                    )));
                };
                given.push(Self::custom_points(py, f, &node.label, count)?);
            }
        }
        // The facade serializes changes, so building from a snapshot and swapping loses none.
        let mut ring = self.snapshot().ring.clone();
        ring.set_nodes(table).map_err(PyDistError::from)?;
        if let Some(ids) = changed {
            if ring.mode() == Mode::Meta {
                let mut given = given.into_iter();
                for id in ids {
                    let points = given.next().map_or(MetaPoints::Md5, MetaPoints::Given);
                    ring.create(id, points).map_err(PyDistError::from)?;
                }
            }
            ring.rebuild().map_err(PyDistError::from)?;
        }
        *self.state.write() = Arc::new(State { ring, names, confs });
        Ok(())
    }

    /// The name of the node ``key`` goes to.
    fn get_node(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let h = self.key_hash(py, key)?;
        let st = self.state.read();
        let o = st.ring.owner(h).ok_or(PyDistError(Error::EmptyRing))?;
        Ok(st.names[o].clone_ref(py))
    }

    /// The conf dict of the node ``key`` goes to.
    fn get_conf(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let h = self.key_hash(py, key)?;
        let st = self.state.read();
        let o = st.ring.owner(h).ok_or(PyDistError(Error::EmptyRing))?;
        Ok(st.confs[o].clone_ref(py))
    }

    /// The index (into the node table) of the node ``key`` goes to.
    fn get_node_index(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<usize> {
        let h = self.key_hash(py, key)?;
        let st = self.state.read();
        Ok(st.ring.owner(h).ok_or(PyDistError(Error::EmptyRing))?)
    }

    /// Node indices (into the node table) for many keys: an int32 numpy array.
    fn get_node_indices<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<i32>>> {
        let keys = items(keys)?;
        let out: Result<Vec<i32>, Error> = if let Hasher::Custom(_) = self.hasher {
            let hashes = keys
                .iter()
                .map(|k| self.key_hash(py, k))
                .collect::<PyResult<Vec<u128>>>()?;
            let st = self.snapshot();
            hashes
                .iter()
                .map(|&h| st.ring.owner(h).map(|o| o as i32).ok_or(Error::EmptyRing))
                .collect()
        } else {
            let mut texts = Texts::default();
            for k in &keys {
                texts.push(key_text(k)?.to_str()?.as_bytes());
            }
            let st = self.snapshot();
            let ring = &st.ring;
            maybe_detach(py, texts.len(), || {
                texts
                    .iter()
                    .map(|t| {
                        ring.owner(ring.key_hash(t))
                            .map(|o| o as i32)
                            .ok_or(Error::EmptyRing)
                    })
                    .collect()
            })
        };
        Ok(out.map_err(PyDistError::from)?.into_pyarray(py))
    }

    /// uhashring's ``get_node_pos``: the index of ``key``'s point in the sorted points.
    fn get_node_pos(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<usize> {
        Ok(self.locate(py, key)?.1)
    }

    /// uhashring's ``get_server``: ``(point, name)`` of the point ``key`` lands on.
    fn get_server(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<(u128, Py<PyAny>)> {
        let (st, pos) = self.locate(py, key)?;
        let o = st.ring.owners()[pos] as usize;
        Ok((st.ring.point(pos), st.names[o].clone_ref(py)))
    }

    /// uhashring's ``hashi``: the ring position of ``key`` (ketama: md5 word ``replica``, 0 to 3).
    #[pyo3(signature = (key, replica = 0))]
    fn hashi(&self, py: Python<'_>, key: &Bound<'_, PyAny>, replica: i64) -> PyResult<u128> {
        match &self.hasher {
            Hasher::Ketama => {
                let r = usize::try_from(replica)
                    .ok()
                    .filter(|&r| r < 4)
                    .ok_or_else(|| {
                        PyValueError::new_err(format!("replica must be 0 to 3, got {replica}"))
                    })?;
                with_text(key, |t| u128::from(ketama_hash(t, r)))
            }
            _ if replica != 0 => Err(PyTypeError::new_err(
                "hashi() takes a replica only with hash_fn=\"ketama\"",
            )),
            _ => self.key_hash(py, key),
        }
    }

    /// The confs met walking clockwise from ``key``'s point (uhashring's ``range``); ``stop``
    /// ends the walk after that many, ``unique`` visits each node once. Empty on an empty ring.
    #[pyo3(signature = (key, stop = None, unique = true))]
    fn range(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        stop: Option<usize>,
        unique: bool,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let h = self.key_hash(py, key)?;
        let st = self.snapshot();
        let Some(pos) = st.ring.position(h) else {
            return Ok(Vec::new());
        };
        let walk = st.ring.walk(pos, stop, unique);
        Ok(walk
            .into_iter()
            .map(|o| st.confs[o].clone_ref(py))
            .collect())
    }

    /// ``[(point, name)]`` over the sorted points, equal points listed each time (``get_points``).
    fn points(&self, py: Python<'_>) -> Vec<(u128, Py<PyAny>)> {
        let st = self.snapshot();
        let owners = st.ring.owners();
        st.ring
            .points()
            .into_iter()
            .zip(owners)
            .map(|(p, &o)| (p, st.names[o as usize].clone_ref(py)))
            .collect()
    }

    /// The sorted points (uhashring's ``_keys``).
    fn keys(&self) -> Vec<u128> {
        self.snapshot().ring.points()
    }

    /// ``{point: name}`` over the distinct points (uhashring's ``ring``), in point order.
    fn ring<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.snapshot();
        let d = PyDict::new(py);
        for (p, &o) in st.ring.points().into_iter().zip(st.ring.owners()) {
            d.set_item(p, st.names[o as usize].bind(py))?;
        }
        Ok(d)
    }

    /// ``[(name, points)]`` for nodes holding points, in table order (``distribution``).
    fn distribution(&self, py: Python<'_>) -> Vec<(Py<PyAny>, u64)> {
        let st = self.snapshot();
        st.names
            .iter()
            .zip(st.ring.counts())
            .filter(|(_, &c)| c > 0)
            .map(|(n, &c)| (n.clone_ref(py), c))
            .collect()
    }

    /// Number of distinct points (uhashring's ``size``).
    #[getter]
    fn size(&self) -> usize {
        self.snapshot().ring.size()
    }

    /// The hashing mode: ``"md5"``, ``"ketama"`` or ``"custom"``.
    #[getter]
    fn mode(&self) -> &'static str {
        match self.hasher {
            Hasher::Md5 => "md5",
            Hasher::Ketama => "ketama",
            Hasher::Custom(_) => "custom",
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyUhashringCore>()
}
