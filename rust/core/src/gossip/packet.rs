//! The layers around memberlist's messages, outermost first:
//!
//! - packets (UDP): `[label: 244, len, label]` (newer memberlist) → `[encrypted: version, nonce,
//!   ciphertext, tag]` → `[crc: 12, CRC-32 IEEE big-endian]` → `[compress: 9, msgpack {Algo, Buf}
//!   with LZW (LSB, 8-bit literals)]` → `[compound: 7, count, big-endian u16 lengths, parts]` →
//!   messages (a compound or compressed part may nest again);
//! - streams (TCP): `[encrypt: 10, u32 big-endian length, encrypted payload]` (the 5 header bytes
//!   are the GCM additional data) → `[compress]` → a push-pull, a user message, a ping or an
//!   error reply.

use super::keyring::Keyring;
use super::msgpack::{decode_error, is_truncated, read_value, Fields, MapWriter};
use super::wire::{kind, Message, PushPull};
use crate::error::{Error, Result};

/// The LZW algorithm id in a compress message (`lzwAlgo`).
const LZW: u64 = 0;
/// Nesting deeper than this is refused (a compound inside a compressed inside a compound ...).
const MAX_DEPTH: u32 = 4;
/// memberlist refuses stream states larger than this (`maxPushStateBytes`).
pub const MAX_STREAM_BYTES: usize = 20 * 1024 * 1024;

/// How to wrap outgoing packets.
#[derive(Debug, Clone, Default)]
pub struct PacketOptions {
    /// Prefix a CRC-32 (memberlist does when the peer speaks protocol 5).
    pub crc: bool,
    /// LZW-compress the payload, if that makes it smaller.
    pub compress: bool,
    /// A label (newer memberlist's `Label`); empty for none.
    pub label: Vec<u8>,
}

fn lzw_decode(buf: &[u8]) -> Result<Vec<u8>> {
    weezl::decode::Decoder::new(weezl::BitOrder::Lsb, 8)
        .decode(buf)
        .map_err(|e| decode_error("compressed payload", &e.to_string()))
}

fn lzw_encode(buf: &[u8]) -> Vec<u8> {
    weezl::encode::Encoder::new(weezl::BitOrder::Lsb, 8)
        .encode(buf)
        .expect("LZW-encoding an in-memory buffer")
}

/// `[9, {Algo: 0, Buf: lzw(payload)}]`.
pub fn compress(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind::COMPRESS];
    MapWriter::new(&mut out, 2)
        .uint("Algo", LZW)
        .bytes("Buf", &lzw_encode(payload));
    out
}

/// The payload of a compress message body (after its type byte), and the body's length.
fn decompress(body: &[u8]) -> Result<(Vec<u8>, usize)> {
    let mut rest = body;
    let v = read_value(&mut rest, "compress message")?;
    let f = Fields::of(&v, "compress message")?;
    let algo = f.uint("Algo", u64::MAX)?;
    if algo != LZW {
        return Err(decode_error(
            "compress message",
            &format!("unknown compression algorithm {algo}"),
        ));
    }
    Ok((lzw_decode(&f.bytes("Buf")?)?, body.len() - rest.len()))
}

/// A compound message of `parts` (at most 255, each at most 65535 bytes).
pub fn compound(parts: &[Vec<u8>]) -> Result<Vec<u8>> {
    if parts.len() > 255 {
        return Err(Error::InvalidArgument(format!(
            "a compound message holds at most 255 messages, got {}",
            parts.len()
        )));
    }
    let mut out = vec![kind::COMPOUND, parts.len() as u8];
    for p in parts {
        let len = u16::try_from(p.len()).map_err(|_| {
            Error::InvalidArgument(format!(
                "a message in a compound is at most 65535 bytes, got {}",
                p.len()
            ))
        })?;
        out.extend_from_slice(&len.to_be_bytes());
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    Ok(out)
}

fn split_compound(body: &[u8]) -> Result<Vec<&[u8]>> {
    let (&n, rest) = body
        .split_first()
        .ok_or_else(|| decode_error("compound message", "missing its count"))?;
    let n = usize::from(n);
    if rest.len() < 2 * n {
        return Err(decode_error("compound message", "truncated lengths"));
    }
    let (lens, mut data) = rest.split_at(2 * n);
    let mut parts = Vec::with_capacity(n);
    for l in lens.chunks_exact(2) {
        let l = usize::from(u16::from_be_bytes([l[0], l[1]]));
        if data.len() < l {
            return Err(decode_error("compound message", "a part is truncated"));
        }
        let (part, more) = data.split_at(l);
        parts.push(part);
        data = more;
    }
    Ok(parts)
}

fn peel_label<'a>(buf: &'a [u8], label: &[u8]) -> Result<&'a [u8]> {
    if buf.first() == Some(&kind::HAS_LABEL) {
        let len = usize::from(
            *buf.get(1)
                .ok_or_else(|| decode_error("label", "truncated"))?,
        );
        let got = buf
            .get(2..2 + len)
            .ok_or_else(|| decode_error("label", "truncated"))?;
        if got != label {
            return Err(Error::Decode(format!(
                "packet label {:?} does not match ours {:?}",
                String::from_utf8_lossy(got),
                String::from_utf8_lossy(label)
            )));
        }
        return Ok(&buf[2 + len..]);
    }
    if label.is_empty() {
        Ok(buf)
    } else {
        Err(Error::Decode(
            "packet has no label but one is required".into(),
        ))
    }
}

fn add_label(label: &[u8], mut payload: Vec<u8>) -> Result<Vec<u8>> {
    if label.is_empty() {
        return Ok(payload);
    }
    let len = u8::try_from(label.len())
        .map_err(|_| Error::InvalidArgument("a label is at most 255 bytes".into()))?;
    let mut out = vec![kind::HAS_LABEL, len];
    out.extend_from_slice(label);
    out.append(&mut payload);
    Ok(out)
}

fn handle(buf: &[u8], depth: u32, out: &mut Vec<Message>) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(decode_error("packet", "nested too deeply"));
    }
    match buf.first() {
        Some(&kind::COMPOUND) => {
            for part in split_compound(&buf[1..])? {
                handle(part, depth + 1, out)?;
            }
            Ok(())
        }
        Some(&kind::COMPRESS) => handle(&decompress(&buf[1..])?.0, depth + 1, out),
        _ => {
            out.push(Message::decode(buf)?);
            Ok(())
        }
    }
}

/// Every message in a UDP packet, peeling label, encryption, CRC, compression and compounds.
///
/// With a non-empty `keyring` a packet must decrypt (as memberlist with `GossipVerifyIncoming`);
/// with an empty one it must not be encrypted. The label is GCM additional data, as in memberlist.
pub fn decode_packet(buf: &[u8], keyring: &Keyring, label: &[u8]) -> Result<Vec<Message>> {
    let buf = peel_label(buf, label)?;
    let plain;
    let mut buf = if keyring.is_empty() {
        buf
    } else {
        plain = keyring.decrypt(buf, label)?;
        &plain[..]
    };
    if buf.len() >= 5 && buf[0] == kind::HAS_CRC {
        let want = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        let got = crc32fast::hash(&buf[5..]);
        if want != got {
            return Err(Error::Decode(format!(
                "packet checksum mismatch: header says {want:08x}, contents hash to {got:08x}"
            )));
        }
        buf = &buf[5..];
    }
    let mut out = Vec::new();
    handle(buf, 0, &mut out)?;
    Ok(out)
}

/// One UDP packet carrying `messages` (a compound when there are several).
pub fn encode_packet(
    messages: &[Message],
    keyring: &Keyring,
    opts: &PacketOptions,
) -> Result<Vec<u8>> {
    let mut payload = match messages {
        [] => {
            return Err(Error::InvalidArgument(
                "a packet needs at least one message".into(),
            ))
        }
        [one] => one.encode(),
        many => compound(&many.iter().map(Message::encode).collect::<Vec<_>>())?,
    };
    if opts.compress {
        let c = compress(&payload);
        if c.len() < payload.len() {
            payload = c;
        }
    }
    if opts.crc {
        let mut with = vec![kind::HAS_CRC];
        with.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        with.extend_from_slice(&payload);
        payload = with;
    }
    if !keyring.is_empty() {
        payload = keyring.encrypt(&payload, &opts.label)?;
    }
    add_label(&opts.label, payload)
}

/// What a stream (TCP connection) carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage {
    PushPull(PushPull),
    /// A ping or a user message (`sendUserMsg`), or an error reply.
    Message(Message),
}

/// Decodes the bytes read so far from a stream: `Ok(None)` while they are not a whole message yet.
pub fn decode_stream(
    buf: &[u8],
    keyring: &Keyring,
    label: &[u8],
) -> Result<Option<(StreamMessage, usize)>> {
    if buf.is_empty() {
        return Ok(None); // nothing read yet: not even a missing label can be told
    }
    // Labels on streams are a header too, read before anything else.
    let (skip, buf) = if buf.first() == Some(&kind::HAS_LABEL) {
        if buf.len() < 2 || buf.len() < 2 + usize::from(buf[1]) {
            return Ok(None);
        }
        let rest = peel_label(buf, label)?;
        (buf.len() - rest.len(), rest)
    } else {
        (0, peel_label(buf, label)?)
    };
    let Some(&t) = buf.first() else {
        return Ok(None);
    };
    if t == kind::ENCRYPT {
        if keyring.is_empty() {
            return Err(Error::Decode(
                "the stream is encrypted and no key is configured".into(),
            ));
        }
        if buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if len > MAX_STREAM_BYTES {
            return Err(decode_error(
                "stream",
                &format!("{len} bytes is over the limit"),
            ));
        }
        if buf.len() < 5 + len {
            return Ok(None);
        }
        let plain = keyring.decrypt(&buf[5..5 + len], &buf[..5])?;
        return match decode_plain_stream(&plain)? {
            Some((m, used)) if used == plain.len() => Ok(Some((m, skip + 5 + len))),
            Some(_) => Err(decode_error("stream", "bytes after the message")),
            None => Err(decode_error("stream", "encrypted message is truncated")),
        };
    }
    if !keyring.is_empty() {
        return Err(Error::Decode(
            "a key is configured but the stream is not encrypted".into(),
        ));
    }
    Ok(decode_plain_stream(buf)?.map(|(m, used)| (m, skip + used)))
}

fn decode_plain_stream(buf: &[u8]) -> Result<Option<(StreamMessage, usize)>> {
    let Some((&t, body)) = buf.split_first() else {
        return Ok(None);
    };
    match t {
        kind::COMPRESS => {
            if is_truncated(body) {
                return Ok(None);
            }
            let (inner, used) = decompress(body)?;
            match decode_plain_stream(&inner)? {
                Some((m, n)) if n == inner.len() => Ok(Some((m, 1 + used))),
                _ => Err(decode_error("stream", "compressed message is incomplete")),
            }
        }
        kind::PUSH_PULL => Ok(PushPull::decode_body(body)?.map(|pp| {
            let used = buf.len();
            (StreamMessage::PushPull(pp), used)
        })),
        kind::USER => {
            // userMsgHeader{UserMsgLen}, then that many bytes.
            if is_truncated(body) {
                return Ok(None);
            }
            let mut rest = body;
            let v = read_value(&mut rest, "user message header")?;
            let n = Fields::of(&v, "user message header")?.uint("UserMsgLen", u64::MAX)?;
            if (rest.len() as u64) < n {
                return Ok(None);
            }
            let header = body.len() - rest.len();
            let data = rest[..n as usize].to_vec();
            Ok(Some((
                StreamMessage::Message(Message::User(data)),
                1 + header + n as usize,
            )))
        }
        // A ping comes on a stream as memberlist's TCP fallback, and its ack comes back on it.
        kind::PING | kind::ACK | kind::ERR => {
            if is_truncated(body) {
                return Ok(None);
            }
            let mut rest = body;
            read_value(&mut rest, "stream message")?;
            let used = 1 + body.len() - rest.len();
            Ok(Some((
                StreamMessage::Message(Message::decode(&buf[..used])?),
                used,
            )))
        }
        _ => Err(decode_error(
            "stream",
            &format!("message type {t} is not sent on streams"),
        )),
    }
}

/// The bytes to write on a stream for `msg`, compressed and encrypted as asked.
pub fn encode_stream(
    msg: &StreamMessage,
    keyring: &Keyring,
    compress_it: bool,
    label: &[u8],
) -> Result<Vec<u8>> {
    let mut payload = match msg {
        StreamMessage::PushPull(pp) => pp.encode(),
        StreamMessage::Message(Message::User(data)) => {
            let mut out = vec![kind::USER];
            MapWriter::new(&mut out, 1).uint("UserMsgLen", data.len() as u64);
            out.extend_from_slice(data);
            out
        }
        StreamMessage::Message(m @ (Message::Ping(_) | Message::Ack { .. } | Message::Err(_))) => {
            m.encode()
        }
        StreamMessage::Message(m) => {
            return Err(Error::InvalidArgument(format!(
                "message type {} is not sent on streams",
                m.kind()
            )))
        }
    };
    if compress_it {
        payload = compress(&payload);
    }
    if !keyring.is_empty() {
        let len = super::keyring::OVERHEAD + payload.len();
        let mut header = vec![kind::ENCRYPT];
        header.extend_from_slice(&(len as u32).to_be_bytes());
        let sealed = keyring.encrypt(&payload, &header)?;
        header.extend_from_slice(&sealed);
        payload = header;
    }
    add_label(label, payload)
}

#[cfg(test)]
mod tests {
    use super::super::wire::{Alive, NodeState, Ping, PushNodeState};
    use super::*;

    fn msgs() -> Vec<Message> {
        vec![
            Message::Ping(Ping {
                seq_no: 1,
                node: "n1".into(),
                ..Ping::default()
            }),
            Message::Alive(Alive {
                incarnation: 1,
                node: "n2".into(),
                addr: vec![127, 0, 0, 1],
                port: 7946,
                meta: vec![],
                vsn: vec![1, 5, 2, 2, 5, 4],
            }),
        ]
    }

    #[test]
    fn packets_round_trip_through_every_layer() {
        let keys = Keyring::new(vec![vec![3; 32]]).unwrap();
        for keyring in [Keyring::default(), keys] {
            for (crc, compress, label) in [
                (false, false, &b""[..]),
                (true, false, b""),
                (true, true, b""),
                (false, true, b"cluster-a"),
            ] {
                let opts = PacketOptions {
                    crc,
                    compress,
                    label: label.to_vec(),
                };
                for n in 1..=2 {
                    let sent = &msgs()[..n];
                    let pkt = encode_packet(sent, &keyring, &opts).unwrap();
                    assert_eq!(decode_packet(&pkt, &keyring, label).unwrap(), sent);
                }
            }
        }
    }

    #[test]
    fn corrupt_packets_are_refused() {
        let ring = Keyring::default();
        let opts = PacketOptions {
            crc: true,
            ..PacketOptions::default()
        };
        let mut pkt = encode_packet(&msgs(), &ring, &opts).unwrap();
        let last = pkt.len() - 1;
        pkt[last] ^= 1;
        assert!(decode_packet(&pkt, &ring, b"")
            .unwrap_err()
            .to_string()
            .contains("checksum"));
        let keyed = Keyring::new(vec![vec![1; 16]]).unwrap();
        let sealed = encode_packet(&msgs(), &keyed, &opts).unwrap();
        assert!(decode_packet(&sealed, &Keyring::new(vec![vec![2; 16]]).unwrap(), b"").is_err());
        let labelled = encode_packet(
            &msgs(),
            &ring,
            &PacketOptions {
                label: b"a".to_vec(),
                ..opts.clone()
            },
        )
        .unwrap();
        assert!(decode_packet(&labelled, &ring, b"b").is_err());
        assert!(decode_packet(&labelled, &ring, b"").is_err());
        assert!(decode_packet(&[kind::COMPOUND, 3, 0], &ring, b"").is_err());
        let nested = (0..6).fold(msgs()[0].encode(), |inner, _| compound(&[inner]).unwrap());
        assert!(decode_packet(&nested, &ring, b"").is_err());
    }

    #[test]
    fn streams_round_trip_and_wait_for_more() {
        let pp = StreamMessage::PushPull(PushPull {
            join: false,
            nodes: vec![PushNodeState {
                name: "n".into(),
                addr: vec![127, 0, 0, 1],
                port: 1,
                meta: b"m".to_vec(),
                incarnation: 2,
                state: NodeState::Alive,
                vsn: vec![1, 5, 2, 2, 5, 4],
            }],
            user_state: vec![1, 2, 3],
        });
        let user = StreamMessage::Message(Message::User(b"hello".to_vec()));
        // The TCP fallback ping and the ack that answers it.
        let ping = StreamMessage::Message(msgs().swap_remove(0));
        let ack = StreamMessage::Message(Message::Ack {
            seq_no: 7,
            payload: Vec::new(),
        });
        let keys = Keyring::new(vec![vec![9; 16]]).unwrap();
        for keyring in [Keyring::default(), keys] {
            for (compress, label) in [(false, &b""[..]), (true, b""), (true, b"blue")] {
                for m in [&pp, &user, &ping, &ack] {
                    let bytes = encode_stream(m, &keyring, compress, label).unwrap();
                    // Every cut, the empty one included, waits for more (a reader starts so).
                    for cut in 0..bytes.len() {
                        assert_eq!(decode_stream(&bytes[..cut], &keyring, label).unwrap(), None);
                    }
                    let (got, consumed) = decode_stream(&bytes, &keyring, label).unwrap().unwrap();
                    assert_eq!((&got, consumed), (m, bytes.len()));
                }
            }
        }
        let plain = encode_stream(&pp, &Keyring::default(), false, b"").unwrap();
        assert!(decode_stream(&plain, &Keyring::new(vec![vec![9; 16]]).unwrap(), b"").is_err());
    }
}
