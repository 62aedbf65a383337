//! memberlist's messages: a type byte, then a msgpack map with the Go struct's field names.

use rmpv::Value;

use super::msgpack::{decode_error, read_value, Fields, MapWriter};
use crate::error::{Error, Result};

/// memberlist's message type bytes (an append-only enum in `net.go`).
pub mod kind {
    pub const PING: u8 = 0;
    pub const INDIRECT_PING: u8 = 1;
    pub const ACK: u8 = 2;
    pub const SUSPECT: u8 = 3;
    pub const ALIVE: u8 = 4;
    pub const DEAD: u8 = 5;
    pub const PUSH_PULL: u8 = 6;
    pub const COMPOUND: u8 = 7;
    pub const USER: u8 = 8;
    pub const COMPRESS: u8 = 9;
    pub const ENCRYPT: u8 = 10;
    pub const NACK: u8 = 11;
    pub const HAS_CRC: u8 = 12;
    pub const ERR: u8 = 13;
    /// Newer memberlist prefixes a packet with a label (`hasLabelMsg`).
    pub const HAS_LABEL: u8 = 244;
}

/// A probe: "are you alive?" (`ping`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ping {
    pub seq_no: u32,
    /// The name of the node the sender means to probe.
    pub node: String,
    /// Where to answer, for a ping relayed on behalf of another node (protocol >= 3).
    pub source_addr: Vec<u8>,
    pub source_port: u16,
    pub source_node: String,
}

/// A request to probe `node` on the sender's behalf (`indirectPingReq`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndirectPing {
    pub seq_no: u32,
    pub target: Vec<u8>,
    pub port: u16,
    pub node: String,
    /// The sender wants a nack if the target does not answer (protocol >= 4).
    pub nack: bool,
    pub source_addr: Vec<u8>,
    pub source_port: u16,
    pub source_node: String,
}

/// Rumour that `node` may have failed, from `from` (`suspect`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Suspect {
    pub incarnation: u32,
    pub node: String,
    pub from: String,
}

/// `node` is alive at `incarnation`, reachable at addr:port (`alive`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Alive {
    pub incarnation: u32,
    pub node: String,
    /// The IP address: 4 or 16 bytes.
    pub addr: Vec<u8>,
    pub port: u16,
    pub meta: Vec<u8>,
    /// Protocol min, max, current, then delegate min, max, current.
    pub vsn: Vec<u8>,
}

/// `node` is dead (or, when `from == node`, left) at `incarnation` (`dead`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dead {
    pub incarnation: u32,
    pub node: String,
    pub from: String,
}

/// A message of the packet (UDP) protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Ping(Ping),
    IndirectPing(IndirectPing),
    Ack {
        seq_no: u32,
        payload: Vec<u8>,
    },
    Nack {
        seq_no: u32,
    },
    Suspect(Suspect),
    Alive(Alive),
    Dead(Dead),
    /// Application data (the rest of the message, not msgpack).
    User(Vec<u8>),
    /// An error reply on a stream (`errResp`).
    Err(String),
}

/// A member's state in a push-pull exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Alive = 0,
    Suspect = 1,
    Dead = 2,
    Left = 3,
}

impl NodeState {
    fn from_wire(v: u64) -> Result<NodeState> {
        Ok(match v {
            0 => NodeState::Alive,
            1 => NodeState::Suspect,
            2 => NodeState::Dead,
            3 => NodeState::Left,
            _ => {
                return Err(decode_error(
                    "push-pull node",
                    &format!("unknown state {v}"),
                ))
            }
        })
    }

    /// The lower-case name (`"alive"`, `"suspect"`, `"dead"`, `"left"`).
    pub fn name(self) -> &'static str {
        match self {
            NodeState::Alive => "alive",
            NodeState::Suspect => "suspect",
            NodeState::Dead => "dead",
            NodeState::Left => "left",
        }
    }

    /// The state named `name`.
    pub fn from_name(name: &str) -> Result<NodeState> {
        Ok(match name {
            "alive" => NodeState::Alive,
            "suspect" => NodeState::Suspect,
            "dead" => NodeState::Dead,
            "left" => NodeState::Left,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "unknown node state {name:?} (alive, suspect, dead, left)"
                )))
            }
        })
    }
}

/// One member in a push-pull exchange (`pushNodeState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushNodeState {
    pub name: String,
    pub addr: Vec<u8>,
    pub port: u16,
    pub meta: Vec<u8>,
    pub incarnation: u32,
    pub state: NodeState,
    pub vsn: Vec<u8>,
}

/// A full-state exchange over a stream (`pushPullMsg`): the header, every member, then the
/// delegate's opaque user state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushPull {
    pub join: bool,
    pub nodes: Vec<PushNodeState>,
    pub user_state: Vec<u8>,
}

const U32: u64 = u32::MAX as u64;
const U16: u64 = u16::MAX as u64;

fn source_fields(n: u32, addr: &[u8], port: u16, node: &str) -> u32 {
    // go-msgpack's `omitempty`: the three source fields are written only when set.
    n + u32::from(!addr.is_empty()) + u32::from(port != 0) + u32::from(!node.is_empty())
}

fn write_source(m: &mut MapWriter<'_>, addr: &[u8], port: u16, node: &str) {
    if !addr.is_empty() {
        m.bytes("SourceAddr", addr);
    }
    if port != 0 {
        m.uint("SourcePort", u64::from(port));
    }
    if !node.is_empty() {
        m.str("SourceNode", node);
    }
}

impl Message {
    /// The message type byte.
    pub fn kind(&self) -> u8 {
        match self {
            Message::Ping(_) => kind::PING,
            Message::IndirectPing(_) => kind::INDIRECT_PING,
            Message::Ack { .. } => kind::ACK,
            Message::Nack { .. } => kind::NACK,
            Message::Suspect(_) => kind::SUSPECT,
            Message::Alive(_) => kind::ALIVE,
            Message::Dead(_) => kind::DEAD,
            Message::User(_) => kind::USER,
            Message::Err(_) => kind::ERR,
        }
    }

    /// The type byte and the msgpack body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// The size of [`Message::encode`]'s output, without allocating (for packet sizing and the
    /// simulator's byte counts).
    pub fn encoded_len(&self) -> usize {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with_borrow_mut(|buf| {
            buf.clear();
            self.encode_into(buf);
            buf.len()
        })
    }

    /// Appends the type byte and the msgpack body to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.kind());
        match self {
            Message::Ping(p) => {
                let n = source_fields(2, &p.source_addr, p.source_port, &p.source_node);
                let mut m = MapWriter::new(out, n);
                m.uint("SeqNo", u64::from(p.seq_no)).str("Node", &p.node);
                write_source(&mut m, &p.source_addr, p.source_port, &p.source_node);
            }
            Message::IndirectPing(p) => {
                let n = source_fields(5, &p.source_addr, p.source_port, &p.source_node);
                let mut m = MapWriter::new(out, n);
                m.uint("SeqNo", u64::from(p.seq_no))
                    .bytes("Target", &p.target)
                    .uint("Port", u64::from(p.port))
                    .str("Node", &p.node)
                    .bool("Nack", p.nack);
                write_source(&mut m, &p.source_addr, p.source_port, &p.source_node);
            }
            Message::Ack { seq_no, payload } => {
                MapWriter::new(out, 2)
                    .uint("SeqNo", u64::from(*seq_no))
                    .bytes("Payload", payload);
            }
            Message::Nack { seq_no } => {
                MapWriter::new(out, 1).uint("SeqNo", u64::from(*seq_no));
            }
            Message::Suspect(s) => {
                MapWriter::new(out, 3)
                    .uint("Incarnation", u64::from(s.incarnation))
                    .str("Node", &s.node)
                    .str("From", &s.from);
            }
            Message::Dead(d) => {
                MapWriter::new(out, 3)
                    .uint("Incarnation", u64::from(d.incarnation))
                    .str("Node", &d.node)
                    .str("From", &d.from);
            }
            Message::Alive(a) => {
                MapWriter::new(out, 6)
                    .uint("Incarnation", u64::from(a.incarnation))
                    .str("Node", &a.node)
                    .bytes("Addr", &a.addr)
                    .uint("Port", u64::from(a.port))
                    .bytes("Meta", &a.meta)
                    .bytes("Vsn", &a.vsn);
            }
            Message::User(data) => out.extend_from_slice(data),
            Message::Err(e) => {
                MapWriter::new(out, 1).str("Error", e);
            }
        }
    }

    /// Decodes one message (type byte and body); compound, compressed, CRC and encrypted
    /// wrappers are the packet layer's job.
    pub fn decode(buf: &[u8]) -> Result<Message> {
        let (&t, mut body) = buf
            .split_first()
            .ok_or_else(|| decode_error("message", "empty"))?;
        if t == kind::USER {
            return Ok(Message::User(body.to_vec()));
        }
        let what = match t {
            kind::PING => "ping",
            kind::INDIRECT_PING => "indirect ping",
            kind::ACK => "ack",
            kind::NACK => "nack",
            kind::SUSPECT => "suspect",
            kind::ALIVE => "alive",
            kind::DEAD => "dead",
            kind::ERR => "error reply",
            _ => {
                return Err(decode_error(
                    "message",
                    &format!("unknown or misplaced message type {t}"),
                ))
            }
        };
        let value = read_value(&mut body, what)?;
        let f = Fields::of(&value, what)?;
        Ok(match t {
            kind::PING => Message::Ping(Ping {
                seq_no: f.uint("SeqNo", U32)? as u32,
                node: f.str("Node")?,
                source_addr: f.bytes("SourceAddr")?,
                source_port: f.uint("SourcePort", U16)? as u16,
                source_node: f.str("SourceNode")?,
            }),
            kind::INDIRECT_PING => Message::IndirectPing(IndirectPing {
                seq_no: f.uint("SeqNo", U32)? as u32,
                target: f.bytes("Target")?,
                port: f.uint("Port", U16)? as u16,
                node: f.str("Node")?,
                nack: f.bool("Nack")?,
                source_addr: f.bytes("SourceAddr")?,
                source_port: f.uint("SourcePort", U16)? as u16,
                source_node: f.str("SourceNode")?,
            }),
            kind::ACK => Message::Ack {
                seq_no: f.uint("SeqNo", U32)? as u32,
                payload: f.bytes("Payload")?,
            },
            kind::NACK => Message::Nack {
                seq_no: f.uint("SeqNo", U32)? as u32,
            },
            kind::SUSPECT => Message::Suspect(Suspect {
                incarnation: f.uint("Incarnation", U32)? as u32,
                node: f.str("Node")?,
                from: f.str("From")?,
            }),
            kind::DEAD => Message::Dead(Dead {
                incarnation: f.uint("Incarnation", U32)? as u32,
                node: f.str("Node")?,
                from: f.str("From")?,
            }),
            kind::ALIVE => Message::Alive(Alive {
                incarnation: f.uint("Incarnation", U32)? as u32,
                node: f.str("Node")?,
                addr: f.bytes("Addr")?,
                port: f.uint("Port", U16)? as u16,
                meta: f.bytes("Meta")?,
                vsn: f.bytes("Vsn")?,
            }),
            _ => Message::Err(f.str("Error")?),
        })
    }
}

impl PushNodeState {
    fn write(&self, out: &mut Vec<u8>) {
        MapWriter::new(out, 7)
            .str("Name", &self.name)
            .bytes("Addr", &self.addr)
            .uint("Port", u64::from(self.port))
            .bytes("Meta", &self.meta)
            .uint("Incarnation", u64::from(self.incarnation))
            .uint("State", self.state as u64)
            .bytes("Vsn", &self.vsn);
    }

    fn read(v: &Value) -> Result<PushNodeState> {
        let f = Fields::of(v, "push-pull node")?;
        Ok(PushNodeState {
            name: f.str("Name")?,
            addr: f.bytes("Addr")?,
            port: f.uint("Port", U16)? as u16,
            meta: f.bytes("Meta")?,
            incarnation: f.uint("Incarnation", U32)? as u32,
            state: NodeState::from_wire(f.uint("State", u64::MAX)?)?,
            vsn: f.bytes("Vsn")?,
        })
    }
}

/// memberlist refuses a push-pull with more members than this (`maxPushStateNodes`).
pub const MAX_PUSH_NODES: usize = 1 << 20;

impl PushPull {
    /// The type byte, the header, every member and the user state.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![kind::PUSH_PULL];
        MapWriter::new(&mut out, 3)
            .uint("Nodes", self.nodes.len() as u64)
            .uint("UserStateLen", self.user_state.len() as u64)
            .bool("Join", self.join);
        for n in &self.nodes {
            n.write(&mut out);
        }
        out.extend_from_slice(&self.user_state);
        out
    }

    /// Decodes the body after the type byte; `Ok(None)` if `body` is cut short (a stream
    /// reader should wait for more bytes).
    pub fn decode_body(body: &[u8]) -> Result<Option<PushPull>> {
        let mut rest = body;
        if super::msgpack::is_truncated(rest) {
            return Ok(None);
        }
        let header = read_value(&mut rest, "push-pull header")?;
        let h = Fields::of(&header, "push-pull header")?;
        let count = h.uint("Nodes", u64::MAX)?;
        let user_len = h.uint("UserStateLen", u64::MAX)?;
        if count > MAX_PUSH_NODES as u64 {
            return Err(decode_error(
                "push-pull header",
                &format!("{count} members is more than memberlist accepts"),
            ));
        }
        let mut nodes = Vec::with_capacity((count as usize).min(rest.len() / 8 + 1));
        for _ in 0..count {
            if super::msgpack::is_truncated(rest) {
                return Ok(None);
            }
            nodes.push(PushNodeState::read(&read_value(
                &mut rest,
                "push-pull node",
            )?)?);
        }
        if (rest.len() as u64) < user_len {
            return Ok(None);
        }
        let user_state = rest[..user_len as usize].to_vec();
        if rest.len() as u64 > user_len {
            return Err(decode_error(
                "push-pull",
                &format!(
                    "{} bytes after the user state",
                    rest.len() as u64 - user_len
                ),
            ));
        }
        Ok(Some(PushPull {
            join: h.bool("Join")?,
            nodes,
            user_state,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive() -> Alive {
        Alive {
            incarnation: 3,
            node: "node-a".into(),
            addr: vec![127, 0, 0, 1],
            port: 7946,
            meta: b"\x80".to_vec(),
            vsn: vec![2, 5, 5, 2, 5, 4],
        }
    }

    #[test]
    fn messages_round_trip() {
        let msgs = [
            Message::Ping(Ping {
                seq_no: 9,
                node: "b".into(),
                ..Ping::default()
            }),
            Message::Ping(Ping {
                seq_no: 10,
                node: "b".into(),
                source_addr: vec![10, 0, 0, 1],
                source_port: 7000,
                source_node: "a".into(),
            }),
            Message::IndirectPing(IndirectPing {
                seq_no: 1,
                target: vec![127, 0, 0, 2],
                port: 1,
                node: "c".into(),
                nack: true,
                ..IndirectPing::default()
            }),
            Message::Ack {
                seq_no: u32::MAX,
                payload: vec![0, 255],
            },
            Message::Nack { seq_no: 4 },
            Message::Suspect(Suspect {
                incarnation: 1,
                node: "x".into(),
                from: "y".into(),
            }),
            Message::Alive(alive()),
            Message::Dead(Dead {
                incarnation: 2,
                node: "x".into(),
                from: "x".into(),
            }),
            Message::User(b"raw \x00 bytes".to_vec()),
            Message::Err("boom".into()),
        ];
        for m in msgs {
            assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn byte_fields_are_written_as_raw_strings_like_go() {
        let enc = Message::Alive(alive()).encode();
        assert_eq!(enc[0], kind::ALIVE);
        // fixmap of 6, then "Incarnation" (fixstr 11) 3, ...
        assert_eq!(enc[1], 0x86);
        assert_eq!(&enc[2..14], b"\xabIncarnation");
        assert_eq!(enc[14], 3);
        // "Addr" -> fixstr of 4 raw bytes
        let at = enc.windows(5).position(|w| w == b"\xa4Addr").unwrap();
        assert_eq!(&enc[at + 5..at + 10], b"\xa4\x7f\x00\x00\x01");
    }

    #[test]
    fn push_pull_round_trip_and_truncation() {
        let pp = PushPull {
            join: true,
            nodes: vec![PushNodeState {
                name: "a".into(),
                addr: vec![127, 0, 0, 1],
                port: 1234,
                meta: vec![],
                incarnation: 7,
                state: NodeState::Suspect,
                vsn: vec![1, 5, 2, 2, 5, 4],
            }],
            user_state: b"serf state".to_vec(),
        };
        let enc = pp.encode();
        assert_eq!(enc[0], kind::PUSH_PULL);
        assert_eq!(PushPull::decode_body(&enc[1..]).unwrap(), Some(pp));
        for cut in 1..enc.len() {
            assert_eq!(
                PushPull::decode_body(&enc[1..cut]).unwrap(),
                None,
                "cut {cut}"
            );
        }
        let mut longer = enc.clone();
        longer.push(0);
        assert!(PushPull::decode_body(&longer[1..]).is_err());
    }

    #[test]
    fn bad_messages_are_decode_errors() {
        for bad in [
            &b""[..],
            b"\x63",
            b"\x04\xc1",
            b"\x04\x01",
            b"\x04\x81\xa4Port\xcd\xff",
        ] {
            assert!(
                matches!(Message::decode(bad), Err(Error::Decode(_))),
                "{bad:?}"
            );
        }
        // A port above 65535 is refused, not truncated.
        let mut big = vec![kind::ALIVE];
        MapWriter::new(&mut big, 1).uint("Port", 70_000);
        assert!(Message::decode(&big).is_err());
    }
}
