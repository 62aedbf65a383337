"""Clock synchronisation that never touches the system clock.

- :class:`SNTPClient`: RFC 4330 SNTP queries with the reply checks, kiss-o'-death handling and
  poll-rate limits the RFCs require, and NTP's clock filter per server.
- :func:`marzullo` / :func:`combine`: several servers' samples into one :class:`Estimate` with a
  confidence interval; servers outside it are named falsetickers.
- :class:`SyncedClock`: local monotonic time plus the estimated offset, refreshed in the
  background; ``now_ns`` can drive a hybrid logical clock.
- Berkeley (master/follower) time service over UDP with Cristian-style polls:
  :class:`MasterService`, :class:`FollowerService` on :class:`VirtualClock` s, and their sans-IO
  cores :class:`BerkeleyMaster` and :class:`BerkeleyFollower`.

Errors are :class:`~distcore.exceptions.TimeSyncError` and its subclasses
:class:`~distcore.exceptions.KissOfDeathError` and :class:`~distcore.exceptions.PollTooSoonError`.
"""

from __future__ import annotations

from ._berkeley import (
    MASTER,
    BerkeleyFollower,
    BerkeleyMaster,
    FollowerService,
    MasterService,
    Reading,
    RoundResult,
    VirtualClock,
    cristian,
    fault_tolerant_average,
)
from ._marzullo import Estimate, Intersection, combine, marzullo
from ._ntp import NTP_UNIX_OFFSET, NTPPacket, ntp_to_unix_ns, unix_ns_to_ntp
from ._sntp import MIN_POLL, ClockFilter, NTPSample, SNTPClient, check_reply, parse_server
from ._synced import SyncedClock

__all__ = [
    "MASTER",
    "MIN_POLL",
    "NTP_UNIX_OFFSET",
    "BerkeleyFollower",
    "BerkeleyMaster",
    "ClockFilter",
    "Estimate",
    "FollowerService",
    "Intersection",
    "MasterService",
    "NTPPacket",
    "NTPSample",
    "Reading",
    "RoundResult",
    "SNTPClient",
    "SyncedClock",
    "VirtualClock",
    "check_reply",
    "combine",
    "cristian",
    "fault_tolerant_average",
    "marzullo",
    "ntp_to_unix_ns",
    "parse_server",
    "unix_ns_to_ntp",
]
