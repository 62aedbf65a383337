"""Logical clocks: order events without trusting wall clocks.

- :class:`LamportClock`: one counter; ``tick``, ``update`` (max + 1) and Serf's ``witness``.
- :class:`VectorClock`: a counter per node; ``compare`` says :class:`Ordering` ``BEFORE``,
  ``AFTER``, ``EQUAL`` or ``CONCURRENT``; ``merge``, pruning, a stable binary encoding.
- :class:`VersionVector`: the same structure for tracking replicas of one datum (Riak's term).
- :class:`DVVSet`: dotted version vectors (Riak's compact form) for multi-value registers
  that keep exactly the concurrent siblings.
- :class:`HLC` and :class:`HLCTimestamp`: hybrid logical clocks, close to physical time and
  consistent with causality, packed into sortable 64-bit ints.
- :func:`causal_order`, :func:`compare_many`, :func:`merge_all`: batches in one native call.
- :class:`CausalDelivery`: a causal-broadcast delivery buffer.

Which objects may change: ``LamportClock``, ``HLC``, ``VectorClock``/``VersionVector`` and
``CausalDelivery`` are mutable and safe to share between threads (atomics or a lock inside);
``HLCTimestamp``, ``Ordering`` and ``DVVSet`` are immutable. All pickle and copy.
See ``docs/clocks.md``.
"""

from __future__ import annotations

from distcore._core import (
    HLC,
    CausalDelivery,
    DVVSet,
    HLCTimestamp,
    LamportClock,
    Ordering,
    VectorClock,
    causal_order,
    compare_many,
    merge_all,
)

__all__ = [
    "HLC",
    "CausalDelivery",
    "DVVSet",
    "HLCTimestamp",
    "LamportClock",
    "Ordering",
    "VectorClock",
    "VersionVector",
    "causal_order",
    "compare_many",
    "merge_all",
]


class VersionVector(VectorClock):
    """A version vector: per replica, how many updates of one datum it has seen.

    The structure and operations are those of :class:`VectorClock` (``merge``, ``compare``,
    ``dominates``, the binary encoding); the name says what it counts: updates applied by each
    replica of a datum, rather than events of each process. Operations that return a new clock
    (``merged``, ``copy``, ``from_dict``, ``from_bytes``) return a ``VersionVector``.

    >>> a = VersionVector({"replica-1": 2})
    >>> b = VersionVector({"replica-1": 1, "replica-2": 1})
    >>> a.concurrent_with(b), a.merged(b)
    (True, VersionVector({'replica-1': 2, 'replica-2': 1}))
    """

    __slots__ = ()
