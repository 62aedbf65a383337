"""Consistent hashing that routes keys exactly as the cache proxies and clients you already run.

- :class:`KetamaRing`: twemproxy (nutcracker 0.5.0) and libmemcached, bit-exact, including their
  quirks (see ``docs/hashing.md``); :meth:`KetamaRing.from_twemproxy` reads a nutcracker YAML.
- :class:`HashRing`: a drop-in for ``uhashring.HashRing`` (both of its modes).
- :class:`PymemcacheRing` and :class:`PythonMemcachedRing`: the Python clients' own routing.
- :class:`JumpRing`, :class:`RendezvousRing`, :class:`MaglevRing`, :class:`BoundedLoadRing` and
  :class:`AnchorRing`: the other placement algorithms.
- :func:`hash_key`: the twelve twemproxy key hashes; :func:`murmur3_32` and :func:`xxh3_64`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import yaml

from distcore import _core
from distcore._clients import PymemcacheRing, PythonMemcachedRing
from distcore._core import (
    AnchorRing,
    BoundedLoadRing,
    JumpRing,
    MaglevRing,
    RendezvousRing,
    hash_key,
    hash_names,
    murmur3_32,
    xxh3_64,
)
from distcore._uhashring import HashRing
from distcore.exceptions import ConfigError

__all__ = [
    "HASH_FUNCTIONS",
    "AnchorRing",
    "BoundedLoadRing",
    "HashRing",
    "JumpRing",
    "KetamaRing",
    "MaglevRing",
    "PymemcacheRing",
    "PythonMemcachedRing",
    "RendezvousRing",
    "hash_key",
    "murmur3_32",
    "xxh3_64",
]

#: twemproxy's twelve key hash functions, in its own order.
HASH_FUNCTIONS: tuple[str, ...] = tuple(hash_names())

# The nutcracker pool keys that change where keys go; the others (listen, timeout, ...) do not.
_ROUTING_KEYS = ("servers", "hash", "distribution", "hash_tag")
_KNOWN_POOL_KEYS = {
    "listen", "hash", "hash_tag", "distribution", "timeout", "backlog", "client_connections",
    "redis", "redis_auth", "redis_db", "preconnect", "auto_eject_hosts", "server_connections",
    "server_retry_timeout", "server_failure_limit", "servers", "tcpkeepalive", "reuseport",
}  # fmt: skip


class KetamaRing(_core.KetamaRing):
    __doc__ = _core.KetamaRing.__doc__

    @classmethod
    def from_twemproxy(
        cls, config: str | os.PathLike[str] | Mapping[str, Any], pool: str | None = None
    ) -> KetamaRing:
        """Builds the ring a nutcracker pool routes with.

        Parameters
        ----------
        config : str, path or dict
            A nutcracker YAML: a path to the file, the YAML text, or the parsed dict.
        pool : str, optional
            The pool's name; may be left out when the config has exactly one pool.

        Raises
        ------
        ConfigError
            The config is not a valid nutcracker config; the message names the field.

        Examples
        --------
        >>> ring = KetamaRing.from_twemproxy('''
        ... alpha:
        ...   listen: 127.0.0.1:22121
        ...   hash: fnv1a_64
        ...   distribution: ketama
        ...   servers:
        ...    - 127.0.0.1:11211:1 cache-a
        ...    - 127.0.0.1:11212:1 cache-b
        ... ''')
        >>> ring.get_node("foo") in ("cache-a", "cache-b")
        True
        """
        pools = _load_nutcracker(config)
        if pool is None:
            if len(pools) != 1:
                raise ConfigError(
                    f"pool: the config has {len(pools)} pools, name one of {sorted(pools)}"
                )
            pool = next(iter(pools))
        if pool not in pools:
            raise ConfigError(f"pool: no pool {pool!r} in the config (has {sorted(pools)})")
        conf = pools[pool]
        if not isinstance(conf, Mapping):
            raise ConfigError(f"{pool}: a pool must be a mapping of settings")
        unknown = set(conf) - _KNOWN_POOL_KEYS
        if unknown:
            raise ConfigError(f"{pool}: unknown field {sorted(unknown)[0]!r}")
        servers = conf.get("servers")
        if not isinstance(servers, list) or not servers:
            raise ConfigError(f"{pool}.servers: must be a non-empty list")
        for s in servers:
            if not isinstance(s, str):
                raise ConfigError(f'{pool}.servers: each server must be "host:port:weight [name]"')
        hash_name = conf.get("hash", "fnv1a_64")
        if hash_name not in HASH_FUNCTIONS:
            raise ConfigError(f"{pool}.hash: unknown hash {hash_name!r}")
        hash_tag = conf.get("hash_tag")
        if hash_tag is not None and (not isinstance(hash_tag, str) or len(hash_tag) != 2):
            raise ConfigError(f"{pool}.hash_tag: must be two characters")
        try:
            return cls(
                servers,
                profile="twemproxy",
                hash=hash_name,
                distribution=str(conf.get("distribution", "ketama")),
                hash_tag=hash_tag,
            )
        except ConfigError as e:
            raise ConfigError(f"{pool}.{e}") from None


def _load_nutcracker(config: str | os.PathLike[str] | Mapping[str, Any]) -> Mapping[str, Any]:
    """Reads a nutcracker config from a path, YAML text or a dict."""
    if isinstance(config, Mapping):
        data: Any = config
    else:
        text = str(config)
        is_path = isinstance(config, os.PathLike) or ("\n" not in text and os.path.exists(text))
        if is_path:
            with open(text, encoding="utf-8") as f:
                text = f.read()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"not valid YAML: {e}") from None
    if not isinstance(data, Mapping) or not data:
        raise ConfigError("a nutcracker config is a mapping of pool names to pool settings")
    return data
