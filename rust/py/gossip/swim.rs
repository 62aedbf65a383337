//! `SwimStateMachine`: the sans-IO SWIM + Lifeguard core for a Python runtime (or a test) to
//! drive with bytes and a clock.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use distcore_core::gossip::packet::{self, PacketOptions, StreamMessage};
use distcore_core::gossip::swim::{Event, Member, Output, Swim};
use distcore_core::gossip::wire::kind;
use distcore_core::gossip::Keyring;
use parking_lot::Mutex;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::config::PyGossipConfig;
use crate::errors::{
    type_name, DecodeError, DecryptionError, InvalidLabelError, LabelMismatchError,
    MetadataTooLargeError, PyDistError,
};

/// memberlist's `MetaMaxSize`.
const META_MAX: usize = 512;

fn check_meta(meta: &[u8]) -> PyResult<()> {
    if meta.len() > META_MAX {
        return Err(MetadataTooLargeError::new_err(format!(
            "node metadata is at most {META_MAX} bytes, got {}",
            meta.len()
        )));
    }
    Ok(())
}

/// Why `data` (a packet, or the start of a stream when `stream`) was refused, as the most
/// specific exception: the core reports every refusal as a decode error, but a runtime counts
/// wrong labels and keys apart from corruption (they mean a misconfigured peer, not noise).
fn refusal(err: PyDistError, data: &[u8], keys: &Keyring, label: &[u8], stream: bool) -> PyErr {
    let msg = err.0.to_string();
    let rest = if data.first() == Some(&kind::HAS_LABEL) {
        let len = data.get(1).map_or(usize::MAX, |&l| usize::from(l));
        match data.get(2..2_usize.saturating_add(len)) {
            Some(got) if got != label => return LabelMismatchError::new_err(msg),
            Some(_) => &data[2 + len..],
            None => return DecodeError::new_err(msg),
        }
    } else if !label.is_empty() {
        return LabelMismatchError::new_err(msg);
    } else {
        data
    };
    let encrypted = if stream {
        let framed = rest.first() == Some(&kind::ENCRYPT);
        // A stream says whether it is encrypted; the keyring says whether it must be.
        let opens = |r: &[u8]| {
            let len = r.get(1..5).map_or(usize::MAX, |b| {
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
            });
            r.get(5..5_usize.saturating_add(len))
                .is_none_or(|sealed| keys.decrypt(sealed, &r[..5]).is_ok())
        };
        framed == keys.is_empty() || (framed && !opens(rest))
    } else {
        !keys.is_empty() && keys.decrypt(rest, label).is_err()
    };
    if encrypted {
        DecryptionError::new_err(msg)
    } else {
        PyErr::from(err)
    }
}

/// What `handle_stream` returns: the bytes to write back, the bytes used, the outputs.
type StreamReply<'py> = (Bound<'py, PyBytes>, usize, Bound<'py, PyList>);

fn addr_arg(obj: &Bound<'_, PyAny>) -> PyResult<SocketAddr> {
    let (host, port): (String, u16) = obj.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "an address is a (host, port) tuple, not {}",
            type_name(obj)
        ))
    })?;
    let ip: IpAddr = host
        .parse()
        .map_err(|_| PyValueError::new_err(format!("not an IP address: {host:?}")))?;
    Ok(SocketAddr::new(ip, port))
}

fn seconds(t: f64) -> PyResult<Duration> {
    if t.is_finite() && t >= 0.0 {
        Ok(Duration::from_secs_f64(t))
    } else {
        Err(PyValueError::new_err(format!(
            "a time must be a finite number of seconds >= 0, got {t}"
        )))
    }
}

fn addr_py(py: Python<'_>, a: SocketAddr) -> PyResult<Bound<'_, PyTuple>> {
    (a.ip().to_string(), a.port()).into_pyobject(py)
}

fn member_dict<'py>(py: Python<'py>, m: &Member) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &m.name)?;
    d.set_item("addr", addr_py(py, m.addr)?)?;
    d.set_item("meta", PyBytes::new(py, &m.meta))?;
    d.set_item("incarnation", m.incarnation)?;
    d.set_item("state", m.state.name())?;
    d.set_item("since", m.since.as_secs_f64())?;
    d.set_item("vsn", PyList::new(py, &m.vsn)?)?;
    Ok(d)
}

/// The SWIM + Lifeguard state machine of one member, speaking memberlist's protocol, sans-IO.
///
/// Feed it what arrives (``handle_packet`` for UDP datagrams, ``handle_stream`` for TCP stream
/// messages) and the time (``tick(now)`` when ``next_deadline()`` comes); ``drain()`` returns what
/// to do: ``("packet", (host, port), data)`` to send as one UDP datagram (already encoded,
/// compressed, checksummed and encrypted), ``("push_pull", (host, port), join)`` to open a
/// stream and exchange state (send ``local_state(join)``, then ``handle_stream`` the reply),
/// ``("stream_ping", (host, port), data, deadline)`` to send ``data`` over a new stream and
/// ``handle_stream(reply, is_reply=True)`` the ack before ``deadline`` (memberlist's TCP fallback
/// when an ack is late), ``("event", kind, member)`` for membership changes (``join``,
/// ``update``, ``suspect``, ``alive``, ``dead``, ``leave``, and ``conflict`` when another node
/// announces a live member's name, or this one's, from ``member["other_addr"]``), and
/// ``("user", data)`` for application data broadcast by others. Time is any monotonic clock in seconds. Thread-safe (a lock
/// inside); the asyncio ``distcore.gossip.Node`` is built on it.
///
/// Parameters
/// ----------
/// name : str
///     This member's name, unique in the cluster.
/// addr : (str, int)
///     The address other members reach it at.
/// config : GossipConfig
/// meta : bytes
///     Up to 512 bytes; serf reads it as its tags (``0xff`` + a msgpack map).
/// vsn : sequence of 6 ints
///     Protocol min, max, current, delegate min, max, current; memberlist refuses a member whose
///     ranges do not overlap everyone's. The default, ``(1, 5, 2, 2, 5, 4)``, fits serf.
/// keyring : Keyring, optional
///     Encrypts and decrypts everything when given; keys rotated on it apply at once.
/// seed : int
///     Makes the random choices (probe order, gossip targets) reproducible.
/// now : float
///     The current time.
/// label : bytes, optional
///     memberlist's cluster label (up to 255 bytes): written ahead of every packet and stream
///     and required on everything that arrives, so clusters sharing a network stay apart.
#[pyclass(module = "distcore._core", name = "SwimStateMachine", frozen)]
pub struct PySwim {
    swim: Mutex<Swim>,
    /// Shared with the caller, so keys rotated on it apply at once.
    keyring: Option<Py<super::wire::PyKeyring>>,
    compress: bool,
    /// memberlist's label: sent ahead of every packet and stream, required on what arrives.
    label: Vec<u8>,
}

impl PySwim {
    fn keys(&self, py: Python<'_>) -> Keyring {
        self.keyring
            .as_ref()
            .map(|k| k.bind(py).get().snapshot())
            .unwrap_or_default()
    }

    fn outputs<'py>(&self, py: Python<'py>, swim: &mut Swim) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for o in swim.drain() {
            match o {
                Output::Packet { to, messages } => {
                    // memberlist checksums packets for members that speak protocol 5.
                    let crc = swim
                        .member_at(to)
                        .is_some_and(|m| m.vsn.get(1).is_some_and(|&pmax| pmax >= 5));
                    let opts = PacketOptions {
                        crc,
                        compress: self.compress,
                        label: self.label.clone(),
                    };
                    let data = packet::encode_packet(&messages, &self.keys(py), &opts)
                        .map_err(PyDistError)?;
                    out.append(("packet", addr_py(py, to)?, PyBytes::new(py, &data)))?;
                }
                Output::User(data) => {
                    out.append(("user", PyBytes::new(py, &data)))?;
                }
                Output::PushPull { to, join } => {
                    out.append(("push_pull", addr_py(py, to)?, join))?;
                }
                Output::StreamPing {
                    to,
                    seq_no,
                    node,
                    deadline,
                } => {
                    let ping = StreamMessage::Message(distcore_core::gossip::Message::Ping(
                        distcore_core::gossip::wire::Ping {
                            seq_no,
                            node,
                            ..Default::default()
                        },
                    ));
                    let data = packet::encode_stream(&ping, &self.keys(py), false, &self.label)
                        .map_err(PyDistError)?;
                    out.append((
                        "stream_ping",
                        addr_py(py, to)?,
                        PyBytes::new(py, &data),
                        deadline.as_secs_f64(),
                    ))?;
                }
                Output::Event(e) => {
                    let (kind, member) = match &e {
                        Event::Join(m) => ("join", member_dict(py, m)?),
                        Event::Update(m) => ("update", member_dict(py, m)?),
                        Event::Alive(m) => ("alive", member_dict(py, m)?),
                        Event::Conflict { member, other } => {
                            let d = member_dict(py, member)?;
                            d.set_item("other_addr", addr_py(py, *other)?)?;
                            ("conflict", d)
                        }
                        Event::Suspect(n) | Event::Dead(n) | Event::Leave(n) => {
                            let kind = match e {
                                Event::Suspect(_) => "suspect",
                                Event::Dead(_) => "dead",
                                _ => "leave",
                            };
                            let d = if let Some(m) = swim.member(n) {
                                member_dict(py, m)?
                            } else {
                                let d = PyDict::new(py);
                                d.set_item("name", n)?;
                                d
                            };
                            (kind, d)
                        }
                    };
                    out.append(("event", kind, member))?;
                }
            }
        }
        Ok(out)
    }
}

#[pymethods]
impl PySwim {
    #[new]
    #[pyo3(signature = (name, addr, config = None, meta = b"".to_vec(), vsn = vec![1, 5, 2, 2, 5, 4], keyring = None, seed = 0, now = 0.0, label = None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        name: &str,
        addr: &Bound<'_, PyAny>,
        config: Option<&Bound<'_, PyGossipConfig>>,
        meta: Vec<u8>,
        vsn: Vec<u8>,
        keyring: Option<&Bound<'_, super::wire::PyKeyring>>,
        seed: u64,
        now: f64,
        label: Option<Vec<u8>>,
    ) -> PyResult<Self> {
        let label = label.unwrap_or_default();
        if label.len() > 255 {
            return Err(InvalidLabelError::new_err(format!(
                "a label is at most 255 bytes, got {}",
                label.len()
            )));
        }
        if vsn.len() != 6 {
            return Err(PyValueError::new_err(
                "vsn is 6 numbers: protocol min, max, current, delegate min, max, current",
            ));
        }
        let config = config.map_or_else(distcore_core::gossip::Config::lan, |c| {
            c.get().config.clone()
        });
        check_meta(&meta)?;
        let compress = config.enable_compression;
        let swim = Swim::new(
            config,
            name,
            addr_arg(addr)?,
            meta,
            vsn,
            seed,
            seconds(now)?,
        )
        .map_err(PyDistError)?;
        Ok(PySwim {
            swim: Mutex::new(swim),
            keyring: keyring.map(|k| k.clone().unbind()),
            compress,
            label,
        })
    }

    /// This member's name.
    #[getter]
    fn name(&self) -> String {
        self.swim.lock().name().to_owned()
    }

    /// Every known member (this one included), by name, as dicts: name, addr, meta, incarnation,
    /// state, since, vsn.
    fn members<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let swim = self.swim.lock();
        // By name, as before the membership became a table of slots.
        let mut members: Vec<_> = swim.members().collect();
        members.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        PyList::new(
            py,
            members
                .into_iter()
                .map(|m| member_dict(py, m))
                .collect::<PyResult<Vec<_>>>()?,
        )
    }

    /// Lifeguard's health score of this member (0 is healthy).
    #[getter]
    fn health_score(&self) -> u32 {
        self.swim.lock().health_score()
    }

    /// Handles one UDP datagram from ``sender``; returns the outputs (see ``drain``).
    ///
    /// Raises
    /// ------
    /// LabelMismatchError
    ///     If the datagram's label is not this member's (or is missing); a DecodeError.
    /// DecryptionError
    ///     If no key in the keyring opens it; a DecodeError.
    /// DecodeError
    ///     If the datagram is not a valid memberlist packet otherwise (truncated, a bad CRC, an
    ///     unknown message type, ...).
    fn handle_packet<'py>(
        &self,
        py: Python<'py>,
        sender: &Bound<'py, PyAny>,
        data: &[u8],
        now: f64,
    ) -> PyResult<Bound<'py, PyList>> {
        let from = addr_arg(sender)?;
        let keys = self.keys(py);
        let msgs = packet::decode_packet(data, &keys, &self.label)
            .map_err(|e| refusal(PyDistError(e), data, &keys, &self.label, false))?;
        let mut swim = self.swim.lock();
        swim.handle_packet(from, &msgs, seconds(now)?);
        self.outputs(py, &mut swim)
    }

    /// Handles the bytes read from a stream so far: ``None`` while they are not a whole message;
    /// else ``(reply, used, outputs)`` where ``reply`` is the bytes to write back (this member's
    /// state for a push-pull that was not a reply, an ack for a ping) or ``b""``.
    #[pyo3(signature = (data, now, *, is_reply = false))]
    fn handle_stream<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        now: f64,
        is_reply: bool,
    ) -> PyResult<Option<StreamReply<'py>>> {
        let keys = self.keys(py);
        let Some((msg, used)) = packet::decode_stream(data, &keys, &self.label)
            .map_err(|e| refusal(PyDistError(e), data, &keys, &self.label, true))?
        else {
            return Ok(None);
        };
        let now = seconds(now)?;
        let mut swim = self.swim.lock();
        let reply = match msg {
            StreamMessage::PushPull(pp) => {
                swim.merge_remote_state(&pp, now);
                if is_reply {
                    Vec::new()
                } else {
                    let state = StreamMessage::PushPull(swim.local_state(false));
                    packet::encode_stream(&state, &self.keys(py), self.compress, &self.label)
                        .map_err(PyDistError)?
                }
            }
            StreamMessage::Message(distcore_core::gossip::Message::Ping(p)) => {
                let ack = StreamMessage::Message(distcore_core::gossip::Message::Ack {
                    seq_no: p.seq_no,
                    payload: Vec::new(),
                });
                packet::encode_stream(&ack, &self.keys(py), false, &self.label)
                    .map_err(PyDistError)?
            }
            StreamMessage::Message(distcore_core::gossip::Message::Ack { seq_no, .. })
                if is_reply =>
            {
                swim.stream_ack(seq_no); // the answer to our fallback ping
                Vec::new()
            }
            StreamMessage::Message(_) => Vec::new(),
        };
        let outputs = self.outputs(py, &mut swim)?;
        Ok(Some((PyBytes::new(py, &reply), used, outputs)))
    }

    /// This member's full state, encoded for a stream (the first half of a push-pull).
    fn local_state<'py>(&self, py: Python<'py>, join: bool) -> PyResult<Bound<'py, PyBytes>> {
        let state = StreamMessage::PushPull(self.swim.lock().local_state(join));
        let data = packet::encode_stream(&state, &self.keys(py), self.compress, &self.label)
            .map_err(PyDistError)?;
        Ok(PyBytes::new(py, &data))
    }

    /// Runs the timers due at ``now``; returns the outputs.
    fn tick<'py>(&self, py: Python<'py>, now: f64) -> PyResult<Bound<'py, PyList>> {
        let mut swim = self.swim.lock();
        swim.tick(seconds(now)?);
        self.outputs(py, &mut swim)
    }

    /// When ``tick`` next has work to do.
    fn next_deadline(&self) -> f64 {
        self.swim.lock().next_deadline().as_secs_f64()
    }

    /// Joins through ``seeds`` ((host, port) tuples); returns the outputs (push-pulls).
    fn join<'py>(
        &self,
        py: Python<'py>,
        seeds: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let seeds = seeds
            .try_iter()?
            .map(|s| addr_arg(&s?))
            .collect::<PyResult<Vec<_>>>()?;
        let mut swim = self.swim.lock();
        swim.join(&seeds);
        self.outputs(py, &mut swim)
    }

    /// Queues application data to piggyback on gossip.
    fn broadcast(&self, data: Vec<u8>) {
        self.swim.lock().broadcast(data);
    }

    /// Replaces this member's metadata (a new incarnation, gossiped).
    ///
    /// Raises
    /// ------
    /// MetadataTooLargeError
    ///     If ``meta`` is over 512 bytes (nothing changes).
    fn update_meta(&self, meta: Vec<u8>) -> PyResult<()> {
        check_meta(&meta)?;
        Ok(self.swim.lock().update_meta(meta).map_err(PyDistError)?)
    }

    /// Starts a graceful leave (gossiped as "left", not "dead").
    fn leave(&self, now: f64) -> PyResult<()> {
        self.swim.lock().leave(seconds(now)?);
        Ok(())
    }

    fn __repr__(&self) -> String {
        let swim = self.swim.lock();
        format!(
            "SwimStateMachine({:?}, members={}, live={})",
            swim.name(),
            swim.members().count(),
            swim.live_count()
        )
    }
}
