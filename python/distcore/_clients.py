"""The Python memcached clients' own routing: switch clients without moving keys.

Re-exported as :class:`distcore.hashing.PymemcacheRing` and
:class:`distcore.hashing.PythonMemcachedRing`.
"""

from __future__ import annotations

import socket
from typing import Any

from distcore import _core

__all__ = ["PymemcacheRing", "PythonMemcachedRing"]


class PymemcacheRing(_core.PymemcacheRing):
    __doc__ = _core.PymemcacheRing.__doc__
    __module__ = "distcore.hashing"

    @classmethod
    def from_client(cls, client: Any) -> PymemcacheRing:
        """The ring a pymemcache ``HashClient`` routes with right now (its live servers).

        Examples
        --------
        >>> from pymemcache.client.hash import HashClient
        >>> client = HashClient([("10.0.0.1", 11211), ("10.0.0.2", 11211)])
        >>> PymemcacheRing.from_client(client).nodes
        ('10.0.0.1:11211', '10.0.0.2:11211')
        """
        nodes = getattr(getattr(client, "hasher", None), "nodes", None)
        if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
            raise TypeError("expected a pymemcache HashClient using its default RendezvousHash")
        # The hasher's nodes are HashClient's names already; a "unix:" spec is the one form the
        # ring keeps verbatim as the name, whatever the text.
        return cls([f"unix:{n}" for n in nodes])


class PythonMemcachedRing(_core.PythonMemcachedRing):
    __doc__ = _core.PythonMemcachedRing.__doc__
    __module__ = "distcore.hashing"

    @classmethod
    def from_client(cls, client: Any) -> PythonMemcachedRing:
        """The ring a python-memcached ``memcache.Client`` routes with (all servers alive).

        Examples
        --------
        >>> import memcache
        >>> client = memcache.Client(["10.0.0.1:11211", ("10.0.0.2:11211", 2)])
        >>> PythonMemcachedRing.from_client(client).weights
        [1, 2]
        """
        servers = getattr(client, "servers", None)
        if not isinstance(servers, list):
            raise TypeError("expected a python-memcached memcache.Client")
        specs: list[tuple[str, int]] = []
        for s in servers:
            if s.family == socket.AF_UNIX:
                spec = f"unix:{s.address}"
            elif s.family == socket.AF_INET6:
                spec = f"inet6:[{s.ip}]:{s.port}"
            else:
                spec = f"{s.ip}:{s.port}"
            specs.append((spec, s.weight))
        return cls(specs)
