"""Fixtures that run real memcached / nutcracker servers (harness in tests/services)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# `services` must import under every pytest import mode; "importlib" does not
# put this directory on sys.path by itself. (No distcore import here on purpose.)
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from services._common import stop_all, stop_children  # noqa: E402
from services.memcached import (  # noqa: E402
    MemcachedServer,
    flush_all,
    start_memcached,
    start_memcached_servers,
)
from services.nutcracker import Nutcracker, PoolsConfig, start_nutcracker  # noqa: E402


class MemcachedFleet:
    """Session-wide memcached servers, started lazily and shared between tests."""

    def __init__(self) -> None:
        self.servers: list[MemcachedServer] = []

    def get(self, count: int) -> list[MemcachedServer]:
        """The first `count` servers, starting more (or replacing dead ones) as needed."""
        for i, server in enumerate(self.servers):
            if not server.running:  # a test killed it; keep indexes stable
                self.servers[i] = start_memcached()
        if count > len(self.servers):
            self.servers += start_memcached_servers(count - len(self.servers))
        return self.servers[:count]

    def stop(self) -> None:
        stop_children(s.child for s in self.servers)
        self.servers.clear()


@pytest.fixture(scope="session")
def memcached_fleet() -> Iterator[MemcachedFleet]:
    """Session owner of the shared memcached servers; prefer `memcached_pool`."""
    fleet = MemcachedFleet()
    yield fleet
    fleet.stop()


@pytest.fixture
def memcached_pool(
    memcached_fleet: MemcachedFleet,
) -> Iterator[Callable[[int], list[MemcachedServer]]]:
    """`memcached_pool(n)` -> n shared running servers, flushed after the test."""
    used: dict[MemcachedServer, None] = {}

    def pool(count: int) -> list[MemcachedServer]:
        servers = memcached_fleet.get(count)
        used.update(dict.fromkeys(servers))
        return servers

    yield pool
    flush_all(s for s in used if s.running)


@pytest.fixture
def memcached_server() -> Iterator[Callable[..., MemcachedServer]]:
    """`memcached_server(port=None)` -> a dedicated server, stopped after the test.

    Use port=11211 for twemproxy's bare-host naming; skips/fails if 11211 is taken.
    """
    started: list[MemcachedServer] = []

    def start(port: int | None = None) -> MemcachedServer:
        server = start_memcached(port)
        started.append(server)
        return server

    yield start
    stop_children(s.child for s in started)


@pytest.fixture
def nutcracker(tmp_path: Path) -> Iterator[Callable[[PoolsConfig], Nutcracker]]:
    """`nutcracker({pool: settings})` -> running Nutcracker; stopped after the test."""
    started: list[Nutcracker] = []

    def start(pools: PoolsConfig) -> Nutcracker:
        proxy = start_nutcracker(pools, tmp_path / "nutcracker")
        started.append(proxy)
        return proxy

    yield start
    stop_children(p.child for p in started)


_SERVICE_FIXTURES = {"memcached_fleet", "memcached_pool", "memcached_server", "nutcracker"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that start real servers get the `services` marker without having to say so.
    for item in items:
        if _SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


def pytest_unconfigure(config: pytest.Config) -> None:
    # Last line of defence: nothing we started may outlive the session.
    stop_all()


# ============================================================================================
# chronyd (NTP servers for distcore.timesync); harness in tests/services/chrony.py

from services.chrony import ChronyServer, start_chrony  # noqa: E402


@pytest.fixture
def chrony_server(tmp_path: Path) -> Iterator[Callable[..., ChronyServer]]:
    """`chrony_server(shift=0.0)` -> a running chronyd on 127.0.0.1, stopped after the test.

    `shift` seconds (e.g. 2.5) runs it under libfaketime, serving time that far ahead.
    """
    started: list[ChronyServer] = []

    def start(shift: float = 0.0) -> ChronyServer:
        server = start_chrony(tmp_path / "chrony", shift)
        started.append(server)
        return server

    yield start
    stop_children(s.child for s in started)


_SERVICE_FIXTURES.add("chrony_server")


# ============================================================================================
# serf agents (gossip membership on loopback); harness in tests/services/serf.py

from typing import Any  # noqa: E402

from services.serf import SerfAgent, start_serf  # noqa: E402


@pytest.fixture
def serf_agent() -> Iterator[Callable[..., SerfAgent]]:
    """`serf_agent(name=None, join=(), encrypt_key=None, ...)` -> a ready serf agent.

    Takes start_serf's keywords (bind_port, rpc_port, tags, extra_args); every agent it
    started is stopped (SIGTERM, then SIGKILL) after the test.
    """
    started: list[SerfAgent] = []

    def start(name: str | None = None, **kwargs: Any) -> SerfAgent:
        agent = start_serf(name, **kwargs)
        started.append(agent)
        return agent

    yield start
    stop_children(a.child for a in started)


_SERVICE_FIXTURES.add("serf_agent")
