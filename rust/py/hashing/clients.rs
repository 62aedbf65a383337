//! `PymemcacheRing` and `PythonMemcachedRing`: the Python memcached clients' own routing.

use distcore_core::hashing::clients::{
    low_bytes, pymemcache_node_name, python_memcached_node_name, PymemcacheRing,
    PythonMemcachedRing,
};
use distcore_core::Error;
use numpy::{IntoPyArray, PyArray1};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyString, PyTuple};

use super::batch::{maybe_detach, BatchData, BatchInput};
use super::hashfn::with_key_bytes;
use super::uhashring::{items, key_text, Texts};
use crate::errors::PyDistError;

/// Calls `f` with pymemcache's murmur input for `f"{key}"`: the low byte of each character.
#[inline]
fn with_units<R>(key: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    let text = key_text(key)?;
    if let Ok(t) = text.to_str() {
        return Ok(f(&low_bytes(t)));
    }
    // Lone surrogates have no UTF-8; UTF-32 keeps every code point, whose low byte is first.
    let wide = text.call_method1("encode", ("utf-32-le", "surrogatepass"))?;
    let wide = wide.cast::<PyBytes>()?.as_bytes();
    let units: Vec<u8> = wide.chunks_exact(4).map(|c| c[0]).collect();
    Ok(f(&units))
}

fn names_of(py: Python<'_>, nodes: &[String]) -> Vec<Py<PyString>> {
    nodes
        .iter()
        .map(|n| PyString::new(py, n).unbind())
        .collect()
}

fn reject_str(servers: &Bound<'_, PyAny>) -> PyResult<()> {
    if servers.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "servers must be a list of servers, not a str",
        ));
    }
    Ok(())
}

/// pymemcache 4.0.0 ``HashClient``'s routing (its default ``RendezvousHash``), bit-exact.
///
/// Each server scores ``murmur3_32(f"{node}-{key}")`` with pymemcache's own murmur3 and the
/// highest score wins; on equal scores the larger node name wins, as pymemcache's ``max``.
///
/// Parameters
/// ----------
/// servers : list
///     As ``HashClient`` takes them: ``(host, port)`` tuples or strings (``"host:port"``,
///     ``"host"`` for port 11211, ``"[::1]:11211"``, ``"unix:/path"`` or ``"/path"``).
///
/// Notes
/// -----
/// Keys hash as pymemcache hashes them: a str by the low byte of each character's code point (its
/// pure-Python murmur3 applies ``ord(c) & 0xff``, so ``"é"`` and ``"ĩ"`` differ from their UTF-8),
/// and bytes as their repr (``f"{b'k'}"`` is ``"b'k'"``), because ``HashClient`` passes keys to the
/// hasher unchanged. ``HashClient``'s ``key_prefix`` is not part of the routed key.
///
/// Examples
/// --------
/// >>> from distcore.hashing import PymemcacheRing
/// >>> ring = PymemcacheRing([("10.0.0.1", 11211), ("10.0.0.2", 11211), "10.0.0.3:11212"])
/// >>> ring.nodes
/// ('10.0.0.1:11211', '10.0.0.2:11211', '10.0.0.3:11212')
/// >>> ring.get_node("user:42") in ring.nodes
/// True
#[pyclass(frozen, subclass, module = "distcore.hashing", name = "PymemcacheRing")]
pub struct PyPymemcacheRing {
    ring: PymemcacheRing,
    names: Vec<Py<PyString>>,
}

fn pymemcache_name(server: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = server.cast::<PyString>() {
        return Ok(pymemcache_node_name(s.to_str()?).map_err(PyDistError::from)?);
    }
    if let Ok(t) = server.cast::<PyTuple>() {
        if t.len() == 2 {
            // HashClient's `"%s:%s" % (host, port)`.
            let host = t.get_item(0)?.str()?;
            let port = t.get_item(1)?.str()?;
            return Ok(format!("{}:{}", host.to_str()?, port.to_str()?));
        }
        return Err(PyValueError::new_err("a server tuple must be (host, port)"));
    }
    Err(PyTypeError::new_err(
        "a server must be a (host, port) tuple or a \"host:port\" str",
    ))
}

#[pymethods]
impl PyPymemcacheRing {
    #[new]
    fn new(py: Python<'_>, servers: &Bound<'_, PyAny>) -> PyResult<Self> {
        reject_str(servers)?;
        let names = items(servers)?
            .iter()
            .map(pymemcache_name)
            .collect::<PyResult<Vec<String>>>()?;
        let ring = PymemcacheRing::new(names);
        let names = names_of(py, ring.nodes());
        Ok(PyPymemcacheRing { ring, names })
    }

    /// The ``"host:port"`` name of the server ``key`` goes to.
    fn get_node(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyString>> {
        let i = with_units(key, |k| self.ring.lookup(k))?.map_err(PyDistError::from)?;
        Ok(self.names[i].clone_ref(py))
    }

    /// The index (into ``nodes``) of the server ``key`` goes to.
    fn get_index(&self, key: &Bound<'_, PyAny>) -> PyResult<usize> {
        Ok(with_units(key, |k| self.ring.lookup(k))?.map_err(PyDistError::from)?)
    }

    /// Server indices (into ``nodes``) for a list of str/bytes keys: an int32 numpy array.
    fn get_node_indices<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<i32>>> {
        if keys.hasattr("__array_interface__")? {
            return Err(PyTypeError::new_err(
                "pymemcache routes by the key's text: pass a list of str/bytes keys, not an array",
            ));
        }
        let mut texts = Texts::default();
        for k in items(keys)? {
            with_units(&k, |u| texts.push(u))?;
        }
        let ring = &self.ring;
        let out: Result<Vec<i32>, Error> = maybe_detach(py, texts.len(), || {
            texts
                .iter()
                .map(|k| ring.lookup(k).map(|i| i as i32))
                .collect()
        });
        Ok(out.map_err(PyDistError::from)?.into_pyarray(py))
    }

    /// Server names (``"host:port"``) in the order given, each once.
    #[getter(nodes)]
    fn node_names<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.names.iter().map(|n| n.clone_ref(py)))
    }

    fn __len__(&self) -> usize {
        self.names.len()
    }

    fn __contains__(&self, name: &str) -> bool {
        self.ring.nodes().iter().any(|n| n == name)
    }

    fn __repr__(&self) -> String {
        format!("PymemcacheRing({:?})", self.ring.nodes())
    }
}

/// python-memcached 1.62 ``Client``'s routing with every server alive, bit-exact.
///
/// ``bucket = buckets[((crc32(key) & 0xffffffff) >> 16) & 0x7fff % len(buckets)]``, where
/// ``buckets`` holds each server ``weight`` times in config order.
///
/// Parameters
/// ----------
/// servers : list
///     As ``memcache.Client`` takes them: ``"host:port"`` strings (``"inet:host:port"``,
///     ``"inet6:[addr]:port"``, ``"unix:/path"``) or ``("host:port", weight)`` tuples.
///
/// Notes
/// -----
/// Keys are hashed as python-memcached hashes them: a str as UTF-8, bytes as they are, an int as
/// ``str(key)`` (as its ``*_multi`` methods do), and a ``(hash, key)`` tuple by its explicit
/// ``hash``. python-memcached moves a key off a dead server by rehashing ``str(hash) + str(i)``;
/// this ring assumes every server is alive. ``key_prefix`` and ``key_encoder`` are not applied:
/// pass the key as the client hashes it.
///
/// Examples
/// --------
/// >>> from distcore.hashing import PythonMemcachedRing
/// >>> ring = PythonMemcachedRing(["10.0.0.1:11211", ("10.0.0.2:11211", 2)])
/// >>> ring.nodes
/// ('10.0.0.1:11211', '10.0.0.2:11211')
/// >>> ring.get_node("foobar")
/// '10.0.0.1:11211'
#[pyclass(
    frozen,
    subclass,
    module = "distcore.hashing",
    name = "PythonMemcachedRing"
)]
pub struct PyPythonMemcachedRing {
    ring: PythonMemcachedRing,
    names: Vec<Py<PyString>>,
}

fn python_memcached_server(server: &Bound<'_, PyAny>) -> PyResult<(String, u32)> {
    let (spec, weight) = if let Ok(t) = server.cast::<PyTuple>() {
        let (spec, weight): (Bound<'_, PyString>, Bound<'_, PyAny>) = t.extract()?;
        (spec, weight)
    } else if let Ok(s) = server.cast::<PyString>() {
        (s.clone(), PyInt::new(server.py(), 1).into_any())
    } else {
        return Err(PyTypeError::new_err(
            "a server must be a \"host:port\" str or a (\"host:port\", weight) tuple",
        ));
    };
    let weight = match weight.extract::<i64>() {
        Ok(w) if w > 0 && w <= i64::from(u32::MAX) => w as u32,
        Ok(w) => return Err(PyDistError(Error::InvalidWeight(w as f64)).into()),
        Err(_) => return Err(PyTypeError::new_err("a weight must be a positive int")),
    };
    let name = python_memcached_node_name(spec.to_str()?).map_err(PyDistError::from)?;
    Ok((name, weight))
}

impl PyPythonMemcachedRing {
    fn lookup(&self, key: &Bound<'_, PyAny>) -> PyResult<usize> {
        if let Ok(t) = key.cast::<PyTuple>() {
            let (h, _key): (Bound<'_, PyAny>, Bound<'_, PyAny>) = t.extract()?;
            if self.ring.bucket_count() == 0 {
                return Err(PyDistError(Error::EmptyRing).into());
            }
            // Python's `%`: a negative or huge hash still lands in 0..len.
            let slot: u64 = h.rem(self.ring.bucket_count())?.extract()?;
            return Ok(self.ring.lookup_hash(slot).map_err(PyDistError::from)?);
        }
        let r = if key.is_instance_of::<PyInt>() {
            with_key_bytes(key.str()?.as_any(), |k| self.ring.lookup(k))?
        } else {
            with_key_bytes(key, |k| self.ring.lookup(k))?
        };
        Ok(r.map_err(PyDistError::from)?)
    }
}

#[pymethods]
impl PyPythonMemcachedRing {
    #[new]
    fn new(py: Python<'_>, servers: &Bound<'_, PyAny>) -> PyResult<Self> {
        reject_str(servers)?;
        let servers = items(servers)?
            .iter()
            .map(python_memcached_server)
            .collect::<PyResult<Vec<_>>>()?;
        let ring = PythonMemcachedRing::new(servers).map_err(PyDistError::from)?;
        let names = names_of(py, ring.nodes());
        Ok(PyPythonMemcachedRing { ring, names })
    }

    /// The ``"host:port"`` name of the server ``key`` goes to.
    fn get_node(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyString>> {
        Ok(self.names[self.lookup(key)?].clone_ref(py))
    }

    /// The index (into ``nodes``) of the server ``key`` goes to.
    fn get_index(&self, key: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.lookup(key)
    }

    /// Server indices (into ``nodes``) for many keys: a list of str/bytes keys, or a numpy
    /// uint64 array of explicit server hashes (the ``(hash, key)`` form). An int32 numpy array.
    fn get_node_indices<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<i32>>> {
        let input = BatchInput::extract(keys)?;
        let data = input.data()?;
        let ring = &self.ring;
        let out: Result<Vec<i32>, Error> = maybe_detach(py, data.len(), || match data {
            BatchData::Keys(packed) => packed
                .iter()
                .map(|k| ring.lookup(k).map(|i| i as i32))
                .collect(),
            BatchData::Hashes(hashes) => hashes
                .iter()
                .map(|&h| ring.lookup_hash(h).map(|i| i as i32))
                .collect(),
        });
        Ok(out.map_err(PyDistError::from)?.into_pyarray(py))
    }

    /// python-memcached's server hash of ``key`` (``cmemcache_hash``), before ``% len(buckets)``.
    #[staticmethod]
    fn hash(key: &Bound<'_, PyAny>) -> PyResult<u32> {
        with_key_bytes(key, distcore_core::hashing::clients::python_memcached_hash)
    }

    /// Server names in config order.
    #[getter(nodes)]
    fn node_names<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.names.iter().map(|n| n.clone_ref(py)))
    }

    /// Server weights in config order.
    #[getter]
    fn weights(&self) -> Vec<u32> {
        self.ring.weights().to_vec()
    }

    fn __len__(&self) -> usize {
        self.names.len()
    }

    fn __contains__(&self, name: &str) -> bool {
        self.ring.nodes().iter().any(|n| n == name)
    }

    fn __repr__(&self) -> String {
        let servers: Vec<String> = self
            .ring
            .nodes()
            .iter()
            .zip(self.ring.weights())
            .map(|(n, w)| format!("({n:?}, {w})"))
            .collect();
        format!("PythonMemcachedRing([{}])", servers.join(", "))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPymemcacheRing>()?;
    m.add_class::<PyPythonMemcachedRing>()?;
    Ok(())
}
