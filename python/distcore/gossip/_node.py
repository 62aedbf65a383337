"""The asyncio runtime around the SWIM state machine: UDP and TCP on one port, the timers."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from distcore._core import GossipConfig, Keyring, SwimStateMachine
from distcore.exceptions import (
    DecodeError,
    DecryptionError,
    DistcoreError,
    InvalidLabelError,
    JoinError,
    LabelMismatchError,
    MetadataTooLargeError,
    NameConflictError,
)

log = logging.getLogger("distcore.gossip")

Address = tuple[str, int]

#: What serf and Debian's memberlist advertise: protocol 1-5 (speaking 2), delegate 2-5 (4).
DEFAULT_VSN = (1, 5, 2, 2, 5, 4)

#: memberlist's limits: ``MetaMaxSize``, and a label's length byte.
META_MAX = 512
LABEL_MAX = 255

#: The counters :meth:`Node.stats` returns, all starting at 0.
STATS = (
    "packets_received",  # datagrams that arrived, dropped ones included
    "packets_sent",
    "packets_dropped",  # the sum of the four reasons below
    "dropped_decode",  # not a valid memberlist packet: truncated, bad CRC, unknown type, ...
    "dropped_decrypt",  # no key opens it (or it is not encrypted and must be)
    "dropped_label",  # another cluster's label, or none where one is required
    "dropped_blocked",  # from an address blocked by Node.block()
    "streams_received",  # TCP connections accepted
    "stream_errors",  # accepted streams that failed: undecodable, cut short, timed out
    "push_pulls",  # full-state exchanges this node started (joins included)
    "push_pull_failures",
    "stream_pings",  # TCP fallback pings this node sent (an ack was late over UDP)
    "stream_ping_acks",  # ... answered in time
)
#: Warn about dropped packets at most this often per reason; the rest go to the debug log.
DROP_WARNING_INTERVAL = 60.0


@dataclass(frozen=True)
class Member:
    """A member as this node sees it."""

    name: str
    addr: Address
    state: str  # "alive", "suspect", "dead" or "left"
    incarnation: int
    meta: bytes
    vsn: tuple[int, ...]


@dataclass(frozen=True)
class MemberEvent:
    """A membership change: ``kind`` is join, update, suspect, alive, dead or leave; or
    ``conflict``: another node announced ``member``'s name from ``other_addr`` (the member this
    node knows is kept, as memberlist does; ``member`` may be this node itself)."""

    kind: str
    member: Member
    other_addr: Address | None = None


def _member(d: dict[str, Any]) -> Member:
    return Member(
        name=d["name"],
        addr=tuple(d.get("addr", ("", 0))),  # type: ignore[arg-type]
        state=d.get("state", ""),
        incarnation=d.get("incarnation", 0),
        meta=d.get("meta", b""),
        vsn=tuple(d.get("vsn", ())),
    )


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, node: Node) -> None:
        self.node = node
        # Set once the socket is really closed (a transport closes it on a later loop turn).
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.node._on_datagram(data, (addr[0], addr[1]))


class Node:
    """A gossip member speaking HashiCorp memberlist's protocol, on asyncio.

    Start one with ``await Node.start(name, bind=("127.0.0.1", 0), seeds=[...])``; it binds UDP
    and TCP on the same port (as memberlist does), joins through the seeds (a push-pull with
    each) and then probes, gossips and exchanges state on its own. Serf agents and other
    memberlist members can join it and be joined by it. It answers and sends memberlist's TCP
    fallback pings, keeps to its ``label`` if given, counts what it drops (:meth:`stats`), and
    raises the errors of :mod:`distcore.exceptions` for bad input (:class:`JoinError`,
    :class:`NameConflictError`, :class:`MetadataTooLargeError`, :class:`InvalidLabelError`).

    >>> import asyncio
    >>> async def main():
    ...     a = await Node.start("a", config=GossipConfig.local())
    ...     b = await Node.start("b", seeds=[a.address], config=GossipConfig.local())
    ...     await a.wait_for(lambda members: len(members) == 2)
    ...     names = sorted(m.name for m in a.members())
    ...     await b.shutdown(); await a.shutdown()
    ...     return names
    >>> asyncio.run(main())
    ['a', 'b']
    """

    #: The (host, port) this node listens on, UDP and TCP.
    address: Address
    config: GossipConfig
    #: memberlist's cluster label (``b""`` for none).
    label: bytes
    _loop: asyncio.AbstractEventLoop
    _events: asyncio.Queue[MemberEvent]
    _callbacks: list[Callable[[bytes], Any]]
    _tasks: set[asyncio.Task[Any]]
    _closed: bool
    _blocked: set[Address]
    _blocked_udp: set[Address]
    _stats: dict[str, int]
    _last_drop_warning: dict[str, float]
    _own_conflict: Address | None
    _timer: asyncio.Task[None] | None
    _server: asyncio.Server
    _udp: asyncio.DatagramTransport
    _udp_closed: asyncio.Future[None]
    _sm: SwimStateMachine

    def __init__(self) -> None:
        raise TypeError("use `await Node.start(...)`")

    @classmethod
    async def start(
        cls,
        name: str,
        bind: Address = ("127.0.0.1", 0),
        seeds: Iterable[Address] = (),
        config: GossipConfig | None = None,
        meta: bytes = b"",
        keyring: Keyring | None = None,
        vsn: Sequence[int] = DEFAULT_VSN,
        seed: int | None = None,
        label: str | bytes | None = None,
    ) -> Node:
        """Binds UDP and TCP on ``bind``, starts the timers and joins through ``seeds``.

        The join is a push-pull (a full-state exchange over TCP) with each seed. As in
        memberlist, it succeeds if at least one seed answered (the others are logged); ``label``
        (memberlist's cluster label, at most 255 bytes) is written on everything this node sends
        and required on everything it receives. On any error below, nothing is left behind: the
        sockets are closed and no task is running.

        Raises
        ------
        JoinError
            If no seed could be contacted (each seed and its error are in the message); also a
            :class:`TimeoutError`.
        NameConflictError
            If a live member at another address already holds ``name``.
        MetadataTooLargeError
            If ``meta`` is over 512 bytes.
        InvalidLabelError
            If ``label`` is over 255 bytes.
        """
        label_bytes = _label(label)
        if len(meta) > META_MAX:
            raise MetadataTooLargeError(
                f"node metadata is at most {META_MAX} bytes, got {len(meta)}"
            )
        self = object.__new__(cls)
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._events = asyncio.Queue()
        self._callbacks = []
        self._tasks = set()
        self._closed = False
        self._blocked = set()
        self._blocked_udp = set()
        self._stats = dict.fromkeys(STATS, 0)
        self._last_drop_warning = {}
        self._own_conflict = None
        self._timer = None
        self.label = label_bytes
        host, port = bind
        # UDP and TCP share the port: take a free TCP port, then UDP on it (retry on a race).
        for attempt in range(20):
            server = await asyncio.start_server(self._on_stream, host, port)
            actual = server.sockets[0].getsockname()[1]
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(self), local_addr=(host, actual)
                )
            except OSError:
                server.close()
                await server.wait_closed()
                if port != 0 or attempt == 19:
                    raise
                continue
            break
        self._server = server
        self._udp = transport  # type: ignore[assignment]
        self._udp_closed = protocol.closed
        self.address = (host, actual)
        self.config = config or GossipConfig.lan()
        try:
            self._sm = SwimStateMachine(
                name,
                self.address,
                self.config,
                meta,
                list(vsn),
                keyring,
                random.getrandbits(63) if seed is None else seed,
                self._now(),
                label_bytes or None,
            )
            self._timer = loop.create_task(self._run_timers())
            seeds = list(seeds)
            if seeds:
                await self.join(seeds)
        except BaseException:
            await self.shutdown()
            raise
        return self

    async def join(self, seeds: Iterable[Address]) -> int:
        """Joins (more of) a cluster through ``seeds``: a push-pull with each, as memberlist's
        ``Join``. Returns how many seeds answered; those that did not are logged.

        Raises :class:`~distcore.exceptions.JoinError` if none answered, and
        :class:`~distcore.exceptions.NameConflictError` if a seed knows a live member with this
        node's name at another address."""
        seeds = list(seeds)
        if not seeds:
            return 0
        self._own_conflict = None  # only a conflict reported during this join fails it
        outputs = self._sm.join(seeds)
        pushes = [o[1] for o in outputs if o[0] == "push_pull"]
        self._process([o for o in outputs if o[0] != "push_pull"])
        results = await asyncio.gather(
            *(self._push_pull(to, True, raise_errors=True) for to in pushes),
            return_exceptions=True,
        )
        failed = [(to, r) for to, r in zip(pushes, results, strict=True) if r is not None]
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, Exception):
                raise r  # cancelled, KeyboardInterrupt: not a join failure
        if self._own_conflict is not None:
            raise NameConflictError(
                f"the name {self.name!r} is held by a live member at {_fmt(self._own_conflict)}"
            )
        reasons = ", ".join(f"{_fmt(to)} ({_reason(e)})" for to, e in failed)
        if len(failed) == len(pushes):
            raise JoinError(f"could not join through any seed: {reasons}")
        if failed:
            log.warning("%s: joined, but these seeds did not answer: %s", self.name, reasons)
        return len(pushes) - len(failed)

    @property
    def name(self) -> str:
        """This member's name."""
        return self._sm.name

    @property
    def health_score(self) -> int:
        """Lifeguard's local health score (0 is healthy; it stretches probe intervals)."""
        return self._sm.health_score

    def _now(self) -> float:
        return self._loop.time()

    def members(self) -> list[Member]:
        """Every known member, this node included (dead and left ones until reaped)."""
        return [_member(d) for d in self._sm.members()]

    def stats(self) -> dict[str, int]:
        """A copy of this node's counters (see ``STATS``): packets received, sent and dropped
        (in total and by reason: ``dropped_decode``, ``dropped_decrypt``, ``dropped_label``,
        ``dropped_blocked``), streams received and failed, push-pulls and TCP fallback pings.

        >>> import asyncio
        >>> async def main():
        ...     async with await Node.start("a", config=GossipConfig.local()) as a:
        ...         return a.stats()["packets_dropped"]
        >>> asyncio.run(main())
        0
        """
        return dict(self._stats)

    async def events(self) -> AsyncIterator[MemberEvent]:
        """Membership changes as they happen (join, update, suspect, alive, dead, leave, and
        conflict when another node announces a known member's name, or this node's)."""
        while True:
            yield await self._events.get()

    def on_message(self, callback: Callable[[bytes], Any]) -> None:
        """Calls ``callback(data)`` for each application broadcast received."""
        self._callbacks.append(callback)

    async def broadcast(self, data: bytes) -> None:
        """Piggybacks ``data`` on gossip: sent ``retransmit_limit(n)`` times, as memberlist."""
        self._sm.broadcast(bytes(data))

    async def update_meta(self, meta: bytes) -> None:
        """Replaces this node's metadata and gossips it (a new incarnation).

        Raises :class:`~distcore.exceptions.MetadataTooLargeError` (nothing changes) if ``meta``
        is over 512 bytes."""
        self._sm.update_meta(bytes(meta))

    async def wait_for(
        self, predicate: Callable[[list[Member]], bool], timeout: float = 10.0
    ) -> list[Member]:
        """Waits until ``predicate(self.members())`` holds; TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            while not predicate(members := self.members()):
                await asyncio.sleep(0.02)
        return members

    async def leave(self, timeout: float | None = None) -> None:
        """Leaves gracefully: gossips "left" for a few gossip rounds, then stops probing."""
        self._sm.leave(self._now())
        await asyncio.sleep(timeout if timeout is not None else 5 * self.config.gossip_interval)

    async def shutdown(self) -> None:
        """Closes the sockets and stops the timers (without leaving: others will see a failure).

        Waits until every task of this node (push-pulls, stream pings, timers) has ended."""
        if self._closed:
            return
        self._closed = True
        tasks = [t for t in (self._timer, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._udp.close()
        self._server.close()
        await self._server.wait_closed()
        await self._udp_closed

    def block(self, addresses: Iterable[Address], *, udp_only: bool = False) -> None:
        """Fault injection until :meth:`unblock`: drop the packets from and to these addresses
        and open no stream to them (a network partition as this node sees it). Streams they
        open cannot be told apart (they come from other ports), so block on both sides for a
        full partition. With ``udp_only``, only UDP is dropped and TCP still works, as with a
        firewall that lets TCP through: memberlist's TCP fallback pings keep such members
        alive."""
        target = self._blocked_udp if udp_only else self._blocked
        target.update((host, int(port)) for host, port in addresses)

    def unblock(self) -> None:
        """Ends :meth:`block` (both kinds): the partition heals."""
        self._blocked.clear()
        self._blocked_udp.clear()

    async def __aenter__(self) -> Node:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # -- plumbing ---------------------------------------------------------------------------

    async def _run_timers(self) -> None:
        while True:
            self._process(self._sm.tick(self._now()))
            delay = self._sm.next_deadline() - self._now()
            await asyncio.sleep(min(max(delay, 0.001), 0.05))

    def _udp_blocked(self, addr: Address) -> bool:
        return addr in self._blocked or addr in self._blocked_udp

    def _on_datagram(self, data: bytes, sender: Address) -> None:
        if self._closed:
            return
        self._stats["packets_received"] += 1
        if self._udp_blocked(sender):
            self._drop("blocked", sender, None)
            return
        try:
            outputs = self._sm.handle_packet(sender, data, self._now())
        except LabelMismatchError as e:
            self._drop("label", sender, e)
            return
        except DecryptionError as e:
            self._drop("decrypt", sender, e)
            return
        except DecodeError as e:
            self._drop("decode", sender, e)
            return
        self._process(outputs)

    def _drop(self, reason: str, sender: Address, error: Exception | None) -> None:
        self._stats["packets_dropped"] += 1
        self._stats[f"dropped_{reason}"] += 1
        if error is None:
            return  # blocked on purpose: not worth a log line
        self._warn(reason, "%s: dropped a packet from %s:%s: %s", self.name, *sender, error)

    def _warn(self, reason: str, msg: str, *args: object) -> None:
        """A wrong key or label is a misconfigured peer and worth a warning, but a flood of bad
        packets or streams must not flood the log: one warning per reason per interval, the
        rest at debug level."""
        now = self._now()
        last = self._last_drop_warning.get(reason, -math.inf)
        level = logging.WARNING if now - last >= DROP_WARNING_INTERVAL else logging.DEBUG
        if level == logging.WARNING:
            self._last_drop_warning[reason] = now
        log.log(level, msg, *args)

    def _process(self, outputs: list[tuple[Any, ...]]) -> None:
        for out in outputs:
            kind = out[0]
            if kind == "packet":
                if not self._closed and not self._udp_blocked(out[1]):
                    self._udp.sendto(out[2], out[1])
                    self._stats["packets_sent"] += 1
            elif kind == "push_pull":
                self._spawn(self._push_pull(out[1], out[2]))
            elif kind == "stream_ping":
                self._spawn(self._stream_ping(out[1], out[2], out[3]))
            elif kind == "event":
                self._on_event(out[1], out[2])
            elif kind == "user":
                for cb in self._callbacks:
                    try:
                        cb(out[1])
                    except Exception:
                        log.exception("%s: on_message callback failed", self.name)

    def _on_event(self, kind: str, d: dict[str, Any]) -> None:
        other = tuple(d["other_addr"]) if "other_addr" in d else None
        if kind == "conflict":
            if d["name"] == self._sm.name and self._own_conflict is None:
                self._own_conflict = other  # type: ignore[assignment]
            log.warning(
                "%s: %s:%s announced the name %r, held by %s:%s",
                self.name,
                *(other or ("?", "?")),
                d["name"],
                *d["addr"],
            )
        self._events.put_nowait(MemberEvent(kind, _member(d), other))  # type: ignore[arg-type]

    def _spawn(self, coro: Any) -> None:
        if self._closed:
            coro.close()
            return
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push_pull(self, to: Address, join: bool, raise_errors: bool = False) -> None:
        if to in self._blocked:
            if raise_errors:
                raise ConnectionRefusedError("blocked by Node.block()")
            return
        self._stats["push_pulls"] += 1
        timeout = self.config.tcp_timeout
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(*to)
                try:
                    writer.write(self._sm.local_state(join))
                    await writer.drain()
                    await self._read_stream(reader, is_reply=True)
                finally:
                    writer.close()
        except (OSError, TimeoutError, DistcoreError) as e:
            self._stats["push_pull_failures"] += 1
            if raise_errors:
                raise
            log.warning("%s: push-pull with %s:%s failed: %s", self.name, *to, _reason(e))

    async def _stream_ping(self, to: Address, data: bytes, deadline: float) -> None:
        """memberlist's TCP fallback: the UDP ack is late, so ask over a stream; an ack read
        back before ``deadline`` keeps the member from being suspected."""
        if to in self._blocked:
            return
        self._stats["stream_pings"] += 1
        try:
            async with asyncio.timeout_at(deadline):  # the loop's clock, as _now()
                reader, writer = await asyncio.open_connection(*to)
                try:
                    writer.write(data)
                    await writer.drain()
                    await self._read_stream(reader, is_reply=True)
                    self._stats["stream_ping_acks"] += 1
                finally:
                    writer.close()
        except (OSError, TimeoutError, DistcoreError) as e:
            # The member may well be dead: that is what the probe is finding out.
            log.debug("%s: TCP ping to %s:%s failed: %s", self.name, *to, _reason(e))

    async def _read_stream(self, reader: asyncio.StreamReader, is_reply: bool) -> bytes:
        buf = b""
        while True:
            got = self._sm.handle_stream(buf, self._now(), is_reply=is_reply)
            if got is not None:
                reply, _, outputs = got
                self._process(outputs)
                return reply
            chunk = await reader.read(65536)
            if not chunk:
                raise DecodeError("the stream ended before a whole message")
            buf += chunk

    async def _on_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._stats["streams_received"] += 1
        try:
            async with asyncio.timeout(self.config.tcp_timeout):
                reply = await self._read_stream(reader, is_reply=False)
                if reply:
                    writer.write(reply)
                    await writer.drain()
        except (OSError, TimeoutError, DistcoreError) as e:
            self._stats["stream_errors"] += 1
            peer = writer.get_extra_info("peername") or ("?", "?")
            self._warn(
                "stream", "%s: a stream from %s:%s failed: %s", self.name, *peer[:2], _reason(e)
            )
        finally:
            writer.close()


def _label(label: str | bytes | None) -> bytes:
    if label is None:
        return b""
    if isinstance(label, str):
        label = label.encode()
    elif not isinstance(label, bytes | bytearray):
        raise TypeError(f"a label is str or bytes, not {type(label).__name__}")
    if len(label) > LABEL_MAX:
        raise InvalidLabelError(f"a label is at most {LABEL_MAX} bytes, got {len(label)}")
    return bytes(label)


def _fmt(addr: Address) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reason(e: BaseException) -> str:
    """An error as a few words (a bare TimeoutError or a refused connection says little)."""
    if isinstance(e, TimeoutError) and not str(e):
        return "timed out"
    if isinstance(e, ConnectionRefusedError) and e.errno is not None:
        return "connection refused"
    return str(e) or type(e).__name__


class BackgroundNode:
    """A :class:`Node` running on its own event loop in a background thread, for synchronous
    code. Its methods block until the node has done what was asked; callbacks given to
    :meth:`on_message` run on that thread.

    >>> with BackgroundNode("a", config=GossipConfig.local()) as a:
    ...     with BackgroundNode("b", seeds=[a.address], config=GossipConfig.local()) as b:
    ...         _ = a.wait_for(lambda members: len(members) == 2)
    ...         sorted(m.name for m in b.members())
    ['a', 'b']
    """

    def __init__(self, name: str, **start: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"distcore-gossip-{name}", daemon=True
        )
        self._thread.start()
        try:
            self._node: Node = self._run(Node.start(name, **start))
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    @property
    def name(self) -> str:
        """This member's name."""
        return self._node.name

    @property
    def address(self) -> Address:
        """The (host, port) this node listens on, UDP and TCP."""
        return self._node.address

    def members(self) -> list[Member]:
        """Every known member, this node included."""
        return self._node.members()  # the state machine has a lock of its own

    def wait_for(
        self, predicate: Callable[[list[Member]], bool], timeout: float = 10.0
    ) -> list[Member]:
        """Blocks until ``predicate(self.members())`` holds; TimeoutError otherwise."""
        return self._run(self._node.wait_for(predicate, timeout))  # type: ignore[no-any-return]

    def stats(self) -> dict[str, int]:
        """A copy of the node's counters (see :meth:`Node.stats`)."""
        return self._node.stats()  # a copy of a dict of ints, safe to take from this thread

    def block(self, addresses: Iterable[Address], *, udp_only: bool = False) -> None:
        """Fault injection (see :meth:`Node.block`)."""
        addrs = list(addresses)
        self._loop.call_soon_threadsafe(lambda: self._node.block(addrs, udp_only=udp_only))

    def unblock(self) -> None:
        """Ends :meth:`block`."""
        self._loop.call_soon_threadsafe(self._node.unblock)

    def join(self, seeds: Iterable[Address]) -> int:
        """Joins through more seeds; how many answered (see :meth:`Node.join`)."""
        return self._run(self._node.join(list(seeds)))  # type: ignore[no-any-return]

    def broadcast(self, data: bytes) -> None:
        """Piggybacks ``data`` on gossip (see :meth:`Node.broadcast`)."""
        self._run(self._node.broadcast(data))

    def update_meta(self, meta: bytes) -> None:
        """Replaces this node's metadata (see :meth:`Node.update_meta`)."""
        self._run(self._node.update_meta(meta))

    def on_message(self, callback: Callable[[bytes], Any]) -> None:
        """Calls ``callback(data)`` on the node's thread for each broadcast received."""
        self._loop.call_soon_threadsafe(self._node.on_message, callback)

    def leave(self, timeout: float | None = None) -> None:
        """Leaves gracefully (see :meth:`Node.leave`)."""
        self._run(self._node.leave(timeout))

    def shutdown(self) -> None:
        """Stops the node (without leaving) and its thread."""
        if self._thread.is_alive():
            self._run(self._node.shutdown())
            self._stop_loop()

    def __enter__(self) -> BackgroundNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
