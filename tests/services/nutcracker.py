"""Real nutcracker (twemproxy) processes in front of memcached pools."""

from __future__ import annotations

import itertools
import json
import re
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._common import HOST, Child, free_port, require_binary, service_unavailable
from .memcached import MemcacheClient

START_ATTEMPTS = 3
# Harness defaults; anything the test passes for a pool wins.
POOL_DEFAULTS: dict[str, Any] = {"auto_eject_hosts": False, "timeout": 2000}
_serial = itertools.count(1)
_POOL_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

PoolsConfig = Mapping[str, Mapping[str, Any]]


class NutcrackerConfigError(Exception):
    """`nutcracker -t` rejected the configuration (a bug in the test, never skipped)."""


def _scalar(value: Any) -> str:
    # JSON strings are valid YAML double-quoted scalars, so names with spaces,
    # braces (hash_tag "{}") or non-ASCII need no special handling.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def render_config(pools: PoolsConfig) -> str:
    """nutcracker YAML for {pool: {setting: value}}; `servers` is a list of strings."""
    out: list[str] = []
    for name, settings in pools.items():
        if not _POOL_NAME.match(name):
            raise ValueError(f"bad pool name {name!r}")
        out.append(f"{name}:")
        for key, value in settings.items():
            if isinstance(value, (list, tuple)):
                out.append(f"  {key}:")
                out += [f"    - {_scalar(item)}" for item in value]
            else:
                out.append(f"  {key}: {_scalar(value)}")
    return "\n".join(out) + "\n"


def check_config(path: Path, binary: str | None = None) -> None:
    """Run `nutcracker -t -c PATH`; raise NutcrackerConfigError with its output if rejected."""
    binary = binary or require_binary("nutcracker")
    proc = subprocess.run(
        [binary, "-t", "-c", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        raise NutcrackerConfigError(
            f"nutcracker rejected {path}:\n{(proc.stdout + proc.stderr).strip()}\n"
            f"--- config ---\n{path.read_text()}"
        )


def _listen_address(listen: str) -> tuple[str, int]:
    host, port = listen.rsplit(":", 1)
    if host != HOST:  # the harness never exposes a proxy beyond loopback
        raise ValueError(f"pool listen {listen!r} must be on {HOST}")
    return (host, int(port))


@dataclass(eq=False)
class Nutcracker:
    """A running nutcracker child; `pools` maps pool name -> proxy (host, port)."""

    child: Child
    pools: dict[str, tuple[str, int]]
    stats_address: tuple[str, int]
    config_path: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.child.pid

    def address(self, pool: str | None = None) -> tuple[str, int]:
        """Proxy address of `pool` (may be omitted when there is only one pool)."""
        if pool is None:
            if len(self.pools) != 1:
                raise ValueError(f"several pools {sorted(self.pools)}: name one")
            return next(iter(self.pools.values()))
        return self.pools[pool]

    def client(self, pool: str | None = None) -> MemcacheClient:
        return MemcacheClient(self.address(pool))

    def stats(self) -> dict[str, Any]:
        """The JSON document nutcracker serves on its stats port."""
        with socket.create_connection(self.stats_address, timeout=5) as sock:
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return json.loads(data)

    def stop(self) -> None:
        self.child.stop()


def start_nutcracker(pools: PoolsConfig, workdir: Path) -> Nutcracker:
    """Write, check and start a nutcracker serving `pools`; wait until every pool accepts.

    Pools without `listen` get 127.0.0.1:<free port>; start is retried on fresh
    ports if nutcracker dies (port races). Files go to `workdir`.
    """
    binary = require_binary("nutcracker")
    workdir.mkdir(parents=True, exist_ok=True)
    stem = f"nutcracker-{next(_serial)}"  # several proxies may share one workdir
    conf, log, pid = (workdir / f"{stem}.{ext}" for ext in ("yml", "log", "pid"))
    for _ in range(START_ATTEMPTS):
        settings = {
            name: {"listen": f"{HOST}:{free_port()}", **POOL_DEFAULTS, **pool}
            for name, pool in pools.items()
        }
        conf.write_text(render_config(settings))
        check_config(conf, binary)
        listen = {n: _listen_address(s["listen"]) for n, s in settings.items()}
        stats_port = free_port()
        argv = [binary, "-c", str(conf), "-a", HOST, "-s", str(stats_port)]
        child = Child([*argv, "-p", str(pid), "-o", str(log)])  # foreground: no -d
        if child.wait_for_ports([stats_port, *(p for _, p in listen.values())]):
            return Nutcracker(child, listen, (HOST, stats_port), conf, log)
        child.stop()
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else child.output()
    service_unavailable(f"nutcracker could not start with {conf}: {tail.strip() or 'no output'}")
