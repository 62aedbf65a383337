"""SNTP codec, reply checks, kiss-o'-death and poll limits, against a fake NTP server (thread)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from distcore.exceptions import KissOfDeathError, PollTooSoonError, TimeSyncError
from distcore.timesync import (
    NTP_UNIX_OFFSET,
    ClockFilter,
    NTPPacket,
    NTPSample,
    SNTPClient,
    SyncedClock,
    check_reply,
    ntp_to_unix_ns,
    parse_server,
    unix_ns_to_ntp,
)
from distcore.timesync._ntp import ref_id_text

Reply = Callable[[NTPPacket], bytes | None]
SECOND = 1_000_000_000


class FakeNTPServer:
    """A UDP server on 127.0.0.1; `reply(request)` decides what it sends back (None: nothing)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.spec = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.reply: Reply = good_reply()
        self.requests: list[NTPPacket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(1024)
            except TimeoutError:
                continue
            request = NTPPacket.unpack(data)
            self.requests.append(request)
            answer = self.reply(request)
            if answer is not None:
                self.sock.sendto(answer, addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def server_packet(request: NTPPacket, ahead_ns: int = 0, **fields: object) -> NTPPacket:
    """A well-formed stratum-2 reply to `request`, its clock `ahead_ns` ahead of ours."""
    now = time.time_ns() + ahead_ns
    packet = NTPPacket(
        leap=0,
        version=4,
        mode=4,
        stratum=2,
        poll=6,
        precision=-20,
        ref_id=bytes([192, 0, 2, 1]),
        reference=unix_ns_to_ntp(now - SECOND),
        origin=request.transmit,
        receive=unix_ns_to_ntp(now),
        transmit=unix_ns_to_ntp(now + 1000),
    )
    return dataclasses.replace(packet, **fields)  # type: ignore[arg-type]


def good_reply(ahead_ns: int = 0) -> Reply:
    return lambda request: server_packet(request, ahead_ns).pack()


def kiss(code: str) -> Reply:
    return lambda request: server_packet(
        request, leap=3, stratum=0, ref_id=code.encode(), receive=0, transmit=0
    ).pack()


@pytest.fixture
def fake_ntp() -> Iterator[FakeNTPServer]:
    server = FakeNTPServer()
    yield server
    server.close()


class FakeTimer:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- codec -----------------------------------------------------------------------------------


def test_timestamps_convert_exactly() -> None:
    assert unix_ns_to_ntp(0) == NTP_UNIX_OFFSET << 32
    assert unix_ns_to_ntp(SECOND // 4) == (NTP_UNIX_OFFSET << 32) | (1 << 30)
    assert ntp_to_unix_ns(NTP_UNIX_OFFSET << 32 | 1 << 31) == SECOND // 2
    # Era 0 ends 2036-02-07T06:28:16Z; the next second is era 1, seconds field 0.
    era_end_unix = (1 << 32) - NTP_UNIX_OFFSET
    assert unix_ns_to_ntp(era_end_unix * SECOND) == 0
    assert ntp_to_unix_ns(0) == era_end_unix * SECOND
    # The fraction rounds to the nearest 2**-32 s (1 ns is 4.29 units).
    assert unix_ns_to_ntp(SECOND - 1) == (NTP_UNIX_OFFSET << 32) | 0xFFFFFFFC
    assert unix_ns_to_ntp(1) == (NTP_UNIX_OFFSET << 32) | 4


# Unix ns from 1968-01-20 (era 0 with the top bit set) to 2104-02-26 (the end of era 1).
_NS_RANGE = st.integers(
    (2**31 - NTP_UNIX_OFFSET) * SECOND, (2**32 + 2**31 - NTP_UNIX_OFFSET) * SECOND - 1
)


@given(_NS_RANGE)
def test_timestamp_round_trip_is_within_a_nanosecond(ns: int) -> None:
    assert ntp_to_unix_ns(unix_ns_to_ntp(ns)) == ns  # 2**-32 s < 0.5 ns: exact after rounding


@given(
    leap=st.integers(0, 3),
    version=st.integers(0, 7),
    mode=st.integers(0, 7),
    stratum=st.integers(0, 255),
    poll=st.integers(-128, 127),
    precision=st.integers(-128, 127),
    delay=st.integers(-(2**31), 2**31 - 1),
    dispersion=st.integers(0, 2**32 - 1),
    ref_id=st.binary(min_size=4, max_size=4),
    stamps=st.lists(st.integers(0, 2**64 - 1), min_size=4, max_size=4),
)
def test_packet_round_trip(
    leap: int,
    version: int,
    mode: int,
    stratum: int,
    poll: int,
    precision: int,
    delay: int,
    dispersion: int,
    ref_id: bytes,
    stamps: list[int],
) -> None:
    packet = NTPPacket(
        leap, version, mode, stratum, poll, precision, delay / 65536, dispersion / 65536, ref_id,
        *stamps,
    )  # fmt: skip
    wire = packet.pack()
    assert len(wire) == 48
    assert NTPPacket.unpack(wire) == packet
    assert NTPPacket.unpack(wire + b"\x00" * 20) == packet  # extension/MAC ignored
    assert wire[0] == (leap << 6) | (version << 3) | mode


def test_packet_layout_matches_rfc_5905() -> None:
    wire = NTPPacket(
        leap=0, version=4, mode=4, stratum=10, poll=6, precision=-25, root_delay=1.5,
        root_dispersion=0.25, ref_id=bytes([127, 127, 1, 1]), transmit=0x0102030405060708,
    ).pack()  # fmt: skip
    assert wire[:4] == bytes([0x24, 10, 6, 0xE7])
    assert wire[4:8] == bytes([0, 1, 0x80, 0])  # 1.5 s in 16.16
    assert wire[8:12] == bytes([0, 0, 0x40, 0])
    assert wire[12:16] == bytes([127, 127, 1, 1])
    assert wire[40:48] == bytes(range(1, 9))
    assert ref_id_text(10, wire[12:16]) == "127.127.1.1"
    assert ref_id_text(1, b"PPS\0") == "PPS"


def test_bad_packets_are_refused() -> None:
    with pytest.raises(ValueError, match="too short: 47 bytes"):
        NTPPacket.unpack(b"\0" * 47)
    with pytest.raises(ValueError, match="ref_id must be 4 bytes"):
        NTPPacket(ref_id=b"abc").pack()
    with pytest.raises(ValueError, match=r"leap must be 0\.\.3"):
        NTPPacket(leap=4).pack()
    with pytest.raises(ValueError, match="short format"):
        NTPPacket(root_dispersion=-1.0).pack()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("time.example", ("time.example", 123)),
        ("127.0.0.1:1123", ("127.0.0.1", 1123)),
        ("[::1]", ("::1", 123)),
        ("[::1]:5", ("::1", 5)),
        (("h", 9), ("h", 9)),
    ],
)
def test_parse_server(spec: str | tuple[str, int], expected: tuple[str, int]) -> None:
    assert parse_server(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty host"),
        (":123", "empty host"),
        ("h:0", "port must be 1-65535"),
        ("h:70000", "port must be 1-65535"),
        ("h:x", "port must be 1-65535"),
        ("::1", "brackets"),
        ("[::1", r"expected \[ipv6\]:port"),
    ],
)
def test_parse_server_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_server(spec)
    with pytest.raises(TypeError):
        parse_server(123)  # type: ignore[arg-type]


# -- sample arithmetic and the filter --------------------------------------------------------


def test_offset_and_delay_follow_rfc_5905() -> None:
    # Server 5 s ahead, 10 ms each way, 1 ms inside the server.
    t1 = 100 * SECOND
    t2 = t1 + 10_000_000 + 5 * SECOND
    t3 = t2 + 1_000_000
    t4 = t1 + 21_000_000
    s = NTPSample(server="x:123", t1=t1, t2=t2, t3=t3, t4=t4, stratum=3)
    assert s.offset_ns == 5 * SECOND
    assert s.delay_ns == 20_000_000  # not (T2 - T3): RFC 2030's sign error
    assert s.low == pytest.approx(4.99) and s.high == pytest.approx(5.01)


def test_clock_filter_is_bounded_and_picks_least_delay() -> None:
    f = ClockFilter()
    delays = [9, 3, 7, 8, 6, 5, 4, 10, 11]
    for d in delays:
        f.add(NTPSample(server="x:1", t1=0, t2=0, t3=0, t4=d, stratum=2))
    assert [s.delay_ns for s in f.samples] == delays[-8:]
    best = f.best()
    assert best is not None and best.delay_ns == 3
    f.add(NTPSample(server="x:1", t1=0, t2=0, t3=0, t4=12, stratum=2))  # 3 falls out
    best = f.best()
    assert best is not None and best.delay_ns == 4
    with pytest.raises(ValueError):
        ClockFilter(0)


# -- one exchange against the fake server ----------------------------------------------------


def test_a_good_reply_gives_the_offset(fake_ntp: FakeNTPServer) -> None:
    fake_ntp.reply = good_reply(ahead_ns=3 * SECOND)
    client = SNTPClient(local=True, timeout=1.0)
    sample = client.query(fake_ntp.spec)
    assert abs(sample.offset - 3.0) < 0.05
    assert sample.stratum == 2 and sample.ref_id == "192.0.2.1" and sample.precision == -20
    assert client.samples(fake_ntp.spec) == (sample,)
    request = fake_ntp.requests[-1]
    assert (request.mode, request.version) == (3, 4)
    assert request.transmit != 0 and request.origin == 0 and request.receive == 0


def test_requests_carry_unpredictable_transmit_timestamps(fake_ntp: FakeNTPServer) -> None:
    client = SNTPClient(local=True, timeout=1.0)
    for _ in range(3):
        client.query(fake_ntp.spec)
    assert len({r.transmit for r in fake_ntp.requests}) == 3


BAD_REPLIES: list[tuple[str, Reply, str]] = [
    ("bad origin", lambda r: server_packet(r, origin=r.transmit ^ 1).pack(), "origin timestamp"),
    ("stale origin", lambda r: server_packet(r, origin=0).pack(), "origin timestamp"),
    ("stratum 0 without code", kiss("\0\0\0\0"), "stratum 0 reply without"),
    ("LI=3", lambda r: server_packet(r, leap=3).pack(), r"unsynchronized \(LI=3\)"),
    ("stratum 16", lambda r: server_packet(r, stratum=16).pack(), r"\(stratum 16\)"),
    ("client mode", lambda r: server_packet(r, mode=3).pack(), "mode 3, expected 4"),
    ("symmetric mode", lambda r: server_packet(r, mode=1).pack(), "mode 1, expected 4"),
    ("short packet", lambda r: server_packet(r).pack()[:40], r"short reply \(40 bytes"),
    ("zero transmit", lambda r: server_packet(r, transmit=0).pack(), "zero transmit"),
    ("no reply", lambda r: None, r"no reply within 0\.2 s"),
]


@pytest.mark.parametrize(
    ("reply", "message"), [b[1:] for b in BAD_REPLIES], ids=[b[0] for b in BAD_REPLIES]
)
def test_unusable_replies_raise_and_record_nothing(
    fake_ntp: FakeNTPServer, reply: Reply, message: str
) -> None:
    fake_ntp.reply = reply
    client = SNTPClient(local=True, timeout=0.2)
    with pytest.raises(TimeSyncError, match=message) as info:
        client.query(fake_ntp.spec)
    assert not isinstance(info.value, KissOfDeathError)
    assert fake_ntp.spec in str(info.value)
    assert client.samples(fake_ntp.spec) == ()
    assert client.best(fake_ntp.spec) is None


def test_unusable_replies_raise_from_aquery_too(fake_ntp: FakeNTPServer) -> None:
    client = SNTPClient(local=True, timeout=0.2)
    fake_ntp.reply = BAD_REPLIES[0][1]
    with pytest.raises(TimeSyncError, match="origin timestamp"):
        asyncio.run(client.aquery(fake_ntp.spec))
    fake_ntp.reply = lambda r: None
    with pytest.raises(TimeSyncError, match="no reply within"):
        asyncio.run(client.aquery(fake_ntp.spec))
    fake_ntp.reply = kiss("RATE")
    with pytest.raises(KissOfDeathError) as info:
        asyncio.run(client.aquery(fake_ntp.spec))
    assert info.value.code == "RATE"
    assert client.samples(fake_ntp.spec) == ()


def test_a_kiss_with_a_wrong_origin_is_ignored_as_spoofed(fake_ntp: FakeNTPServer) -> None:
    fake_ntp.reply = lambda r: server_packet(
        r, stratum=0, leap=3, ref_id=b"DENY", origin=r.transmit + 1
    ).pack()
    client = SNTPClient(local=True, timeout=0.5)
    with pytest.raises(TimeSyncError, match="origin") as info:
        client.query(fake_ntp.spec)
    assert not isinstance(info.value, KissOfDeathError)
    fake_ntp.reply = good_reply()
    client.query(fake_ntp.spec)  # not stopped


def test_check_reply_directly() -> None:
    request = NTPPacket(mode=3, transmit=12345)
    reply = server_packet(request, ahead_ns=SECOND).pack()
    t = time.time_ns()
    sample = check_reply("s:123", reply, 12345, t, t + 1_000_000, 0)
    assert sample.server == "s:123" and abs(sample.offset - 1.0) < 0.01
    with pytest.raises(TimeSyncError, match="origin"):
        check_reply("s:123", reply, 54321, t, t, 0)


# -- kiss-o'-death and poll limits -----------------------------------------------------------


@pytest.mark.parametrize("code", ["DENY", "RSTR"])
def test_deny_and_rstr_stop_polling_for_good(fake_ntp: FakeNTPServer, code: str) -> None:
    timer = FakeTimer()
    client = SNTPClient(timeout=0.5, timer=timer)
    fake_ntp.reply = kiss(code)
    with pytest.raises(KissOfDeathError, match=f"kiss-o'-death {code}") as info:
        client.query(fake_ntp.spec)
    assert info.value.code == code
    assert isinstance(info.value, TimeSyncError)
    fake_ntp.reply = good_reply()
    timer.now += 10_000
    sent = len(fake_ntp.requests)
    with pytest.raises(KissOfDeathError, match="not polling it again") as info:
        client.query(fake_ntp.spec)
    assert info.value.code == code
    assert len(fake_ntp.requests) == sent  # nothing was sent
    assert client.samples(fake_ntp.spec) == ()
    client.forget(fake_ntp.spec)
    assert client.query(fake_ntp.spec).stratum == 2


def test_rate_backs_off_a_public_server(fake_ntp: FakeNTPServer) -> None:
    timer = FakeTimer()
    client = SNTPClient(timeout=0.5, timer=timer)
    assert client.poll_interval(fake_ntp.spec) == 15
    fake_ntp.reply = kiss("RATE")
    with pytest.raises(KissOfDeathError, match="backing off, next poll in 64 s") as info:
        client.query(fake_ntp.spec)
    assert info.value.code == "RATE"
    assert client.poll_wait(fake_ntp.spec) == 64
    fake_ntp.reply = good_reply()
    timer.now += 20
    sent = len(fake_ntp.requests)
    with pytest.raises(PollTooSoonError, match=r"wait 44\.0 s \(minimum interval 64 s\)"):
        client.query(fake_ntp.spec)
    assert len(fake_ntp.requests) == sent
    timer.now += 44
    client.query(fake_ntp.spec)
    assert len(client.samples(fake_ntp.spec)) == 1
    fake_ntp.reply = kiss("RATE")
    timer.now += 64
    with pytest.raises(KissOfDeathError, match="next poll in 128 s"):
        client.query(fake_ntp.spec)
    for _ in range(10):  # doubling stops at 1024 s
        timer.now += client.poll_wait(fake_ntp.spec)
        with pytest.raises(KissOfDeathError):
            client.query(fake_ntp.spec)
    assert client.poll_interval(fake_ntp.spec) == 1024


def test_rate_backs_off_a_local_server_briefly(fake_ntp: FakeNTPServer) -> None:
    timer = FakeTimer()
    client = SNTPClient(timeout=0.5, local=True, timer=timer)
    fake_ntp.reply = kiss("RATE")
    with pytest.raises(KissOfDeathError, match="next poll in 1 s"):
        client.query(fake_ntp.spec)
    with pytest.raises(PollTooSoonError, match=r"wait 1\.0 s"):
        client.query(fake_ntp.spec)
    timer.now += 1
    fake_ntp.reply = good_reply()
    client.query(fake_ntp.spec)
    for _ in range(10):
        timer.now += client.poll_wait(fake_ntp.spec)
        fake_ntp.reply = kiss("RATE")
        with pytest.raises(KissOfDeathError):
            client.query(fake_ntp.spec)
    assert client.poll_interval(fake_ntp.spec) == 60


def test_public_servers_get_at_most_one_poll_per_15s(fake_ntp: FakeNTPServer) -> None:
    timer = FakeTimer()
    client = SNTPClient(timeout=0.5, timer=timer)
    client.query(fake_ntp.spec)
    timer.now += 14.5
    with pytest.raises(PollTooSoonError, match=r"wait 0\.5 s \(minimum interval 15 s\)"):
        client.query(fake_ntp.spec)
    assert len(fake_ntp.requests) == 1
    assert len(client.samples(fake_ntp.spec)) == 1
    timer.now += 0.5
    client.query(fake_ntp.spec)
    assert len(fake_ntp.requests) == 2
    # A failed poll counts too: the packet was sent.
    fake_ntp.reply = lambda r: None
    timer.now += 15
    with pytest.raises(TimeSyncError, match="no reply"):
        client.query(fake_ntp.spec)
    with pytest.raises(PollTooSoonError):
        client.query(fake_ntp.spec)


def test_local_servers_may_be_polled_back_to_back(fake_ntp: FakeNTPServer) -> None:
    client = SNTPClient(timeout=0.5, local=True)
    for _ in range(5):
        client.query(fake_ntp.spec)
    assert len(client.samples(fake_ntp.spec)) == 5
    paced = SNTPClient(timeout=0.5, local=True, min_poll=2.0, timer=FakeTimer())
    paced.query(fake_ntp.spec)
    with pytest.raises(PollTooSoonError, match="minimum interval 2 s"):
        paced.query(fake_ntp.spec)


def test_client_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"min_poll below 15 s needs local=True"):
        SNTPClient(min_poll=14.9)
    with pytest.raises(ValueError, match="timeout must be > 0"):
        SNTPClient(timeout=0)
    with pytest.raises(ValueError, match="filter_size"):
        SNTPClient(filter_size=0)
    with pytest.raises(ValueError, match="count must be >= 1"):
        SNTPClient(local=True).measure(["127.0.0.1:1"], count=0)
    with pytest.raises(ValueError, match="no servers"):
        SNTPClient(local=True).measure([])


def test_measure_reports_each_servers_best_or_its_error(fake_ntp: FakeNTPServer) -> None:
    silent = FakeNTPServer()
    silent.reply = lambda r: None
    try:
        client = SNTPClient(local=True, timeout=0.2)
        results = client.measure([fake_ntp.spec, silent.spec], count=3)
    finally:
        silent.close()
    good = results[fake_ntp.spec]
    assert isinstance(good, NTPSample)
    assert good == client.best(fake_ntp.spec)
    assert len(client.samples(fake_ntp.spec)) == 3
    assert isinstance(results[silent.spec], TimeSyncError)
    assert "no reply" in str(results[silent.spec])


def test_measure_turns_a_failed_lookup_into_that_servers_error(fake_ntp: FakeNTPServer) -> None:
    client = SNTPClient(local=True, timeout=0.2)
    results = client.measure([fake_ntp.spec, "no-such-host.invalid:123"], count=1)
    assert isinstance(results[fake_ntp.spec], NTPSample)
    error = results["no-such-host.invalid:123"]
    assert isinstance(error, TimeSyncError) and "no-such-host.invalid:123" in str(error)


# -- SyncedClock on the fake server ----------------------------------------------------------


def test_synced_clock_without_an_answer_fails_to_start(fake_ntp: FakeNTPServer) -> None:
    fake_ntp.reply = lambda r: None
    clock = SyncedClock([fake_ntp.spec], local=True, interval=0.05, timeout=0.1)
    with pytest.raises(TimeSyncError, match=r"no time estimate within 0\.5 s .*no reply"):
        clock.start(wait=0.5)
    assert not clock.running
    assert clock.estimate is None and clock.error_bound() == float("inf")
    assert fake_ntp.spec in clock.errors


def test_synced_clock_keeps_its_estimate_when_servers_disagree(fake_ntp: FakeNTPServer) -> None:
    other = FakeNTPServer()
    try:
        fake_ntp.reply = other.reply = good_reply(ahead_ns=3 * SECOND)
        clock = SyncedClock([fake_ntp.spec, other.spec], local=True, timeout=0.5)
        first = clock.refresh()
        assert abs(first.offset - 3.0) < 0.05 and first.falsetickers == ()
        assert abs(clock.offset - 3.0) < 0.05
        assert abs(clock.now() - time.time() - 3.0) < 0.05
        assert 0 < clock.error_bound() < 0.05
        other.reply = good_reply(ahead_ns=-7 * SECOND)
        for _ in range(8):  # flush the other server's filter of its +3 s samples
            clock.client.query(other.spec)
        with pytest.raises(TimeSyncError, match="no majority"):
            clock.refresh()
        assert clock.estimate == first
    finally:
        other.close()


def test_synced_clock_arguments() -> None:
    with pytest.raises(ValueError, match="at least one server"):
        SyncedClock([])
    with pytest.raises(ValueError, match="interval below 15 s needs local=True"):
        SyncedClock(["h"], interval=1)
    with pytest.raises(ValueError, match="bad address"):
        SyncedClock(["h:0"])
    assert SyncedClock(["h"]).interval == 64
