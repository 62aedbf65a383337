"""Marzullo's algorithm and the combination of servers: hand-made cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from distcore.exceptions import TimeSyncError
from distcore.timesync import Estimate, NTPSample, combine, marzullo


def coverage(intervals: list[tuple[float, float]], point: float) -> int:
    return sum(lo <= point <= hi for lo, hi in intervals)


def sample(server: str, offset_ms: float, delay_ms: float = 2.0) -> NTPSample:
    """A sample whose offset and delay are exactly these (integer ns)."""
    offset, delay = round(offset_ms * 1e6), round(delay_ms * 1e6)
    t1 = 1_800_000_000 * 10**9
    t2 = t1 + delay // 2 + offset
    return NTPSample(server=server, t1=t1, t2=t2, t3=t2, t4=t1 + delay, stratum=2)


@pytest.mark.parametrize(
    ("intervals", "expected"),
    [
        ([(1, 5)], (1, 5, 1, (0,))),
        ([(8, 12), (11, 13), (10, 12)], (11, 12, 3, (0, 1, 2))),
        ([(8, 12), (11, 13), (14, 15)], (11, 12, 2, (0, 1))),
        ([(0, 1), (1, 2)], (1, 1, 2, (0, 1))),  # touching closed intervals intersect
        ([(0, 1), (2, 3)], (0, 1, 1, (0,))),  # disjoint: the first wins the tie
        ([(0, 10), (1, 2), (3, 4), (3.5, 5)], (3.5, 4, 3, (0, 2, 3))),
        ([(-1, 1), (-1, 1), (-1, 1)], (-1, 1, 3, (0, 1, 2))),
        ([(5, 5), (0, 10)], (5, 5, 2, (0, 1))),
    ],
)
def test_hand_made_intervals(
    intervals: list[tuple[float, float]], expected: tuple[float, float, int, tuple[int, ...]]
) -> None:
    r = marzullo(intervals)
    assert (r.low, r.high, r.count, r.members) == expected


def test_bad_intervals() -> None:
    with pytest.raises(ValueError, match="no intervals"):
        marzullo([])
    with pytest.raises(ValueError, match="need low <= high"):
        marzullo([(2, 1)])
    with pytest.raises(ValueError, match="need low <= high"):
        marzullo([(0, float("nan"))])


_interval = st.tuples(st.integers(-1000, 1000), st.integers(0, 300)).map(
    lambda t: (float(t[0]), float(t[0] + t[1]))
)


@given(st.lists(_interval, min_size=1, max_size=12))
def test_result_is_the_most_covered_region(intervals: list[tuple[float, float]]) -> None:
    r = marzullo(intervals)
    assert r.low <= r.high
    # Inside every member interval, and the members are exactly `count` intervals.
    assert len(r.members) == r.count
    for i in r.members:
        lo, hi = intervals[i]
        assert lo <= r.low and r.high <= hi
    for point in (r.low, r.high, (r.low + r.high) / 2):
        assert coverage(intervals, point) == r.count
    # No point anywhere is covered by more intervals (the max is reached at an endpoint).
    edges = {x for iv in intervals for x in iv}
    assert max(coverage(intervals, x) for x in edges) == r.count


@given(
    st.lists(st.integers(-50, 50), min_size=3, max_size=7),
    st.integers(1, 3),
    st.integers(500, 5000),
)
def test_an_outvoted_server_is_named_a_falseticker(
    honest_ms: list[int], liars: int, shift_ms: int
) -> None:
    liars = min(liars, (len(honest_ms) - 1) // 2)  # a strict minority
    samples = [sample(f"h{i}", o / 1000, delay_ms=2.0) for i, o in enumerate(honest_ms)]
    samples += [sample(f"l{i}", shift_ms, delay_ms=2.0) for i in range(liars)]
    # Honest intervals (±1 ms around offsets within ±0.05 ms) all overlap.
    e = combine(samples)
    assert set(e.falsetickers) == {f"l{i}" for i in range(liars)}
    assert set(e.truechimers) == {f"h{i}" for i in range(len(honest_ms))}
    assert e.low <= e.offset <= e.high
    assert abs(e.offset) < 1e-3


def test_combine_gives_midpoint_and_interval() -> None:
    e = combine({"a": sample("a", 0.0, 4.0), "b": sample("b", 1.0, 4.0), "c": sample("c", 9.0)})
    assert e == Estimate(
        offset=pytest.approx(0.0005),
        low=pytest.approx(-0.001),
        high=pytest.approx(0.002),
        truechimers=("a", "b"),
        falsetickers=("c",),
    )
    assert e.error == pytest.approx(0.0015)


def test_combine_without_a_majority() -> None:
    split = [sample("a", 0.0), sample("b", 2500.0)]
    with pytest.raises(TimeSyncError, match="no majority: at most 1 of 2 servers agree"):
        combine(split)
    e = combine(split, require_majority=False)
    assert e.truechimers == ("a",) and e.falsetickers == ("b",)
    with pytest.raises(ValueError, match="no samples"):
        combine([])


def test_root_distance_widens_the_interval() -> None:
    s = sample("a", 0.0, 2.0)
    wide = NTPSample(**{**s.__dict__, "root_delay": 0.004, "root_dispersion": 0.001})
    assert s.error == pytest.approx(0.001)
    assert wide.error == pytest.approx(0.001 + 0.002 + 0.001)
