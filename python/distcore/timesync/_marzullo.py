"""Marzullo's intersection algorithm, and the combination of several servers' samples."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from distcore.exceptions import TimeSyncError

from ._sntp import NTPSample


@dataclass(frozen=True)
class Intersection:
    """The region ``[low, high]`` covered by the most source intervals.

    ``members`` are the indexes of the ``count`` intervals that contain the whole region.
    """

    low: float
    high: float
    count: int
    members: tuple[int, ...]


def marzullo(intervals: Sequence[tuple[float, float]]) -> Intersection:
    """Marzullo (1984): the smallest region agreed on by the largest number of intervals.

    Intervals are closed ``(low, high)`` pairs; touching intervals intersect. Sweeps the sorted
    endpoints once (O(n log n)). Among several regions covered equally often, the first (lowest)
    one wins, as in Marzullo's formulation.

    Raises
    ------
    ValueError
        No intervals, a NaN endpoint, or ``low > high``.

    Examples
    --------
    >>> marzullo([(8, 12), (11, 13), (10, 12)])
    Intersection(low=11, high=12, count=3, members=(0, 1, 2))
    >>> marzullo([(8, 9), (8, 12), (10, 12)])  # two regions of 2: the first one
    Intersection(low=8, high=9, count=2, members=(0, 1))
    """
    if not intervals:
        raise ValueError("no intervals")
    edges: list[tuple[float, int]] = []
    for low, high in intervals:
        if math.isnan(low) or math.isnan(high) or low > high:
            raise ValueError(f"bad interval ({low!r}, {high!r}): need low <= high")
        # A start sorts before an end at the same point, so touching intervals overlap.
        edges.append((low, -1))
        edges.append((high, +1))
    edges.sort()
    best, depth = 0, 0
    best_low = best_high = edges[0][0]
    for i, (point, kind) in enumerate(edges):
        depth -= kind
        if depth > best:
            best, best_low, best_high = depth, point, edges[i + 1][0]
    members = tuple(i for i, (lo, hi) in enumerate(intervals) if lo <= best_low and best_high <= hi)
    return Intersection(best_low, best_high, best, members)


@dataclass(frozen=True)
class Estimate:
    """Several servers combined: the offset (seconds, server time minus local) and its interval.

    ``truechimers`` are the servers whose intervals contain ``[low, high]``; ``falsetickers``
    the others. ``offset`` is the middle of the interval.
    """

    offset: float
    low: float
    high: float
    truechimers: tuple[str, ...]
    falsetickers: tuple[str, ...]

    @property
    def error(self) -> float:
        """Half the width of the interval: the estimate is within ``offset ± error``."""
        return (self.high - self.low) / 2


def combine(
    samples: Sequence[NTPSample] | Mapping[str, NTPSample], *, require_majority: bool = True
) -> Estimate:
    """Combine one sample per server with :func:`marzullo` into an :class:`Estimate`.

    Each sample contributes ``[offset - error, offset + error]``. Servers whose interval does
    not contain the agreed region are named falsetickers.

    Raises
    ------
    ValueError
        No samples.
    TimeSyncError
        ``require_majority`` and no more than half of the servers agree.

    Examples
    --------
    >>> def s(name, offset_ns, delay_ns=2_000_000):  # a sample with this offset and delay
    ...     t1 = 1_000_000_000
    ...     t2 = t1 + delay_ns // 2 + offset_ns
    ...     return NTPSample(server=name, t1=t1, t2=t2, t3=t2, t4=t1 + delay_ns, stratum=2)
    >>> e = combine([s("a", 0), s("b", 500_000), s("c", 2_500_000_000)])
    >>> round(e.offset, 6), round(e.error, 6), e.truechimers, e.falsetickers
    (0.00025, 0.00075, ('a', 'b'), ('c',))
    """
    items = list(samples.values()) if isinstance(samples, Mapping) else list(samples)
    if not items:
        raise ValueError("no samples to combine")
    found = marzullo([(s.low, s.high) for s in items])
    if require_majority and 2 * found.count <= len(items):
        raise TimeSyncError(
            f"no majority: at most {found.count} of {len(items)} servers agree on the time"
        )
    chimers = set(found.members)
    return Estimate(
        offset=(found.low + found.high) / 2,
        low=found.low,
        high=found.high,
        truechimers=tuple(s.server for i, s in enumerate(items) if i in chimers),
        falsetickers=tuple(s.server for i, s in enumerate(items) if i not in chimers),
    )
