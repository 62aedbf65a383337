"""SNTP client (RFC 4330): one exchange, reply checks, poll limits, kiss codes, clock filter."""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from distcore.exceptions import KissOfDeathError, PollTooSoonError, TimeSyncError

from ._ntp import (
    KOD_RATE,
    KOD_STOP,
    LEAP_UNSYNCHRONIZED,
    MODE_BROADCAST,
    MODE_SERVER,
    NTP_PORT,
    NTPPacket,
    ntp_to_unix_ns,
    ref_id_text,
)

#: RFC 4330 §10: a client must never poll a server more often than every 15 s.
MIN_POLL = 15.0
#: After a RATE kiss a public server is not polled again for at least this long (doubling).
RATE_BACKOFF = 64.0
MAX_BACKOFF = 1024.0
#: The same for servers the caller declared local (tests, a LAN box it runs itself).
LOCAL_RATE_BACKOFF = 1.0
LOCAL_MAX_BACKOFF = 60.0
#: NTP's clock filter keeps the last 8 samples per server.
FILTER_SIZE = 8

ServerSpec = str | tuple[str, int]


def parse_server(
    spec: ServerSpec, default_port: int = NTP_PORT, *, any_port: bool = False
) -> tuple[str, int]:
    """``"host"``, ``"host:port"``, ``"[v6]:port"`` or ``(host, port)`` to ``(host, port)``.

    Raises
    ------
    ValueError
        On an empty host, a port that is not 1-65535 (0 too with ``any_port``), or an IPv6
        address without brackets.

    Examples
    --------
    >>> parse_server("pool.ntp.org")
    ('pool.ntp.org', 123)
    >>> parse_server("127.0.0.1:11123")
    ('127.0.0.1', 11123)
    >>> parse_server("[::1]:123")
    ('::1', 123)
    """
    if isinstance(spec, tuple):
        host, port_text = spec[0], str(spec[1])
    elif not isinstance(spec, str):
        raise TypeError(f"server must be 'host[:port]' or (host, port), not {type(spec).__name__}")
    elif spec.startswith("["):
        inner, bracket, rest = spec[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"bad address {spec!r}: expected [ipv6]:port")
        host, port_text = inner, rest[1:] if rest else str(default_port)
    elif spec.count(":") > 1:
        raise ValueError(f"bad address {spec!r}: put an IPv6 address in brackets, [addr]:port")
    else:
        host, _, port_text = spec.partition(":")
        port_text = port_text if ":" in spec else str(default_port)
    host = host.strip()
    if not host:
        raise ValueError(f"bad address {spec!r}: empty host")
    lowest = 0 if any_port else 1
    if not port_text.isdigit() or not lowest <= int(port_text) < 65536:
        raise ValueError(f"bad address {spec!r}: port must be {lowest}-65535")
    return host, int(port_text)


def server_key(spec: ServerSpec) -> str:
    """The canonical ``host:port`` name of a server (``[v6]:port`` for IPv6)."""
    host, port = parse_server(spec)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class NTPSample:
    """One client/server exchange. Times ``t1``..``t4`` are Unix-epoch nanoseconds.

    ``t1`` client transmit, ``t2`` server receive, ``t3`` server transmit, ``t4`` client receive.
    ``offset`` (server minus local clock) and ``delay`` are in seconds; the true offset lies
    within ``offset ± delay/2`` when the path is the only source of error.

    Examples
    --------
    >>> s = NTPSample(server="x:123", t1=1_000, t2=1_600, t3=1_700, t4=1_300, stratum=2)
    >>> s.offset_ns, s.delay_ns
    (500, 200)
    >>> s.low, s.high
    (4e-07, 6e-07)
    """

    server: str
    t1: int
    t2: int
    t3: int
    t4: int
    stratum: int
    leap: int = 0
    ref_id: str = ""
    root_delay: float = 0.0
    root_dispersion: float = 0.0
    precision: int = 0
    poll: int = 0
    #: ``time.monotonic_ns()`` read together with ``t4``, to anchor the sample in local time.
    mono_ns: int = 0

    @property
    def offset_ns(self) -> int:
        """``((t2 - t1) + (t3 - t4)) / 2`` in integer nanoseconds (floor)."""
        return ((self.t2 - self.t1) + (self.t3 - self.t4)) // 2

    @property
    def delay_ns(self) -> int:
        """Round-trip delay ``(t4 - t1) - (t3 - t2)`` in nanoseconds."""
        return (self.t4 - self.t1) - (self.t3 - self.t2)

    @property
    def offset(self) -> float:
        """Server clock minus local clock, seconds."""
        return ((self.t2 - self.t1) + (self.t3 - self.t4)) / 2e9

    @property
    def delay(self) -> float:
        """Round-trip network delay, seconds."""
        return self.delay_ns / 1e9

    @property
    def error(self) -> float:
        """Half-width of the correctness interval: ``delay/2`` plus the server's root distance."""
        return max(self.delay, 0.0) / 2 + self.root_delay / 2 + self.root_dispersion

    @property
    def low(self) -> float:
        """Lower end of the correctness interval, ``offset - error``."""
        return self.offset - self.error

    @property
    def high(self) -> float:
        """Upper end of the correctness interval, ``offset + error``."""
        return self.offset + self.error


class ClockFilter:
    """NTP's clock filter: keep the last ``size`` samples, trust the one with the least delay.

    Examples
    --------
    >>> f = ClockFilter(size=2)
    >>> for t4 in (1_500, 1_300, 1_400):
    ...     f.add(NTPSample(server="x:123", t1=1_000, t2=1_100, t3=1_200, t4=t4, stratum=2))
    >>> [s.delay_ns for s in f.samples]
    [200, 300]
    >>> f.best().delay_ns
    200
    """

    def __init__(self, size: int = FILTER_SIZE) -> None:
        if size < 1:
            raise ValueError(f"filter size must be >= 1, got {size}")
        self._samples: deque[NTPSample] = deque(maxlen=size)

    def add(self, sample: NTPSample) -> None:
        """Remember ``sample``, dropping the oldest one when full."""
        self._samples.append(sample)

    @property
    def samples(self) -> tuple[NTPSample, ...]:
        """The kept samples, oldest first."""
        return tuple(self._samples)

    def best(self) -> NTPSample | None:
        """The least-delay kept sample (the newest among equals), or None if empty."""
        best: NTPSample | None = None
        for sample in self._samples:
            if best is None or sample.delay_ns <= best.delay_ns:
                best = sample
        return best

    def jitter(self) -> float:
        """RMS difference of the kept offsets from the best sample's offset, seconds."""
        best = self.best()
        if best is None or len(self._samples) < 2:
            return 0.0
        others = [s.offset - best.offset for s in self._samples if s is not best]
        return (sum(d * d for d in others) / len(others)) ** 0.5


@dataclass
class _ServerState:
    interval: float
    filter: ClockFilter
    next_poll: float = float("-inf")
    stopped: str | None = None  # DENY / RSTR
    lock: threading.Lock = field(default_factory=threading.Lock)


def kiss_of_death(message: str, code: str) -> KissOfDeathError:
    """A :class:`KissOfDeathError` with ``.code`` set (``"RATE"``, ``"DENY"``, ``"RSTR"``, ...)."""
    error = KissOfDeathError(message)
    error.code = code
    return error


def check_reply(server: str, data: bytes, sent: int, t1: int, t4: int, mono_ns: int) -> NTPSample:
    """Validate a server reply to a request whose transmit field was ``sent``; build the sample.

    Raises
    ------
    KissOfDeathError
        A stratum-0 reply with a kiss code (``.code`` is set, e.g. ``"RATE"``).
    TimeSyncError
        A short packet, wrong mode, origin not ``sent``, LI=3, stratum 0 without a code or
        above 15, or a zero transmit timestamp.
    """
    try:
        packet = NTPPacket.unpack(data)
    except ValueError:
        raise TimeSyncError(f"{server}: short reply ({len(data)} bytes, need 48)") from None
    if packet.mode not in (MODE_SERVER, MODE_BROADCAST):
        raise TimeSyncError(f"{server}: reply has mode {packet.mode}, expected 4 (server)")
    if packet.origin != sent:
        raise TimeSyncError(f"{server}: reply's origin timestamp is not our transmit timestamp")
    if packet.stratum == 0:
        code = packet.kiss_code
        if code is None:
            raise TimeSyncError(f"{server}: stratum 0 reply without a kiss-o'-death code")
        raise kiss_of_death(f"{server}: kiss-o'-death {code}", code)
    if packet.leap == LEAP_UNSYNCHRONIZED:
        raise TimeSyncError(f"{server}: server is unsynchronized (LI=3)")
    if packet.stratum > 15:
        raise TimeSyncError(f"{server}: server is unsynchronized (stratum {packet.stratum})")
    if packet.transmit == 0:
        raise TimeSyncError(f"{server}: reply has a zero transmit timestamp")
    return NTPSample(
        server=server,
        t1=t1,
        t2=ntp_to_unix_ns(packet.receive),
        t3=ntp_to_unix_ns(packet.transmit),
        t4=t4,
        stratum=packet.stratum,
        leap=packet.leap,
        ref_id=ref_id_text(packet.stratum, packet.ref_id),
        root_delay=packet.root_delay,
        root_dispersion=packet.root_dispersion,
        precision=packet.precision,
        poll=packet.poll,
        mono_ns=mono_ns,
    )


class SNTPClient:
    """An RFC 4330 SNTP client that keeps a clock filter per server. It never sets the clock.

    Parameters
    ----------
    timeout
        Seconds to wait for each reply.
    local
        The servers are under your control (loopback, a test rig): allow polling faster than
        every 15 s and back off less after a RATE kiss.
    min_poll
        Minimum seconds between polls of one server; default 15 (0 when ``local``). Values
        below 15 need ``local=True``.
    filter_size
        Samples kept per server (NTP uses 8).
    clock, timer
        Wall clock in ns for T1/T4 (default ``time.time_ns``) and the monotonic clock in
        seconds for poll intervals (default ``time.monotonic``); tests inject their own.

    Examples
    --------
    >>> client = SNTPClient(local=True, timeout=0.5)
    >>> client.poll_wait("127.0.0.1:11123")  # never polled: no wait
    0.0
    >>> SNTPClient(min_poll=1)
    Traceback (most recent call last):
    ...
    ValueError: min_poll below 15 s needs local=True (RFC 4330 §10)
    """

    def __init__(
        self,
        *,
        timeout: float = 2.0,
        local: bool = False,
        min_poll: float | None = None,
        filter_size: int = FILTER_SIZE,
        clock: Callable[[], int] = time.time_ns,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        if min_poll is None:
            min_poll = 0.0 if local else MIN_POLL
        if min_poll < 0:
            raise ValueError(f"min_poll must be >= 0, got {min_poll}")
        if min_poll < MIN_POLL and not local:
            raise ValueError("min_poll below 15 s needs local=True (RFC 4330 §10)")
        if filter_size < 1:
            raise ValueError(f"filter_size must be >= 1, got {filter_size}")
        self.timeout = float(timeout)
        self.local = local
        self.min_poll = float(min_poll)
        self.filter_size = filter_size
        self._clock = clock
        self._timer = timer
        self._servers: dict[str, _ServerState] = {}
        self._lock = threading.Lock()

    # -- state ------------------------------------------------------------------------------

    def _state(self, key: str) -> _ServerState:
        with self._lock:
            state = self._servers.get(key)
            if state is None:
                state = _ServerState(self.min_poll, ClockFilter(self.filter_size))
                self._servers[key] = state
            return state

    def poll_wait(self, server: ServerSpec) -> float:
        """Seconds until ``server`` may be polled again (0.0 if now)."""
        state = self._servers.get(server_key(server))
        if state is None:
            return 0.0
        return max(0.0, state.next_poll - self._timer())

    def poll_interval(self, server: ServerSpec) -> float:
        """The current minimum interval between polls of ``server`` (grows after RATE)."""
        state = self._servers.get(server_key(server))
        return self.min_poll if state is None else state.interval

    def samples(self, server: ServerSpec) -> tuple[NTPSample, ...]:
        """The samples the clock filter keeps for ``server``, oldest first."""
        state = self._servers.get(server_key(server))
        return () if state is None else state.filter.samples

    def best(self, server: ServerSpec) -> NTPSample | None:
        """The least-delay sample kept for ``server``, or None."""
        state = self._servers.get(server_key(server))
        return None if state is None else state.filter.best()

    def forget(self, server: ServerSpec) -> None:
        """Drop everything known about ``server`` (samples, backoff, a DENY/RSTR stop)."""
        with self._lock:
            self._servers.pop(server_key(server), None)

    # -- one exchange -----------------------------------------------------------------------

    def _begin(self, key: str) -> tuple[_ServerState, bytes, int]:
        state = self._state(key)
        with state.lock:
            if state.stopped is not None:
                raise kiss_of_death(
                    f"{key}: server sent {state.stopped}; not polling it again (forget() resets)",
                    state.stopped,
                )
            now = self._timer()
            if now < state.next_poll:
                raise PollTooSoonError(
                    f"{key}: polled too soon; wait {state.next_poll - now:.1f} s "
                    f"(minimum interval {state.interval:g} s)"
                )
            state.next_poll = now + state.interval
        sent = secrets.randbits(64) | 1  # random, never zero (RFC 5905 §15 anti-spoofing)
        return state, NTPPacket(mode=3, version=4, transmit=sent).pack(), sent

    def _finish(
        self, key: str, state: _ServerState, data: bytes, sent: int, t1: int, t4: int, mono: int
    ) -> NTPSample:
        try:
            sample = check_reply(key, data, sent, t1, t4, mono)
        except KissOfDeathError as kod:
            code = getattr(kod, "code", "")
            with state.lock:
                if code in KOD_STOP:
                    state.stopped = code
                    kod.args = (f"{key}: kiss-o'-death {code}; not polling it again",)
                elif code == KOD_RATE:
                    floor, cap = (
                        (LOCAL_RATE_BACKOFF, LOCAL_MAX_BACKOFF)
                        if self.local
                        else (RATE_BACKOFF, MAX_BACKOFF)
                    )
                    state.interval = min(max(2 * state.interval, floor), cap)
                    state.next_poll = self._timer() + state.interval
                    kod.args = (
                        f"{key}: kiss-o'-death RATE; backing off, next poll in "
                        f"{state.interval:g} s",
                    )
            raise
        state.filter.add(sample)
        return sample

    def query(self, server: ServerSpec) -> NTPSample:
        """One exchange with ``server`` (``"host[:port]"``); the sample is also filtered.

        Raises
        ------
        PollTooSoonError
            ``server`` was polled less than its minimum interval ago (nothing is sent).
        KissOfDeathError
            The server sent a kiss code; after DENY/RSTR it is never polled again.
        TimeSyncError
            No usable reply (timeout, or a reply that fails a check).
        """
        host, port = parse_server(server)
        key = server_key((host, port))
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        state, request, sent = self._begin(key)
        with socket.socket(info[0], socket.SOCK_DGRAM) as sock:
            sock.connect(info[4])
            deadline = time.monotonic() + self.timeout
            t1 = self._clock()
            sock.send(request)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeSyncError(f"{key}: no reply within {self.timeout:g} s")
                sock.settimeout(remaining)
                try:
                    data = sock.recv(1024)
                except TimeoutError:
                    continue
                except ConnectionRefusedError:
                    raise TimeSyncError(f"{key}: port unreachable (no NTP server)") from None
                t4, mono = self._clock(), time.monotonic_ns()
                return self._finish(key, state, data, sent, t1, t4, mono)

    async def aquery(self, server: ServerSpec) -> NTPSample:
        """:meth:`query` for asyncio: same checks, limits and filter."""
        host, port = parse_server(server)
        key = server_key((host, port))
        loop = asyncio.get_running_loop()
        info = (await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM))[0]
        state, request, sent = self._begin(key)
        with socket.socket(info[0], socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, info[4])
            t1 = self._clock()
            await loop.sock_sendall(sock, request)
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, 1024), self.timeout)
            except TimeoutError:
                raise TimeSyncError(f"{key}: no reply within {self.timeout:g} s") from None
            except ConnectionRefusedError:
                raise TimeSyncError(f"{key}: port unreachable (no NTP server)") from None
            t4, mono = self._clock(), time.monotonic_ns()
        return self._finish(key, state, data, sent, t1, t4, mono)

    # -- several exchanges ------------------------------------------------------------------

    def measure(
        self, servers: Iterable[ServerSpec], count: int = 4
    ) -> dict[str, NTPSample | TimeSyncError]:
        """Poll each server ``count`` times, waiting out each one's poll interval between polls.

        Returns ``{"host:port": best sample or the error}``: the least-delay sample the filter
        kept, or, if no poll of that server succeeded, the last error (a network error such as
        a failed name lookup becomes a :class:`TimeSyncError`). A kiss-o'-death or a poll
        refused for being too soon ends polling that server. Without ``local``, ``count``
        polls take ``15 * (count - 1)`` seconds.
        """
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        keys = list(dict.fromkeys(server_key(s) for s in servers))
        if not keys:
            raise ValueError("no servers given")
        results: dict[str, NTPSample | TimeSyncError] = {}
        done: set[str] = set()
        for _ in range(count):
            for key in keys:
                if key in done:
                    continue
                wait = self.poll_wait(key)
                if wait > 0:
                    time.sleep(wait)
                try:
                    self.query(key)
                except (KissOfDeathError, PollTooSoonError) as e:
                    results[key] = e
                    done.add(key)
                except TimeSyncError as e:
                    results[key] = e
                except OSError as e:  # name resolution, no route: this server only
                    results[key] = TimeSyncError(f"{key}: {e}")
        out: dict[str, NTPSample | TimeSyncError] = {}
        for key in keys:
            best = self.best(key)
            out[key] = results[key] if key in done or best is None else best
        return out


def successful(results: dict[str, NTPSample | TimeSyncError]) -> Sequence[NTPSample]:
    """The samples among :meth:`SNTPClient.measure` results."""
    return [r for r in results.values() if isinstance(r, NTPSample)]
