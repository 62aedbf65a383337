"""The serf harness against real `serf agent`s on 127.0.0.1: membership, encryption, failure."""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Callable

import pytest

from services import SerfAgent, SerfJoinError, pid_exists, port_accepts, require_binary, serf_key

pytestmark = pytest.mark.services

StartSerf = Callable[..., SerfAgent]
NAMES = ("alpha", "beta", "gamma")
ALL_ALIVE = dict.fromkeys(NAMES, "alive")
TIMEOUT = 30.0


def three_agents(serf_agent: StartSerf, **kwargs: object) -> list[SerfAgent]:
    """alpha, then beta and gamma joining alpha; returns once each sees all 3 alive."""
    first = serf_agent(NAMES[0], tags={"role": NAMES[0]}, **kwargs)
    rest = [serf_agent(n, join=[first], tags={"role": n}, **kwargs) for n in NAMES[1:]]
    agents = [first, *rest]
    for agent in agents:
        agent.wait_for_members(ALL_ALIVE, TIMEOUT)
    return agents


def test_three_agents_see_three_alive_members(serf_agent: StartSerf) -> None:
    start = time.monotonic()
    agents = three_agents(serf_agent)
    print(f"3 agents started and converged in {time.monotonic() - start:.2f}s")
    by_agent = {a.name: {m["name"]: m for m in a.members()} for a in agents}
    for agent in agents:
        members = by_agent[agent.name]
        assert set(members) == set(NAMES)
        for other in agents:
            seen = members[other.name]
            assert seen["status"] == "alive"
            assert (seen["host"], seen["port"]) == other.bind
            assert seen["addr"] == other.addr
            assert seen["tags"] == {"role": other.name}
            assert seen["protocol"]["min"] <= seen["protocol"]["version"]
            assert seen["protocol"]["version"] <= seen["protocol"]["max"]
    assert all(port_accepts(a.bind[1]) for a in agents)  # memberlist's TCP listener


def test_join_through_the_cli_links_two_separate_agents(serf_agent: StartSerf) -> None:
    left, right = serf_agent("left"), serf_agent("right")
    assert [m["name"] for m in left.members()] == ["left"]
    assert left.join(right.addr) == 1
    for agent in (left, right):
        agent.wait_for_members({"left": "alive", "right": "alive"}, TIMEOUT)


def test_encrypted_agents_converge_and_reject_a_different_key(serf_agent: StartSerf) -> None:
    key = serf_key(16)  # AES-128; memberlist also takes 24 and 32 bytes
    agents = three_agents(serf_agent, encrypt_key=key)
    first = agents[0]
    with pytest.raises(SerfJoinError, match="No installed keys could decrypt"):
        serf_agent("intruder", join=[first], encrypt_key=serf_key())
    with pytest.raises(SerfJoinError, match="encrypt"):
        serf_agent("plaintext", join=[first])  # no key at all
    outsider = serf_agent("outsider", encrypt_key=serf_key())
    with pytest.raises(SerfJoinError):
        outsider.join(first.addr)
    time.sleep(0.5)  # let any stray gossip arrive before looking
    for agent in agents:
        assert agent.statuses() == ALL_ALIVE
    assert {m["name"] for m in outsider.members()} == {"outsider"}


def test_a_sigkilled_agent_is_marked_failed(serf_agent: StartSerf) -> None:
    alpha, beta, gamma = three_agents(serf_agent)
    start = time.monotonic()
    gamma.kill()
    assert not pid_exists(gamma.pid)
    for agent in (alpha, beta):
        agent.wait_for_members({"alpha": "alive", "beta": "alive", "gamma": "failed"}, TIMEOUT)
    print(f"SIGKILLed agent marked failed by both others after {time.monotonic() - start:.2f}s")


def test_a_graceful_leave_is_seen_as_left(serf_agent: StartSerf) -> None:
    alpha, beta, _gamma = three_agents(serf_agent)
    pid = beta.pid
    beta.leave()
    assert not beta.running
    assert not pid_exists(pid)
    alpha.wait_for_members({"beta": "left", "gamma": "alive"}, TIMEOUT)


def test_stop_ends_the_agent_by_pid(serf_agent: StartSerf) -> None:
    agent = serf_agent()
    pid, rpc_port = agent.pid, agent.rpc.rsplit(":", 1)[1]
    assert pid_exists(pid)
    start = time.monotonic()
    agent.stop()
    print(f"SIGTERM stop took {time.monotonic() - start:.3f}s")
    assert not agent.running
    assert not pid_exists(pid)
    assert not port_accepts(int(rpc_port))
    assert "Shutdown without a Leave" in agent.output()  # SIGTERM skips the leave


def test_serf_key_matches_serf_keygen() -> None:
    binary = require_binary("serf")
    printed = subprocess.run(
        [binary, "keygen"], capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()
    ours = serf_key()
    assert len(base64.b64decode(printed, validate=True)) == 32
    assert len(base64.b64decode(ours, validate=True)) == 32
    assert len(ours) == len(printed)
    assert len(base64.b64decode(serf_key(16))) == 16
    with pytest.raises(ValueError):
        serf_key(20)
