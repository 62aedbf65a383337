"""distcore.gossip.Node on asyncio: an in-process cluster on loopback, and real serf agents."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable

import pytest

from distcore.gossip import GossipConfig, MemberEvent, Node
from distcore.gossip.wire import Keyring

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
            b.leave()
            a.wait_for(lambda ms: next(m for m in ms if m.name == "s1").state == "left")
        assert not b._thread.is_alive()
