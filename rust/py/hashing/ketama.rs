//! `KetamaRing`: the memcached family's routing (twemproxy, libmemcached), bit-exact.

use distcore_core::hashing::{Distribution, HashFn, KetamaRing, Profile, Server};
use distcore_core::par::for_each_chunk;
use distcore_core::Error;
use numpy::{IntoPyArray, PyArray1};
use std::sync::Arc;

use parking_lot::RwLock;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::batch::{maybe_detach, BatchData, BatchInput};
use super::hashfn::with_key_bytes;
use crate::errors::PyDistError;

struct State {
    ring: KetamaRing,
    /// Each server's name as a Python str, so a lookup returns it without allocating.
    names: Vec<Py<PyString>>,
}

impl State {
    fn new(py: Python<'_>, ring: KetamaRing) -> State {
        let names = ring
            .servers()
            .iter()
            .map(|s| PyString::new(py, &s.name()).unbind())
            .collect();
        State { ring, names }
    }
}

/// A consistent-hash ring of memcached servers that routes keys exactly as twemproxy or libmemcached.
///
/// Parameters
/// ----------
/// servers : list
///     Servers as nutcracker writes them (``"host:port:weight [name]"``, ``"host:port"``, or a bare
///     ``"name"``), as dicts ``{"host", "port", "weight", "name"}`` or as a dict ``{spec: weight}``.
/// profile : str
///     ``"twemproxy"`` (default), ``"libmemcached_weighted"`` (PHP's ``OPT_LIBKETAMA_COMPATIBLE``),
///     ``"libmemcached"`` (plain ketama) or ``"libmemcached_spy"``.
/// hash : str, optional
///     Key hash; defaults to the profile's (``fnv1a_64`` for twemproxy, ``md5`` for weighted
///     libmemcached, ``one_at_a_time`` for plain libmemcached).
/// distribution : str
///     ``"ketama"`` (default), ``"modula"`` or ``"random"``.
/// hash_tag : str, optional
///     Two characters, e.g. ``"{}"``: only the text between them is hashed.
///
/// Examples
/// --------
/// >>> from distcore.hashing import KetamaRing
/// >>> ring = KetamaRing(["10.0.0.1:11211:1", "10.0.0.2:11211:1", "10.0.0.3:11211:1"])
/// >>> ring.get_node("user:42")
/// '10.0.0.1:11211'
/// >>> ring.get_nodes("user:42", 2)
/// ['10.0.0.1:11211', '10.0.0.3:11211']
#[pyclass(frozen, subclass, module = "distcore.hashing", name = "KetamaRing")]
pub struct PyKetamaRing {
    // An Arc so a batch can keep its snapshot while the GIL is released without holding the lock:
    // a writer that waits for the lock while holding the GIL would otherwise deadlock with it.
    state: RwLock<Arc<State>>,
}

fn server_from_py(obj: &Bound<'_, PyAny>, weight: Option<u32>) -> PyResult<Server> {
    let mut server = if let Ok(s) = obj.cast::<PyString>() {
        Server::parse(s.to_str()?).map_err(PyDistError::from)?
    } else if let Ok(d) = obj.cast::<PyDict>() {
        let host: String = d
            .get_item("host")?
            .ok_or_else(|| PyDistError(Error::Config("servers: missing \"host\"".into())))?
            .extract()?;
        let port: u16 = d.get_item("port")?.map_or(Ok(11211), |p| p.extract())?;
        let weight: u32 = d.get_item("weight")?.map_or(Ok(1), |w| w.extract())?;
        let alias: Option<String> = d.get_item("name")?.map(|n| n.extract()).transpose()?;
        Server {
            host,
            port,
            weight,
            alias,
        }
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        let (host, port, weight, alias): (String, u16, Option<u32>, Option<String>) = match t.len()
        {
            2 => {
                let (h, p) = t.extract()?;
                (h, p, None, None)
            }
            3 => {
                let (h, p, w) = t.extract()?;
                (h, p, Some(w), None)
            }
            4 => t.extract()?,
            _ => {
                return Err(PyValueError::new_err(
                    "server tuple must be (host, port[, weight[, name]])",
                ))
            }
        };
        Server {
            host,
            port,
            weight: weight.unwrap_or(1),
            alias,
        }
    } else {
        return Err(PyTypeError::new_err(
            "a server must be a str \"host:port:weight [name]\", a dict or a tuple",
        ));
    };
    if let Some(w) = weight {
        server.weight = w;
    }
    if server.weight == 0 {
        return Err(PyDistError(Error::InvalidWeight(0.0)).into());
    }
    Ok(server)
}

fn weight_from_py(w: &Bound<'_, PyAny>) -> PyResult<u32> {
    match w.extract::<i64>() {
        Ok(v) if v > 0 && v <= i64::from(u32::MAX) => Ok(v as u32),
        Ok(v) => Err(PyDistError(Error::InvalidWeight(v as f64)).into()),
        Err(_) => Err(PyTypeError::new_err("a weight must be a positive int")),
    }
}

fn servers_from_py(servers: &Bound<'_, PyAny>) -> PyResult<Vec<Server>> {
    if let Ok(d) = servers.cast::<PyDict>() {
        return d
            .iter()
            .map(|(k, v)| server_from_py(&k, Some(weight_from_py(&v)?)))
            .collect();
    }
    if servers.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "servers must be a list of servers, not a str",
        ));
    }
    servers
        .try_iter()?
        .map(|s| server_from_py(&s?, None))
        .collect()
}

impl PyKetamaRing {
    fn lookup(&self, key: &Bound<'_, PyAny>) -> PyResult<usize> {
        let st = self.state.read();
        Ok(with_key_bytes(key, |k| st.ring.lookup(k))?.map_err(PyDistError::from)?)
    }

    fn mutate(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut KetamaRing) -> Result<(), Error>,
    ) -> PyResult<()> {
        let mut st = self.state.write();
        let mut ring = st.ring.clone();
        f(&mut ring).map_err(PyDistError::from)?;
        *st = Arc::new(State::new(py, ring));
        Ok(())
    }
}

#[pymethods]
impl PyKetamaRing {
    #[new]
    #[pyo3(signature = (servers, *, profile = "twemproxy", hash = None, distribution = "ketama", hash_tag = None))]
    fn new(
        py: Python<'_>,
        servers: &Bound<'_, PyAny>,
        profile: &str,
        hash: Option<&str>,
        distribution: &str,
        hash_tag: Option<&str>,
    ) -> PyResult<Self> {
        let profile = Profile::from_name(profile).map_err(PyDistError::from)?;
        let hash = hash
            .map(HashFn::from_name)
            .transpose()
            .map_err(PyDistError::from)?;
        let distribution = Distribution::from_name(distribution).map_err(PyDistError::from)?;
        let servers = servers_from_py(servers)?;
        let ring = KetamaRing::new(profile, servers, hash, distribution, hash_tag)
            .map_err(PyDistError::from)?;
        Ok(PyKetamaRing {
            state: RwLock::new(Arc::new(State::new(py, ring))),
        })
    }

    /// The name of the server ``key`` goes to: its alias if it has one, else ``host:port``.
    fn get_node(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyString>> {
        let st = self.state.read();
        let i = with_key_bytes(key, |k| st.ring.lookup(k))?.map_err(PyDistError::from)?;
        Ok(st.names[i].clone_ref(py))
    }

    /// The index (into ``nodes``) of the server ``key`` goes to.
    fn get_index(&self, key: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.lookup(key)
    }

    /// ``n`` distinct servers for ``key`` (replicas), the first being ``get_node(key)``.
    #[pyo3(name = "get_nodes")]
    fn get_nodes_py(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        n: usize,
    ) -> PyResult<Vec<Py<PyString>>> {
        let st = self.state.read();
        let idx = with_key_bytes(key, |k| st.ring.lookup_n(k, n))?.map_err(PyDistError::from)?;
        Ok(idx.into_iter().map(|i| st.names[i].clone_ref(py)).collect())
    }

    /// Server indices for many keys at once: a list of str/bytes, or a numpy uint64 array of key
    /// hashes as ``hash`` returns them. Returns an int32 numpy array of indices into ``nodes``.
    fn get_node_indices<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<i32>>> {
        // Keys are copied out and hashed on every core with the GIL released: measured faster
        // than hashing them in place while attached, even for fnv1a (2 cores, 1M keys).
        let input = BatchInput::extract(keys)?;
        let st = Arc::clone(&self.state.read());
        let ring = &st.ring;
        let data = input.data()?;
        if let BatchData::Hashes(hashes) = data {
            if hashes.iter().any(|&h| h > u64::from(u32::MAX)) {
                return Err(PyValueError::new_err(
                    "ketama key hashes are 32-bit: values must be < 2**32",
                ));
            }
        }
        // Checked once here, so the per-key lookups below cannot fail.
        ring.lookup(b"").map_err(PyDistError::from)?;
        let mut out = vec![0i32; data.len()];
        let fill = |start: usize, chunk: &mut [i32]| match data {
            BatchData::Keys(packed) => {
                for (i, o) in chunk.iter_mut().enumerate() {
                    *o = ring.lookup(packed.get(start + i)).unwrap_or_default() as i32;
                }
            }
            BatchData::Hashes(hashes) => {
                for (&h, o) in hashes[start..].iter().zip(chunk.iter_mut()) {
                    *o = ring.lookup_hash(h as u32).unwrap_or_default() as i32;
                }
            }
        };
        maybe_detach(py, out.len(), || for_each_chunk(&mut out, fill));
        Ok(out.into_pyarray(py))
    }

    /// The key hash the ring uses for ``key`` (after ``hash_tag``), as the peer computes it.
    fn hash(&self, key: &Bound<'_, PyAny>) -> PyResult<u32> {
        let st = self.state.read();
        with_key_bytes(key, |k| st.ring.key_hash(k))
    }

    /// Server names in the ring's order (twemproxy: sorted by name; libmemcached: config order).
    #[getter(nodes)]
    fn node_names<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.state.read().names.iter().map(|n| n.clone_ref(py)))
    }

    /// Each server's weight, by name.
    #[getter]
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for s in self.state.read().ring.servers() {
            d.set_item(s.name(), s.weight)?;
        }
        Ok(d)
    }

    /// The compatibility profile.
    #[getter]
    fn profile(&self) -> &'static str {
        match self.state.read().ring.profile() {
            Profile::Twemproxy => "twemproxy",
            Profile::LibmemcachedWeighted => "libmemcached_weighted",
            Profile::Libmemcached => "libmemcached",
            Profile::LibmemcachedSpy => "libmemcached_spy",
        }
    }

    /// The key hash function's name.
    #[getter]
    fn hash_name(&self) -> &'static str {
        self.state.read().ring.hash_fn().name()
    }

    /// ``"ketama"``, ``"modula"`` or ``"random"``.
    #[getter]
    fn algorithm(&self) -> &'static str {
        match self.state.read().ring.distribution() {
            Distribution::Ketama => "ketama",
            Distribution::Modula => "modula",
            Distribution::Random => "random",
        }
    }

    /// The hash tag, or ``None``.
    #[getter]
    fn hash_tag(&self) -> Option<String> {
        self.state
            .read()
            .ring
            .hash_tag()
            .map(|t| String::from_utf8_lossy(&t).into_owned())
    }

    /// Each server's share of the key space (a dict name -> fraction; ejected servers get 0).
    fn distribution<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.state.read();
        let d = PyDict::new(py);
        for (name, share) in st.names.iter().zip(st.ring.shares()) {
            d.set_item(name.bind(py), share)?;
        }
        Ok(d)
    }

    /// The continuum: sorted uint32 points and the int32 index of the server owning each.
    fn points<'py>(
        &self,
        py: Python<'py>,
    ) -> (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<i32>>) {
        let st = self.state.read();
        let c = st.ring.continuum();
        let owners: Vec<i32> = c.owners().iter().map(|&o| o as i32).collect();
        (
            c.points().to_vec().into_pyarray(py),
            owners.into_pyarray(py),
        )
    }

    /// Adds a server (``"host:port:weight [name]"``, dict or tuple); ``weight`` overrides the spec's.
    #[pyo3(signature = (server, weight = None))]
    fn add_node(
        &self,
        py: Python<'_>,
        server: &Bound<'_, PyAny>,
        weight: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let weight = weight.map(weight_from_py).transpose()?;
        let server = server_from_py(server, weight)?;
        self.mutate(py, |r| r.add_server(server))
    }

    /// Removes a server by name.
    fn remove_node(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        self.mutate(py, |r| r.remove_server(name))
    }

    /// Changes a server's weight.
    fn set_weight(&self, py: Python<'_>, name: &str, weight: &Bound<'_, PyAny>) -> PyResult<()> {
        let weight = weight_from_py(weight)?;
        self.mutate(py, |r| r.set_weight(name, weight))
    }

    /// Takes a server out of the ring as twemproxy's ``auto_eject_hosts`` does (points recomputed
    /// over the live servers); ``restore`` puts it back.
    fn eject(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        self.mutate(py, |r| r.set_live(name, false))
    }

    /// Puts an ejected server back.
    fn restore(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        self.mutate(py, |r| r.set_live(name, true))
    }

    fn __len__(&self) -> usize {
        self.state.read().ring.servers().len()
    }

    fn __contains__(&self, name: &str) -> bool {
        self.state
            .read()
            .ring
            .servers()
            .iter()
            .any(|s| s.name() == name)
    }

    fn __repr__(&self) -> String {
        let st = self.state.read();
        let r = &st.ring;
        format!(
            "KetamaRing({} servers, profile={:?}, hash={:?}, distribution={:?})",
            r.servers().len(),
            self.profile(),
            r.hash_fn().name(),
            self.algorithm()
        )
    }
}

/// Parses one nutcracker server spec (``"host:port:weight [name]"``, ``"host:port"`` or a bare
/// ``"name"``) into ``(host, port, weight, alias, name)``, exactly as ``KetamaRing`` reads it.
#[pyfunction]
fn parse_server(spec: &str) -> Result<(String, u16, u32, Option<String>, String), PyDistError> {
    let s = Server::parse(spec)?;
    let name = s.name();
    Ok((s.host, s.port, s.weight, s.alias, name))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(parse_server, m)?)?;
    m.add_class::<PyKetamaRing>()
}
