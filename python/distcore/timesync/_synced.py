"""SyncedClock: local monotonic time plus an SNTP/Marzullo offset, refreshed in the background."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from collections.abc import Iterable
from typing import Self

from distcore.exceptions import TimeSyncError

from ._marzullo import Estimate, combine
from ._sntp import MIN_POLL, NTPSample, ServerSpec, SNTPClient, server_key

#: NTP's assumed worst-case frequency error of a local clock (15 ppm): the error bound grows
#: by this many seconds per second since the last estimate.
PHI = 15e-6


class SyncedClock:
    """A clock that tracks NTP servers without touching the system clock.

    ``now_ns()`` is local time anchored on the monotonic clock (so system clock steps do not
    move it) plus the latest offset :func:`combine` agreed on across ``servers``; the true
    server time lies within ``now() ± error_bound()`` while the servers are honest. A
    background thread refreshes the estimate every ``interval`` seconds.

    Parameters
    ----------
    servers
        ``"host[:port]"`` of each NTP server.
    interval
        Seconds between refreshes; default 64 (1 with ``local``). Below 15 needs ``local``.
    local
        The servers are yours (loopback, a lab): allow fast polling.
    timeout
        Seconds to wait for each reply.
    require_majority
        Refuse (keep the old estimate) unless more than half of the servers agree.

    Examples
    --------
    Before the first estimate the clock is plain local time with an infinite error bound:

    >>> clock = SyncedClock(["127.0.0.1:9"], local=True)
    >>> clock.estimate is None, clock.error_bound()
    (True, inf)
    >>> abs(clock.now_ns() - time.time_ns()) < 1_000_000_000
    True

    Pass ``now_ns`` as the physical clock of a hybrid logical clock, e.g.
    ``HLC(physical=clock.now_ns)``.
    """

    def __init__(
        self,
        servers: Iterable[ServerSpec],
        *,
        interval: float | None = None,
        local: bool = False,
        timeout: float = 2.0,
        require_majority: bool = True,
    ) -> None:
        self.servers = list(dict.fromkeys(server_key(s) for s in servers))
        if not self.servers:
            raise ValueError("SyncedClock needs at least one server")
        if interval is None:
            interval = 1.0 if local else 64.0
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        if interval < MIN_POLL and not local:
            raise ValueError("interval below 15 s needs local=True (RFC 4330 §10)")
        self.interval = float(interval)
        self.require_majority = require_majority
        self.client = SNTPClient(timeout=timeout, local=local)
        self._wall0 = time.time_ns()
        self._mono0 = time.monotonic_ns()
        self._correction_ns = 0  # plain local time until the first estimate
        self._estimate: Estimate | None = None
        self._estimate_mono_ns = 0
        self._errors: dict[str, TimeSyncError] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reading the clock ------------------------------------------------------------------

    def _local_ns(self, mono_ns: int) -> int:
        return self._wall0 + (mono_ns - self._mono0)

    def now_ns(self) -> int:
        """Best estimate of the servers' time, Unix-epoch nanoseconds (an int)."""
        return self._local_ns(time.monotonic_ns()) + self._correction_ns

    def now(self) -> float:
        """Best estimate of the servers' time, Unix-epoch seconds."""
        return self.now_ns() / 1e9

    def error_bound(self) -> float:
        """Seconds: the servers' time is within ``now() ± error_bound()`` (inf before sync).

        The estimate's own half-width, growing by :data:`PHI` per second since it was made.
        """
        with self._lock:
            estimate, made = self._estimate, self._estimate_mono_ns
        if estimate is None:
            return math.inf
        return estimate.error + PHI * max(0, time.monotonic_ns() - made) / 1e9

    @property
    def estimate(self) -> Estimate | None:
        """The last combined estimate (offsets relative to this clock's local time), or None."""
        return self._estimate

    @property
    def offset(self) -> float:
        """Seconds added to local time (0.0 before the first estimate)."""
        return self._correction_ns / 1e9

    @property
    def errors(self) -> dict[str, TimeSyncError]:
        """The last failure per server (cleared by that server's next success)."""
        with self._lock:
            return dict(self._errors)

    # -- refreshing -------------------------------------------------------------------------

    def _anchored(self, sample: NTPSample) -> NTPSample:
        # Express t1/t4 in anchored local time, so the offset is relative to it.
        shift = sample.t4 - self._local_ns(sample.mono_ns)
        return dataclasses.replace(sample, t1=sample.t1 - shift, t4=sample.t4 - shift)

    def refresh(self) -> Estimate:
        """Poll every server that may be polled now, combine the filtered samples, update.

        Raises
        ------
        TimeSyncError
            No server has a usable sample, or (``require_majority``) they disagree; the
            previous estimate stays in force.
        """
        best: list[NTPSample] = []
        for server in self.servers:
            if self.client.poll_wait(server) <= 0:
                try:
                    self.client.query(server)
                except TimeSyncError as e:
                    with self._lock:
                        self._errors[server] = e
                except OSError as e:  # name resolution, no route, ...
                    with self._lock:
                        self._errors[server] = TimeSyncError(f"{server}: {e}")
                else:
                    with self._lock:
                        self._errors.pop(server, None)
            sample = self.client.best(server)
            if sample is not None:
                best.append(self._anchored(sample))
        if not best:
            errors = "; ".join(str(e) for e in self.errors.values())
            raise TimeSyncError(f"no usable sample from any server ({errors})")
        estimate = combine(best, require_majority=self.require_majority)
        with self._lock:
            self._estimate = estimate
            self._estimate_mono_ns = max(s.mono_ns for s in best)
            self._correction_ns = round(estimate.offset * 1e9)
        self._ready.set()
        return estimate

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeSyncError):  # kept in .errors; the old estimate stays
                self.refresh()
            self._stop.wait(self.interval)

    def start(self, wait: float | None = 10.0) -> Self:
        """Start the background refresh thread; with ``wait``, block until the first estimate.

        Raises
        ------
        TimeSyncError
            No estimate within ``wait`` seconds (the thread is stopped again).
        """
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("SyncedClock is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="distcore-syncedclock", daemon=True)
        self._thread.start()
        if wait is not None and not self._ready.wait(wait):
            self.stop()
            errors = "; ".join(str(e) for e in self.errors.values()) or "no agreement"
            raise TimeSyncError(f"no time estimate within {wait:g} s ({errors})")
        return self

    def stop(self) -> None:
        """Stop the background thread (the last estimate stays usable)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    @property
    def running(self) -> bool:
        """True while the background thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"SyncedClock(servers={self.servers!r}, offset={self.offset:+.6f} s, "
            f"error_bound={self.error_bound():.6f} s)"
        )
