"""memberlist's wire format: round trips, bad input, and real serf agents (Debian's serf 0.8.2-dev,
memberlist protocol 5) joining a peer that speaks it through distcore.gossip.wire."""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from distcore.exceptions import DecodeError
from distcore.gossip.wire import (
    Keyring,
    decode_packet,
    decode_serf_tags,
    decode_stream,
    encode_packet,
    encode_serf_tags,
    encode_stream,
)

from services import SerfAgent, SerfJoinError

HOST = "127.0.0.1"
# serf reads node metadata as its tags: 0xff, then a msgpack map.
SERF_TAGS = b"\xff\x81\xa4role\xa6python"

MESSAGES: list[dict[str, Any]] = [
    {
        "type": "ping",
        "seq_no": 1,
        "node": "b",
        "source_addr": "",
        "source_port": 0,
        "source_node": "",
    },
    {
        "type": "ping",
        "seq_no": 2,
        "node": "b",
        "source_addr": "10.0.0.1",
        "source_port": 7946,
        "source_node": "a",
    },
    {
        "type": "indirect_ping",
        "seq_no": 3,
        "target": "::1",
        "port": 7946,
        "node": "c",
        "nack": True,
        "source_addr": "",
        "source_port": 0,
        "source_node": "",
    },
    {"type": "ack", "seq_no": 2**32 - 1, "payload": b"\x00\xff"},
    {"type": "nack", "seq_no": 5},
    {"type": "suspect", "incarnation": 4, "node": "c", "from": "a"},
    {
        "type": "alive",
        "incarnation": 1,
        "node": "a",
        "addr": "127.0.0.1",
        "port": 7946,
        "meta": SERF_TAGS,
        "vsn": [1, 5, 2, 2, 5, 5],
    },
    {"type": "dead", "incarnation": 9, "node": "c", "from": "c"},
    {"type": "user", "data": b"application bytes"},
    {"type": "err", "error": "nope"},
]


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("crc", [False, True])
@pytest.mark.parametrize("encrypted", [False, True])
def test_packets_round_trip(compress: bool, crc: bool, encrypted: bool) -> None:
    ring = Keyring([bytes(range(32))]) if encrypted else None
    for msg in MESSAGES:
        assert decode_packet(encode_packet([msg], ring, crc=crc, compress=compress), ring) == [msg]
    both = encode_packet(MESSAGES, ring, crc=crc, compress=compress)
    assert decode_packet(both, ring) == MESSAGES


def test_labels_and_keys_must_match() -> None:
    ring = Keyring([b"k" * 16])
    pkt = encode_packet(MESSAGES[:1], ring, label=b"dc1")
    assert decode_packet(pkt, ring, label=b"dc1") == MESSAGES[:1]
    with pytest.raises(DecodeError, match="label"):
        decode_packet(pkt, ring, label=b"dc2")
    with pytest.raises(DecodeError, match="no key"):
        decode_packet(pkt, Keyring([b"x" * 16]), label=b"dc1")
    rotated = Keyring([b"x" * 16])
    rotated.add(b"k" * 16)
    assert decode_packet(pkt, rotated, label=b"dc1") == MESSAGES[:1]
    with pytest.raises(ValueError, match="16, 24 or 32 bytes"):
        Keyring([b"short"])
    with pytest.raises(ValueError, match="primary"):
        rotated.remove(b"x" * 16)
    assert repr(rotated) == "Keyring(2 keys)"


def test_streams_are_decoded_incrementally() -> None:
    pp = {
        "type": "push_pull",
        "join": True,
        "nodes": [
            {
                "name": "a",
                "addr": "127.0.0.1",
                "port": 1,
                "meta": b"",
                "incarnation": 3,
                "state": "suspect",
                "vsn": [1, 5, 2, 2, 5, 5],
            }
        ],
        "user_state": b"opaque",
    }
    for ring in (None, Keyring([bytes(24)])):
        for compress in (False, True):
            data = encode_stream(pp, ring, compress=compress)
            assert all(decode_stream(data[:cut], ring) is None for cut in range(len(data)))
            assert decode_stream(data, ring) == (pp, len(data))
    user = encode_stream({"type": "user", "data": b"hi"})
    assert decode_stream(user) == ({"type": "user", "data": b"hi"}, len(user))


def test_bad_input_is_a_specific_error() -> None:
    with pytest.raises(DecodeError, match="checksum"):
        pkt = bytearray(encode_packet(MESSAGES[:1], crc=True))
        pkt[-1] ^= 1
        decode_packet(bytes(pkt))
    with pytest.raises(DecodeError, match="unknown or misplaced message type 99"):
        decode_packet(b"\x63")
    with pytest.raises(DecodeError, match="compound"):
        decode_packet(b"\x07\x02\x00")
    with pytest.raises(DecodeError, match="not sent on streams"):
        decode_stream(b"\x04\x80")
    with pytest.raises(DecodeError, match="not encrypted"):
        decode_stream(encode_stream({"type": "user", "data": b""}), Keyring([bytes(16)]))
    with pytest.raises(ValueError, match="unknown message type"):
        encode_packet([{"type": "hello"}])
    with pytest.raises(KeyError, match="seq_no"):
        encode_packet([{"type": "ping"}])
    with pytest.raises(ValueError, match="out of range"):
        encode_packet([{"type": "ack", "seq_no": -1}])
    with pytest.raises(ValueError, match="not an IP address"):
        encode_packet([{"type": "indirect_ping", "seq_no": 1, "target": "nowhere", "port": 1}])
    with pytest.raises(ValueError, match="at least one message"):
        encode_packet([])


@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_decoders(data: bytes) -> None:
    for decode in (decode_packet, decode_stream):
        with contextlib.suppress(DecodeError):
            decode(data)


# --- against real serf agents ---------------------------------------------------------------


class WirePeer:
    """A memberlist member made of distcore.gossip.wire and two sockets: it answers a join's
    push-pull with its own state and acks pings, and records everything serf sent it."""

    def __init__(self, name: str, keyring: Keyring | None = None) -> None:
        self.name, self.keyring = name, keyring
        self.tcp = socket.create_server((HOST, 0))
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((HOST, self.port))
        self.udp.settimeout(0.1)
        self.tcp.settimeout(0.1)
        self.push_pulls: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.incarnation = 1
        self.vsn: list[int] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._guard, args=(f,)) for f in (self._tcp, self._udp)
        ]
        for t in self._threads:
            t.start()

    @property
    def addr(self) -> str:
        return f"{HOST}:{self.port}"

    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "addr": HOST,
            "port": self.port,
            "meta": SERF_TAGS,
            "incarnation": self.incarnation,
            "state": "alive",
            "vsn": self.vsn,
        }

    def _guard(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException as e:  # reported by close()
            self.errors.append(e)

    def _tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                buf = b""
                while (got := decode_stream(buf, self.keyring)) is None:
                    chunk = conn.recv(65536)
                    assert chunk, "serf closed the stream early"
                    buf += chunk
                msg, _ = got
                assert msg["type"] == "push_pull"
                self.push_pulls.append(msg)
                # Speak the sender's versions: memberlist refuses nodes whose ranges don't overlap.
                self.vsn = msg["nodes"][0]["vsn"]
                reply = {
                    "type": "push_pull",
                    "join": False,
                    "nodes": [self.state()],
                    "user_state": b"",
                }
                conn.sendall(encode_stream(reply, self.keyring, compress=True))

    def _udp(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self.udp.recvfrom(65536)
            except TimeoutError:
                continue
            for msg in decode_packet(data, self.keyring):
                self.received.append(msg)
                if msg["type"] == "ping":
                    ack = {"type": "ack", "seq_no": msg["seq_no"], "payload": b""}
                    self.udp.sendto(encode_packet([ack], self.keyring, crc=True), sender)

    def send(self, to: SerfAgent, messages: list[dict[str, Any]]) -> None:
        host, port = to.addr.split(":")
        self.udp.sendto(
            encode_packet(messages, self.keyring, crc=True, compress=True), (host, int(port))
        )

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
        self.tcp.close()
        self.udp.close()
        assert not self.errors, self.errors


@pytest.fixture
def wire_peer() -> Any:
    peers: list[WirePeer] = []

    def make(name: str, keyring: Keyring | None = None) -> WirePeer:
        peers.append(WirePeer(name, keyring))
        return peers[-1]

    yield make
    for p in peers:
        p.close()


@pytest.mark.services
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "aes-gcm"])
def test_serf_joins_a_peer_speaking_distcores_wire_format(
    serf_agent: Callable[..., SerfAgent], wire_peer: Callable[..., WirePeer], encrypted: bool
) -> None:
    key = bytes(range(32))
    agent = serf_agent("serf-1", encrypt_key=base64.b64encode(key).decode() if encrypted else None)
    peer = wire_peer("distcore-1", Keyring([key]) if encrypted else None)

    assert agent.join(peer.addr) == 1
    # serf's join: a push-pull over TCP (LZW-compressed, and encrypted with -encrypt).
    (pp,) = peer.push_pulls
    assert pp["join"] is True
    (serf_node,) = pp["nodes"]
    assert (serf_node["name"], serf_node["addr"], serf_node["state"]) == ("serf-1", HOST, "alive")
    assert serf_node["meta"][:1] == b"\xff"  # serf's tag encoding
    assert len(serf_node["vsn"]) == 6 and serf_node["vsn"][1] == 5  # protocol max 5
    assert len(pp["user_state"]) > 0  # serf's own push-pull state rides along

    members = agent.wait_for_members({"serf-1": "alive", "distcore-1": "alive"})
    me = next(m for m in members if m["name"] == "distcore-1")
    assert (me["port"], me["tags"]) == (peer.port, {"role": "python"})

    # serf probes us (ping, acked by the peer) and gossips: we decode its real UDP packets.
    deadline = time.monotonic() + 15
    while not {"ping", "alive"} <= {m["type"] for m in peer.received}:
        assert time.monotonic() < deadline, f"got {[m['type'] for m in peer.received]}"
        time.sleep(0.1)
    assert any(m["type"] == "alive" and m["node"] == "serf-1" for m in peer.received)
    assert agent.statuses()["distcore-1"] == "alive"

    # A dead message about ourselves from ourselves is memberlist's leave (StateLeft). The peer
    # keeps acking pings, so only that message can take it out of serf's view: serf reports it
    # "failed" (serf says "left" only after its own leave intent, a serf-level user message).
    leave = {
        "type": "dead",
        "incarnation": peer.incarnation,
        "node": "distcore-1",
        "from": "distcore-1",
    }
    peer.send(agent, [leave])
    agent.wait_for_members({"serf-1": "alive", "distcore-1": "failed"}, timeout=5)


@pytest.mark.services
def test_serf_refuses_a_peer_with_the_wrong_key(
    serf_agent: Callable[..., SerfAgent], wire_peer: Callable[..., WirePeer]
) -> None:
    agent = serf_agent("serf-1", encrypt_key=base64.b64encode(bytes(16)).decode())
    peer = wire_peer("distcore-1", Keyring([b"\x01" * 16]))
    with pytest.raises(SerfJoinError):
        agent.join(peer.addr)
    assert peer.push_pulls == []
    assert "distcore-1" not in agent.statuses()
    # The peer's stream thread saw serf's bytes and refused them: record, then clear for close().
    assert any(isinstance(e, DecodeError) for e in peer.errors)
    peer.errors.clear()


def test_serf_tags() -> None:
    meta = encode_serf_tags({"role": "web", "dc": "eu"})
    assert meta[:1] == b"\xff"
    assert decode_serf_tags(meta) == {"dc": "eu", "role": "web"}
    assert decode_serf_tags(b"db") == {"role": "db"}  # serf's bare-role metadata
    with pytest.raises(DecodeError, match="serf tags"):
        decode_serf_tags(b"\xff\x01")
    with pytest.raises(ValueError, match="at most 512"):
        encode_serf_tags({"k": "v" * 600})
