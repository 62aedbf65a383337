"""Cristian + Berkeley: the sans-IO cores, and a master with followers over loopback UDP."""

from __future__ import annotations

import asyncio
import socket

import pytest

from distcore.timesync import (
    MASTER,
    BerkeleyFollower,
    BerkeleyMaster,
    FollowerService,
    MasterService,
    RoundResult,
    VirtualClock,
    cristian,
    fault_tolerant_average,
)
from distcore.timesync._berkeley import decode, encode

MS = 1_000_000
INJECTED = {"a": 40 * MS, "b": -25 * MS, "c": 300 * MS}  # c is the outlier


def spread(clocks: list[VirtualClock]) -> int:
    offsets = [c.offset_ns for c in clocks]
    return max(offsets) - min(offsets)


async def _converge(rounds: int) -> tuple[list[RoundResult], dict[str, VirtualClock], VirtualClock]:
    clocks = {name: VirtualClock(offset) for name, offset in INJECTED.items()}
    followers = [FollowerService("127.0.0.1:0", clock) for clock in clocks.values()]
    for f in followers:
        await f.start()
    names = {f"127.0.0.1:{f.address[1]}": name for f, name in zip(followers, clocks, strict=True)}
    master_clock = VirtualClock(0)
    try:
        async with MasterService(
            list(names), clock=master_clock, interval=0.05, reply_timeout=0.08, samples=4
        ) as master:
            await master.serve(rounds)
            await asyncio.sleep(0.05)  # let the last corrections land
            history = [_rename(r, names) for r in master.history]
    finally:
        for f in followers:
            await f.close()
    return history, clocks, master_clock


def _rename(r: RoundResult, names: dict[str, str]) -> RoundResult:
    def n(key: str) -> str:
        return names.get(key, key)

    return RoundResult(
        round=r.round,
        offsets={n(k): v for k, v in r.offsets.items()},
        rtts={n(k): v for k, v in r.rtts.items()},
        target_ns=r.target_ns,
        corrections={n(k): v for k, v in r.corrections.items()},
        agreeing=tuple(n(k) for k in r.agreeing),
        outliers=tuple(n(k) for k in r.outliers),
        missing=tuple(n(k) for k in r.missing),
    )


def test_followers_converge_and_the_outlier_is_corrected_but_not_averaged() -> None:
    history, clocks, master_clock = asyncio.run(_converge(rounds=4))
    assert len(history) == 4
    first = history[0]
    # Cristian's readings on loopback: each follower's offset to within a few ms.
    for name, injected in INJECTED.items():
        assert abs(first.offsets[name] - injected) < 5 * MS, (name, first.offsets)
    assert first.outliers == ("c",)
    assert set(first.agreeing) == {MASTER, "a", "b"}
    # Target: mean of master (0), +40, -25 = +5 ms; the +300 ms outlier is not in it.
    assert abs(first.target_ns - 5 * MS) < 5 * MS
    # ... but it is still told to move back by ~295 ms.
    assert abs(first.corrections["c"] + 295 * MS) < 5 * MS
    assert abs(first.corrections[MASTER] - first.target_ns) == 0
    # Everyone, master included, ends within 5 ms of each other (and near +5 ms).
    everyone = [*clocks.values(), master_clock]
    assert spread(everyone) < 5 * MS, {n: c.offset_ns for n, c in clocks.items()}
    assert all(abs(c.offset_ns - 5 * MS) < 10 * MS for c in everyone)
    # Later rounds see agreement: no outliers left, tiny corrections.
    last = history[-1]
    assert last.outliers == ()
    assert all(abs(v) < 5 * MS for v in last.corrections.values())


def test_a_silent_follower_is_skipped() -> None:
    async def run() -> tuple[RoundResult, VirtualClock, str]:
        clock = VirtualClock(20 * MS)
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        silent_name = f"127.0.0.1:{silent.getsockname()[1]}"
        try:
            async with FollowerService(clock=clock) as follower:
                live = f"127.0.0.1:{follower.address[1]}"
                async with MasterService(
                    [live, silent_name], reply_timeout=0.05, samples=2
                ) as master:
                    result = await master.run_round()
                    await asyncio.sleep(0.02)
        finally:
            silent.close()
        assert set(result.offsets) == {MASTER, live}
        return result, clock, silent_name

    result, clock, silent_name = asyncio.run(run())
    assert result.missing == (silent_name,)
    assert silent_name not in result.corrections
    assert abs(clock.offset_ns - 10 * MS) < 5 * MS  # moved to the mean of 0 and +20 ms


def test_follower_service_reports_corrections_and_filters_by_master() -> None:
    async def run() -> tuple[list[int], VirtualClock, VirtualClock]:
        seen: list[int] = []
        trusting, picky = VirtualClock(30 * MS), VirtualClock(30 * MS)
        async with (
            FollowerService(clock=trusting, on_adjust=seen.append) as f1,
            FollowerService(clock=picky, master="127.0.0.1:9") as f2,
        ):
            specs = [f"127.0.0.1:{f.address[1]}" for f in (f1, f2)]
            async with MasterService(specs, reply_timeout=0.05, samples=1) as master:
                result = await master.run_round()
                await asyncio.sleep(0.02)
        assert specs[1] in result.missing  # ignored a master it does not know
        return seen, trusting, picky

    seen, trusting, picky = asyncio.run(run())
    assert len(seen) == 1 and seen[0] == trusting.offset_ns
    assert abs(trusting.offset_ns - 15 * MS) < 5 * MS
    assert picky.offset_ns == 30 * MS


def test_services_check_their_arguments() -> None:
    with pytest.raises(ValueError, match="at least one follower"):
        MasterService([])
    with pytest.raises(ValueError, match="samples >= 1"):
        MasterService(["127.0.0.1:1"], samples=0)

    async def no_port() -> None:
        async with MasterService(["127.0.0.1"]):
            pass

    with pytest.raises(ValueError, match="a follower needs a port"):
        asyncio.run(no_port())
    with pytest.raises(RuntimeError, match="not started"):
        asyncio.run(MasterService(["127.0.0.1:1"]).run_round())
    with pytest.raises(RuntimeError, match="not started"):
        _ = FollowerService().address


# -- sans-IO cores ---------------------------------------------------------------------------


def test_cristian() -> None:
    assert cristian(1_000, 10_150, 1_300) == (9_000, 150)
    assert cristian(0, 0, 0) == (0, 0)
    with pytest.raises(ValueError, match="reply before request"):
        cristian(10, 0, 5)


def test_master_keeps_the_fastest_exchange_and_ignores_strays() -> None:
    f = "10.0.0.2:9000"
    m = BerkeleyMaster([f, "10.0.0.3:9000"], max_rtt=0.01)
    m.begin_round()
    slow = decode(m.poll(f, 0))
    fast = decode(m.poll(f, 100 * MS))
    stray = decode(m.poll(f, 200 * MS))
    too_slow = decode(m.poll(f, 300 * MS))
    assert slow and fast and stray and too_slow
    # Slow exchange: 8 ms round trip; fast: 2 ms. The follower is 50 ms ahead.
    m.receive(f, encode({"op": "time", "seq": slow["seq"], "ns": 54 * MS}), 8 * MS)
    m.receive(f, encode({"op": "time", "seq": fast["seq"], "ns": 151 * MS}), 102 * MS)
    m.receive(f, encode({"op": "time", "seq": fast["seq"], "ns": 0}), 103 * MS)  # duplicate
    m.receive("10.9.9.9:1", encode({"op": "time", "seq": stray["seq"], "ns": 0}), 201 * MS)
    m.receive(f, encode({"op": "time", "seq": too_slow["seq"], "ns": 0}), 320 * MS)
    m.receive(f, b"\xff not json", 0)
    m.receive(f, b'{"v": 2, "op": "time", "seq": 1, "ns": 0}', 0)
    m.receive(f, encode({"op": "time", "seq": 999, "ns": 0}), 0)
    result, datagrams = m.end_round()
    assert result.offsets == {MASTER: 0, f: 50 * MS}
    assert result.rtts == {f: 2 * MS}
    assert result.missing == ("10.0.0.3:9000",)
    assert result.corrections == {MASTER: 25 * MS, f: -25 * MS}
    assert [name for name, _ in datagrams] == [f]
    adjust = decode(datagrams[0][1])
    assert adjust is not None
    assert adjust["op"] == "adjust" and adjust["delta_ns"] == -25 * MS and adjust["round"] == 1
    # A reply to an earlier round's poll does not count in the next round.
    m.begin_round()
    m.receive(f, encode({"op": "time", "seq": stray["seq"], "ns": 0}), 201 * MS)
    result, datagrams = m.end_round()
    assert result.offsets == {MASTER: 0} and datagrams == []
    assert result.corrections == {MASTER: 0}


def test_follower_applies_each_correction_once() -> None:
    clock = VirtualClock(0, source=lambda: 5_000)
    f = BerkeleyFollower(clock, master="10.0.0.1:1")
    assert f.receive("10.0.0.9:1", encode({"op": "poll", "seq": 1})) is None  # not the master
    reply = decode(f.receive("10.0.0.1:1", encode({"op": "poll", "seq": 4})) or b"")
    assert reply == {"v": 1, "op": "time", "seq": 4, "ns": 5_000}
    adjust = encode({"op": "adjust", "epoch": 7, "round": 3, "delta_ns": 100})
    f.receive("10.0.0.1:1", adjust)
    f.receive("10.0.0.1:1", adjust)  # duplicate
    f.receive("10.0.0.1:1", encode({"op": "adjust", "epoch": 7, "round": 2, "delta_ns": 1}))
    assert clock.offset_ns == 100 and f.rounds_applied == 1
    # A restarted master (new epoch) starts its rounds again from 1.
    f.receive("10.0.0.1:1", encode({"op": "adjust", "epoch": 8, "round": 1, "delta_ns": -40}))
    assert clock.offset_ns == 60 and f.rounds_applied == 2
    for junk in (b"", b"[]", b'{"v":1,"op":"adjust","epoch":8,"round":9,"delta_ns":"1"}'):
        assert f.receive("10.0.0.1:1", junk) is None
    assert clock.offset_ns == 60


def test_fault_tolerant_average() -> None:
    assert fault_tolerant_average({MASTER: 0}, 0) == (0, {MASTER})
    # Two groups of two: the tighter one wins.
    avg, group = fault_tolerant_average({MASTER: 0, "a": 90, "b": 500, "c": 510}, 100)
    assert (avg, group) == (505, {"b", "c"})
    # Equal size and spread: the one with the master.
    avg, group = fault_tolerant_average({MASTER: 0, "a": 10, "b": 500, "c": 510}, 100)
    assert (avg, group) == (5, {MASTER, "a"})
    # A majority far from the master moves the master.
    avg, group = fault_tolerant_average({MASTER: 0, "a": 1000, "b": 1001, "c": 1002}, 10)
    assert (avg, group) == (1001, {"a", "b", "c"})
    with pytest.raises(ValueError, match="no offsets"):
        fault_tolerant_average({}, 1)
    with pytest.raises(ValueError, match="max_spread_ns"):
        fault_tolerant_average({MASTER: 0}, -1)
