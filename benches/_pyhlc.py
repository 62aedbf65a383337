"""Pure-Python clock peers for ``test_bench_clocks.py``: what a user would write without distcore.

``PyHLC`` follows the send and receive rules of Kulkarni et al. (2014), "Logical Physical Clocks",
Fig. 5, with ``l`` in milliseconds since the Unix epoch (48 bits) and the counter ``c`` in 16 bits,
returned packed as ``l << 16 | c`` like ``int(distcore.clocks.HLCTimestamp)``. A counter that would
pass 16 bits carries into ``l``, as distcore's does. A ``threading.Lock`` makes it safe to share.
``update`` refuses a remote timestamp more than ``max_offset`` seconds ahead, as distcore's does.

``PyLamportClock`` is the lock-protected counter a user would write.
"""

from __future__ import annotations

import threading
import time

_MASK_C = 0xFFFF


class ClockSkewError(ValueError):
    """A remote timestamp too far ahead of local physical time."""


class PyHLC:
    __slots__ = ("_c", "_l", "_lock", "max_offset_ms")

    def __init__(self, max_offset: float = 0.5) -> None:
        self._l = 0  # the physical part, ms
        self._c = 0  # the logical counter
        self._lock = threading.Lock()
        self.max_offset_ms = int(max_offset * 1000)

    def _carry(self) -> int:
        if self._c > _MASK_C:
            self._l += 1
            self._c = 0
        return self._l << 16 | self._c

    def now(self) -> int:
        """A send or local event: ``l = max(l, pt)``; ``c`` counts up while ``l`` stands still."""
        pt = time.time_ns() // 1_000_000
        with self._lock:
            if pt > self._l:
                self._l, self._c = pt, 0
            else:
                self._c += 1
            return self._carry()

    def update(self, remote: int) -> int:
        """A receive event for a message stamped ``remote`` (packed ``lm << 16 | cm``)."""
        lm, cm = remote >> 16, remote & _MASK_C
        pt = time.time_ns() // 1_000_000
        if lm - pt > self.max_offset_ms:
            raise ClockSkewError(f"remote timestamp {lm - pt} ms ahead")
        with self._lock:
            lo = self._l
            ln = max(lo, lm, pt)
            if ln == lo == lm:
                c = max(self._c, cm) + 1
            elif ln == lo:
                c = self._c + 1
            elif ln == lm:
                c = cm + 1
            else:
                c = 0
            self._l, self._c = ln, c
            return self._carry()


class PyLamportClock:
    __slots__ = ("_lock", "value")

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def tick(self) -> int:
        with self._lock:
            self.value += 1
            return self.value
