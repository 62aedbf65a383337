"""`distcore time query` against real chronyd, `distcore time serve` as real processes."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO

import pytest
from click.testing import CliRunner

from distcore.cli import main

from services import ChronyServer

StartChrony = Callable[..., ChronyServer]
DISTCORE = [sys.executable, "-c", "from distcore.cli import main; main(prog_name='distcore')"]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_query_names_the_falseticker(chrony_server: StartChrony) -> None:
    honest = [chrony_server(), chrony_server()]
    shifted = chrony_server(shift=2.5)
    specs = [s.spec for s in [*honest, shifted]]
    code, out, _ = run("time", "query", "--local", "--samples", "3", *specs)
    assert code == 0, out
    for spec in specs:
        assert spec in out
    (shifted_row,) = [line for line in out.splitlines() if line.strip().startswith(shifted.spec)]
    assert abs(float(shifted_row.split()[1]) - 2500) < 5  # offset column, ms
    assert out.count("truechimer") == 2
    assert "Combined (Marzullo)" in out and "2 of 3 servers agree" in out
    assert f"Falsetickers: {shifted.spec}" in out


def test_query_json(chrony_server: StartChrony) -> None:
    server = chrony_server(shift=2.5)
    code, out, _ = run("time", "query", "--local", "--samples", "2", "--json", server.spec)
    assert code == 0
    data = json.loads(out)
    (row,) = data["servers"]
    assert row["server"] == server.spec and row["stratum"] == 10
    assert abs(row["offset"] - 2.5) < 5e-3
    assert abs(data["estimate"]["offset"] - 2.5) < 5e-3
    assert data["estimate"]["truechimers"] == [server.spec]
    assert data["problem"] is None


def test_query_without_an_answer_exits_1(chrony_server: StartChrony) -> None:
    server = chrony_server()
    server.stop()  # nothing listens there now
    code, out, _ = run("time", "query", "--local", "--timeout", "0.2", server.spec)
    assert code == 1
    assert "No estimate" in out and "no usable reply from any server" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "127.0.0.1:0"], "error: bad address '127.0.0.1:0': port must be 1-65535"),
        (["query", "::1"], "error: bad address '::1': put an IPv6 address in brackets"),
        (["serve", "--role", "master", "--bind", "x:99999", "--follower", "h:1"], "port must be"),
        (["serve", "--role", "master", "--follower", "h"], "error: bad address 'h': a follower"),
        (["serve", "--role", "master"], "needs at least one --follower"),
        (["serve", "--role", "follower", "--master", "h"], "error: bad address 'h': a master"),
        (["serve", "--role", "follower", "--follower", "h:1"], "--follower is for --role master"),
        (["query", "--samples", "0", "h"], "Invalid value for '--samples'"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    code, out, err = run("time", *args)
    assert code == 2
    assert message in err
    if err.startswith("error:"):
        assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err


def ms(line: str, pattern: str) -> float:
    found = re.search(pattern, line)
    assert found is not None, (pattern, line)
    return float(found.group(1))


class Lines:
    """The lines a child process prints, read by a thread so a silent child cannot hang us."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.strip())

    def next(self, timeout: float = 20.0) -> str:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout} s") from None


def test_serve_master_and_follower_processes() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    follower = subprocess.Popen(
        [*DISTCORE, "time", "serve", "--role", "follower", "--offset", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert follower.stdout is not None
        output = Lines(follower.stdout)
        first = output.next()
        assert first.startswith("follower on 127.0.0.1:") and first.endswith("offset +50.000 ms")
        address = first.split()[2].rstrip(",")
        rounds = ["--rounds", "2", "--interval", "0.2", "--reply-timeout", "0.1"]
        master = subprocess.run(
            [*DISTCORE, "time", "serve", "--role", "master", "--follower", address, *rounds],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert master.returncode == 0, master.stderr
        lines = master.stdout.splitlines()
        assert lines[0].startswith("master on 127.0.0.1:") and "1 follower(s)" in lines[0]
        # Round 1: the follower is +50 ms; target: the mean of 0 and +50 ms; round 2: agreed.
        assert abs(ms(lines[1], r"round 1: target ([-+][\d.]+) ms") - 25) < 2
        assert abs(ms(lines[1], re.escape(address) + r" ([-+][\d.]+)ms->") - 50) < 2
        assert abs(ms(lines[2], r"round 2: target ([-+][\d.]+) ms")) < 2
        assert abs(ms(output.next(), r"corrected: offset now ([-+][\d.]+) ms") - 25) < 2
    finally:
        follower.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            follower.wait(timeout=20)
        except subprocess.TimeoutExpired:
            follower.kill()
            follower.wait()
            raise
    assert follower.stderr is not None
    err = follower.stderr.read()
    follower.stderr.close()
    assert follower.returncode == 0
    assert err.strip() == "stopped"
