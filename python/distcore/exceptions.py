"""The exceptions distcore raises, one hierarchy rooted at :class:`DistcoreError`.

They are created once in the native core and re-exported here. Where a meaning matches a built-in,
the exception subclasses it too, so existing ``except`` clauses keep working:

- :class:`EmptyRingError` is a :class:`LookupError` (a lookup on a ring with no nodes);
- :class:`NodeNotFoundError` is a :class:`KeyError` (a node name that is not on the ring);
- :class:`DuplicateNodeError`, :class:`InvalidWeightError` and :class:`ConfigError` are
  :class:`ValueError` s.
"""

from distcore._core import (
    ConfigError,
    DistcoreError,
    DuplicateNodeError,
    EmptyRingError,
    InvalidWeightError,
    NodeNotFoundError,
)

__all__ = [
    "ConfigError",
    "DistcoreError",
    "DuplicateNodeError",
    "EmptyRingError",
    "InvalidWeightError",
    "NodeNotFoundError",
]
