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

Gossip (:mod:`distcore.gossip`):

- :class:`LabelMismatchError` (a packet or stream with another cluster's label, or none when one
  is required) and :class:`DecryptionError` (no key opens it) are :class:`DecodeError` s;
- :class:`GossipError` is the base of what a gossip node raises: :class:`JoinError` (no seed
  could be contacted; also a :class:`TimeoutError`), :class:`NameConflictError` (the name is
  held by a live member at another address), and the :class:`ValueError` s
  :class:`MetadataTooLargeError` (over 512 bytes), :class:`InvalidLabelError` (over 255 bytes)
  and :class:`InvalidKeyError` (not 16, 24 or 32 bytes).

MapReduce (:mod:`distcore.mapreduce`): :class:`MapReduceError` is the base of
:class:`TaskError` (a job's own function raised; the record and its position are in the message),
:class:`WorkerLostError` (a worker process died more often than the retries allow),
:class:`RecordTypeError` and :class:`UnpicklableError` (also :class:`TypeError` s: a record a
reducer cannot take, a function that cannot go to worker processes) and :class:`SchedulerError`
(also a :class:`ConnectionError`: a Dask scheduler that cannot be reached).
"""

from distcore._core import (
    ClockSkewError,
    ConfigError,
    CounterOverflowError,
    DecodeError,
    DecryptionError,
    DistcoreError,
    DuplicateNodeError,
    EmptyRingError,
    GossipError,
    InvalidKeyError,
    InvalidLabelError,
    InvalidWeightError,
    JoinError,
    KissOfDeathError,
    LabelMismatchError,
    MapReduceError,
    MetadataTooLargeError,
    NameConflictError,
    NodeNotFoundError,
    PollTooSoonError,
    RecordTypeError,
    SchedulerError,
    TaskError,
    TimeSyncError,
    UnpicklableError,
    WorkerLostError,
)

__all__ = [
    "ClockSkewError",
    "ConfigError",
    "CounterOverflowError",
    "DecodeError",
    "DecryptionError",
    "DistcoreError",
    "DuplicateNodeError",
    "EmptyRingError",
    "GossipError",
    "InvalidKeyError",
    "InvalidLabelError",
    "InvalidWeightError",
    "JoinError",
    "KissOfDeathError",
    "LabelMismatchError",
    "MapReduceError",
    "MetadataTooLargeError",
    "NameConflictError",
    "NodeNotFoundError",
    "PollTooSoonError",
    "RecordTypeError",
    "SchedulerError",
    "TaskError",
    "TimeSyncError",
    "UnpicklableError",
    "WorkerLostError",
]
