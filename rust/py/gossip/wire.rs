//! memberlist's wire format for Python: messages as dicts, a `Keyring` class.
//!
//! A message is a dict with a ``"type"`` key (``"ping"``, ``"indirect_ping"``, ``"ack"``,
//! ``"nack"``, ``"suspect"``, ``"alive"``, ``"dead"``, ``"user"``, ``"err"``, ``"push_pull"``) and
//! memberlist's fields in snake case. IP addresses are text (``"127.0.0.1"``, ``""`` for none);
//! addresses that are not 4 or 16 bytes stay bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use distcore_core::gossip::packet::{self, PacketOptions, StreamMessage};
use distcore_core::gossip::wire::{Alive, Dead, IndirectPing, Ping, Suspect};
use distcore_core::gossip::{Keyring, Message, NodeState, PushNodeState, PushPull};
use parking_lot::RwLock;
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::errors::{type_name, PyDistError};

/// A node's encryption keys for memberlist's AES-GCM: the first is the primary (it encrypts);
/// every key is tried to decrypt, so a cluster can rotate keys online (add, use, remove).
///
/// Parameters
/// ----------
/// keys : list of bytes
///     16, 24 or 32 bytes each (AES-128, -192, -256), as ``serf keygen`` makes (base64-decoded).
///
/// Examples
/// --------
/// >>> from distcore.gossip.wire import Keyring
/// >>> ring = Keyring([bytes(16)])
/// >>> ring.add(bytes(range(32))); ring.use(bytes(range(32)))
/// >>> [len(k) for k in ring.keys]
/// [32, 16]
#[pyclass(module = "distcore._core", name = "Keyring", frozen)]
pub struct PyKeyring {
    ring: RwLock<Keyring>,
}

impl PyKeyring {
    /// The keys as they are now.
    pub fn snapshot(&self) -> Keyring {
        self.ring.read().clone()
    }

    fn get(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Keyring> {
        match obj {
            None => Ok(Keyring::default()),
            Some(o) if o.is_none() => Ok(Keyring::default()),
            Some(o) => o
                .cast::<PyKeyring>()
                .map(|k| k.get().ring.read().clone())
                .map_err(|_| {
                    PyTypeError::new_err(format!(
                        "keyring must be a Keyring or None, not {}",
                        type_name(o)
                    ))
                }),
        }
    }
}

/// A key the keyring refuses (a wrong length) is an `InvalidKeyError`.
fn key_error(e: distcore_core::Error) -> PyErr {
    match e {
        distcore_core::Error::InvalidArgument(msg) => crate::errors::InvalidKeyError::new_err(msg),
        other => PyDistError(other).into(),
    }
}

#[pymethods]
impl PyKeyring {
    #[new]
    fn py_new(keys: Vec<Vec<u8>>) -> PyResult<Self> {
        Ok(PyKeyring {
            ring: RwLock::new(Keyring::new(keys).map_err(key_error)?),
        })
    }

    /// The keys, primary first.
    #[getter]
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let ring = self.ring.read();
        PyList::new(py, ring.keys().iter().map(|k| PyBytes::new(py, k)))
    }

    /// Adds a secondary key (decrypts, does not encrypt yet).
    fn add(&self, key: Vec<u8>) -> PyResult<()> {
        self.ring.write().add(key).map_err(key_error)
    }

    /// Makes a key already in the ring the primary.
    #[pyo3(name = "use")]
    fn use_key(&self, key: &[u8]) -> Result<(), PyDistError> {
        Ok(self.ring.write().use_key(key)?)
    }

    /// Removes a secondary key.
    fn remove(&self, key: &[u8]) -> Result<(), PyDistError> {
        Ok(self.ring.write().remove(key)?)
    }

    fn __len__(&self) -> usize {
        self.ring.read().keys().len()
    }

    fn __repr__(&self) -> String {
        // Never print key material.
        format!("Keyring({} keys)", self.ring.read().keys().len())
    }
}

fn addr_to_py<'py>(py: Python<'py>, addr: &[u8]) -> Bound<'py, PyAny> {
    match addr.len() {
        0 => PyString::new(py, "").into_any(),
        4 => {
            let ip = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
            PyString::new(py, &ip.to_string()).into_any()
        }
        16 => {
            let octets: [u8; 16] = addr.try_into().expect("16 bytes");
            PyString::new(py, &Ipv6Addr::from(octets).to_string()).into_any()
        }
        _ => PyBytes::new(py, addr).into_any(),
    }
}

fn addr_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_str()?;
        if text.is_empty() {
            return Ok(Vec::new());
        }
        return match text.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => Ok(v4.octets().to_vec()),
            Ok(IpAddr::V6(v6)) => Ok(v6.octets().to_vec()),
            Err(_) => Err(PyValueError::new_err(format!(
                "not an IP address: {text:?}"
            ))),
        };
    }
    obj.extract::<Vec<u8>>()
        .map_err(|_| PyTypeError::new_err("an address must be an IP address str or bytes"))
}

fn msg_dict<'py>(py: Python<'py>, m: &Message) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    match m {
        Message::Ping(p) => {
            d.set_item("type", "ping")?;
            d.set_item("seq_no", p.seq_no)?;
            d.set_item("node", &p.node)?;
            d.set_item("source_addr", addr_to_py(py, &p.source_addr))?;
            d.set_item("source_port", p.source_port)?;
            d.set_item("source_node", &p.source_node)?;
        }
        Message::IndirectPing(p) => {
            d.set_item("type", "indirect_ping")?;
            d.set_item("seq_no", p.seq_no)?;
            d.set_item("target", addr_to_py(py, &p.target))?;
            d.set_item("port", p.port)?;
            d.set_item("node", &p.node)?;
            d.set_item("nack", p.nack)?;
            d.set_item("source_addr", addr_to_py(py, &p.source_addr))?;
            d.set_item("source_port", p.source_port)?;
            d.set_item("source_node", &p.source_node)?;
        }
        Message::Ack { seq_no, payload } => {
            d.set_item("type", "ack")?;
            d.set_item("seq_no", seq_no)?;
            d.set_item("payload", PyBytes::new(py, payload))?;
        }
        Message::Nack { seq_no } => {
            d.set_item("type", "nack")?;
            d.set_item("seq_no", seq_no)?;
        }
        Message::Suspect(s) => {
            d.set_item("type", "suspect")?;
            d.set_item("incarnation", s.incarnation)?;
            d.set_item("node", &s.node)?;
            d.set_item("from", &s.from)?;
        }
        Message::Dead(s) => {
            d.set_item("type", "dead")?;
            d.set_item("incarnation", s.incarnation)?;
            d.set_item("node", &s.node)?;
            d.set_item("from", &s.from)?;
        }
        Message::Alive(a) => {
            d.set_item("type", "alive")?;
            d.set_item("incarnation", a.incarnation)?;
            d.set_item("node", &a.node)?;
            d.set_item("addr", addr_to_py(py, &a.addr))?;
            d.set_item("port", a.port)?;
            d.set_item("meta", PyBytes::new(py, &a.meta))?;
            d.set_item("vsn", PyList::new(py, &a.vsn)?)?;
        }
        Message::User(data) => {
            d.set_item("type", "user")?;
            d.set_item("data", PyBytes::new(py, data))?;
        }
        Message::Err(e) => {
            d.set_item("type", "err")?;
            d.set_item("error", e)?;
        }
    }
    Ok(d)
}

/// Reads the fields of a message dict; missing optional fields take Go's zero values.
struct Get<'a, 'py> {
    d: &'a Bound<'py, PyDict>,
}

impl<'py> Get<'_, 'py> {
    fn opt(&self, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(self.d.get_item(key)?.filter(|v| !v.is_none()))
    }

    fn req(&self, key: &str) -> PyResult<Bound<'py, PyAny>> {
        self.opt(key)?
            .ok_or_else(|| PyKeyError::new_err(format!("message field {key:?} is missing")))
    }

    fn int<T: for<'a> FromPyObject<'a, 'py>>(&self, key: &str, default: Option<T>) -> PyResult<T> {
        match (self.opt(key)?, default) {
            (Some(v), _) => v.extract::<T>().map_err(|_| {
                PyValueError::new_err(format!("message field {key:?} is out of range: {v}"))
            }),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(PyKeyError::new_err(format!(
                "message field {key:?} is missing"
            ))),
        }
    }

    fn text(&self, key: &str, required: bool) -> PyResult<String> {
        match self.opt(key)? {
            Some(v) => v.extract::<String>(),
            None if required => Err(PyKeyError::new_err(format!(
                "message field {key:?} is missing"
            ))),
            None => Ok(String::new()),
        }
    }

    fn bytes(&self, key: &str) -> PyResult<Vec<u8>> {
        self.opt(key)?
            .map_or(Ok(Vec::new()), |v| v.extract::<Vec<u8>>())
    }

    fn addr(&self, key: &str, required: bool) -> PyResult<Vec<u8>> {
        match self.opt(key)? {
            Some(v) => addr_from_py(&v),
            None if required => Err(PyKeyError::new_err(format!(
                "message field {key:?} is missing"
            ))),
            None => Ok(Vec::new()),
        }
    }
}

fn msg_from_dict(obj: &Bound<'_, PyAny>) -> PyResult<Message> {
    let d = obj.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!("a message must be a dict, not {}", type_name(obj)))
    })?;
    let g = Get { d };
    let kind = g.text("type", true)?;
    Ok(match kind.as_str() {
        "ping" => Message::Ping(Ping {
            seq_no: g.int("seq_no", None)?,
            node: g.text("node", false)?,
            source_addr: g.addr("source_addr", false)?,
            source_port: g.int("source_port", Some(0))?,
            source_node: g.text("source_node", false)?,
        }),
        "indirect_ping" => Message::IndirectPing(IndirectPing {
            seq_no: g.int("seq_no", None)?,
            target: g.addr("target", true)?,
            port: g.int("port", None)?,
            node: g.text("node", false)?,
            nack: g.opt("nack")?.map_or(Ok(false), |v| v.is_truthy())?,
            source_addr: g.addr("source_addr", false)?,
            source_port: g.int("source_port", Some(0))?,
            source_node: g.text("source_node", false)?,
        }),
        "ack" => Message::Ack {
            seq_no: g.int("seq_no", None)?,
            payload: g.bytes("payload")?,
        },
        "nack" => Message::Nack {
            seq_no: g.int("seq_no", None)?,
        },
        "suspect" => Message::Suspect(Suspect {
            incarnation: g.int("incarnation", None)?,
            node: g.text("node", true)?,
            from: g.text("from", true)?,
        }),
        "dead" => Message::Dead(Dead {
            incarnation: g.int("incarnation", None)?,
            node: g.text("node", true)?,
            from: g.text("from", true)?,
        }),
        "alive" => Message::Alive(Alive {
            incarnation: g.int("incarnation", None)?,
            node: g.text("node", true)?,
            addr: g.addr("addr", true)?,
            port: g.int("port", None)?,
            meta: g.bytes("meta")?,
            vsn: g.opt("vsn")?.map_or(Ok(Vec::new()), |v| v.extract::<Vec<u8>>())?,
        }),
        "user" => Message::User(g.bytes("data")?),
        "err" => Message::Err(g.text("error", true)?),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown message type {other:?} (ping, indirect_ping, ack, nack, suspect, alive, dead, user, err)"
            )))
        }
    })
}

fn push_pull_dict<'py>(py: Python<'py>, pp: &PushPull) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("type", "push_pull")?;
    d.set_item("join", pp.join)?;
    let nodes = PyList::empty(py);
    for n in &pp.nodes {
        let nd = PyDict::new(py);
        nd.set_item("name", &n.name)?;
        nd.set_item("addr", addr_to_py(py, &n.addr))?;
        nd.set_item("port", n.port)?;
        nd.set_item("meta", PyBytes::new(py, &n.meta))?;
        nd.set_item("incarnation", n.incarnation)?;
        nd.set_item("state", n.state.name())?;
        nd.set_item("vsn", PyList::new(py, &n.vsn)?)?;
        nodes.append(nd)?;
    }
    d.set_item("nodes", nodes)?;
    d.set_item("user_state", PyBytes::new(py, &pp.user_state))?;
    Ok(d)
}

fn push_pull_from_dict(d: &Bound<'_, PyDict>) -> PyResult<PushPull> {
    let g = Get { d };
    let mut nodes = Vec::new();
    for n in g.req("nodes")?.try_iter()? {
        let n = n?;
        let nd = n.cast::<PyDict>().map_err(|_| {
            PyTypeError::new_err(format!(
                "a push-pull node must be a dict, not {}",
                type_name(&n)
            ))
        })?;
        let ng = Get { d: nd };
        nodes.push(PushNodeState {
            name: ng.text("name", true)?,
            addr: ng.addr("addr", true)?,
            port: ng.int("port", None)?,
            meta: ng.bytes("meta")?,
            incarnation: ng.int("incarnation", None)?,
            state: NodeState::from_name(&ng.text("state", true)?).map_err(PyDistError)?,
            vsn: ng
                .opt("vsn")?
                .map_or(Ok(Vec::new()), |v| v.extract::<Vec<u8>>())?,
        });
    }
    Ok(PushPull {
        join: g.opt("join")?.map_or(Ok(false), |v| v.is_truthy())?,
        nodes,
        user_state: g.bytes("user_state")?,
    })
}

/// Every message in a memberlist UDP packet, as dicts.
///
/// Peels the label, the AES-GCM envelope (when ``keyring`` has keys, the packet must decrypt),
/// the CRC, LZW compression and compound messages.
///
/// Raises
/// ------
/// DecodeError
///     If any layer is malformed, the checksum or label does not match, or no key decrypts it.
#[pyfunction]
#[pyo3(signature = (data, keyring = None, label = None))]
fn decode_packet<'py>(
    py: Python<'py>,
    data: &[u8],
    keyring: Option<&Bound<'py, PyAny>>,
    label: Option<&[u8]>,
) -> PyResult<Bound<'py, PyList>> {
    let ring = PyKeyring::get(keyring)?;
    let msgs =
        packet::decode_packet(data, &ring, label.unwrap_or_default()).map_err(PyDistError)?;
    PyList::new(
        py,
        msgs.iter()
            .map(|m| msg_dict(py, m))
            .collect::<PyResult<Vec<_>>>()?,
    )
}

/// One memberlist UDP packet carrying ``messages`` (a compound when there are several).
///
/// ``crc`` adds the CRC-32 header (for peers speaking protocol 5), ``compress`` LZW-compresses
/// when that is smaller, ``keyring`` encrypts with its primary key, ``label`` prefixes a label.
#[pyfunction]
#[pyo3(signature = (messages, keyring = None, *, crc = false, compress = false, label = None))]
fn encode_packet<'py>(
    py: Python<'py>,
    messages: &Bound<'py, PyAny>,
    keyring: Option<&Bound<'py, PyAny>>,
    crc: bool,
    compress: bool,
    label: Option<&[u8]>,
) -> PyResult<Bound<'py, PyBytes>> {
    let msgs = messages
        .try_iter()?
        .map(|m| msg_from_dict(&m?))
        .collect::<PyResult<Vec<_>>>()?;
    let ring = PyKeyring::get(keyring)?;
    let opts = PacketOptions {
        crc,
        compress,
        label: label.unwrap_or_default().to_vec(),
    };
    let bytes = packet::encode_packet(&msgs, &ring, &opts).map_err(PyDistError)?;
    Ok(PyBytes::new(py, &bytes))
}

/// The first message in bytes read from a memberlist stream (TCP), and how many bytes it took;
/// ``None`` while the bytes are not a whole message yet (read more and call again).
///
/// A push-pull comes back as ``{"type": "push_pull", "join", "nodes": [...], "user_state"}``.
#[pyfunction]
#[pyo3(signature = (data, keyring = None, label = None))]
fn decode_stream<'py>(
    py: Python<'py>,
    data: &[u8],
    keyring: Option<&Bound<'py, PyAny>>,
    label: Option<&[u8]>,
) -> PyResult<Option<(Bound<'py, PyDict>, usize)>> {
    let ring = PyKeyring::get(keyring)?;
    match packet::decode_stream(data, &ring, label.unwrap_or_default()).map_err(PyDistError)? {
        None => Ok(None),
        Some((StreamMessage::PushPull(pp), used)) => Ok(Some((push_pull_dict(py, &pp)?, used))),
        Some((StreamMessage::Message(m), used)) => Ok(Some((msg_dict(py, &m)?, used))),
    }
}

/// The bytes to write on a memberlist stream for ``message`` (a push-pull, user, ping, ack or
/// err dict), LZW-compressed if asked (memberlist compresses streams when compression is on)
/// and encrypted when ``keyring`` has keys.
#[pyfunction]
#[pyo3(signature = (message, keyring = None, *, compress = false, label = None))]
fn encode_stream<'py>(
    py: Python<'py>,
    message: &Bound<'py, PyAny>,
    keyring: Option<&Bound<'py, PyAny>>,
    compress: bool,
    label: Option<&[u8]>,
) -> PyResult<Bound<'py, PyBytes>> {
    let d = message.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!(
            "a message must be a dict, not {}",
            type_name(message)
        ))
    })?;
    let kind = Get { d }.text("type", true)?;
    let msg = if kind == "push_pull" {
        StreamMessage::PushPull(push_pull_from_dict(d)?)
    } else {
        StreamMessage::Message(msg_from_dict(message)?)
    };
    let ring = PyKeyring::get(keyring)?;
    let bytes = packet::encode_stream(&msg, &ring, compress, label.unwrap_or_default())
        .map_err(PyDistError)?;
    Ok(PyBytes::new(py, &bytes))
}

/// serf's node metadata for ``tags`` (``{str: str}``): ``0xff``, then a msgpack map.
///
/// Examples
/// --------
/// >>> from distcore.gossip.wire import encode_serf_tags, decode_serf_tags
/// >>> encode_serf_tags({"role": "web"})
/// b'\xff\x81\xa4role\xa3web'
/// >>> decode_serf_tags(encode_serf_tags({"role": "web", "dc": "a"}))
/// {'dc': 'a', 'role': 'web'}
#[pyfunction]
#[allow(clippy::needless_pass_by_value)] // PyO3 extracts arguments by value
fn encode_serf_tags(
    py: Python<'_>,
    tags: std::collections::BTreeMap<String, String>,
) -> PyResult<Bound<'_, PyBytes>> {
    let out = distcore_core::gossip::msgpack::encode_serf_tags(&tags);
    if out.len() > 512 {
        return Err(PyValueError::new_err(format!(
            "tags take {} bytes encoded; node metadata is at most 512",
            out.len()
        )));
    }
    Ok(PyBytes::new(py, &out))
}

/// The tags in serf's node metadata; metadata without serf's ``0xff`` prefix is a bare role
/// (``{"role": text}``), as serf reads it.
///
/// Raises
/// ------
/// DecodeError
///     If the msgpack map is malformed.
#[pyfunction]
fn decode_serf_tags(
    meta: &[u8],
) -> Result<std::collections::BTreeMap<String, String>, PyDistError> {
    Ok(distcore_core::gossip::msgpack::decode_serf_tags(meta)?)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyKeyring>()?;
    m.add_function(wrap_pyfunction!(encode_serf_tags, m)?)?;
    m.add_function(wrap_pyfunction!(decode_serf_tags, m)?)?;
    m.add_function(wrap_pyfunction!(decode_packet, m)?)?;
    m.add_function(wrap_pyfunction!(encode_packet, m)?)?;
    m.add_function(wrap_pyfunction!(decode_stream, m)?)?;
    m.add_function(wrap_pyfunction!(encode_stream, m)?)?;
    Ok(())
}
