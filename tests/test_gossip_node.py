"""distcore.gossip.Node on asyncio: an in-process cluster on loopback, and real serf agents."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from distcore.exceptions import JoinError
from distcore.gossip import GossipConfig, MemberEvent, Node
from distcore.gossip.wire import Keyring, encode_packet

from services import SerfAgent

# memberlist's local config, faster: a probe every 200 ms, suspicion from 0.6 s.
FAST = GossipConfig.local(
    probe_interval=0.2, probe_timeout=0.1, gossip_interval=0.05, push_pull_interval=2.0
)
SERF_TAGS = b"\xff\x81\xa4role\xa6python"


def states(node: Node) -> dict[str, str]:
    return {m.name: m.state for m in node.members()}


async def cluster(n: int) -> list[Node]:
    first = await Node.start("n0", config=FAST, seed=0)
    nodes = [first]
    for i in range(1, n):
        nodes.append(await Node.start(f"n{i}", seeds=[first.address], config=FAST, seed=i))
    for node in nodes:
        await node.wait_for(lambda ms: sum(m.state == "alive" for m in ms) == n)
    return nodes


def test_a_cluster_converges_detects_a_failure_and_sees_a_leave() -> None:
    async def main() -> None:
        nodes = await cluster(5)
        try:
            events: list[MemberEvent] = []

            async def watch() -> None:
                async for ev in nodes[0].events():
                    events.append(ev)

            watcher = asyncio.create_task(watch())
            # n4 fails without a word: everyone else marks it dead (suspect first).
            await nodes[4].shutdown()
            for node in nodes[:4]:
                await node.wait_for(lambda ms: {m.name: m.state for m in ms}["n4"] == "dead", 15)
            # n3 leaves gracefully: left, not dead.
            await nodes[3].leave()
            for node in nodes[:3]:
                await node.wait_for(lambda ms: {m.name: m.state for m in ms}["n3"] == "left", 10)
            await asyncio.sleep(0.1)
            watcher.cancel()
            kinds = [(e.kind, e.member.name) for e in events]
            assert ("suspect", "n4") in kinds
            assert ("dead", "n4") in kinds
            assert ("leave", "n3") in kinds
            assert ("dead", "n3") not in kinds
        finally:
            for node in nodes:
                await node.shutdown()

    asyncio.run(main())


def test_broadcasts_and_metadata_updates() -> None:
    async def main() -> None:
        nodes = await cluster(3)
        try:
            got: list[bytes] = []
            nodes[1].on_message(got.append)
            nodes[2].on_message(got.append)
            await nodes[0].broadcast(b"hello")
            await nodes[0].update_meta(b"v2")
            for node in nodes[1:]:
                await node.wait_for(lambda ms: next(m for m in ms if m.name == "n0").meta == b"v2")
            async with asyncio.timeout(5):
                while len(got) < 2:
                    await asyncio.sleep(0.02)
            assert set(got) == {b"hello"}
            assert nodes[1].health_score >= 0
        finally:
            for node in nodes:
                await node.shutdown()

    asyncio.run(main())


@pytest.mark.services
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "aes-gcm"])
def test_a_node_joins_serf_and_serf_joins_a_node(
    serf_agent: Callable[..., SerfAgent], encrypted: bool
) -> None:
    key = bytes(range(16, 48))
    encrypt = base64.b64encode(key).decode() if encrypted else None
    first = serf_agent("serf-1", encrypt_key=encrypt)

    async def main() -> None:
        keyring = Keyring([key]) if encrypted else None
        node = await Node.start(
            "distcore-1",
            seeds=[("127.0.0.1", first.bind[1])],
            meta=SERF_TAGS,
            keyring=keyring,
            config=GossipConfig.lan(),
        )
        try:
            await node.wait_for(lambda ms: states_of(ms).get("serf-1") == "alive")
            members = await asyncio.to_thread(
                first.wait_for_members, {"serf-1": "alive", "distcore-1": "alive"}
            )
            me = next(m for m in members if m["name"] == "distcore-1")
            assert me["tags"] == {"role": "python"}
            # A second agent joins through our node: both serf agents learn of each other and
            # our node learns of it, all over memberlist's protocol.
            second = await asyncio.to_thread(
                serf_agent, "serf-2", join=[f"127.0.0.1:{node.address[1]}"], encrypt_key=encrypt
            )
            await node.wait_for(lambda ms: states_of(ms).get("serf-2") == "alive", 15)
            await asyncio.to_thread(
                first.wait_for_members,
                {"serf-1": "alive", "serf-2": "alive", "distcore-1": "alive"},
            )
            # Stay up for a few probe rounds: serf keeps us alive (we answer its probes).
            await asyncio.sleep(3)
            assert (await asyncio.to_thread(second.statuses))["distcore-1"] == "alive"
            # SIGKILL serf-2: our node detects it through SWIM like the serf agent does.
            await asyncio.to_thread(second.kill)
            await node.wait_for(lambda ms: states_of(ms).get("serf-2") == "dead", 30)
        finally:
            await node.shutdown()

    asyncio.run(main())


def states_of(members: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {m.name: m.state for m in members}


def test_background_nodes_for_synchronous_code() -> None:
    from distcore.gossip import BackgroundNode

    with BackgroundNode("s0", config=FAST, seed=1) as a:
        with BackgroundNode("s1", seeds=[a.address], config=FAST, seed=2) as b:
            a.wait_for(lambda ms: len(ms) == 2)
            got: list[bytes] = []
            a.on_message(got.append)
            b.broadcast(b"from sync code")
            b.update_meta(b"m")
            a.wait_for(lambda ms: next(m for m in ms if m.name == "s1").meta == b"m")
            deadline = time.monotonic() + 5
            while not got and time.monotonic() < deadline:
                time.sleep(0.02)
            assert got == [b"from sync code"]
            assert a.join([b.address]) == 1
            stats = b.stats()
            assert stats["packets_received"] > 0 and stats["packets_dropped"] == 0, stats
            b.leave()
            a.wait_for(lambda ms: next(m for m in ms if m.name == "s1").state == "left")
        assert not b._thread.is_alive()


async def collect_events(nodes: list[Node]) -> tuple[list[tuple[str, str, str]], list[Any]]:
    """Starts recording (viewer, kind, member) from every node; returns the list and the tasks."""
    seen: list[tuple[str, str, str]] = []

    async def watch(node: Node) -> None:
        async for ev in node.events():
            seen.append((node.name, ev.kind, ev.member.name))

    return seen, [asyncio.create_task(watch(n)) for n in nodes]


@pytest.mark.parametrize("tcp_pings", [True, False], ids=["tcp-pings", "no-tcp-pings"])
def test_a_member_cut_off_from_udp_is_kept_alive_by_tcp_pings(tcp_pings: bool) -> None:
    async def main() -> None:
        config = GossipConfig.local(tcp_pings=tcp_pings)
        a = await Node.start("a", config=config, seed=1)
        b = await Node.start("b", seeds=[a.address], config=config, seed=2)
        c = await Node.start("c", seeds=[a.address], config=config, seed=3)
        nodes = [a, b, c]
        try:
            for node in nodes:
                await node.wait_for(lambda ms: sum(m.state == "alive" for m in ms) == 3)
            seen, watchers = await collect_events(nodes)
            # c's firewall drops UDP with a and b both ways; TCP still passes.
            c.block([a.address, b.address], udp_only=True)
            if tcp_pings:
                await asyncio.sleep(5)  # about five probe rounds per member (1 s each)
                assert [s for s in seen if s[1] != "join"] == []
                for node in nodes:
                    assert set(states(node).values()) == {"alive"}
                assert a.stats()["stream_ping_acks"] > 0
                assert c.stats()["stream_ping_acks"] > 0  # c reaches a and b over TCP too
            else:
                async with asyncio.timeout(8):
                    while ("a", "suspect", "c") not in seen:
                        await asyncio.sleep(0.05)
                assert states(a)["c"] != "alive"
                assert a.stats()["stream_pings"] == 0
            assert c.stats()["dropped_blocked"] > 0
            for w in watchers:
                w.cancel()
        finally:
            for node in nodes:
                await node.shutdown()

    asyncio.run(main())


@pytest.mark.services
def test_serf_and_a_node_cut_off_from_udp_keep_each_other_alive_over_tcp(
    serf_agent: Callable[..., SerfAgent],
) -> None:
    serf = serf_agent("serf-tcp")

    async def main() -> None:
        node = await Node.start(
            "distcore-tcp", seeds=[serf.bind], meta=SERF_TAGS, config=GossipConfig.lan()
        )
        try:
            await node.wait_for(lambda ms: states_of(ms).get("serf-tcp") == "alive")
            await asyncio.to_thread(
                serf.wait_for_members, {"serf-tcp": "alive", "distcore-tcp": "alive"}
            )
            seen, watchers = await collect_events([node])
            node.block([serf.bind], udp_only=True)
            # Without the fallback each side would suspect the other after one probe (1 s) and
            # declare it failed after the 4 s suspicion timeout for two members: a node blocking
            # serf entirely marks it dead about 6 s after the block.
            await asyncio.sleep(8)
            assert (await asyncio.to_thread(serf.statuses))["distcore-tcp"] == "alive"
            assert states(node)["serf-tcp"] == "alive"
            assert [s for s in seen if s[1] != "join"] == []
            stats = node.stats()
            assert stats["stream_ping_acks"] > 0, stats  # our TCP pings reached serf
            assert stats["dropped_blocked"] > 0, stats
            log = serf.output(limit=1 << 20)
            # memberlist's own words when its UDP probe failed and its TCP ping got our ack.
            assert f"Was able to connect to {node.name} but other probes failed" in log
            assert "Suspect distcore-tcp" not in log
            for w in watchers:
                w.cancel()
        finally:
            await node.shutdown()

    asyncio.run(main())


def test_labels_keep_clusters_apart() -> None:
    async def main() -> None:
        config = GossipConfig.local()
        a = await Node.start("a", config=config, label="blue")
        b = await Node.start("b", seeds=[a.address], config=config, label=b"blue")
        plain = await Node.start("plain", config=config)
        other = await Node.start("other", config=config, label="red")
        nodes = [a, b, plain, other]
        try:
            await a.wait_for(lambda ms: states_of(ms) == {"a": "alive", "b": "alive"})
            assert a.label == b"blue"
            # A different label, and none at all, cannot join either way.
            for joiner, seed in [(other, a), (plain, a), (a, plain), (other, plain)]:
                errors_before = seed.stats()["stream_errors"]
                with pytest.raises(JoinError, match=f"{seed.address[1]}"):
                    await joiner.join([seed.address])
                assert seed.stats()["stream_errors"] == errors_before + 1
            # Tell "other" (in its own label) that a is a member: it probes a, whose node drops
            # those packets as another cluster's, and never hears of "other".
            lie = encode_packet(
                [
                    {
                        "type": "alive",
                        "incarnation": 1,
                        "node": "a",
                        "addr": a.address[0],
                        "port": a.address[1],
                        "meta": b"",
                        "vsn": [1, 5, 2, 2, 5, 4],
                    }
                ],
                label=b"red",
            )
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(lie, other.address)
            await other.wait_for(lambda ms: "a" in states_of(ms))
            async with asyncio.timeout(5):
                while a.stats()["dropped_label"] < 2:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            assert states(a) == {"a": "alive", "b": "alive"}
            assert states(b) == {"a": "alive", "b": "alive"}
            assert states(plain) == {"plain": "alive"}
            assert a.stats()["packets_dropped"] == a.stats()["dropped_label"]
        finally:
            for node in nodes:
                await node.shutdown()

    asyncio.run(main())
