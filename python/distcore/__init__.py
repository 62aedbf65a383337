"""distcore: distributed-systems primitives with a Rust core.

Capabilities live in their own modules: :mod:`distcore.hashing` (consistent hashing compatible
with twemproxy, libmemcached, uhashring and the Python memcached clients).
"""

from distcore._core import __version__

__all__ = ["__version__"]
