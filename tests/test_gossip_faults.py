"""distcore.gossip.Node against bad input: unreachable seeds, a taken name, oversized metadata,
bad labels and keys (each a specific exception, nothing left running), and hostile packets and
streams (dropped, counted, harmless)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from distcore._cliutil import EXIT_BAD_INPUT
from distcore.exceptions import (
    DecodeError,
    DistcoreError,
    GossipError,
    InvalidKeyError,
    InvalidLabelError,
    JoinError,
    MetadataTooLargeError,
    NameConflictError,
)
from distcore.gossip import GossipConfig, MemberEvent, Node, SwimStateMachine
from distcore.gossip._cli import gossip_group
from distcore.gossip.wire import Keyring, decode_packet, encode_packet, encode_stream

CONFIG = GossipConfig.local(tcp_timeout=0.5)
VSN = [1, 5, 2, 2, 5, 4]


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (TCP), a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    """Both TCP and UDP on 127.0.0.1:port can be bound: the node let go of its sockets."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def snapshot(node: Node) -> set[tuple[str, str, int]]:
    return {(m.name, m.state, m.incarnation) for m in node.members()}


async def pair(**kwargs: Any) -> tuple[Node, Node]:
    a = await Node.start("a", config=CONFIG, seed=1, **kwargs)
    b = await Node.start("b", seeds=[a.address], config=CONFIG, seed=2, **kwargs)
    for n in (a, b):
        await n.wait_for(lambda ms: sum(m.state == "alive" for m in ms) == 2)
    return a, b


def other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


# -- bad input to Node.start: a specific exception, nothing left behind --------------------------


def test_unreachable_seeds_fail_the_join_naming_them(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        dead = ("127.0.0.1", closed_port())
        tasks_before = other_tasks()
        with pytest.raises(JoinError) as info:
            await Node.start("lonely", bind=("127.0.0.1", 0), seeds=[dead], config=CONFIG)
        assert f"127.0.0.1:{dead[1]} (connection refused)" in str(info.value)
        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value, GossipError)
        assert other_tasks() == tasks_before  # no timer, no push-pull left running

        # A seed that accepts the connection and never answers: timed out after tcp_timeout.
        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()

        server = await asyncio.start_server(mute, "127.0.0.1", 0)
        silent = ("127.0.0.1", server.sockets[0].getsockname()[1])
        async with server:
            with pytest.raises(JoinError) as info:
                await Node.start("lonely", seeds=[silent, dead], config=CONFIG)
        assert str(info.value) == (
            f"could not join through any seed: 127.0.0.1:{silent[1]} (timed out), "
            f"127.0.0.1:{dead[1]} (connection refused)"
        )
        # One seed that answers is enough (as memberlist's Join); the others are logged.
        a = await Node.start("a", config=CONFIG)
        try:
            with caplog.at_level(logging.WARNING, logger="distcore.gossip"):
                b = await Node.start("b", seeds=[dead, a.address], config=CONFIG)
            assert f"127.0.0.1:{dead[1]}" in caplog.text
            assert await b.join([a.address, dead]) == 1
            await b.shutdown()
        finally:
            await a.shutdown()

    asyncio.run(main())


def test_a_failed_start_closes_its_sockets() -> None:
    async def main() -> None:
        port = closed_port()
        with pytest.raises(JoinError):
            await Node.start("x", bind=("127.0.0.1", port), seeds=[("127.0.0.1", closed_port())])
        assert port_free(port)

    asyncio.run(main())


def test_a_name_held_by_a_live_member_is_refused_and_reported() -> None:
    async def main() -> None:
        a, b = await pair()
        events: list[MemberEvent] = []

        async def watch() -> None:
            async for ev in b.events():
                events.append(ev)

        watcher = asyncio.create_task(watch())
        port = closed_port()
        try:
            with pytest.raises(NameConflictError) as info:
                await Node.start("a", bind=("127.0.0.1", port), seeds=[b.address], config=CONFIG)
            assert (
                str(info.value)
                == f"the name 'a' is held by a live member at 127.0.0.1:{a.address[1]}"
            )
            assert port_free(port)
            # b, which the imposter pushed its state to, reports the conflict and keeps a.
            async with asyncio.timeout(2):
                while not any(e.kind == "conflict" for e in events):
                    await asyncio.sleep(0.02)
            conflict = next(e for e in events if e.kind == "conflict")
            assert conflict.member.name == "a"
            assert conflict.member.addr == a.address
            assert conflict.other_addr == ("127.0.0.1", port)
            assert {m.name: m.addr for m in b.members()}["a"] == a.address
        finally:
            watcher.cancel()
            await b.shutdown()
            await a.shutdown()

    asyncio.run(main())


def test_metadata_labels_and_keys_out_of_range() -> None:
    async def main() -> None:
        port = closed_port()
        with pytest.raises(MetadataTooLargeError, match="at most 512 bytes, got 513"):
            await Node.start("m", bind=("127.0.0.1", port), meta=b"x" * 513)
        with pytest.raises(InvalidLabelError, match="at most 255 bytes, got 256"):
            await Node.start("m", bind=("127.0.0.1", port), label="é" * 128)
        with pytest.raises(TypeError, match="str or bytes"):
            await Node.start("m", bind=("127.0.0.1", port), label=7)  # type: ignore[arg-type]
        assert port_free(port)
        # The largest allowed values work; an update over the limit changes nothing.
        a = await Node.start("m", config=CONFIG, meta=b"x" * 512, label=b"L" * 255)
        try:
            with pytest.raises(MetadataTooLargeError):
                await a.update_meta(b"y" * 513)
            assert a.members()[0].meta == b"x" * 512
            assert a.members()[0].incarnation == 1
        finally:
            await a.shutdown()

    asyncio.run(main())
    for key in (b"", b"short", b"k" * 33):
        with pytest.raises(InvalidKeyError, match="16, 24 or 32 bytes"):
            Keyring([key])
    ring = Keyring([b"k" * 16])
    with pytest.raises(InvalidKeyError):
        ring.add(b"k" * 17)
    assert ring.keys == [b"k" * 16]
    for cls in (MetadataTooLargeError, InvalidLabelError, InvalidKeyError):
        assert issubclass(cls, GossipError) and issubclass(cls, ValueError)


def test_the_agent_cli_turns_these_errors_into_one_line() -> None:
    runner = CliRunner()
    bind = f"127.0.0.1:{closed_port()}"
    dead = f"127.0.0.1:{closed_port()}"
    cases = [
        (["--join", dead], f"error: could not join through any seed: {dead} (connection refused)"),
        (["--label", "x" * 256], "error: a label is at most 255 bytes, got 256"),
        (["--encrypt", "c2hvcnQ="], "error: --encrypt takes base64 keys of 16, 24 or 32 bytes"),
    ]
    for extra, message in cases:
        result = runner.invoke(gossip_group, ["agent", "--name", "x", "--bind", bind, *extra])
        assert result.exit_code == EXIT_BAD_INPUT, result.output
        assert result.output.startswith(message), result.output
        assert result.output.count("\n") == 1, result.output

    async def taken() -> None:
        a = await Node.start("a", config=CONFIG, label="blue")
        try:
            join = f"{a.address[0]}:{a.address[1]}"
            argv = ["agent", "--name", "a", "--bind", bind, "--join", join]
            # In the same cluster (so --label reached the node) the name is taken ...
            result = await asyncio.to_thread(
                runner.invoke, gossip_group, [*argv, "--label", "blue"]
            )
            assert result.exit_code == EXIT_BAD_INPUT, result.output
            assert result.output == f"error: the name 'a' is held by a live member at {join}\n"
            # ... and under another label the seed does not answer at all.
            result = await asyncio.to_thread(runner.invoke, gossip_group, [*argv, "--label", "red"])
            assert result.exit_code == EXIT_BAD_INPUT, result.output
            assert result.output.startswith(f"error: could not join through any seed: {join}")
        finally:
            await a.shutdown()

    asyncio.run(taken())


# -- hostile packets and streams: dropped, counted, harmless ------------------------------------


def real_messages(rng: random.Random) -> list[dict[str, Any]]:
    ping = {"type": "ping", "seq_no": rng.randrange(1 << 32), "node": "a"}
    alive = {
        "type": "alive",
        "incarnation": rng.randrange(1, 1000),
        "node": rng.choice(["a", "b", "mallory"]),
        "addr": "127.0.0.1",
        "port": rng.randrange(1, 65536),
        "meta": rng.randbytes(rng.randrange(0, 100)),
        "vsn": VSN,
    }
    suspect = {"type": "suspect", "incarnation": 99, "node": "b", "from": "mallory"}
    return rng.sample([ping, alive, suspect], rng.randrange(1, 4))


def hostile_packets(
    rng: random.Random, keyring: Keyring | None
) -> dict[str, tuple[list[bytes], str]]:
    """Categories of bad datagrams for a node with ``keyring`` and no label, each with the drop
    reason its node must count them under."""
    enc = "decrypt" if keyring else "decode"  # what any other garbage counts as
    wrong_key = Keyring([bytes(range(16))])
    real = [encode_packet(real_messages(rng), keyring, crc=True) for _ in range(60)]
    flipped = []
    for _ in range(50):
        p = bytearray(
            encode_packet(real_messages(rng), None, crc=True, compress=rng.random() < 0.5)
        )
        p[rng.randrange(1, 5)] ^= 1 << rng.randrange(8)  # a bit of the CRC itself
        flipped.append(bytes(p))
    unknown = [
        bytes([rng.choice([14, 15, 99, 200, 243])]) + encode_packet([m])[1:]
        for m in (real_messages(rng)[0] for _ in range(30))
    ]
    random_bytes = []
    while len(random_bytes) < 200:
        data = rng.randbytes(rng.randrange(1, 1500))
        if data[0] != 244:  # a label header would be counted under "label"
            random_bytes.append(data)
    categories = {
        "random": (random_bytes, enc),
        "truncated": ([p[: rng.randrange(1, len(p))] for p in real], enc),
        "bad crc": (flipped if keyring is None else [], "decode"),
        "unknown type": (unknown if keyring is None else [], "decode"),
        "wrong key": ([encode_packet(real_messages(rng), wrong_key) for _ in range(40)], enc),
        "oversized": ([rng.randbytes(65_000) for _ in range(5)], enc),
        "wrong label": (
            [encode_packet(real_messages(rng), keyring, label=b"other") for _ in range(30)]
            + [b"\xf4\x01x" + encode_packet(real_messages(rng), keyring)],
            "label",
        ),
    }
    # Only what the decoder refuses is hostile: an encrypted packet read without a key can
    # happen to start like an empty message (Go's decoder too ignores bytes after a message).
    return {
        name: ([p for p in packets if refused(p, keyring)], reason)
        for name, (packets, reason) in categories.items()
    }


def refused(packet: bytes, keyring: Keyring | None) -> bool:
    try:
        decode_packet(packet, keyring)
    except DecodeError:
        return True
    return False


async def send_counted(sock: socket.socket, node: Node, packets: list[bytes]) -> None:
    """Sends each datagram once the node has counted the previous one (no socket buffer
    overflow can lose one on the way)."""
    for p in packets:
        before = node.stats()["packets_received"]
        sock.sendto(p, node.address)
        async with asyncio.timeout(5):
            while node.stats()["packets_received"] == before:
                await asyncio.sleep(0.001)


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "aes-gcm"])
def test_hostile_packets_and_streams_are_dropped_and_counted(encrypted: bool) -> None:
    keyring = Keyring([b"k" * 32]) if encrypted else None

    async def main() -> None:
        a, b = await pair(keyring=keyring)
        try:
            members = {n.name: snapshot(n) for n in (a, b)}
            rng = random.Random(7)
            sent = 0
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", 0))
                for category, (packets, reason) in hostile_packets(rng, keyring).items():
                    before = a.stats()
                    await send_counted(sock, a, packets)
                    after = a.stats()
                    assert after["packets_dropped"] - before["packets_dropped"] == len(packets), (
                        category
                    )
                    key = f"dropped_{reason}"
                    assert after[key] - before[key] == len(packets), (category, before, after)
                    sent += len(packets)
            assert sent >= 300
            stats = a.stats()
            reasons = ("decode", "decrypt", "label", "blocked")
            assert stats["packets_dropped"] == sum(stats[f"dropped_{r}"] for r in reasons)
            assert stats["packets_dropped"] == sent

            # Hostile streams: garbage, a push-pull cut short, a wrong label.
            state = {
                "type": "push_pull",
                "join": False,
                "nodes": [],
                "user_state": b"",
            }
            whole = encode_stream(state, keyring, compress=True)
            streams = [
                rng.randbytes(200),
                whole[: len(whole) // 2],
                whole[:1],
                encode_stream(state, keyring, label=b"other"),
                encode_stream({"type": "ping", "seq_no": 1, "node": "a"}, Keyring([bytes(16)])),
            ]
            before = a.stats()
            for data in streams:
                reader, writer = await asyncio.open_connection(*a.address)
                writer.write(data)
                writer.write_eof()
                await writer.drain()
                assert await reader.read() == b""  # nothing comes back: the node hangs up
                writer.close()
            async with asyncio.timeout(5):
                while a.stats()["stream_errors"] - before["stream_errors"] < len(streams):
                    await asyncio.sleep(0.01)
            after = a.stats()
            assert after["stream_errors"] - before["stream_errors"] == len(streams)
            assert after["streams_received"] - before["streams_received"] >= len(streams)

            # Nothing about the membership changed, and the cluster still works.
            assert {n.name: snapshot(n) for n in (a, b)} == members
            await a.update_meta(b"still here")
            await b.wait_for(lambda ms: {m.name: m.meta for m in ms}["a"] == b"still here")
        finally:
            await b.shutdown()
            await a.shutdown()

    asyncio.run(main())


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000), encrypted=st.booleans(), label=st.sampled_from([b"", b"l"]))
def test_the_state_machine_refuses_or_handles_any_bytes(
    data: bytes, encrypted: bool, label: bytes
) -> None:
    keyring = Keyring([b"k" * 16]) if encrypted else None
    sm = SwimStateMachine("a", ("127.0.0.1", 7000), CONFIG, keyring=keyring, label=label or None)
    before = sm.members()
    try:
        outputs = sm.handle_packet(("127.0.0.1", 7001), data, 1.0)
    except DecodeError:
        assert sm.members() == before  # refused: nothing changed
    else:
        assert isinstance(outputs, list)
    with contextlib.suppress(DistcoreError):
        sm.handle_stream(data, 1.0)
