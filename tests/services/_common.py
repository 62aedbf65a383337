"""Shared plumbing for the real-server harness: ports, policy, child processes."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from typing import IO, NoReturn

import pytest

HOST = "127.0.0.1"
REQUIRE_ENV = "DISTCORE_REQUIRE_SERVICES"
# Debian puts nutcracker in /usr/sbin, which is not on every user's PATH.
_EXTRA_BIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/usr/local/bin")


def services_required() -> bool:
    """True when missing/broken servers must fail tests instead of skipping them."""
    return os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0", "false", "no")


INSTALL_HINT = "run `make test` as root (it installs Debian's memcached and nutcracker)"


def service_unavailable(msg: str, hint: str = INSTALL_HINT) -> NoReturn:
    """Fail (DISTCORE_REQUIRE_SERVICES=1) or skip the current test, saying how to fix it."""
    if services_required():
        pytest.fail(f"{msg} ({REQUIRE_ENV}=1 makes this a failure)", pytrace=False)
    pytest.skip(f"{msg}: {hint} or set {REQUIRE_ENV}=1 to make this a failure")


def require_binary(name: str) -> str:
    """Absolute path of executable `name`, or skip/fail per the policy."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_EXTRA_BIN_DIRS))
    if path is None:
        service_unavailable(f"{name} not found")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (callers retry on races)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def free_ports(count: int, taken: set[int] | None = None) -> list[int]:
    """`count` distinct free ports, none in `taken`. free_port closes its socket, so the kernel
    may hand the same port out twice in a row: two servers told one port would then both look
    up (the second dies, the first answers for it)."""
    ports: list[int] = []
    while len(ports) < count:
        p = free_port()
        if p not in ports and p not in (taken or set()):
            ports.append(p)
    return ports


def port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:`port` and we could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Match servers' SO_REUSEADDR so TIME_WAIT leftovers don't count as busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return not port_accepts(port)


def port_accepts(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True if a TCP connect to host:port succeeds right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_exists(pid: int) -> bool:
    """True if a process (not yet reaped) with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Child:
    """A server we started; output goes to a temp file so pipes never block it."""

    def __init__(self, argv: Sequence[str], stop_signal: int = signal.SIGTERM) -> None:
        self.argv = list(argv)
        self.stop_signal = stop_signal
        # Lives as long as the child; closed by the garbage collector afterwards.
        self._output: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.popen = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._output, stderr=subprocess.STDOUT
        )
        _register(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def output(self, limit: int = 4000) -> str:
        """Tail of what the process printed (for error messages)."""
        self._output.flush()
        self._output.seek(0)
        return self._output.read().decode(errors="replace")[-limit:].strip()

    def wait_for_ports(self, ports: Iterable[int], timeout: float = 10.0) -> bool:
        """Wait until every port accepts; False if the process died or time ran out."""
        deadline = time.monotonic() + timeout
        for port in ports:
            while not port_accepts(port, timeout=0.2):
                if not self.running or time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
        return self.running

    def stop(self, timeout: float = 5.0) -> None:
        """Send stop_signal, then SIGKILL after `timeout`; always reaps the pid."""
        stop_children([self], timeout)

    def __repr__(self) -> str:
        return f"Child(pid={self.pid}, argv={self.argv!r})"


_children: list[Child] = []
_lock = threading.Lock()
_hooks_installed = False


def stop_children(children: Iterable[Child], timeout: float = 5.0) -> None:
    """Stop several children in parallel: signal all, wait, KILL stragglers, reap."""
    children = list(children)
    for child in children:
        if child.running:
            child.popen.send_signal(child.stop_signal)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.popen.kill()
            child.popen.wait()
    with _lock:
        for child in children:
            if child in _children:
                _children.remove(child)


def stop_all() -> None:
    """Stop every child this process started and has not stopped yet."""
    with _lock:
        leftovers = list(_children)
    stop_children(leftovers)


def _on_sigterm(signum: int, frame: object) -> None:
    # Clean up, then die of SIGTERM as if we had not intercepted it.
    stop_all()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _register(child: Child) -> None:
    global _hooks_installed
    with _lock:
        _children.append(child)
        if _hooks_installed:
            return
        _hooks_installed = True
    atexit.register(stop_all)
    # Only take over SIGTERM if nobody else did; signal() works only in the main thread.
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, _on_sigterm)
