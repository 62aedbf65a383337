"""A mixed cluster on loopback with LAN timings: 2 real serf agents and 2 ``distcore gossip agent``
processes (``--profile lan``). A SIGKILLed distcore agent is marked ``failed`` by both serf agents
(memberlist's own detection of a crashed distcore member) and ``dead`` by the other distcore
agent. (tests/test_services_serf.py covers the other direction: a Node detecting a serf crash.)

Not timed: the time it takes is measured side by side with serf in benches/test_bench_gossip.py.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from services import SerfAgent, free_gossip_port, pid_exists, port_accepts
from services._common import Child, stop_children

pytestmark = pytest.mark.services

StartSerf = Callable[..., SerfAgent]
# LAN: suspicion lasts 4-24 s at N=4 (k=2 confirmations bring it to 4 s), probes every 1 s.
TIMEOUT = 30.0


class DistcoreAgent:
    def __init__(self, name: str, join: str) -> None:
        self.name = name
        self.port, self.rpc = free_gossip_port(), free_gossip_port()
        self.child = Child(
            [
                *(sys.executable, "-m", "distcore.cli", "gossip", "agent", "--name", name),
                *("--bind", f"127.0.0.1:{self.port}", "--rpc", f"127.0.0.1:{self.rpc}"),
                *("--profile", "lan", "--join", join, "--tag", f"role={name}"),
            ]
        )

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def statuses(self) -> dict[str, str]:
        with socket.create_connection(("127.0.0.1", self.rpc), timeout=5) as s:
            s.sendall(b'{"cmd": "members"}\n')
            members = json.loads(s.makefile().readline())["members"]
        return {m["name"]: m["state"] for m in members}


def wait_for(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, ValueError):
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def distcore_agents() -> Iterator[Callable[[str, str], DistcoreAgent]]:
    started: list[DistcoreAgent] = []

    def start(name: str, join: str) -> DistcoreAgent:
        agent = DistcoreAgent(name, join)
        started.append(agent)
        wait_for(lambda: port_accepts(agent.rpc), f"{name} to start", 60)
        return agent

    yield start
    stop_children(a.child for a in started)


def test_serf_and_distcore_detect_a_sigkilled_distcore_agent(
    serf_agent: StartSerf, distcore_agents: Callable[[str, str], DistcoreAgent]
) -> None:
    s0 = serf_agent("s0")
    s1 = serf_agent("s1", join=[s0])
    d0 = distcore_agents("d0", s0.addr)
    d1 = distcore_agents("d1", s1.addr)
    names = {"s0", "s1", "d0", "d1"}
    all_alive = dict.fromkeys(names, "alive")
    for serf in (s0, s1):
        serf.wait_for_members(all_alive, TIMEOUT)
    wait_for(lambda: d0.statuses() == all_alive, "d0 to see all alive")
    wait_for(lambda: d1.statuses() == all_alive, "d1 to see all alive")
    assert {m["name"]: m["tags"] for m in s0.members()}["d1"] == {"role": "d1"}

    pid = d1.child.pid
    d1.child.popen.kill()
    d1.child.popen.wait(timeout=10)
    assert not pid_exists(pid)
    gone = {"s0": "alive", "s1": "alive", "d0": "alive", "d1": "failed"}
    for serf in (s0, s1):
        serf.wait_for_members(gone, TIMEOUT)
    wait_for(
        lambda: d0.statuses() == {"s0": "alive", "s1": "alive", "d0": "alive", "d1": "dead"},
        "d0 to see d1 dead and the rest alive",
    )
    # The survivors still agree after the detection: no false suspicion of anyone else.
    assert s1.statuses() == gone and d0.statuses()["s1"] == "alive"
