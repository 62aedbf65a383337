"""Cristian's algorithm and the Berkeley algorithm: a master/follower time service over UDP.

The protocol cores (:class:`BerkeleyMaster`, :class:`BerkeleyFollower`) are sans-IO: they take
datagrams and clock readings and return datagrams. :class:`MasterService` and
:class:`FollowerService` run them on asyncio UDP sockets. Nobody sets the system clock: every
participant keeps a :class:`VirtualClock` (system time plus an adjustable offset).

Wire format: one UTF-8 JSON object per datagram, ``{"v": 1, "op": ...}`` with ``op`` one of
``poll`` (``seq``), ``time`` (``seq``, ``ns``: the follower's clock) and ``adjust`` (``epoch``,
``round``, ``delta_ns``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from ._sntp import ServerSpec, parse_server, server_key

PROTOCOL_VERSION = 1
#: Name of the master in :attr:`RoundResult.offsets` and :attr:`RoundResult.corrections`.
MASTER = "master"
_MAX_DATAGRAM = 512


class VirtualClock:
    """System time plus an adjustable offset; corrections move the offset, never the system clock.

    Examples
    --------
    >>> clock = VirtualClock(offset_ns=40_000_000)
    >>> clock.adjust(-15_000_000)
    >>> clock.offset_ns
    25000000
    >>> abs(clock.now_ns() - time.time_ns() - 25_000_000) < 1_000_000_000
    True
    """

    def __init__(self, offset_ns: int = 0, source: Callable[[], int] = time.time_ns) -> None:
        self._offset_ns = int(offset_ns)
        self._source = source
        self._lock = threading.Lock()

    @property
    def offset_ns(self) -> int:
        """Nanoseconds this clock is ahead of its source (the system clock)."""
        return self._offset_ns

    def now_ns(self) -> int:
        """The clock's time, Unix-epoch nanoseconds."""
        return self._source() + self._offset_ns

    def now(self) -> float:
        """The clock's time, Unix-epoch seconds."""
        return self.now_ns() / 1e9

    def adjust(self, delta_ns: int) -> None:
        """Move the clock by ``delta_ns`` nanoseconds (a step, forwards or back)."""
        with self._lock:
            self._offset_ns += int(delta_ns)

    def __repr__(self) -> str:
        return f"VirtualClock(offset_ns={self._offset_ns})"


def cristian(t1_ns: int, server_ns: int, t4_ns: int) -> tuple[int, int]:
    """Cristian (1989): the server's offset and its error bound from one request/reply.

    The client asked at ``t1_ns`` and got the reply at ``t4_ns`` (its own clock); the server
    read ``server_ns`` in between. The server was at ``server_ns`` about half-way, so the offset
    is ``server_ns - (t1 + t4) / 2``, within ± half the round trip.

    Examples
    --------
    >>> cristian(1_000, 5_600, 1_200)  # (offset_ns, error_ns)
    (4500, 100)
    """
    rtt = t4_ns - t1_ns
    if rtt < 0:
        raise ValueError(f"reply before request: t4 - t1 = {rtt} ns")
    return server_ns - (t1_ns + t4_ns) // 2, (rtt + 1) // 2


def encode(message: Mapping[str, Any]) -> bytes:
    """One protocol datagram."""
    return json.dumps({"v": PROTOCOL_VERSION, **message}, separators=(",", ":")).encode()


def decode(data: bytes) -> dict[str, Any] | None:
    """The message in a datagram, or None if it is not one of ours (garbage is dropped)."""
    try:
        message = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(message, dict) or message.get("v") != PROTOCOL_VERSION:
        return None
    return message


def _int(message: Mapping[str, Any], key: str) -> int | None:
    value = message.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Reading:
    """Cristian's estimate of one follower: its offset from the master and the round trip."""

    offset_ns: int
    rtt_ns: int


@dataclass(frozen=True)
class RoundResult:
    """One Berkeley round.

    ``offsets`` holds every answering clock's offset from the master (the master itself is
    :data:`MASTER`, at 0); ``target_ns`` is the fault-tolerant average of the ``agreeing``
    ones; ``corrections`` what each clock, outliers and master included, must add. Followers
    in ``missing`` did not answer (in time) and get no correction.
    """

    round: int
    offsets: dict[str, int]
    rtts: dict[str, int]
    target_ns: int
    corrections: dict[str, int]
    agreeing: tuple[str, ...]
    outliers: tuple[str, ...]
    missing: tuple[str, ...]


def fault_tolerant_average(offsets: Mapping[str, int], max_spread_ns: int) -> tuple[int, set[str]]:
    """Average of the largest group of offsets that lie within ``max_spread_ns`` of each other.

    Ties go to the tighter group, then the one containing :data:`MASTER`. Returns the average
    (integer ns) and the group's names.

    Examples
    --------
    >>> ms = 1_000_000
    >>> avg, group = fault_tolerant_average(
    ...     {"master": 0, "a": 40 * ms, "b": -25 * ms, "c": 300 * ms}, 100 * ms)
    >>> avg // ms, sorted(group)
    (5, ['a', 'b', 'master'])
    """
    if not offsets:
        raise ValueError("no offsets")
    if max_spread_ns < 0:
        raise ValueError(f"max_spread_ns must be >= 0, got {max_spread_ns}")
    ordered = sorted(offsets.items(), key=lambda kv: kv[1])
    best: tuple[int, int, int, int] | None = None  # (-size, spread, no master, start)
    end = 0
    for start in range(len(ordered)):
        end = max(end, start)
        while end + 1 < len(ordered) and ordered[end + 1][1] - ordered[start][1] <= max_spread_ns:
            end += 1
        names = [name for name, _ in ordered[start : end + 1]]
        key = (start - end - 1, ordered[end][1] - ordered[start][1], MASTER not in names, start)
        if best is None or key < best:
            best = key
    assert best is not None
    size, start = -best[0], best[3]
    group = ordered[start : start + size]
    total = sum(value for _, value in group)
    return total // size, {name for name, _ in group}


class BerkeleyMaster:
    """Sans-IO Berkeley master: polls followers Cristian-style and computes corrections.

    Drive a round with :meth:`begin_round`, then :meth:`poll` (once per datagram to send,
    with the master clock read just before sending), :meth:`receive` for every datagram that
    arrives (with the master clock read on arrival), and :meth:`end_round`.

    Parameters
    ----------
    followers
        ``"host:port"`` names of the followers, as they appear as datagram senders.
    max_spread
        Seconds: clocks within this much of each other may be averaged together; the
        largest such group sets the target, the rest are outliers.
    max_rtt
        Seconds: replies with a longer round trip are ignored (Cristian's error bound).

    Examples
    --------
    >>> m = BerkeleyMaster(["10.0.0.2:9000"])
    >>> m.begin_round()
    >>> m.poll("10.0.0.2:9000", now_ns=1_000_000)
    b'{"v":1,"op":"poll","seq":1}'
    >>> m.receive("10.0.0.2:9000", b'{"v":1,"op":"time","seq":1,"ns":41200000}', now_ns=1_400_000)
    >>> result, datagrams = m.end_round()
    >>> result.offsets["10.0.0.2:9000"], result.corrections
    (40000000, {'master': 20000000, '10.0.0.2:9000': -20000000})
    """

    def __init__(
        self, followers: Iterable[str], *, max_spread: float = 0.1, max_rtt: float = 0.5
    ) -> None:
        self.followers = list(dict.fromkeys(followers))
        if max_spread < 0 or max_rtt <= 0:
            raise ValueError("max_spread must be >= 0 and max_rtt > 0")
        self.max_spread_ns = round(max_spread * 1e9)
        self.max_rtt_ns = round(max_rtt * 1e9)
        self.epoch = secrets.randbits(32)
        self.round = 0
        self._seq = 0
        self._pending: dict[int, tuple[str, int]] = {}
        self._readings: dict[str, Reading] = {}

    def begin_round(self) -> None:
        """Start a round: forget the previous round's polls and readings."""
        self.round += 1
        self._pending.clear()
        self._readings.clear()

    def poll(self, follower: str, now_ns: int) -> bytes:
        """The poll datagram for ``follower``; ``now_ns`` is the master clock as it is sent."""
        self._seq += 1
        self._pending[self._seq] = (follower, now_ns)
        return encode({"op": "poll", "seq": self._seq})

    def receive(self, sender: str, data: bytes, now_ns: int) -> None:
        """Take a follower's reply; ``now_ns`` is the master clock on arrival."""
        message = decode(data)
        if message is None or message.get("op") != "time":
            return
        seq, their_ns = _int(message, "seq"), _int(message, "ns")
        if seq is None or their_ns is None or self._pending.get(seq, ("", 0))[0] != sender:
            return  # unknown, stale, duplicated or from someone else
        _, t1 = self._pending.pop(seq)
        if not 0 <= now_ns - t1 <= self.max_rtt_ns:
            return
        offset, _ = cristian(t1, their_ns, now_ns)
        reading = Reading(offset, now_ns - t1)
        kept = self._readings.get(sender)
        if kept is None or reading.rtt_ns < kept.rtt_ns:  # Cristian: keep the fastest exchange
            self._readings[sender] = reading

    def end_round(self) -> tuple[RoundResult, list[tuple[str, bytes]]]:
        """The round's result and the ``adjust`` datagrams to send, as ``(follower, bytes)``.

        The master applies ``result.corrections[MASTER]`` to its own clock itself.
        """
        offsets = {MASTER: 0, **{f: r.offset_ns for f, r in self._readings.items()}}
        target, group = fault_tolerant_average(offsets, self.max_spread_ns)
        corrections = {name: target - offset for name, offset in offsets.items()}
        result = RoundResult(
            round=self.round,
            offsets=offsets,
            rtts={f: r.rtt_ns for f, r in self._readings.items()},
            target_ns=target,
            corrections=corrections,
            agreeing=tuple(n for n in offsets if n in group),
            outliers=tuple(n for n in offsets if n not in group),
            missing=tuple(f for f in self.followers if f not in self._readings),
        )
        datagrams = [
            (
                f,
                encode(
                    {
                        "op": "adjust",
                        "epoch": self.epoch,
                        "round": self.round,
                        "delta_ns": corrections[f],
                    }
                ),
            )
            for f in self._readings
        ]
        self._pending.clear()
        return result, datagrams


class BerkeleyFollower:
    """Sans-IO follower: answers polls with its clock and applies each round's correction once.

    Parameters
    ----------
    clock
        The follower's virtual clock.
    master
        If given (``"host:port"``), datagrams from anyone else are ignored.

    Examples
    --------
    >>> f = BerkeleyFollower(VirtualClock(source=lambda: 1_000))
    >>> f.receive("10.0.0.1:9000", b'{"v":1,"op":"poll","seq":7}')
    b'{"v":1,"op":"time","seq":7,"ns":1000}'
    >>> f.receive("10.0.0.1:9000", b'{"v":1,"op":"adjust","epoch":1,"round":1,"delta_ns":5}')
    >>> f.clock.offset_ns
    5
    """

    def __init__(self, clock: VirtualClock, master: str | None = None) -> None:
        self.clock = clock
        self.master = master
        self.rounds_applied = 0
        self._last: tuple[str, int, int] | None = None  # (sender, epoch, round)

    def receive(self, sender: str, data: bytes) -> bytes | None:
        """Handle one datagram; returns the reply to send back, if any."""
        if self.master is not None and sender != self.master:
            return None
        message = decode(data)
        if message is None:
            return None
        op = message.get("op")
        if op == "poll":
            seq = _int(message, "seq")
            if seq is None:
                return None
            return encode({"op": "time", "seq": seq, "ns": self.clock.now_ns()})
        if op == "adjust":
            epoch, rnd, delta = (_int(message, k) for k in ("epoch", "round", "delta_ns"))
            if epoch is None or rnd is None or delta is None:
                return None
            last = self._last
            if last is not None and last[:2] == (sender, epoch) and rnd <= last[2]:
                return None  # a duplicate or reordered old correction
            self._last = (sender, epoch, rnd)
            self.clock.adjust(delta)
            self.rounds_applied += 1
        return None


def _name(addr: tuple[Any, ...]) -> str:
    return server_key((str(addr[0]), int(addr[1])))


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple[Any, ...]], None]) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if len(data) <= _MAX_DATAGRAM:
            self.on_datagram(data, addr)


async def _open(bind: ServerSpec, on_datagram: Callable[[bytes, tuple[Any, ...]], None]) -> Any:
    host, port = parse_server(bind, default_port=0, any_port=True)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Protocol(on_datagram), local_addr=(host, port), family=socket.AF_UNSPEC
    )
    return transport


async def _resolve(spec: ServerSpec, role: str = "follower") -> tuple[str, int]:
    host, port = parse_server(spec, default_port=0, any_port=True)
    if port == 0:
        raise ValueError(f"bad address {spec!r}: a {role} needs a port")
    loop = asyncio.get_running_loop()
    info = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    address = info[0][4]
    return str(address[0]), int(address[1])


class FollowerService:
    """A Berkeley follower on a UDP socket (asyncio). Use ``async with`` or start/close.

    Parameters
    ----------
    bind
        ``"host:port"`` to listen on; port 0 picks a free one (see :attr:`address`).
    clock
        The follower's :class:`VirtualClock` (a new one at offset 0 by default).
    master
        Accept polls and corrections only from this ``"host:port"``.
    on_adjust
        Called with the clock's new offset (ns) after each correction.
    """

    def __init__(
        self,
        bind: ServerSpec = "127.0.0.1:0",
        clock: VirtualClock | None = None,
        *,
        master: ServerSpec | None = None,
        on_adjust: Callable[[int], None] | None = None,
    ) -> None:
        self.bind = bind
        self.clock = clock if clock is not None else VirtualClock()
        self._master_spec = master
        self._on_adjust = on_adjust
        self.core = BerkeleyFollower(self.clock)
        self._transport: Any = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``."""
        if self._transport is None:
            raise RuntimeError("follower is not started")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    async def start(self) -> Self:
        """Bind the socket and start answering."""
        if self._master_spec is not None:
            self.core.master = _name(await _resolve(self._master_spec, "master"))
        self._transport = await _open(self.bind, self._on_datagram)
        return self

    def _on_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        applied = self.core.rounds_applied
        reply = self.core.receive(_name(addr), data)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)
        if self._on_adjust is not None and self.core.rounds_applied != applied:
            self._on_adjust(self.clock.offset_ns)

    async def close(self) -> None:
        """Stop answering and release the socket."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class MasterService:
    """A Berkeley master on a UDP socket (asyncio): polls, averages, sends corrections.

    Parameters
    ----------
    followers
        ``"host:port"`` of each follower.
    bind
        ``"host:port"`` to send from and listen on (port 0: any free port).
    clock
        The master's own :class:`VirtualClock`; each round corrects it too.
    interval
        Seconds between the starts of rounds in :meth:`serve`.
    reply_timeout
        Seconds a round waits for replies; a follower silent that long is skipped.
    samples
        Polls per follower and round; the fastest round trip wins (Cristian).
    max_spread, max_rtt
        As for :class:`BerkeleyMaster`.
    """

    def __init__(
        self,
        followers: Iterable[ServerSpec],
        *,
        bind: ServerSpec = "127.0.0.1:0",
        clock: VirtualClock | None = None,
        interval: float = 10.0,
        reply_timeout: float = 0.5,
        samples: int = 3,
        max_spread: float = 0.1,
        max_rtt: float = 0.5,
    ) -> None:
        self.follower_specs = list(followers)
        if not self.follower_specs:
            raise ValueError("a master needs at least one follower")
        if interval <= 0 or reply_timeout <= 0 or samples < 1:
            raise ValueError("interval and reply_timeout must be > 0, samples >= 1")
        self.bind = bind
        self.clock = clock if clock is not None else VirtualClock()
        self.interval = interval
        self.reply_timeout = reply_timeout
        self.samples = samples
        self._max_spread = max_spread
        self._max_rtt = max_rtt
        self.core: BerkeleyMaster | None = None
        self.history: list[RoundResult] = []
        self._addresses: dict[str, tuple[str, int]] = {}
        self._transport: Any = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``."""
        if self._transport is None:
            raise RuntimeError("master is not started")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    async def start(self) -> Self:
        """Resolve the followers and bind the socket."""
        for spec in self.follower_specs:
            addr = await _resolve(spec)
            self._addresses[_name(addr)] = addr
        self.core = BerkeleyMaster(
            self._addresses, max_spread=self._max_spread, max_rtt=self._max_rtt
        )
        self._transport = await _open(self.bind, self._on_datagram)
        return self

    def _on_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if self.core is not None:
            self.core.receive(_name(addr), data, self.clock.now_ns())

    async def run_round(self) -> RoundResult:
        """Poll every follower, wait ``reply_timeout``, send corrections, correct our clock."""
        if self.core is None or self._transport is None:
            raise RuntimeError("master is not started")
        core, transport = self.core, self._transport
        core.begin_round()
        gap = self.reply_timeout / self.samples
        for _ in range(self.samples):
            for name, addr in self._addresses.items():
                transport.sendto(core.poll(name, self.clock.now_ns()), addr)
            await asyncio.sleep(gap)
        result, datagrams = core.end_round()
        for name, data in datagrams:
            transport.sendto(data, self._addresses[name])
        self.clock.adjust(result.corrections[MASTER])
        self.history.append(result)
        return result

    async def serve(
        self, rounds: int | None = None, on_round: Callable[[RoundResult], None] | None = None
    ) -> None:
        """Run rounds every ``interval`` seconds (``rounds`` of them, or until cancelled)."""
        loop = asyncio.get_running_loop()
        done = 0
        while rounds is None or done < rounds:
            started = loop.time()
            result = await self.run_round()
            done += 1
            if on_round is not None:
                on_round(result)
            if rounds is None or done < rounds:
                await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))

    async def close(self) -> None:
        """Release the socket."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
