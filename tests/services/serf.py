"""Real HashiCorp serf agents on 127.0.0.1 (Debian's ``serf``), driven through the serf CLI.

The recipe: ``serf agent -node NAME -bind 127.0.0.1:PORT -advertise 127.0.0.1:PORT
-rpc-addr 127.0.0.1:RPCPORT [-join HOST:PORT ...] [-encrypt KEY] [-tag k=v ...]
-log-level debug``. memberlist gossips over UDP *and* TCP on the bind port, so that port must
be free for both. An agent is ready once its RPC port answers ``serf members`` and its startup
joins (``-join``) are done; a join that fails makes serf exit 1, which raises `SerfJoinError`.

Signals: SIGTERM shuts the agent down *without* a leave (the others eventually mark it
``failed``; ~0.1 s to exit); SIGINT or ``serf leave`` leave gracefully first (``left``;
~2-3 s); SIGKILL is a crash (``failed`` after memberlist's suspicion timeout, ~6 s with N=3
on the default ``lan`` profile).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._common import HOST, Child, free_port, port_accepts, require_binary, service_unavailable

START_ATTEMPTS = 5
READY_TIMEOUT = 15.0  # a -join to an unreachable peer waits out memberlist's 10 s TCP timeout
STOP_TIMEOUT = 10.0  # SIGTERM exits in ~0.1 s; a graceful leave (SIGINT) needs ~2-3 s
CLI_TIMEOUT = 10.0
SERF_HINT = "install Debian's serf (scripts/install_services.sh, as root)"
_READY_LINE = "==> Log data will now stream in"  # printed after the startup joins succeeded
_serial = itertools.count(1)

Member = dict[str, Any]
MemberCheck = Callable[[list[Member]], bool] | Mapping[str, str | None]


class SerfError(Exception):
    """A serf CLI command failed, or an agent did something the caller did not expect."""


class SerfJoinError(SerfError):
    """An agent could not join (wrong/missing encryption key, unreachable peer, ...)."""


def serf_key(size: int = 32) -> str:
    """A fresh gossip encryption key: `size` (16, 24 or 32) random bytes in base64.

    The same format `serf keygen` prints (it makes 32-byte keys; memberlist takes all three).
    """
    if size not in (16, 24, 32):
        raise ValueError("serf keys are 16, 24 or 32 bytes (AES-128/192/256)")
    return base64.b64encode(os.urandom(size)).decode()


def free_gossip_port(attempts: int = 50) -> int:
    """A port on 127.0.0.1 free for both TCP and UDP a moment ago (memberlist needs both)."""
    for _ in range(attempts):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind((HOST, port))
            except OSError:
                continue
        return port
    raise OSError(f"no port on {HOST} was free for both TCP and UDP after {attempts} tries")


def parse_members(text: str) -> list[Member]:
    """`serf members -format=json` output -> [{name, addr, host, port, status, tags, protocol}].

    ``addr`` is serf's "host:port" string; ``protocol`` is {"min", "max", "version"} (the serf
    protocol range the member speaks), or {} if this serf does not print it.
    """
    members: list[Member] = []
    for raw in json.loads(text).get("members") or []:
        addr = str(raw.get("addr", ""))
        host, _, port = addr.rpartition(":")
        members.append(
            {
                "name": raw["name"],
                "addr": addr,
                "host": host.strip("[]"),
                "port": int(raw.get("port") or port or 0),
                "status": raw.get("status", ""),
                "tags": dict(raw.get("tags") or {}),
                "protocol": dict(raw.get("protocol") or {}),
            }
        )
    return members


def _cli(binary: str, *args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(eq=False)
class SerfAgent:
    """One running `serf agent` child, gossiping on `bind` with its RPC on `rpc`."""

    name: str
    bind: tuple[str, int]
    rpc_port: int
    child: Child
    binary: str
    encrypt_key: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def addr(self) -> str:
        """``"127.0.0.1:PORT"``, the gossip address others `-join`."""
        return f"{self.bind[0]}:{self.bind[1]}"

    @property
    def rpc(self) -> str:
        """``"127.0.0.1:RPCPORT"``, for the CLI's ``-rpc-addr``."""
        return f"{HOST}:{self.rpc_port}"

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def running(self) -> bool:
        return self.child.running

    def output(self, limit: int = 4000) -> str:
        """Tail of the agent's log (it runs with -log-level debug)."""
        return self.child.output(limit)

    def command(self, *args: str, timeout: float = CLI_TIMEOUT) -> str:
        """Run ``serf CMD -rpc-addr=<this agent> ARGS...``; its stdout, or SerfError."""
        argv = [args[0], f"-rpc-addr={self.rpc}", *args[1:]]
        done = _cli(self.binary, *argv, timeout=timeout)
        if done.returncode != 0:
            raise SerfError(
                f"`serf {' '.join(argv)}` exited {done.returncode}: "
                f"{(done.stdout + done.stderr).strip()}"
            )
        return done.stdout

    def members(self) -> list[Member]:
        """This agent's member list (every member it knows, including failed and left)."""
        return parse_members(self.command("members", "-format=json"))

    def statuses(self) -> dict[str, str]:
        """{member name: status} as this agent sees it."""
        return {m["name"]: m["status"] for m in self.members()}

    def wait_for_members(self, check: MemberCheck, timeout: float = 30.0) -> list[Member]:
        """Poll members() until `check` holds; returns that member list.

        `check` is a predicate over the list, or {name: status} that must all hold (status
        None: the name must be absent). Raises AssertionError on timeout or if the agent dies.
        """
        predicate = check if callable(check) else _statuses_are(check)
        deadline = time.monotonic() + timeout
        members: list[Member] = []
        while True:
            if not self.running:
                raise AssertionError(f"serf agent {self.name} died:\n{self.output()}")
            try:
                members = self.members()
            except (SerfError, subprocess.TimeoutExpired):
                members = []
            if members and predicate(members):
                return members
            if time.monotonic() > deadline:
                seen = {m["name"]: m["status"] for m in members}
                raise AssertionError(
                    f"serf agent {self.name}: members did not satisfy {check!r} "
                    f"within {timeout}s; last seen {seen}"
                )
            time.sleep(0.1)

    def join(self, *addrs: str) -> int:
        """``serf join`` the given "host:port" addresses; returns how many nodes it joined.

        Raises SerfJoinError if serf reports that the join failed.
        """
        try:
            out = self.command("join", *addrs, timeout=CLI_TIMEOUT + 5)
        except SerfError as exc:
            raise SerfJoinError(str(exc)) from None
        found = re.search(r"Successfully joined cluster by contacting (\d+) node", out)
        return int(found.group(1)) if found else 0

    def leave(self, timeout: float = STOP_TIMEOUT) -> None:
        """Graceful leave (``serf leave``): the others see ``left``; the agent then exits."""
        if self.running:
            try:
                self.command("leave", timeout=timeout)
            except (SerfError, subprocess.TimeoutExpired):
                if self.running:
                    raise
        self.child.stop(timeout)  # reaps it; SIGKILL if it outlives `timeout`

    def kill(self) -> None:
        """SIGKILL: a crash, no leave; the others mark it ``failed`` after a suspicion timeout."""
        if self.running:
            self.child.popen.send_signal(signal.SIGKILL)
        self.child.stop(STOP_TIMEOUT)  # only reaps (and forgets) the pid now

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM (shutdown without a leave), SIGKILL after `timeout`; reaps the pid."""
        self.child.stop(timeout)

    def __repr__(self) -> str:
        return f"SerfAgent({self.name!r}, bind={self.addr}, rpc={self.rpc}, pid={self.pid})"


def _statuses_are(wanted: Mapping[str, str | None]) -> Callable[[list[Member]], bool]:
    def check(members: list[Member]) -> bool:
        seen = {m["name"]: m["status"] for m in members}
        return all(seen.get(name) == status for name, status in wanted.items())

    return check


def agent_argv(
    binary: str,
    name: str,
    bind_port: int,
    rpc_port: int,
    join: Sequence[str] = (),
    encrypt_key: str | None = None,
    tags: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The `serf agent` command line the harness runs."""
    argv = [
        binary,
        "agent",
        f"-node={name}",
        f"-bind={HOST}:{bind_port}",
        f"-advertise={HOST}:{bind_port}",
        f"-rpc-addr={HOST}:{rpc_port}",
    ]
    argv += [f"-join={addr}" for addr in join]
    if encrypt_key is not None:
        argv.append(f"-encrypt={encrypt_key}")
    for key, value in (tags or {}).items():
        argv += ["-tag", f"{key}={value}"]
    return [*argv, "-log-level=debug", *extra_args]


def _wait_ready(agent: SerfAgent, timeout: float = READY_TIMEOUT) -> bool:
    """True once the startup joins are done and the RPC answers; False if the agent died."""
    deadline = time.monotonic() + timeout
    while agent.running and time.monotonic() < deadline:
        if _READY_LINE in agent.child.output(limit=1 << 20) and port_accepts(
            agent.rpc_port, timeout=0.2
        ):
            try:
                agent.command("members", timeout=2.0)
            except (SerfError, subprocess.TimeoutExpired):
                pass
            else:
                return agent.running
        time.sleep(0.02)
    return False


def start_serf(
    name: str | None = None,
    *,
    bind_port: int | None = None,
    rpc_port: int | None = None,
    join: Iterable[str | SerfAgent] = (),
    encrypt_key: str | None = None,
    tags: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> SerfAgent:
    """Start a serf agent on 127.0.0.1 and return it once ready.

    Free ports are picked (and re-picked on a bind race) unless given. `join` takes agents or
    "host:port" strings, passed as -join (the agent exits if none can be joined: SerfJoinError).
    Skips/fails per the policy if serf is missing or cannot start for another reason.
    """
    binary = require_binary("serf")
    name = name or f"serf{next(_serial)}"
    peers = [p.addr if isinstance(p, SerfAgent) else str(p) for p in join]
    agent: SerfAgent | None = None
    busy_fixed_port = False
    for _ in range(START_ATTEMPTS):
        gossip = bind_port if bind_port is not None else free_gossip_port()
        rpc = rpc_port if rpc_port is not None else free_port()
        if rpc == gossip:
            continue
        argv = agent_argv(binary, name, gossip, rpc, peers, encrypt_key, tags, extra_args)
        child = Child(argv)
        agent = SerfAgent(name, (HOST, gossip), rpc, child, binary, encrypt_key, dict(tags or {}))
        if _wait_ready(agent):
            return agent
        running = agent.running
        agent.stop()
        out = agent.output()
        if not running and "Failed to join" in out:
            raise SerfJoinError(f"serf agent {name} could not join {peers}: {out}")
        if running or "address already in use" not in out:
            break  # not a port race: retrying will not help
        busy = _busy_port(out, gossip, rpc)
        busy_fixed_port = busy in (bind_port, rpc_port)
        if busy_fixed_port:
            break  # a port the caller chose is taken; another try would hit it again
    assert agent is not None, "no usable ports"
    service_unavailable(
        f"serf agent {name} did not start on {agent.addr} (rpc {agent.rpc}): "
        f"{agent.output() or 'no output'}",
        "stop whatever uses that port" if busy_fixed_port else SERF_HINT,
    )


def _busy_port(output: str, gossip: int, rpc: int) -> int | None:
    """Which of our ports serf said was in use: 'port N' (memberlist) or ':N' (RPC)."""
    for line in output.splitlines():
        if "address already in use" in line:
            for port in (gossip, rpc):
                if re.search(rf"(port |:){port}\b", line):
                    return port
    return None
