"""NTP on-wire format (RFC 5905 §7.3, RFC 4330 §4): the 48-byte header and its timestamps."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

#: Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
NTP_UNIX_OFFSET = 2_208_988_800
#: Length of an NTP header without extension fields or MAC.
PACKET_SIZE = 48
NTP_PORT = 123

MODE_CLIENT = 3
MODE_SERVER = 4
MODE_BROADCAST = 5
LEAP_UNSYNCHRONIZED = 3

#: Kiss-o'-death codes after which a client must stop polling the server (RFC 5905 §7.4).
KOD_STOP = frozenset({"DENY", "RSTR"})
#: Kiss-o'-death code asking the client to poll less often.
KOD_RATE = "RATE"

_NS = 1_000_000_000
_ERA = 1 << 32
_HEADER = struct.Struct("!BBbbiI4sQQQQ")


def unix_ns_to_ntp(ns: int) -> int:
    """Unix-epoch nanoseconds to a 64-bit NTP timestamp (32.32 fixed point, era folded).

    The fraction is rounded to the nearest 2**-32 s, so the conversion loses at most 0.12 ns.

    Examples
    --------
    >>> hex(unix_ns_to_ntp(0))
    '0x83aa7e8000000000'
    >>> hex(unix_ns_to_ntp(500_000_000))
    '0x83aa7e8080000000'
    """
    seconds, nanos = divmod(int(ns), _NS)
    fraction = ((nanos << 32) + _NS // 2) // _NS  # < 2**32: 1 ns is over 4 fraction units
    return (((seconds + NTP_UNIX_OFFSET) % _ERA) << 32) | fraction


def ntp_to_unix_ns(timestamp: int) -> int:
    """A 64-bit NTP timestamp to Unix-epoch nanoseconds (rounded to the nearest ns).

    Seconds with the top bit set are in era 0 (1968-2036), the others in era 1
    (2036-2104), as RFC 4330 §3 suggests.

    Examples
    --------
    >>> ntp_to_unix_ns(unix_ns_to_ntp(1_795_000_000_123_456_789))
    1795000000123456789
    >>> ntp_to_unix_ns(0x0000000100000000)  # one second into era 1 (2036-02-07)
    2085978497000000000
    """
    seconds = (timestamp >> 32) & 0xFFFFFFFF
    fraction = timestamp & 0xFFFFFFFF
    if not seconds & 0x80000000:
        seconds += _ERA
    return (seconds - NTP_UNIX_OFFSET) * _NS + ((fraction * _NS + (1 << 31)) >> 32)


def _short(value: float, signed: bool) -> int:
    raw = round(value * 65536)
    low, high = (-(1 << 31), (1 << 31) - 1) if signed else (0, (1 << 32) - 1)
    if not low <= raw <= high:
        raise ValueError(f"{value!r} s does not fit NTP's 16.16 short format")
    return raw


@dataclass(frozen=True)
class NTPPacket:
    """One NTP header. Timestamps are raw 64-bit NTP values; root delay/dispersion are seconds.

    Examples
    --------
    >>> p = NTPPacket(mode=3, transmit=unix_ns_to_ntp(1_795_000_000_000_000_000))
    >>> len(p.pack())
    48
    >>> NTPPacket.unpack(p.pack()) == p
    True
    """

    leap: int = 0
    version: int = 4
    mode: int = MODE_CLIENT
    stratum: int = 0
    poll: int = 0
    precision: int = 0
    root_delay: float = 0.0
    root_dispersion: float = 0.0
    ref_id: bytes = b"\0\0\0\0"
    reference: int = 0
    origin: int = 0
    receive: int = 0
    transmit: int = 0

    def pack(self) -> bytes:
        """The 48 bytes on the wire."""
        if not (0 <= self.leap <= 3 and 0 <= self.version <= 7 and 0 <= self.mode <= 7):
            raise ValueError("leap must be 0..3, version and mode 0..7")
        if len(self.ref_id) != 4:
            raise ValueError(f"ref_id must be 4 bytes, got {len(self.ref_id)}")
        return _HEADER.pack(
            (self.leap << 6) | (self.version << 3) | self.mode,
            self.stratum,
            self.poll,
            self.precision,
            _short(self.root_delay, signed=True),
            _short(self.root_dispersion, signed=False),
            bytes(self.ref_id),
            self.reference,
            self.origin,
            self.receive,
            self.transmit,
        )

    @classmethod
    def unpack(cls, data: bytes) -> NTPPacket:
        """Parse the first 48 bytes (extension fields and a MAC after them are ignored).

        Raises
        ------
        ValueError
            If ``data`` is shorter than 48 bytes.
        """
        if len(data) < PACKET_SIZE:
            raise ValueError(f"NTP packet too short: {len(data)} bytes, need {PACKET_SIZE}")
        (first, stratum, poll, precision, delay, dispersion, ref_id, ref, org, rec, xmt) = (
            _HEADER.unpack_from(data)
        )
        return cls(
            leap=first >> 6,
            version=(first >> 3) & 7,
            mode=first & 7,
            stratum=stratum,
            poll=poll,
            precision=precision,
            root_delay=delay / 65536,
            root_dispersion=dispersion / 65536,
            ref_id=ref_id,
            reference=ref,
            origin=org,
            receive=rec,
            transmit=xmt,
        )

    @property
    def kiss_code(self) -> str | None:
        """The kiss-o'-death code (e.g. ``"RATE"``) of a stratum-0 packet, else None."""
        if self.stratum != 0:
            return None
        code = self.ref_id.rstrip(b"\0")
        if not code or not all(0x20 < b < 0x7F for b in code):
            return None
        return code.decode("ascii")


def ref_id_text(stratum: int, ref_id: bytes) -> str:
    """Human form of a reference id: ASCII for stratum 0-1, dotted IPv4 (or hash) above.

    Examples
    --------
    >>> ref_id_text(1, b"GPS\\0")
    'GPS'
    >>> ref_id_text(10, bytes([127, 127, 1, 1]))
    '127.127.1.1'
    """
    if stratum <= 1:
        return ref_id.rstrip(b"\0").decode("ascii", errors="replace")
    return str(ipaddress.IPv4Address(ref_id))
