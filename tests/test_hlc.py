"""The hybrid logical clock: the paper's rules, skew refusal, overflow, threads and a simulation."""

from __future__ import annotations

import copy
import itertools
import pickle
import random
import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distcore import _core
from distcore.clocks import HLC, HLCTimestamp
from distcore.exceptions import ClockSkewError, CounterOverflowError, DecodeError

MS = 1_000_000
MAX_LOGICAL = 2**16 - 1


class ManualClock:
    """A physical clock the test moves by hand (in ns)."""

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def __call__(self) -> int:
        return self.ns


def test_layout_is_48_bit_ms_and_16_bit_counter() -> None:
    ts = HLCTimestamp(1_764_369_601_123, 42)
    assert int(ts) == (1_764_369_601_123 << 16) | 42
    assert (ts.wall_ms, ts.logical, ts.wall_ns) == (1_764_369_601_123, 42, 1_764_369_601_123 * MS)
    assert bytes(ts) == int(ts).to_bytes(8, "big")
    assert str(ts) == "2025-11-28T22:40:01.123Z/00042"
    assert _core.HLC_MAX_LOGICAL == MAX_LOGICAL
    assert _core.HLC_MAX_WALL_MS == 2**48 - 1


@given(st.integers(0, 253_402_300_799_999), st.integers(0, MAX_LOGICAL))
def test_text_bytes_and_int_forms_round_trip(wall_ms: int, logical: int) -> None:
    ts = HLCTimestamp(wall_ms, logical)
    assert HLCTimestamp.parse(str(ts)) == ts
    assert HLCTimestamp.from_bytes(bytes(ts)) == ts
    assert HLCTimestamp.from_int(int(ts)) == ts
    assert pickle.loads(pickle.dumps(ts)) == ts
    assert hash(HLCTimestamp.from_int(int(ts))) == hash(ts)


@given(
    st.tuples(st.integers(0, 2**48 - 1), st.integers(0, MAX_LOGICAL)),
    st.tuples(st.integers(0, 2**48 - 1), st.integers(0, MAX_LOGICAL)),
)
def test_all_forms_sort_like_the_pair(a: tuple[int, int], b: tuple[int, int]) -> None:
    ta, tb = HLCTimestamp(*a), HLCTimestamp(*b)
    assert (ta < tb) == (a < b) == (int(ta) < int(tb)) == (bytes(ta) < bytes(tb))
    assert (ta == tb) == (a == b)
    if max(a[0], b[0]) <= 253_402_300_799_999:  # 4-digit years
        assert (str(ta) < str(tb)) == (a < b)


@given(st.text(max_size=40))
def test_random_text_is_refused_cleanly(text: str) -> None:
    try:
        ts = HLCTimestamp.parse(text)
    except DecodeError:
        return
    assert str(ts) == text


@given(st.binary(max_size=12))
def test_random_bytes_are_refused_cleanly(data: bytes) -> None:
    if len(data) == 8:
        assert bytes(HLCTimestamp.from_bytes(data)) == data
    else:
        with pytest.raises(DecodeError, match="8 bytes"):
            HLCTimestamp.from_bytes(data)


def test_bad_timestamps() -> None:
    with pytest.raises(CounterOverflowError, match="logical counter 65536"):
        HLCTimestamp(0, 65536)
    with pytest.raises(CounterOverflowError, match="past the largest HLC time"):
        HLCTimestamp(2**48, 0)
    with pytest.raises(CounterOverflowError):
        HLCTimestamp(-1, 0)
    with pytest.raises(TypeError, match="wall_ms must be an int"):
        HLCTimestamp(1.5, 0)  # type: ignore[arg-type]
    for bad in ("2025-02-29T00:00:00.000Z/00000", "2025-11-28T22:40:01.123Z/99999", "yesterday"):
        with pytest.raises(DecodeError, match="not an HLC timestamp"):
            HLCTimestamp.parse(bad)
    with pytest.raises(TypeError):
        _ = HLCTimestamp(1, 0) < 5  # type: ignore[operator]


def test_send_and_receive_rules() -> None:
    pt = ManualClock(1000 * MS)
    clock = HLC(physical=pt)
    assert (clock.now().wall_ms, clock.now().logical) == (1000, 1)
    pt.ns = 900 * MS  # the wall clock jumps back: the counter keeps order
    assert clock.now() == HLCTimestamp(1000, 2)
    # A remote timestamp ahead (within max_offset): adopt its time, its counter + 1.
    assert clock.update(HLCTimestamp(1200, 7)) == HLCTimestamp(1200, 8)
    # Same l on both sides: max of the counters + 1.
    assert clock.update(HLCTimestamp(1200, 3)) == HLCTimestamp(1200, 9)
    assert clock.update(int(HLCTimestamp(1200, 20))) == HLCTimestamp(1200, 21)
    pt.ns = 1300 * MS  # physical time passes everything: counter resets
    assert clock.update(HLCTimestamp(1250, 99)) == HLCTimestamp(1300, 0)
    assert clock.last == HLCTimestamp(1300, 0)


def test_remote_beyond_max_offset_raises_and_changes_nothing() -> None:
    pt = ManualClock(10_000 * MS)
    clock = HLC(max_offset=0.25, physical=pt)
    before = clock.now()
    with pytest.raises(ClockSkewError, match="more than max_offset 250000000 ns"):
        clock.update(HLCTimestamp(10_251, 0))
    assert clock.last == before
    assert clock.update(HLCTimestamp(10_250, 0)) == HLCTimestamp(10_250, 1)
    assert HLC().max_offset == 0.5


def test_counter_overflow_carries_into_the_next_millisecond() -> None:
    pt = ManualClock(5 * MS)
    clock = HLC(physical=pt)
    stamps = [clock.now() for _ in range(70_000)]
    assert all(a < b for a, b in itertools.pairwise(stamps))
    assert stamps[MAX_LOGICAL] == HLCTimestamp(5, MAX_LOGICAL)
    assert stamps[MAX_LOGICAL + 1] == HLCTimestamp(6, 0)
    top = HLC(physical=pt, last=2**64 - 1)
    with pytest.raises(CounterOverflowError, match="largest timestamp"):
        top.now()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_offset"):
        HLC(max_offset=-1)
    with pytest.raises(ValueError, match="max_offset"):
        HLC(max_offset=float("nan"))
    with pytest.raises(TypeError, match="callable"):
        HLC(physical=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="int nanoseconds, not float"):
        HLC(physical=time.time).now()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not nanoseconds since 1970"):
        HLC(physical=lambda: -1).now()
    clock = HLC()
    with pytest.raises(TypeError, match="HLCTimestamp or its int form"):
        clock.update("2025-11-28T22:40:01.123Z/00042")  # type: ignore[arg-type]


def test_system_clock_default_tracks_time() -> None:
    clock = HLC()
    before = time.time_ns() // MS
    ts = clock.now()
    after = time.time_ns() // MS
    assert before <= ts.wall_ms <= after + 1
    assert HLC(physical=time.time_ns).now().wall_ms >= before


def test_pickle_and_copy_keep_state() -> None:
    clock = HLC(max_offset=0.1, physical=time.time_ns)
    last = clock.now()
    for other in (pickle.loads(pickle.dumps(clock)), copy.copy(clock), copy.deepcopy(clock)):
        assert other.max_offset == 0.1
        assert other.last == last
        assert other.now() > last
    assert clock.last == last  # the copies are independent


def test_threads_never_get_a_duplicate_or_a_smaller_timestamp() -> None:
    clock = HLC()
    per_thread: list[list[int]] = [[] for _ in range(4)]

    def work(out: list[int]) -> None:
        now = clock.now
        out.extend(int(now()) for _ in range(20_000))

    threads = [threading.Thread(target=work, args=(o,)) for o in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seq in per_thread:
        assert all(a < b for a, b in itertools.pairwise(seq))
    flat = [v for seq in per_thread for v in seq]
    assert len(set(flat)) == len(flat)


class SimNode:
    """A node with a skewed, drifting physical clock over a shared true time."""

    def __init__(
        self, true_ns: Callable[[], int], skew_ns: int, drift_ppm: float, max_offset: float
    ):
        self.true_ns, self.skew_ns, self.drift = true_ns, skew_ns, drift_ppm / 1e6
        self.start_ns = true_ns()
        self.hlc = HLC(max_offset=max_offset, physical=self.physical)
        self.stamps: list[HLCTimestamp] = []

    def physical(self) -> int:
        t = self.true_ns()
        return int(t + self.skew_ns + (t - self.start_ns) * self.drift)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 2**32),
    st.integers(2, 12),
    st.integers(0, 200),  # largest skew, ms
    st.floats(0, 200),  # largest drift, ppm
)
def test_simulated_cluster_keeps_hlc_invariants(
    seed: int, nodes: int, skew_ms: int, drift_ppm: float
) -> None:
    """Random message exchange between nodes with skewed, drifting clocks (HLC paper, Thm 1-2).

    Checked: each node's timestamps strictly increase; a receive is after the send
    (happens-before is kept); l is never behind the node's physical time (at ms resolution); l is
    never further ahead of physical time than the largest pairwise skew allows; nothing is refused
    while skew stays under max_offset.
    """
    rng = random.Random(seed)
    now = [1_700_000_000_000 * MS]
    max_offset = 0.5
    sim = [
        SimNode(
            lambda: now[0],
            rng.randint(-skew_ms, skew_ms) * MS,
            rng.uniform(-drift_ppm, drift_ppm),
            max_offset,
        )
        for _ in range(nodes)
    ]
    in_flight: list[tuple[int, HLCTimestamp]] = []
    for _ in range(400):
        now[0] += rng.randint(0, 3 * MS)
        n = rng.randrange(nodes)
        node = sim[n]
        if in_flight and rng.random() < 0.5:
            to, sent = in_flight.pop(rng.randrange(len(in_flight)))
            node = sim[to]
            ts = node.hlc.update(sent)
            assert ts > sent
        else:
            ts = node.hlc.now()
            in_flight.append((rng.randrange(nodes), ts))
        if node.stamps:
            assert ts > node.stamps[-1]
        node.stamps.append(ts)
        pt_ms = node.physical() // MS
        assert ts.wall_ms >= pt_ms
        # Ahead only by what other nodes' faster clocks (skew + drift so far) carried in, + 1 ms
        # of rounding; well within max_offset.
        spread_ms = max(s.physical() for s in sim) // MS - min(s.physical() for s in sim) // MS
        assert ts.wall_ms - pt_ms <= spread_ms + 1
        assert ts.wall_ms - pt_ms <= max_offset * 1000


def test_a_node_too_far_ahead_is_refused_by_the_others() -> None:
    true = [1_700_000_000_000 * MS]
    honest = HLC(max_offset=0.5, physical=lambda: true[0])
    rusher = HLC(max_offset=0.5, physical=lambda: true[0] + 2_000 * MS)
    sent = rusher.now()
    before = honest.now()
    with pytest.raises(ClockSkewError):
        honest.update(sent)
    assert honest.last == before
