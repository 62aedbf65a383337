"""Ten `distcore gossip agent` processes on loopback: they converge; a SIGKILLed one is marked
dead by all; a SIGSTOPped one (longer than its suspicion timeout) refutes when continued and
comes back alive with a higher incarnation; SIGINT leaves gracefully (left, not dead); a
partition (packets dropped between two halves) makes each half declare the other dead, and
healing it brings everyone back alive."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from services._common import Child, free_ports, port_accepts, stop_children

AGENTS = 10
# memberlist's local profile, faster: suspicion lasts 3 * max(1, log10 n) * 0.2 s = 0.6 s at least.
TIMINGS = [
    "--profile",
    "local",
    "--probe-interval",
    "0.2",
    "--probe-timeout",
    "0.1",
    "--gossip-interval",
    "0.05",
    "--push-pull-interval",
    "2",
]


class Agent:
    def __init__(self, name: str, join: int | None) -> None:
        self.name = name
        self.port, self.rpc = free_ports(2)
        argv = [
            sys.executable,
            "-m",
            "distcore.cli",
            "gossip",
            "agent",
            "--name",
            name,
            "--bind",
            f"127.0.0.1:{self.port}",
            "--rpc",
            f"127.0.0.1:{self.rpc}",
            "--tag",
            f"role={name}",
            *TIMINGS,
        ]
        if join is not None:
            argv += ["--join", f"127.0.0.1:{join}"]
        self.child = Child(argv)

    def rpc_call(self, request: dict) -> dict:  # type: ignore[type-arg]
        with socket.create_connection(("127.0.0.1", self.rpc), timeout=10) as s:
            s.sendall(json.dumps(request).encode() + b"\n")
            return json.loads(s.makefile().readline())  # type: ignore[no-any-return]

    def members(self) -> dict[str, dict]:  # type: ignore[type-arg]
        """What the agent's --rpc answers (the protocol `distcore gossip members` speaks)."""
        return {m["name"]: m for m in self.rpc_call({"cmd": "members"})["members"]}


def wait(check: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        time.sleep(0.2)
    return time.monotonic() - start


def states(agent: Agent) -> dict[str, str]:
    return {n: m["state"] for n, m in agent.members().items()}


def wait_state(agent: Agent, name: str, want: str, timeout: float) -> None:
    """Waits until `agent` sees `name` in state `want`; the timeout says what it saw instead."""
    seen: list[str | None] = [None]

    def check() -> bool:
        seen[0] = states(agent).get(name)
        return seen[0] == want

    try:
        wait(check, timeout, f"{agent.name} to see {name} {want}")
    except AssertionError as e:
        raise AssertionError(f"{e} (it sees {name} as {seen[0]})") from None


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    started: list[Agent] = []
    first = Agent("a0", None)
    started.append(first)
    wait(lambda: port_accepts(first.rpc), 60, "a0 to start")
    for i in range(1, AGENTS):
        started.append(Agent(f"a{i}", first.port))
    for a in started:
        wait(lambda a=a: port_accepts(a.rpc), 60, f"{a.name} to start")
    yield started
    for a in started:
        if a.child.running:
            a.child.popen.send_signal(signal.SIGCONT)
    stop_children([a.child for a in started])


def test_ten_processes_converge_detect_crashes_pauses_leaves_and_partitions(
    agents: list[Agent],
) -> None:
    names = {a.name for a in agents}
    for a in agents:
        seen: dict[str, str] = {}

        def converged(a: Agent = a, seen: dict[str, str] = seen) -> bool:
            seen.clear()
            seen.update(states(a))
            return set(seen) == names and set(seen.values()) == {"alive"}

        try:
            wait(converged, 30, f"{a.name} to see all {AGENTS} alive")
        except AssertionError as e:
            raise AssertionError(f"{e}: it sees {dict(sorted(seen.items()))}") from None
    assert agents[0].members()["a5"]["tags"] == {"role": "a5"}
    table = subprocess.run(
        [
            sys.executable,
            "-m",
            "distcore.cli",
            "gossip",
            "members",
            "--rpc",
            f"127.0.0.1:{agents[3].rpc}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert all(f"a{i}" in table for i in range(AGENTS)) and "role=a3" in table

    # SIGKILL: everyone else marks a9 dead.
    agents[9].child.popen.kill()
    for a in agents[:9]:
        wait_state(a, "a9", "dead", 30)

    # SIGSTOP a8 past its suspicion timeout, then SIGCONT: it refutes and is alive again.
    before = agents[0].members()["a8"]["incarnation"]
    agents[8].child.popen.send_signal(signal.SIGSTOP)
    wait(lambda: states(agents[0]).get("a8") in ("suspect", "dead"), 30, "a8 to be suspected")
    time.sleep(1.5)
    agents[8].child.popen.send_signal(signal.SIGCONT)
    for a in agents[:8]:
        wait_state(a, "a8", "alive", 30)
    assert agents[0].members()["a8"]["incarnation"] > before

    # SIGINT: a graceful leave, seen as left (not dead) by the others.
    agents[7].child.popen.send_signal(signal.SIGINT)
    for a in agents[:7]:
        wait_state(a, "a7", "left", 30)
    agents[7].child.popen.wait(timeout=10)
    assert agents[7].child.popen.returncode == 0

    # A partition made by dropping packets (the agents' fault-injection RPC), then healed.
    left_side, right_side = agents[0:4], [*agents[4:7], agents[8]]
    for side, other in ((left_side, right_side), (right_side, left_side)):
        for a in side:
            addrs = [f"127.0.0.1:{b.port}" for b in other]
            assert a.rpc_call({"cmd": "block", "addrs": addrs}) == {"ok": True}
    wait(
        lambda: states(agents[0]).get("a4") == "dead" and states(agents[4]).get("a0") == "dead",
        30,
        "each side to declare the other dead",
    )
    assert states(agents[1])["a2"] == "alive"  # members on the same side still see each other
    for a in left_side + right_side:
        assert a.rpc_call({"cmd": "unblock"}) == {"ok": True}
    healed = {a.name for a in left_side + right_side}
    for a in left_side + right_side:
        wait(
            lambda a=a: all(states(a).get(n) == "alive" for n in healed),
            45,
            f"{a.name} to see the partition healed",
        )
