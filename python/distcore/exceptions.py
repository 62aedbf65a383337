"""The exceptions distcore raises, one hierarchy rooted at :class:`DistcoreError`.

They are created once in the native core and re-exported here. Where a meaning matches a built-in,
the exception subclasses it too, so existing ``except`` clauses keep working:

- :class:`EmptyRingError` is a :class:`LookupError` (a lookup on a ring with no nodes);
- :class:`NodeNotFoundError` is a :class:`KeyError` (a node name that is not on the ring);
- :class:`DuplicateNodeError`, :class:`InvalidWeightError`, :class:`ConfigError` and
  :class:`DecodeError` are :class:`ValueError` s;
- :class:`CounterOverflowError` is an :class:`OverflowError` (a logical counter out of range).

:class:`ClockSkewError` (a remote timestamp beyond ``max_offset``) and :class:`TimeSyncError`
(with :class:`KissOfDeathError` and :class:`PollTooSoonError`) derive from :class:`DistcoreError`
only.
"""

from distcore._core import (
    ClockSkewError,
    ConfigError,
    CounterOverflowError,
    DecodeError,
    DistcoreError,
    DuplicateNodeError,
    EmptyRingError,
    InvalidWeightError,
    KissOfDeathError,
    NodeNotFoundError,
    PollTooSoonError,
    TimeSyncError,
)

__all__ = [
    "ClockSkewError",
    "ConfigError",
    "CounterOverflowError",
    "DecodeError",
    "DistcoreError",
    "DuplicateNodeError",
    "EmptyRingError",
    "InvalidWeightError",
    "KissOfDeathError",
    "NodeNotFoundError",
    "PollTooSoonError",
    "TimeSyncError",
]
