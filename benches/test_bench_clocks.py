"""Logical clocks from Python: distcore side by side with the peers, in one run.

Tagged like ``test_bench_hashing.py`` (``impl``, ``name``, ``peer``, ``keys`` = operations per
timed call, ``target_ns`` = the issue's per-operation target) plus ``unit="op"`` so `report.py`
says "per op", and ``target_call_ns`` where the issue's target is for a whole call (causal_order).
Nothing here asserts on time.

Peers: ``hlcpy`` 0.0.2 (``HLC.sync()`` ticks, ``merge()`` receives), the ``vectorclock`` 0.5.3
package (``compare``, ``<``, its JSON ``str``/``from_string``), and pure Python written for these
benchmarks where no package offers the operation: ``_pyhlc.PyHLC`` (the HLC paper's rules with a
lock), ``_pyhlc.PyLamportClock``, dict merges, and for ``causal_order`` ``sorted`` by the same key
distcore documents (sum of counters, then the entries in node order).

Single operations run ``deque(map(fn, args), maxlen=0)`` over N arguments, the least loop overhead
Python allows (about 5 ns per call), the same for distcore and the peer.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from itertools import repeat
from typing import Any

import pytest
from _pyhlc import PyHLC, PyLamportClock

from distcore.clocks import (
    HLC,
    HLCTimestamp,
    LamportClock,
    Ordering,
    VectorClock,
    causal_order,
    compare_many,
    merge_all,
)

hlcpy = pytest.importorskip("hlcpy")
vc_peer = pytest.importorskip("vectorclock.vectorclock")

HLC_NOW = "HLC: local/send event, 1 per call"
HLC_UPDATE = "HLC: receive event, 1 per call"
LAMPORT = "Lamport tick, 1 per call"
CMP_1000 = "VectorClock compare, 1000 entries"
CMP_16 = "VectorClock compare, 16 entries"
MERGE_1000 = "VectorClock merge, 1000 entries"
BYTES_1000 = "VectorClock encode + decode, 1000 entries"
BATCH_CMP = "compare_many: 100k pairs, 16-node clocks"
BATCH_MERGE = "merge_all: 100k 16-node clocks"
BATCH_ORDER = "causal_order: 100k events, 16-node clocks"

TICKS = 1000  # calls per timed round for the nanosecond-scale operations
BIG_CALLS = 100  # calls per timed round for 1000-entry operations (distcore)
PEER_BIG_CALLS = 10  # the same for the peers, 100x slower
EVENTS = 100_000
PEER_CMP_PAIRS = 10_000  # vectorclock compares ~20 µs per 16-node pair in the batch: a subset


def tag(benchmark: Any, group: str, impl: str, name: str, ops: int, **extra: Any) -> None:
    benchmark.group = group
    benchmark.name = name
    benchmark.extra_info.update(impl=impl, name=name, keys=ops, unit="op", **extra)


def each(fn: Callable[..., Any], *iterables: Any) -> Callable[[], None]:
    """A callable that applies ``fn`` over the (re-iterable) arguments with the least overhead."""

    def run() -> None:
        deque(map(fn, *iterables), maxlen=0)

    return run


# --- inputs -----------------------------------------------------------------------------------


def node(i: int) -> str:
    return f"node-{i:04d}"


@pytest.fixture(scope="module")
def counters_1000() -> dict[str, int]:
    """1000 nodes ``node-0000`` .. ``node-0999`` with random counters, in node order."""
    rng = random.Random(11)
    return {node(i): rng.randrange(1, 1_000_000) for i in range(1000)}


Pairs = dict[str, tuple[dict[str, int], dict[str, int]]]


def pairs_from(base: dict[str, int]) -> Pairs:
    """Two clock pairs as dicts: ``before`` (b is a plus 3 in the first, a middle and the last
    node, so proving a <= b reads every entry) and ``concurrent`` (b ahead in the first node, a
    ahead in the last: the order is known only at the end of a scan in node order)."""
    names = list(base)
    first, mid, last = names[0], names[len(names) // 2], names[-1]
    after = dict(base)
    for k in (first, mid, last):
        after[k] += 3
    a_conc, b_conc = dict(base), dict(base)
    b_conc[first] += 1
    a_conc[last] += 1
    return {"before": (base, after), "concurrent": (a_conc, b_conc)}


@pytest.fixture(scope="module")
def dict_pairs_1000(counters_1000: dict[str, int]) -> Pairs:
    return pairs_from(counters_1000)


@pytest.fixture(scope="module")
def dict_pairs_16(counters_1000: dict[str, int]) -> Pairs:
    return pairs_from(dict(list(counters_1000.items())[:16]))


EXPECTED = {"before": Ordering.BEFORE, "concurrent": Ordering.CONCURRENT}
PEER_EXPECTED = {"before": -1, "concurrent": 0}


@pytest.fixture(scope="module")
def history() -> list[dict[str, int]]:
    """100k events of 16 nodes as counter dicts (node order, no zeros), shuffled.

    Each event is one node's local event; before it, with probability 0.3 the node receives a
    message and merges the clock of a random other node's latest event.
    """
    rng = random.Random(12)
    nodes = [node(i) for i in range(16)]
    state = [dict.fromkeys(nodes, 0) for _ in nodes]
    out = []
    for _ in range(EVENTS):
        i = rng.randrange(16)
        mine = state[i]
        if rng.random() < 0.3:
            theirs = state[rng.randrange(16)]
            for k, v in theirs.items():
                if v > mine[k]:
                    mine[k] = v
        mine[nodes[i]] += 1
        out.append({k: v for k, v in mine.items() if v})
    rng.shuffle(out)
    return out


@pytest.fixture(scope="module")
def history_clocks(history: list[dict[str, int]]) -> list[VectorClock]:
    return [VectorClock(d) for d in history]


# --- HLC --------------------------------------------------------------------------------------


@pytest.mark.parametrize("peer", ["hlcpy HLC.sync()", "PyHLC.now() (pure Python)"])
def test_hlc_now_distcore(benchmark: Any, peer: str) -> None:
    clock = HLC()
    tag(benchmark, HLC_NOW, "distcore", "HLC.now()", TICKS, peer=peer, target_ns=150)
    benchmark(each(HLC.now, [clock] * TICKS))
    first = clock.now()
    assert clock.now() > first


def test_hlc_now_hlcpy(benchmark: Any) -> None:
    clock = hlcpy.HLC.from_now()
    tag(benchmark, HLC_NOW, "peer", "hlcpy HLC.sync()", TICKS)
    benchmark(each(hlcpy.HLC.sync, [clock] * TICKS))


def test_hlc_now_pyhlc(benchmark: Any) -> None:
    clock = PyHLC()
    tag(benchmark, HLC_NOW, "peer", "PyHLC.now() (pure Python)", TICKS)
    benchmark(each(PyHLC.now, [clock] * TICKS))
    assert clock.now() < clock.now()


@pytest.fixture(scope="module")
def remote_stamps() -> list[HLCTimestamp]:
    """1000 timestamps of another node's clock: a few ms old when they arrive, as over a LAN."""
    remote = HLC()
    return [remote.now() for _ in range(TICKS)]


@pytest.mark.parametrize("peer", ["hlcpy HLC.merge(e)", "PyHLC.update(t) (pure Python)"])
def test_hlc_update_distcore(benchmark: Any, remote_stamps: list[HLCTimestamp], peer: str) -> None:
    clock = HLC()
    tag(benchmark, HLC_UPDATE, "distcore", "HLC.update(ts)", TICKS, peer=peer)
    benchmark(each(clock.update, remote_stamps))
    assert clock.last > remote_stamps[-1]


def test_hlc_update_hlcpy(benchmark: Any, remote_stamps: list[HLCTimestamp]) -> None:
    clock = hlcpy.HLC.from_now()
    events = [hlcpy.HLC(ts.wall_ns, ts.logical) for ts in remote_stamps]
    tag(benchmark, HLC_UPDATE, "peer", "hlcpy HLC.merge(e)", TICKS)
    benchmark(each(clock.merge, events))


def test_hlc_update_pyhlc(benchmark: Any, remote_stamps: list[HLCTimestamp]) -> None:
    clock = PyHLC()
    stamps = [int(ts) for ts in remote_stamps]
    tag(benchmark, HLC_UPDATE, "peer", "PyHLC.update(t) (pure Python)", TICKS)
    benchmark(each(clock.update, stamps))
    assert clock.now() > stamps[-1]


# --- Lamport ----------------------------------------------------------------------------------


def test_lamport_tick_distcore(benchmark: Any) -> None:
    clock = LamportClock()
    tag(benchmark, LAMPORT, "distcore", "LamportClock.tick()", TICKS, peer="PyLamportClock.tick()")
    benchmark(each(LamportClock.tick, [clock] * TICKS))


def test_lamport_tick_python(benchmark: Any) -> None:
    clock = PyLamportClock()
    tag(benchmark, LAMPORT, "peer", "PyLamportClock.tick()", TICKS)
    benchmark(each(PyLamportClock.tick, [clock] * TICKS))


# --- VectorClock compare ----------------------------------------------------------------------


def compare_group(size: int) -> str:
    return CMP_1000 if size == 1000 else CMP_16


@pytest.mark.parametrize("size", [1000, 16])
@pytest.mark.parametrize("case", ["before", "concurrent"])
def test_compare_distcore(
    benchmark: Any,
    dict_pairs_1000: dict[str, Any],
    dict_pairs_16: dict[str, Any],
    size: int,
    case: str,
) -> None:
    da, db = (dict_pairs_1000 if size == 1000 else dict_pairs_16)[case]
    a, b = VectorClock(da), VectorClock(db)
    assert a.compare(b) is EXPECTED[case]
    calls = BIG_CALLS if size == 1000 else TICKS
    tag(
        benchmark,
        compare_group(size),
        "distcore",
        f"a.compare(b), {size} entries, {case}",
        calls,
        peer=f"vectorclock compare, {size} entries, {case}",
        target_ns=2000 if size == 1000 else None,
    )
    benchmark(each(a.compare, [b] * calls))


@pytest.mark.parametrize("size", [1000, 16])
@pytest.mark.parametrize("case", ["before", "concurrent"])
def test_compare_vectorclock(
    benchmark: Any,
    dict_pairs_1000: dict[str, Any],
    dict_pairs_16: dict[str, Any],
    size: int,
    case: str,
) -> None:
    da, db = (dict_pairs_1000 if size == 1000 else dict_pairs_16)[case]
    a, b = vc_peer.VectorClock(da), vc_peer.VectorClock(db)
    assert a.compare(b, False) == PEER_EXPECTED[case]
    calls = PEER_BIG_CALLS if size == 1000 else TICKS
    name = f"vectorclock compare, {size} entries, {case}"
    tag(benchmark, compare_group(size), "peer", name, calls)
    benchmark(each(a.compare, [b] * calls, [False] * calls))


def test_lt_distcore(benchmark: Any, dict_pairs_1000: dict[str, Any]) -> None:
    a, b = (VectorClock(d) for d in dict_pairs_1000["before"])
    assert a < b
    tag(
        benchmark,
        CMP_1000,
        "distcore",
        "a < b, 1000 entries, before",
        BIG_CALLS,
        peer="vectorclock a < b, 1000 entries, before",
        target_ns=2000,
    )
    benchmark(each(VectorClock.__lt__, [a] * BIG_CALLS, [b] * BIG_CALLS))


def test_lt_vectorclock(benchmark: Any, dict_pairs_1000: dict[str, Any]) -> None:
    a, b = (vc_peer.VectorClock(d) for d in dict_pairs_1000["before"])
    assert a < b
    tag(benchmark, CMP_1000, "peer", "vectorclock a < b, 1000 entries, before", PEER_BIG_CALLS)
    lt = vc_peer.VectorClock.__lt__
    benchmark(each(lt, [a] * PEER_BIG_CALLS, [b] * PEER_BIG_CALLS))


# --- VectorClock merge ------------------------------------------------------------------------
# vectorclock has no merge: the peer is the dict loop a user would write. Both sides merge the
# concurrent pair; in place, every round after the first merges an already-merged clock, which
# still reads every entry of both.


def dict_merge(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Merges ``b`` into ``a`` in place (pointwise maximum); returns ``a``."""
    get = a.get
    for k, v in b.items():
        if v > get(k, 0):
            a[k] = v
    return a


def dict_merged(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return dict_merge(dict(a), b)


def test_merge_distcore(benchmark: Any, dict_pairs_1000: dict[str, Any]) -> None:
    a, b = (VectorClock(d) for d in dict_pairs_1000["concurrent"])
    tag(
        benchmark,
        MERGE_1000,
        "distcore",
        "a.merge(b) (in place)",
        BIG_CALLS,
        peer="dict merge in place (Python loop)",
        target_ns=2000,
    )
    benchmark(each(a.merge, [b] * BIG_CALLS))
    assert a.dominates(b) and len(a) == 1000


def test_merged_distcore(benchmark: Any, dict_pairs_1000: dict[str, Any]) -> None:
    a, b = (VectorClock(d) for d in dict_pairs_1000["concurrent"])
    tag(
        benchmark,
        MERGE_1000,
        "distcore",
        "a.merged(b) (new clock)",
        BIG_CALLS,
        peer="dict merged copy (Python loop)",
    )
    benchmark(each(a.merged, [b] * BIG_CALLS))


def test_merge_dict(benchmark: Any, dict_pairs_1000: dict[str, Any]) -> None:
    a, b = (dict(d) for d in dict_pairs_1000["concurrent"])
    tag(benchmark, MERGE_1000, "peer", "dict merge in place (Python loop)", PEER_BIG_CALLS)
    benchmark(each(dict_merge, [a] * PEER_BIG_CALLS, [b] * PEER_BIG_CALLS))


def test_merged_dict(benchmark: Any, dict_pairs_1000: dict[str, Any]) -> None:
    a, b = dict_pairs_1000["concurrent"]
    tag(benchmark, MERGE_1000, "peer", "dict merged copy (Python loop)", PEER_BIG_CALLS)
    benchmark(each(dict_merged, [a] * PEER_BIG_CALLS, [b] * PEER_BIG_CALLS))


# --- VectorClock encoding ---------------------------------------------------------------------


def test_bytes_roundtrip_distcore(benchmark: Any, counters_1000: dict[str, int]) -> None:
    clock = VectorClock(counters_1000)
    assert VectorClock.from_bytes(bytes(clock)) == clock
    tag(
        benchmark,
        BYTES_1000,
        "distcore",
        "VectorClock.from_bytes(bytes(vc))",
        BIG_CALLS,
        peer="vectorclock from_string(str(vc))",
    )

    def roundtrip(vc: VectorClock) -> VectorClock:
        return VectorClock.from_bytes(bytes(vc))

    benchmark(each(roundtrip, [clock] * BIG_CALLS))


def test_str_roundtrip_vectorclock(benchmark: Any, counters_1000: dict[str, int]) -> None:
    clock = vc_peer.VectorClock(counters_1000)
    from_string = vc_peer.VectorClock.from_string
    assert from_string(str(clock)).clocks == counters_1000
    tag(benchmark, BYTES_1000, "peer", "vectorclock from_string(str(vc))", PEER_BIG_CALLS)

    def roundtrip(vc: Any) -> Any:
        return from_string(str(vc))

    benchmark(each(roundtrip, [clock] * PEER_BIG_CALLS))


# --- batches ----------------------------------------------------------------------------------
# Pairs are consecutive events of the shuffled history: some ordered, most concurrent.


def test_compare_many_distcore(benchmark: Any, history_clocks: list[VectorClock]) -> None:
    a, b = history_clocks, history_clocks[1:] + history_clocks[:1]
    tag(
        benchmark,
        BATCH_CMP,
        "distcore",
        "compare_many(a, b)",
        len(a),
        peer="vectorclock compare loop",
    )
    out = benchmark.pedantic(compare_many, (a, b), rounds=10, warmup_rounds=1)
    assert out[:100] == [x.compare(y) for x, y in zip(a[:100], b[:100], strict=True)]


def test_compare_loop_distcore(benchmark: Any, history_clocks: list[VectorClock]) -> None:
    a, b = history_clocks, history_clocks[1:] + history_clocks[:1]
    tag(
        benchmark,
        BATCH_CMP,
        "distcore",
        "a[i].compare(b[i]) loop",
        len(a),
        peer="vectorclock compare loop",
    )
    out = benchmark.pedantic(lambda: list(map(VectorClock.compare, a, b)), rounds=5)
    assert len(out) == len(a)


def test_compare_loop_vectorclock(benchmark: Any, history: list[dict[str, int]]) -> None:
    clocks = [vc_peer.VectorClock(d) for d in history[: PEER_CMP_PAIRS + 1]]
    a, b = clocks[:-1], clocks[1:]
    tag(benchmark, BATCH_CMP, "peer", "vectorclock compare loop", len(a))
    compare = vc_peer.VectorClock.compare
    out = benchmark.pedantic(lambda: list(map(compare, a, b, repeat(False))), rounds=3)
    assert len(out) == len(a)


def test_merge_all_distcore(benchmark: Any, history_clocks: list[VectorClock]) -> None:
    tag(
        benchmark,
        BATCH_MERGE,
        "distcore",
        "merge_all(clocks)",
        len(history_clocks),
        peer="dict merge loop",
    )
    out = benchmark.pedantic(merge_all, (history_clocks,), rounds=10, warmup_rounds=1)
    assert len(out) == 16


def test_merge_all_dict(benchmark: Any, history: list[dict[str, int]]) -> None:
    tag(benchmark, BATCH_MERGE, "peer", "dict merge loop", len(history))

    def run() -> dict[str, int]:
        acc: dict[str, int] = {}
        for d in history:
            dict_merge(acc, d)
        return acc

    out = benchmark.pedantic(run, rounds=3)
    assert len(out) == 16


def test_causal_order_distcore(benchmark: Any, history_clocks: list[VectorClock]) -> None:
    events = [(c, i) for i, c in enumerate(history_clocks)]
    tag(
        benchmark,
        BATCH_ORDER,
        "distcore",
        "causal_order(events)",
        len(events),
        peer="sorted(key=(sum, entries))",
        target_call_ns=100e6,
    )
    out = benchmark.pedantic(causal_order, (events,), rounds=5, warmup_rounds=1)
    totals = [c.total() for c, _ in out]
    assert len(out) == len(events) and totals == sorted(totals)


def test_causal_order_python(benchmark: Any, history: list[dict[str, int]]) -> None:
    # The same order distcore documents: sum of the counters (it grows along happens-before),
    # then the entries in node order (the dicts are in node order), then input position (sorted
    # is stable). A cmp_to_key over the partial order is not a peer: sorted needs a total order,
    # and a comparator that answers "equal" for concurrent clocks does not give a causal order.
    events = [(d, i) for i, d in enumerate(history)]

    def key(event: tuple[dict[str, int], int]) -> tuple[int, tuple[tuple[str, int], ...]]:
        d = event[0]
        return sum(d.values()), tuple(d.items())

    tag(benchmark, BATCH_ORDER, "peer", "sorted(key=(sum, entries))", len(events))
    out = benchmark.pedantic(lambda: sorted(events, key=key), rounds=3, warmup_rounds=1)
    assert len(out) == len(events)
