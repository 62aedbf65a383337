"""Real chronyd NTP servers on 127.0.0.1 (never touching the system clock), optionally shifted.

The recipe: a config with ``port``, ``bindaddress 127.0.0.1``, ``allow 127.0.0.1``,
``local stratum 10`` and ``cmdport 0`` in a scratch directory; ``chronyd -f CONF -x -d`` (``-x``:
never control the system clock; ``-d``: foreground). A shifted server runs under libfaketime
(``FAKETIME=+2.5s``), so it serves time 2.5 s ahead of the machine's clock.
"""

from __future__ import annotations

import glob
import itertools
import os
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from ._common import HOST, Child, require_binary, service_unavailable

START_ATTEMPTS = 3
READY_TIMEOUT = 10.0
_serial = itertools.count(1)
_LIBFAKETIME_GLOBS = (
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)
CHRONY_HINT = "install Debian's chrony and faketime (scripts/install_services.sh, as root)"


@dataclass(eq=False)
class ChronyServer:
    """One running chronyd on 127.0.0.1; ``shift`` is how far (s) faketime moves its clock."""

    port: int
    child: Child
    directory: Path
    shift: float = 0.0
    host: str = HOST

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def spec(self) -> str:
        """``"127.0.0.1:PORT"``, as distcore's SNTP client and CLI take it."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def running(self) -> bool:
        return self.child.running

    def stop(self) -> None:
        self.child.stop()


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago (callers retry on races)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def ntp_answers(port: int, host: str = HOST, timeout: float = 0.2) -> bool:
    """True if an NTP server on host:port answers a client request with a server reply.

    A stdlib probe (no distcore): mode 3, version 4, a transmit timestamp the reply must echo.
    """
    transmit = int.from_bytes(os.urandom(8), "big") | 1
    request = struct.pack("!B47x", (4 << 3) | 3)[:40] + transmit.to_bytes(8, "big")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(request, (host, port))
            data = sock.recv(1024)
        except OSError:  # timeout, or ICMP port unreachable while it starts
            return False
    return len(data) >= 48 and data[0] & 7 == 4 and data[24:32] == transmit.to_bytes(8, "big")


def libfaketime() -> str:
    """Path of libfaketime.so.1 (the `faketime` package), or skip/fail per the policy."""
    require_binary("faketime")
    for pattern in _LIBFAKETIME_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    service_unavailable("libfaketime.so.1 not found", hint=CHRONY_HINT)


def render_config(port: int, directory: Path) -> str:
    """chrony.conf for a server on 127.0.0.1:`port` that serves its own clock at stratum 10."""
    return (
        f"port {port}\n"
        f"bindaddress {HOST}\n"
        f"allow {HOST}\n"
        "local stratum 10\n"
        "cmdport 0\n"
        f"pidfile {directory / 'chronyd.pid'}\n"
        f"driftfile {directory / 'drift'}\n"
    )


def _wait_ready(server: ChronyServer, timeout: float = READY_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while server.running and time.monotonic() < deadline:
        if ntp_answers(server.port):
            return True
        time.sleep(0.02)
    return False


def start_chrony(directory: Path, shift: float = 0.0) -> ChronyServer:
    """Start chronyd on a free UDP port with its files under `directory` (created).

    `shift` seconds (e.g. 2.5) runs it under libfaketime so it serves shifted time. Returns
    once it answers an NTP query; skips/fails per the policy if it cannot start.
    """
    binary = require_binary("chronyd")
    if os.geteuid() != 0:
        service_unavailable("chronyd must start as root (it drops to -u root with -x)", CHRONY_HINT)
    prefix: list[str] = []
    if shift:
        prefix = ["env", f"LD_PRELOAD={libfaketime()}", f"FAKETIME={shift:+g}s"]
    server: ChronyServer | None = None
    for _ in range(START_ATTEMPTS):
        port = free_udp_port()
        workdir = Path(directory) / f"chrony-{next(_serial)}-{port}"
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "chrony.conf"
        conf.write_text(render_config(port, workdir))
        # `env` execs chronyd, so the child's pid is chronyd's and SIGTERM reaches it.
        argv = [*prefix, binary, "-f", str(conf), "-x", "-d", "-u", "root"]
        server = ChronyServer(port, Child(argv), workdir, shift)
        if _wait_ready(server):
            return server
        server.stop()
    assert server is not None
    service_unavailable(
        f"chronyd could not start on {HOST}:{server.port}: {server.child.output() or 'no output'}",
        CHRONY_HINT,
    )
