//! Placement rings beyond ketama: jump, rendezvous, Maglev, bounded loads and `AnchorHash`.
//!
//! Each class is a frozen pyclass over one core ring in an `RwLock<Arc<State>>`; the methods they
//! share are generated once by `placement_class!` over the core's `Placement` trait. Batches take an
//! `Arc` snapshot and drop the lock before releasing the GIL, so a writer (which holds the GIL) never
//! waits for a batch: it mutates in place when no snapshot is out, else it swaps in a changed copy.

use std::sync::Arc;

use distcore_core::hashing::anchor::AnchorRing;
use distcore_core::hashing::bounded::BoundedLoadRing;
use distcore_core::hashing::jump::JumpRing;
use distcore_core::hashing::maglev::MaglevRing;
use distcore_core::hashing::nodes::{key_hash, Placement};
use distcore_core::hashing::rendezvous::RendezvousRing;
use distcore_core::par::for_each_chunk;
use distcore_core::Error;
use numpy::{IntoPyArray, PyArray1};
use parking_lot::RwLock;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::batch::{hash_list_or_tuple, maybe_detach, BatchData, BatchInput};
use super::hashfn::with_key_bytes;
use crate::errors::{type_name, PyDistError};

/// A core ring and its node names as Python strs (lookups return them without allocating).
struct State<R> {
    ring: R,
    names: Vec<Py<PyString>>,
}

type Shared<R> = RwLock<Arc<State<R>>>;

fn shared<R: Placement>(py: Python<'_>, ring: R) -> Shared<R> {
    let names = ring
        .nodes()
        .names()
        .iter()
        .map(|n| PyString::new(py, n).unbind())
        .collect();
    RwLock::new(Arc::new(State { ring, names }))
}

/// Runs a change on the state; `f` must leave it unchanged when it fails.
fn write_state<R: Placement + Clone, T>(
    s: &Shared<R>,
    py: Python<'_>,
    f: impl FnOnce(&mut State<R>) -> PyResult<T>,
) -> PyResult<T> {
    let mut guard = s.write();
    if let Some(st) = Arc::get_mut(&mut guard) {
        // No batch holds a snapshot: change in place (AnchorHash removals stay O(1)).
        return f(st);
    }
    let mut copy = State {
        ring: guard.ring.clone(),
        names: guard.names.iter().map(|n| n.clone_ref(py)).collect(),
    };
    let out = f(&mut copy)?;
    *guard = Arc::new(copy);
    Ok(out)
}

/// The current state, for work done without the lock (and possibly without the GIL).
fn snapshot<R>(s: &Shared<R>) -> Arc<State<R>> {
    Arc::clone(&s.read())
}

fn node_name(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let s = obj.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("node names must be str, not {}", type_name(obj)))
    })?;
    Ok(s.to_str()?.to_owned())
}

fn node_weight(obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    obj.extract::<f64>().map_err(|_| {
        PyTypeError::new_err(format!(
            "node weights must be numbers, not {}",
            type_name(obj)
        ))
    })
}

/// `nodes` as the constructors take it: an iterable of names, or a mapping name -> weight.
fn nodes_from_py(nodes: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, f64)>> {
    let Some(obj) = nodes else {
        return Ok(Vec::new());
    };
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "nodes must be an iterable of names or a dict of name -> weight, not str",
        ));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return d
            .iter()
            .map(|(k, v)| Ok((node_name(&k)?, node_weight(&v)?)))
            .collect();
    }
    if obj.hasattr("items")? {
        return obj
            .call_method0("items")?
            .try_iter()?
            .map(|kv| {
                let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = kv?.extract()?;
                Ok((node_name(&k)?, node_weight(&v)?))
            })
            .collect();
    }
    obj.try_iter()?
        .map(|item| Ok((node_name(&item?)?, 1.0)))
        .collect()
}

fn key_hash_py(key: &Bound<'_, PyAny>) -> PyResult<u64> {
    with_key_bytes(key, key_hash)
}

fn get_index<R: Placement>(s: &Shared<R>, key: &Bound<'_, PyAny>) -> PyResult<usize> {
    let h = key_hash_py(key)?;
    Ok(s.read().ring.locate(h).map_err(PyDistError::from)?)
}

fn get_node<'py, R: Placement>(
    s: &Shared<R>,
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyString>> {
    let h = key_hash_py(key)?;
    let st = s.read();
    let i = st.ring.locate(h).map_err(PyDistError::from)?;
    Ok(st.names[i].bind(py).clone())
}

fn get_nodes<'py, R: Placement>(
    s: &Shared<R>,
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    n: usize,
) -> PyResult<Bound<'py, PyList>> {
    let h = key_hash_py(key)?;
    let st = s.read();
    let order = st.ring.preference(h, n).map_err(PyDistError::from)?;
    PyList::new(py, order.into_iter().map(|i| st.names[i].bind(py)))
}

/// Looks up pre-hashed keys (inside the detached section for large batches), on every core.
fn locate_all<R: Placement + Sync>(st: &State<R>, hashes: &[u64]) -> Result<Vec<u32>, Error> {
    let mut out = vec![0u32; hashes.len()];
    if let Some(&first) = hashes.first() {
        // The only error is an empty ring: checked once, so the chunks below cannot fail.
        st.ring.locate(first)?;
    }
    for_each_chunk(&mut out, |start, chunk| {
        let _ = st
            .ring
            .locate_into(&hashes[start..start + chunk.len()], chunk);
    });
    Ok(out)
}

fn get_node_indices<'py, R: Placement + Send + Sync>(
    s: &Shared<R>,
    py: Python<'py>,
    keys: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<i32>>> {
    let snap = snapshot(s);
    let st = &*snap;
    // A list or tuple is hashed in place while attached (about 5 ns a key, cheaper than copying the
    // keys out); only the lookups run detached.
    let input = match hash_list_or_tuple(keys, key_hash)? {
        Some(hashes) => BatchInput::Owned(hashes),
        None => BatchInput::extract(keys)?,
    };
    let data = input.data()?;
    let out = maybe_detach(py, data.len(), || match data {
        // Keys were copied into one buffer while attached; hashing them needs no Python.
        BatchData::Keys(packed) => {
            let hashes: Vec<u64> = packed.iter().map(key_hash).collect();
            locate_all(st, &hashes)
        }
        BatchData::Hashes(hashes) => locate_all(st, hashes),
    })
    .map_err(PyDistError::from)?;
    Ok(to_i32(out).into_pyarray(py))
}

/// Indices are far below 2^31; int32 as `KetamaRing.get_node_indices` returns (same buffer, in place).
fn to_i32(indices: Vec<u32>) -> Vec<i32> {
    indices.into_iter().map(|i| i as i32).collect()
}

fn add_node<R: Placement + Clone>(
    s: &Shared<R>,
    py: Python<'_>,
    name: &str,
    weight: f64,
) -> PyResult<()> {
    write_state(s, py, |st| {
        st.ring.add_node(name, weight).map_err(PyDistError::from)?;
        // Every ring appends the new node.
        st.names.push(PyString::new(py, name).unbind());
        Ok(())
    })
}

fn remove_node<R: Placement + Clone>(s: &Shared<R>, py: Python<'_>, name: &str) -> PyResult<()> {
    write_state(s, py, |st| {
        let nodes = st.ring.nodes();
        let i = nodes.index_of(name).map_err(PyDistError::from)?;
        let last = nodes.len() - 1;
        let last_name = nodes.name(last).to_owned();
        st.ring.remove_node(name).map_err(PyDistError::from)?;
        // Mirror the ring: jump and anchor move the last node into the freed index, the others shift.
        if i != last && st.ring.nodes().name(i) == last_name {
            st.names.swap_remove(i);
        } else {
            st.names.remove(i);
        }
        Ok(())
    })
}

/// Changes the ring itself (names unchanged); for set_weight, assign, release.
fn change<R: Placement + Clone, T>(
    s: &Shared<R>,
    py: Python<'_>,
    f: impl FnOnce(&mut R) -> Result<T, Error>,
) -> PyResult<T> {
    write_state(s, py, |st| Ok(f(&mut st.ring).map_err(PyDistError::from)?))
}

fn node_tuple<'py, R>(s: &Shared<R>, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, s.read().names.iter().map(|n| n.bind(py)))
}

fn contains<R: Placement>(s: &Shared<R>, name: &Bound<'_, PyAny>) -> bool {
    name.cast::<PyString>()
        .ok()
        .and_then(|n| n.to_str().ok().map(|n| s.read().ring.nodes().contains(n)))
        .unwrap_or(false)
}

fn distribution<'py, R: Placement + Send + Sync>(
    s: &Shared<R>,
    py: Python<'py>,
    samples: Option<u64>,
) -> PyResult<Bound<'py, PyDict>> {
    let snap = snapshot(s);
    let shares = |sampled: bool| -> Result<Vec<(String, f64)>, Error> {
        let st = &*snap;
        if st.ring.nodes().is_empty() {
            return Ok(Vec::new());
        }
        let shares = match samples {
            Some(n) if sampled => st.ring.sampled_shares(n)?,
            _ => st.ring.shares(),
        };
        Ok(st
            .ring
            .nodes()
            .names()
            .iter()
            .cloned()
            .zip(shares)
            .collect())
    };
    let pairs = match samples {
        None => shares(false),
        Some(0) => return Err(PyValueError::new_err("samples must be > 0")),
        Some(n) => maybe_detach(py, usize::try_from(n).unwrap_or(usize::MAX), || {
            shares(true)
        }),
    }
    .map_err(PyDistError::from)?;
    let d = PyDict::new(py);
    for (name, share) in pairs {
        d.set_item(name, share)?;
    }
    Ok(d)
}

fn weights<'py, R: Placement>(s: &Shared<R>, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let st = s.read();
    let d = PyDict::new(py);
    for (name, w) in st.names.iter().zip(st.ring.nodes().weights()) {
        d.set_item(name.bind(py), *w)?;
    }
    Ok(d)
}

/// The `#[pymethods]` block of a placement class: its own items, then the shared API.
macro_rules! placement_class {
    ($cls:ident, $pyname:literal, { $($own:tt)* }) => {
        #[pymethods]
        impl $cls {
            $($own)*

            /// The node that owns ``key``.
            ///
            /// Parameters
            /// ----------
            /// key : str or bytes
            ///     Hashed with XXH3-64, seed 0 (str as UTF-8).
            ///
            /// Raises
            /// ------
            /// EmptyRingError
            ///     The ring has no nodes.
            /// TypeError
            ///     ``key`` is not str or bytes.
            ///
            /// Examples
            /// --------
            #[doc = concat!(">>> from distcore.hashing import ", $pyname)]
            #[doc = concat!(">>> ring = ", $pyname, "([\"a\", \"b\", \"c\"])")]
            /// >>> ring.get_node("user:42") in ("a", "b", "c")
            /// True
            fn get_node<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyString>> {
                get_node(&self.state, py, key)
            }

            /// The index into ``nodes`` of the node that owns ``key``.
            ///
            /// Examples
            /// --------
            #[doc = concat!(">>> from distcore.hashing import ", $pyname)]
            #[doc = concat!(">>> ring = ", $pyname, "([\"a\", \"b\", \"c\"])")]
            /// >>> ring.nodes[ring.get_index("user:42")] == ring.get_node("user:42")
            /// True
            fn get_index(&self, key: &Bound<'_, PyAny>) -> PyResult<usize> {
                get_index(&self.state, key)
            }

            /// ``n`` distinct nodes for ``key`` in preference order (for replicas); the first is
            /// ``get_node(key)``. Asking for more nodes than the ring has returns all of them.
            ///
            /// Examples
            /// --------
            #[doc = concat!(">>> from distcore.hashing import ", $pyname)]
            #[doc = concat!(">>> ring = ", $pyname, "([\"a\", \"b\", \"c\"])")]
            /// >>> replicas = ring.get_nodes("user:42", 2)
            /// >>> replicas[0] == ring.get_node("user:42"), len(set(replicas))
            /// (True, 2)
            fn get_nodes<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>, n: usize) -> PyResult<Bound<'py, PyList>> {
                get_nodes(&self.state, py, key, n)
            }

            /// Indices into ``nodes`` for many keys at once.
            ///
            /// Parameters
            /// ----------
            /// keys : list of str or bytes, or numpy.ndarray of uint64
            ///     Keys, or keys already hashed to 64 bits (``xxh3_64(key)`` gives the same
            ///     placement as the key itself). Large batches run without the GIL.
            ///
            /// Returns
            /// -------
            /// numpy.ndarray of int32
            ///
            /// Examples
            /// --------
            /// >>> import numpy as np
            #[doc = concat!(">>> from distcore.hashing import ", $pyname, ", xxh3_64")]
            #[doc = concat!(">>> ring = ", $pyname, "([\"a\", \"b\", \"c\"])")]
            /// >>> idx = ring.get_node_indices(["k1", "k2"])
            /// >>> hashed = np.array([xxh3_64("k1"), xxh3_64("k2")], dtype=np.uint64)
            /// >>> bool((ring.get_node_indices(hashed) == idx).all())
            /// True
            fn get_node_indices<'py>(&self, py: Python<'py>, keys: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray1<i32>>> {
                get_node_indices(&self.state, py, keys)
            }

            /// The 64-bit hash a key is placed by: ``xxh3_64(key, 0)``.
            #[staticmethod]
            fn hash(key: &Bound<'_, PyAny>) -> PyResult<u64> {
                key_hash_py(key)
            }

            /// Adds a node; the ring is unchanged if this raises.
            ///
            /// Raises
            /// ------
            /// DuplicateNodeError
            ///     ``name`` is already on the ring.
            /// InvalidWeightError
            ///     ``weight`` is not a finite number > 0.
            #[pyo3(signature = (name, weight = 1.0))]
            fn add_node(&self, py: Python<'_>, name: &str, weight: f64) -> PyResult<()> {
                add_node(&self.state, py, name, weight)
            }

            /// Removes a node; the ring is unchanged if this raises.
            ///
            /// Raises
            /// ------
            /// NodeNotFoundError
            ///     ``name`` is not on the ring.
            fn remove_node(&self, py: Python<'_>, name: &str) -> PyResult<()> {
                remove_node(&self.state, py, name)
            }

            /// Node names in index order (what ``get_node_indices`` indexes).
            #[getter(nodes)]
            fn node_names<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
                node_tuple(&self.state, py)
            }

            /// Each node's share of the key space, by name.
            ///
            /// Parameters
            /// ----------
            /// samples : int, optional
            ///     Measure the shares on this many pseudo-random keys instead of computing them.
            ///
            /// Examples
            /// --------
            #[doc = concat!(">>> from distcore.hashing import ", $pyname)]
            #[doc = concat!(">>> ring = ", $pyname, "([\"a\", \"b\"])")]
            /// >>> round(sum(ring.distribution().values()), 6)
            /// 1.0
            #[pyo3(signature = (samples = None))]
            fn distribution<'py>(&self, py: Python<'py>, samples: Option<u64>) -> PyResult<Bound<'py, PyDict>> {
                distribution(&self.state, py, samples)
            }

            fn __len__(&self) -> usize {
                self.state.read().ring.nodes().len()
            }

            fn __contains__(&self, name: &Bound<'_, PyAny>) -> bool {
                contains(&self.state, name)
            }

            fn __repr__(&self) -> String {
                format!("{}(<{} nodes>)", $pyname, self.state.read().ring.nodes().len())
            }
        }
    };
}

/// Jump consistent hash (Lamping & Veach 2014) over named nodes.
///
/// Nodes are buckets ``0..n-1`` in insertion order. Adding a node moves about ``1/(n+1)`` of the
/// keys, all onto it. Removing the last node moves only its keys; removing another node moves the
/// last node into its index, so the keys of two nodes move. No memory, perfect balance, no weights
/// (a weight other than 1 raises ``ValueError``). On pre-hashed keys it equals ``jump.hash(h, n)``.
///
/// Parameters
/// ----------
/// nodes : iterable of str, optional
///     Node names, in bucket order.
///
/// Examples
/// --------
/// >>> from distcore.hashing import JumpRing
/// >>> ring = JumpRing(["a", "b", "c"])
/// >>> ring.get_node("user:42")
/// 'b'
/// >>> ring.add_node("d")
/// >>> ring.get_node("user:42") in ("b", "d")
/// True
#[pyclass(frozen, module = "distcore.hashing", name = "JumpRing")]
pub struct PyJumpRing {
    state: Shared<JumpRing>,
}

placement_class!(PyJumpRing, "JumpRing", {
    #[new]
    #[pyo3(signature = (nodes = None))]
    fn new(py: Python<'_>, nodes: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let ring =
            JumpRing::with_weighted_nodes(nodes_from_py(nodes)?).map_err(PyDistError::from)?;
        Ok(Self {
            state: shared(py, ring),
        })
    }
});

/// Weighted rendezvous (highest random weight) hashing.
///
/// Each node scores every key with ``-w / ln(u)``, ``u`` a uniform draw from the key's hash and the
/// node's seed (Schindelhauer & Schomaker); the key goes to the top score. A node's share is exactly
/// its weight over the total; adding a node moves keys only onto it, removing one moves only its
/// keys. Lookups cost O(n): best for up to a few hundred nodes.
///
/// Parameters
/// ----------
/// nodes : iterable of str or dict of str to float, optional
///     Node names (weight 1), or a mapping name -> weight.
///
/// Examples
/// --------
/// >>> from distcore.hashing import RendezvousRing
/// >>> ring = RendezvousRing({"a": 1.0, "b": 1.0, "c": 2.0})
/// >>> ring.distribution()
/// {'a': 0.25, 'b': 0.25, 'c': 0.5}
/// >>> ring.get_nodes("user:42", 2)
/// ['c', 'a']
#[pyclass(frozen, module = "distcore.hashing", name = "RendezvousRing")]
pub struct PyRendezvousRing {
    state: Shared<RendezvousRing>,
}

placement_class!(PyRendezvousRing, "RendezvousRing", {
    #[new]
    #[pyo3(signature = (nodes = None))]
    fn new(py: Python<'_>, nodes: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let ring = RendezvousRing::with_nodes(nodes_from_py(nodes)?).map_err(PyDistError::from)?;
        Ok(Self {
            state: shared(py, ring),
        })
    }

    /// Changes a node's weight; only keys between that node and the others move.
    fn set_weight(&self, py: Python<'_>, name: &str, weight: f64) -> PyResult<()> {
        change(&self.state, py, |r| r.set_weight(name, weight))
    }

    /// Each node's weight, by name.
    #[getter]
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        weights(&self.state, py)
    }
});

/// Maglev hashing (Eisenbud et al., NSDI'16) with Envoy's weighting.
///
/// A lookup table of prime size ``table_size`` is filled from each node's permutation (nodes in
/// name order, so insertion order does not matter); a key goes to ``table[hash % table_size]``.
/// Lookups are O(1), balance is within 1% for ``table_size > 100 * n``. Any change rebuilds the
/// table; a removal moves the node's keys and a few others (about 0.5% of the table).
/// ``get_nodes`` walks the table from the key's slot and keeps the first distinct nodes.
///
/// Parameters
/// ----------
/// nodes : iterable of str or dict of str to float, optional
///     Node names (weight 1), or a mapping name -> weight.
/// table_size : int
///     A prime, at least the number of nodes and at most 5000011 (Envoy's limit). Default 65537.
///
/// Raises
/// ------
/// ValueError
///     ``table_size`` is not prime, too small for the nodes, or too large.
///
/// Examples
/// --------
/// >>> from distcore.hashing import MaglevRing
/// >>> ring = MaglevRing(["a", "b", "c"])
/// >>> ring.get_node("user:42")
/// 'b'
/// >>> {name: round(share, 4) for name, share in ring.distribution().items()}
/// {'a': 0.3333, 'b': 0.3333, 'c': 0.3333}
#[pyclass(frozen, module = "distcore.hashing", name = "MaglevRing")]
pub struct PyMaglevRing {
    state: Shared<MaglevRing>,
}

placement_class!(PyMaglevRing, "MaglevRing", {
    #[new]
    #[pyo3(signature = (nodes = None, *, table_size = 65537))]
    fn new(py: Python<'_>, nodes: Option<&Bound<'_, PyAny>>, table_size: u64) -> PyResult<Self> {
        let ring =
            MaglevRing::with_nodes(nodes_from_py(nodes)?, table_size).map_err(PyDistError::from)?;
        Ok(Self {
            state: shared(py, ring),
        })
    }

    /// Changes a node's weight and rebuilds the table.
    fn set_weight(&self, py: Python<'_>, name: &str, weight: f64) -> PyResult<()> {
        change(&self.state, py, |r| r.set_weight(name, weight))
    }

    /// Each node's weight, by name.
    #[getter]
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        weights(&self.state, py)
    }

    /// The lookup table's size (a prime).
    #[getter]
    fn table_size(&self) -> u64 {
        self.state.read().ring.table_size()
    }

    /// A copy of the lookup table: the node index of every slot (empty when there are no nodes).
    fn table<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i32>> {
        let t: Vec<i32> = self
            .state
            .read()
            .ring
            .table()
            .iter()
            .map(|&i| i as i32)
            .collect();
        t.into_pyarray(py)
    }
});

/// Consistent hashing with bounded loads (Mirrokni, Thorup & Zadimoghaddam; HAProxy's
/// ``hash-balance-factor``).
///
/// A hash ring (``points_per_node`` points per unit of weight) plus a load counter per node. With
/// balance factor ``c``, ``assign`` walks clockwise from the key to the first node whose load is
/// below ``ceil(c * (total_load + 1) * weight / total_weight)`` and charges it; ``release`` gives a
/// unit back. No assignment takes a node above ``ceil(c * average)`` (a release can lower the
/// average below a load already placed; nothing is moved then, as in HAProxy). ``get_node`` and
/// ``lookup`` answer where a key would go now without charging; ``get_nodes`` lists nodes with
/// spare capacity first.
///
/// Parameters
/// ----------
/// nodes : iterable of str or dict of str to float, optional
///     Node names (weight 1), or a mapping name -> weight.
/// balance_factor : float
///     ``c > 1``; 1.25 (default) lets no node go above 125% of the average load.
/// points_per_node : int
///     Ring points per unit of weight (default 100).
///
/// Examples
/// --------
/// >>> from distcore.hashing import BoundedLoadRing
/// >>> ring = BoundedLoadRing(["a", "b", "c"], balance_factor=1.25)
/// >>> [ring.assign(f"req-{i}") for i in range(6)].count("a") <= 3
/// True
/// >>> ring.total_load
/// 6
#[pyclass(frozen, module = "distcore.hashing", name = "BoundedLoadRing")]
pub struct PyBoundedLoadRing {
    state: Shared<BoundedLoadRing>,
}

placement_class!(PyBoundedLoadRing, "BoundedLoadRing", {
    #[new]
    #[pyo3(signature = (nodes = None, *, balance_factor = 1.25, points_per_node = 100))]
    fn new(
        py: Python<'_>,
        nodes: Option<&Bound<'_, PyAny>>,
        balance_factor: f64,
        points_per_node: u32,
    ) -> PyResult<Self> {
        let ring =
            BoundedLoadRing::with_nodes(nodes_from_py(nodes)?, balance_factor, points_per_node)
                .map_err(PyDistError::from)?;
        Ok(Self {
            state: shared(py, ring),
        })
    }

    /// Places ``key`` on the first node clockwise with spare capacity and charges it one unit.
    ///
    /// Raises
    /// ------
    /// EmptyRingError
    ///     The ring has no nodes.
    fn assign<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyString>> {
        let h = key_hash_py(key)?;
        write_state(&self.state, py, |st| {
            let i = st.ring.assign(h).map_err(PyDistError::from)?;
            Ok(st.names[i].bind(py).clone())
        })
    }

    /// Gives back one unit of ``name``'s load.
    ///
    /// Raises
    /// ------
    /// NodeNotFoundError
    ///     ``name`` is not on the ring.
    /// ValueError
    ///     ``name`` has no load.
    fn release(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        change(&self.state, py, |r| r.release(name))
    }

    /// Where ``key`` would be assigned now, without charging (same as ``get_node``).
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyString>> {
        get_node(&self.state, py, key)
    }

    /// The load ``name`` may reach with the next assignment.
    fn capacity(&self, name: &str) -> PyResult<u64> {
        Ok(self
            .state
            .read()
            .ring
            .capacity(name)
            .map_err(PyDistError::from)?)
    }

    /// Sets every load to zero.
    fn reset_loads(&self, py: Python<'_>) -> PyResult<()> {
        change(&self.state, py, |r| {
            r.reset_loads();
            Ok(())
        })
    }

    /// Changes a node's weight (its ring points and capacity); its load is kept.
    fn set_weight(&self, py: Python<'_>, name: &str, weight: f64) -> PyResult<()> {
        change(&self.state, py, |r| r.set_weight(name, weight))
    }

    /// Each node's weight, by name.
    #[getter]
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        weights(&self.state, py)
    }

    /// Each node's current load, by name.
    #[getter]
    fn loads<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.state.read();
        let d = PyDict::new(py);
        for (name, load) in st.names.iter().zip(st.ring.loads()) {
            d.set_item(name.bind(py), *load)?;
        }
        Ok(d)
    }

    /// The sum of the loads.
    #[getter]
    fn total_load(&self) -> u64 {
        self.state.read().ring.total_load()
    }

    /// The balance factor ``c``.
    #[getter]
    fn balance_factor(&self) -> f64 {
        self.state.read().ring.balance_factor()
    }

    /// Ring points per unit of weight.
    #[getter]
    fn points_per_node(&self) -> u32 {
        self.state.read().ring.points_per_node()
    }
});

/// ``AnchorHash`` (Mendelson et al., 2020): O(1) removal of any node, and only its keys move.
///
/// A fixed number of buckets (``capacity``) of which one per node is working. Removing any node
/// moves only its keys (and moves the last node into its index in ``nodes``); adding a node takes
/// the most recently freed bucket, so removing and re-adding restores every key. ``get_nodes``
/// gives the failover order: where the key goes if the earlier choices fail. No weights.
///
/// Parameters
/// ----------
/// nodes : iterable of str, optional
///     Node names.
/// capacity : int, optional
///     The most nodes the ring will ever hold; default ``max(2 * len(nodes), 16)``. Lookups cost
///     about ``(1 + ln(capacity / n))**2`` steps.
///
/// Examples
/// --------
/// >>> from distcore.hashing import AnchorRing
/// >>> ring = AnchorRing(["a", "b", "c", "d"], capacity=8)
/// >>> before = ring.get_node("user:42")
/// >>> ring.remove_node("a" if before != "a" else "b")
/// >>> ring.get_node("user:42") == before
/// True
#[pyclass(frozen, module = "distcore.hashing", name = "AnchorRing")]
pub struct PyAnchorRing {
    state: Shared<AnchorRing>,
}

placement_class!(PyAnchorRing, "AnchorRing", {
    #[new]
    #[pyo3(signature = (nodes = None, *, capacity = None))]
    fn new(
        py: Python<'_>,
        nodes: Option<&Bound<'_, PyAny>>,
        capacity: Option<usize>,
    ) -> PyResult<Self> {
        let ring = AnchorRing::with_weighted_nodes(nodes_from_py(nodes)?, capacity)
            .map_err(PyDistError::from)?;
        Ok(Self {
            state: shared(py, ring),
        })
    }

    /// The number of buckets: the most nodes the ring can hold.
    #[getter]
    fn capacity(&self) -> usize {
        self.state.read().ring.capacity()
    }
});

/// Adds the placement classes to `_core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyJumpRing>()?;
    m.add_class::<PyRendezvousRing>()?;
    m.add_class::<PyMaglevRing>()?;
    m.add_class::<PyBoundedLoadRing>()?;
    m.add_class::<PyAnchorRing>()?;
    Ok(())
}
