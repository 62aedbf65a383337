"""The asyncio runtime around the SWIM state machine: UDP and TCP on one port, the timers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from distcore._core import GossipConfig, Keyring, SwimStateMachine
from distcore.exceptions import DecodeError, DistcoreError

log = logging.getLogger("distcore.gossip")

Address = tuple[str, int]

#: What serf and Debian's memberlist advertise: protocol 1-5 (speaking 2), delegate 2-5 (4).
DEFAULT_VSN = (1, 5, 2, 2, 5, 4)


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
    """A membership change: ``kind`` is join, update, suspect, alive, dead or leave."""

    kind: str
    member: Member


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

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.node._on_datagram(data, (addr[0], addr[1]))


class Node:
    """A gossip member speaking HashiCorp memberlist's protocol, on asyncio.

    Start one with ``await Node.start(name, bind=("127.0.0.1", 0), seeds=[...])``; it binds UDP
    and TCP on the same port (as memberlist does), joins through the seeds (a push-pull with
    each) and then probes, gossips and exchanges state on its own. Serf agents and other
    memberlist members can join it and be joined by it.

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
    ) -> Node:
        """Binds, starts the timers and joins through ``seeds`` (a join failure is logged)."""
        self = object.__new__(cls)
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._events: asyncio.Queue[MemberEvent] = asyncio.Queue()
        self._callbacks: list[Callable[[bytes], Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._blocked: set[Address] = set()
        host, port = bind
        # UDP and TCP share the port: take a free TCP port, then UDP on it (retry on a race).
        for attempt in range(20):
            server = await asyncio.start_server(self._on_stream, host, port)
            actual = server.sockets[0].getsockname()[1]
            try:
                transport, _ = await loop.create_datagram_endpoint(
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
        self._udp: asyncio.DatagramTransport = transport  # type: ignore[assignment]
        self.address: Address = (host, actual)
        self.config = config or GossipConfig.lan()
        self._sm = SwimStateMachine(
            name,
            self.address,
            self.config,
            meta,
            list(vsn),
            keyring,
            random.getrandbits(63) if seed is None else seed,
            self._now(),
        )
        self._timer = loop.create_task(self._run_timers())
        seeds = list(seeds)
        if seeds:
            self._process(self._sm.join(seeds))
            await self._drain_tasks()
        return self

    @property
    def name(self) -> str:
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

    async def events(self) -> AsyncIterator[MemberEvent]:
        """Membership changes as they happen (join, update, suspect, alive, dead, leave)."""
        while True:
            yield await self._events.get()

    def on_message(self, callback: Callable[[bytes], Any]) -> None:
        """Calls ``callback(data)`` for each application broadcast received."""
        self._callbacks.append(callback)

    async def broadcast(self, data: bytes) -> None:
        """Piggybacks ``data`` on gossip: sent ``retransmit_limit(n)`` times, as memberlist."""
        self._sm.broadcast(bytes(data))

    async def update_meta(self, meta: bytes) -> None:
        """Replaces this node's metadata (at most 512 bytes) and gossips it."""
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
        """Closes the sockets and stops the timers (without leaving: others will see a failure)."""
        if self._closed:
            return
        self._closed = True
        self._timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._timer
        for t in list(self._tasks):
            t.cancel()
        self._udp.close()
        self._server.close()
        await self._server.wait_closed()

    def block(self, addresses: Iterable[Address]) -> None:
        """Fault injection: drop every packet and stream to and from these addresses (a network
        partition as this node sees it) until :meth:`unblock`."""
        self._blocked.update((host, int(port)) for host, port in addresses)

    def unblock(self) -> None:
        """Ends :meth:`block`: the partition heals."""
        self._blocked.clear()

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

    def _on_datagram(self, data: bytes, sender: Address) -> None:
        if self._closed or sender in self._blocked:
            return
        try:
            outputs = self._sm.handle_packet(sender, data, self._now())
        except DecodeError as e:
            log.warning("%s: dropped a packet from %s:%s: %s", self.name, *sender, e)
            return
        self._process(outputs)

    def _process(self, outputs: list[tuple[Any, ...]]) -> None:
        for out in outputs:
            kind = out[0]
            if kind == "packet":
                if not self._closed and out[1] not in self._blocked:
                    self._udp.sendto(out[2], out[1])
            elif kind == "push_pull":
                task = self._loop.create_task(self._push_pull(out[1], out[2]))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif kind == "event":
                self._events.put_nowait(MemberEvent(out[1], _member(out[2])))
            elif kind == "user":
                for cb in self._callbacks:
                    try:
                        cb(out[1])
                    except Exception:
                        log.exception("%s: on_message callback failed", self.name)

    async def _drain_tasks(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _push_pull(self, to: Address, join: bool) -> None:
        if to in self._blocked:
            return
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
            log.warning("%s: push-pull with %s:%s failed: %s", self.name, *to, e)

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
        try:
            async with asyncio.timeout(self.config.tcp_timeout):
                reply = await self._read_stream(reader, is_reply=False)
                if reply:
                    writer.write(reply)
                    await writer.drain()
        except (OSError, TimeoutError, DistcoreError) as e:
            log.warning("%s: a stream failed: %s", self.name, e)
        finally:
            writer.close()


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
        return self._node.name

    @property
    def address(self) -> Address:
        return self._node.address

    def members(self) -> list[Member]:
        """Every known member, this node included."""
        return self._node.members()  # the state machine has a lock of its own

    def wait_for(
        self, predicate: Callable[[list[Member]], bool], timeout: float = 10.0
    ) -> list[Member]:
        """Blocks until ``predicate(self.members())`` holds; TimeoutError otherwise."""
        return self._run(self._node.wait_for(predicate, timeout))  # type: ignore[no-any-return]

    def broadcast(self, data: bytes) -> None:
        self._run(self._node.broadcast(data))

    def update_meta(self, meta: bytes) -> None:
        self._run(self._node.update_meta(meta))

    def on_message(self, callback: Callable[[bytes], Any]) -> None:
        self._loop.call_soon_threadsafe(self._node.on_message, callback)

    def leave(self, timeout: float | None = None) -> None:
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
