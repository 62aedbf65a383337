"""distcore.timesync against real chronyd servers on 127.0.0.1 (one shifted by libfaketime)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from distcore.clocks import HLC
from distcore.exceptions import PollTooSoonError
from distcore.timesync import NTPSample, SNTPClient, SyncedClock, combine

from services import ChronyServer, ntp_answers, pid_exists

StartChrony = Callable[..., ChronyServer]
SHIFT = 2.5


def test_offset_to_an_unshifted_chrony_is_within_1ms(chrony_server: StartChrony) -> None:
    server = chrony_server()
    client = SNTPClient(local=True, timeout=1.0)
    sample = client.measure([server.spec], count=4)[server.spec]
    assert isinstance(sample, NTPSample)
    assert abs(sample.offset) < 1e-3
    assert 0 <= sample.delay < 0.1
    assert sample.stratum == 10
    assert sample.ref_id == "127.127.1.1"  # chrony's LOCAL reference
    assert sample.leap == 0
    assert sample.t1 <= sample.t4
    # Same clock on both ends: the true offset, 0, is inside offset ± delay/2.
    assert sample.low <= 0 <= sample.high


def test_offset_to_a_chrony_under_faketime_is_the_shift(chrony_server: StartChrony) -> None:
    server = chrony_server(shift=SHIFT)
    client = SNTPClient(local=True, timeout=1.0)
    sample = client.measure([server.spec], count=4)[server.spec]
    assert isinstance(sample, NTPSample)
    assert abs(sample.offset - SHIFT) < 5e-3
    assert sample.low <= SHIFT <= sample.high


def test_the_clock_filter_keeps_the_least_delay_of_the_last_8(chrony_server: StartChrony) -> None:
    server = chrony_server()
    client = SNTPClient(local=True, timeout=1.0)
    polled = [client.query(server.spec) for _ in range(11)]
    kept = client.samples(server.spec)
    assert kept == tuple(polled[-8:])
    best = client.best(server.spec)
    assert best is not None
    assert best.delay_ns == min(s.delay_ns for s in polled[-8:])
    assert best in kept
    assert len({s.t1 for s in polled}) == 11  # distinct exchanges


def test_public_servers_are_not_polled_twice_within_15s(chrony_server: StartChrony) -> None:
    server = chrony_server()
    client = SNTPClient(timeout=1.0)  # not declared local
    client.query(server.spec)
    with pytest.raises(PollTooSoonError, match=r"wait 1[45]\.\d s"):
        client.query(server.spec)
    assert len(client.samples(server.spec)) == 1


def test_marzullo_names_the_shifted_server_a_falseticker(chrony_server: StartChrony) -> None:
    honest = [chrony_server(), chrony_server()]
    shifted = chrony_server(shift=SHIFT)
    client = SNTPClient(local=True, timeout=1.0)
    results = client.measure([s.spec for s in [*honest, shifted]], count=3)
    samples = [r for r in results.values() if isinstance(r, NTPSample)]
    assert len(samples) == 3
    estimate = combine(samples)
    assert estimate.falsetickers == (shifted.spec,)
    assert set(estimate.truechimers) == {s.spec for s in honest}
    assert estimate.low <= 0 <= estimate.high
    assert abs(estimate.offset) < 1e-3
    # Outvoted the other way round, the unshifted one is the odd one out.
    two_shifted = [chrony_server(shift=SHIFT), shifted]
    results = client.measure([s.spec for s in [honest[0], *two_shifted]], count=2)
    estimate = combine([r for r in results.values() if isinstance(r, NTPSample)])
    assert estimate.falsetickers == (honest[0].spec,)
    assert abs(estimate.offset - SHIFT) < 5e-3


def test_async_query_matches_the_sync_one(chrony_server: StartChrony) -> None:
    server = chrony_server(shift=SHIFT)
    client = SNTPClient(local=True, timeout=1.0)
    sample = asyncio.run(client.aquery(server.spec))
    assert abs(sample.offset - SHIFT) < 5e-3
    assert client.samples(server.spec) == (sample,)


def test_synced_clock_follows_the_servers_without_touching_the_system_clock(
    chrony_server: StartChrony,
) -> None:
    servers = [chrony_server(shift=SHIFT) for _ in range(2)]
    with SyncedClock([s.spec for s in servers], local=True, interval=0.2) as clock:
        assert clock.running
        assert clock.estimate is not None
        assert abs(clock.offset - SHIFT) < 5e-3
        ahead = (clock.now_ns() - time.time_ns()) / 1e9
        assert abs(ahead - SHIFT) < 5e-3
        assert isinstance(clock.now_ns(), int)
        assert 0 < clock.error_bound() < 5e-3
        assert abs(clock.now() - time.time() - SHIFT) < 5e-3
        # The background thread keeps polling: more samples arrive.
        deadline = time.monotonic() + 5
        while len(clock.client.samples(servers[0].spec)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(clock.client.samples(servers[0].spec)) >= 3
    assert not clock.running
    # Still usable after stop, from the last estimate.
    assert abs((clock.now_ns() - time.time_ns()) / 1e9 - SHIFT) < 5e-3


def test_the_harness_stops_chronyd_by_pid(chrony_server: StartChrony) -> None:
    server = chrony_server(shift=SHIFT)
    assert server.running and ntp_answers(server.port)
    assert (server.directory / "chronyd.pid").read_text().strip() == str(server.pid)
    server.stop()
    assert not pid_exists(server.pid)
    assert not ntp_answers(server.port)


def test_a_synced_clock_drives_a_hybrid_logical_clock(chrony_server: StartChrony) -> None:
    server = chrony_server(shift=SHIFT)
    with SyncedClock([server.spec], local=True, interval=0.5) as clock:
        hlc = HLC(physical=clock.now_ns, max_offset=5.0)
        stamps = [hlc.now() for _ in range(100)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 100
    # The HLC follows the servers' time (+2.5 s), not the local clock (ms resolution).
    ahead_ms = stamps[-1].wall_ms - time.time_ns() // 1_000_000
    assert abs(ahead_ms - SHIFT * 1000) < 10
