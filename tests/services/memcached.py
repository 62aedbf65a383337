"""Real memcached servers and a tiny stdlib text-protocol client plus a `locate` oracle."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Self

from ._common import HOST, Child, free_ports, port_is_free, require_binary, service_unavailable

DEFAULT_PORT = 11211
MAX_KEY_LENGTH = 250
SET_CHUNK = 200  # pipelined sets per round trip; replies are tiny, so no buffer deadlock
GET_KEYS_PER_LINE = 100
GET_LINE_BYTES = 2000
GET_LINES_PER_ROUNDTRIP = 10
START_ATTEMPTS = 5


class MemcacheError(Exception):
    """A memcached/nutcracker reply that is not what the command expects."""


@dataclass(eq=False)
class MemcachedServer:
    """One running memcached child on 127.0.0.1."""

    port: int
    child: Child
    host: str = HOST

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def running(self) -> bool:
        return self.child.running

    def entry(self, weight: int = 1, name: str | None = None) -> str:
        """nutcracker `servers:` string: "host:port:weight[ name]"."""
        return f"{self.host}:{self.port}:{weight}" + (f" {name}" if name else "")

    def client(self) -> MemcacheClient:
        return MemcacheClient(self.address)

    def flush_all(self) -> None:
        with self.client() as mc:
            mc.flush_all()

    def stop(self) -> None:
        self.child.stop()


Endpoint = MemcachedServer | tuple[str, int] | str


def endpoint(value: Endpoint) -> tuple[str, int]:
    """(host, port) from a server object, a tuple, or "host:port[:weight[ name]]"."""
    if isinstance(value, MemcachedServer):
        return value.address
    if isinstance(value, str):
        host, port = value.split()[0].split(":")[:2]
        return (host, int(port))
    return (value[0], int(value[1]))


def _argv(binary: str, port: int) -> list[str]:
    argv = [binary, "-l", HOST, "-p", str(port), "-U", "0", "-m", "8", "-t", "1", "-c", "64"]
    # memcached refuses to run as root unless told which user to become.
    return [*argv, "-u", "nobody"] if os.geteuid() == 0 else argv


def start_memcached_servers(count: int, port: int | None = None) -> list[MemcachedServer]:
    """Start `count` memcached servers concurrently on free ports (or `port`, count=1).

    A server that dies on start (usually a port race) is retried on a new port;
    if one still cannot start the test is skipped or failed per the policy.
    """
    binary = require_binary("memcached")
    if port is not None:
        if count != 1:
            raise ValueError("a fixed port allows exactly one server")
        if not port_is_free(port):
            service_unavailable(
                f"port {port} on {HOST} is in use, memcached cannot listen there",
                hint=f"stop whatever listens on port {port}",
            )
    started: list[MemcachedServer] = []
    failed: list[MemcachedServer] = []
    for _ in range(START_ATTEMPTS):
        ports = (
            [port]
            if port is not None
            else free_ports(count - len(started), taken={s.port for s in started})
        )
        # SIGKILL: memcached only acts on SIGTERM at its next 1 s clock tick, and a
        # test cache has nothing to save.
        batch = [MemcachedServer(p, Child(_argv(binary, p), signal.SIGKILL)) for p in ports]
        failed = [s for s in batch if not s.child.wait_for_ports([s.port])]
        started += [s for s in batch if s not in failed]
        for server in failed:
            server.stop()
        if not failed:
            return started
        if port is not None:
            break  # a fixed port cannot be swapped for another one
    for server in started:
        server.stop()
    service_unavailable(
        f"memcached could not start on {HOST}:{failed[0].port}: "
        f"{failed[0].child.output() or 'no output'}"
    )


def start_memcached(port: int | None = None) -> MemcachedServer:
    """Start one memcached on a free port, or on `port` (skip/fail if it is taken)."""
    return start_memcached_servers(1, port)[0]


def _as_key(key: bytes | str) -> bytes:
    """Validate a memcached key: 1..250 bytes, no spaces or control characters."""
    raw = key.encode() if isinstance(key, str) else bytes(key)
    if not 0 < len(raw) <= MAX_KEY_LENGTH or any(b <= 0x20 or b == 0x7F for b in raw):
        raise ValueError(f"invalid memcached key {raw!r}")
    return raw


def _chunks(items: Sequence[bytes], size: int) -> Iterator[Sequence[bytes]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _get_lines(keys: Sequence[bytes]) -> list[bytes]:
    """`get k1 k2 ...` lines of at most 100 keys and ~2000 bytes each."""
    lines: list[bytes] = []
    batch: list[bytes] = []
    size = 0  # bytes of " key" parts; the line adds 5 for "get" and CRLF
    for key in keys:
        if batch and (len(batch) == GET_KEYS_PER_LINE or 5 + size + 1 + len(key) > GET_LINE_BYTES):
            lines.append(b"get " + b" ".join(batch) + b"\r\n")
            batch, size = [], 0
        batch.append(key)
        size += 1 + len(key)  # the key and the space before it
    if batch:
        lines.append(b"get " + b" ".join(batch) + b"\r\n")
    return lines


class MemcacheClient:
    """Blocking memcached text-protocol client for one server or proxy (stdlib only).

    After a MemcacheError the connection may be out of sync: discard the client.
    """

    def __init__(self, address: Endpoint, timeout: float = 10.0) -> None:
        self.address = endpoint(address)
        self._sock = socket.create_connection(self.address, timeout=timeout)
        self._rfile = self._sock.makefile("rb")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._rfile.close()
        self._sock.close()

    def _readline(self) -> bytes:
        line = self._rfile.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError(f"{self.address}: connection closed mid-reply ({line!r})")
        return line[:-2]

    def set_many(self, keys: Iterable[bytes | str], value: bytes = b"x") -> None:
        """Pipelined `set key 0 0 len` of every key; raise MemcacheError unless all STORED."""
        for chunk in _chunks([_as_key(k) for k in keys], SET_CHUNK):
            self._sock.sendall(
                b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(value), value) for k in chunk)
            )
            # Read every reply even after a failure, so the error names all bad keys.
            bad = [(k, r) for k in chunk if (r := self._readline()) != b"STORED"]
            if bad:
                raise MemcacheError(
                    f"{self.address}: set not STORED for {len(bad)} key(s): {bad[:5]!r}"
                )

    def get_many(self, keys: Iterable[bytes | str]) -> dict[bytes, bytes]:
        """Multi-get in batched, pipelined `get` lines; returns {key: value} of hits."""
        found: dict[bytes, bytes] = {}
        lines = _get_lines(list(dict.fromkeys(_as_key(k) for k in keys)))
        for group in _chunks(lines, GET_LINES_PER_ROUNDTRIP):
            self._sock.sendall(b"".join(group))
            for _ in group:
                while (line := self._readline()) != b"END":
                    parts = line.split(b" ")
                    if parts[0] != b"VALUE" or len(parts) < 4:
                        raise MemcacheError(f"{self.address}: unexpected get reply {line!r}")
                    data = self._rfile.read(int(parts[3]) + 2)
                    found[parts[1]] = data[:-2]
        return found

    def flush_all(self) -> None:
        """Invalidate every item on the server."""
        self._sock.sendall(b"flush_all\r\n")
        if (reply := self._readline()) != b"OK":
            raise MemcacheError(f"{self.address}: flush_all replied {reply!r}")


def flush_all(servers: Iterable[Endpoint]) -> None:
    """flush_all on every server."""
    for server in servers:
        with MemcacheClient(server) as mc:
            mc.flush_all()


def locate(keys: Iterable[bytes | str], servers: Sequence[Endpoint]) -> dict[bytes, int]:
    """Oracle: {key: index of the one server in `servers` that holds it}.

    Raises AssertionError naming keys held by no server or by several servers.
    """
    wanted = list(dict.fromkeys(_as_key(k) for k in keys))
    holders: dict[bytes, list[int]] = {k: [] for k in wanted}
    for index, server in enumerate(servers):
        with MemcacheClient(server) as mc:
            for key in mc.get_many(wanted):
                holders[key].append(index)
    missing = [k for k, where in holders.items() if not where]
    several = {k: where for k, where in holders.items() if len(where) > 1}
    if missing or several:
        raise AssertionError(
            f"locate over {len(servers)} server(s): {len(missing)} key(s) on no server "
            f"{missing[:10]!r}; {len(several)} key(s) on several servers "
            f"{list(several.items())[:10]!r}"
        )
    return {k: where[0] for k, where in holders.items()}
