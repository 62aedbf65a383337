"""distcore's twemproxy profile against the real nutcracker 0.5.0 in front of real memcached.

Each test sets keys through nutcracker, asks every memcached which keys it holds, and checks that
each key sits exactly where ``KetamaRing.from_twemproxy`` says for the same pool config.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from distcore.hashing import HASH_FUNCTIONS, KetamaRing, hash_key

from keys import memcached_keys
from services import MemcachedServer, Nutcracker, locate

Pool = Callable[[int], list[MemcachedServer]]
Proxy = Callable[[dict[str, dict[str, Any]]], Nutcracker]


def assert_routes_like_nutcracker(
    nutcracker: Proxy,
    backends: Sequence[MemcachedServer],
    pool: dict[str, Any],
    keys: Sequence[bytes],
) -> KetamaRing:
    """Sets `keys` through a nutcracker serving `pool`; each must be where distcore's ring says."""
    proxy = nutcracker({"pool": pool})
    with proxy.client() as mc:
        mc.set_many(keys)
    held = locate(keys, [b.address for b in backends])
    ring = KetamaRing.from_twemproxy({"pool": pool})
    by_address = {f"{b.host}:{b.port}": i for i, b in enumerate(backends)}
    # Servers are named by alias when they have one; map names back to the backend that has it.
    names = {}
    for entry in pool["servers"]:
        address, _, alias = entry.partition(" ")
        host, port, _weight = address.split(":")
        names[alias or f"{host}:{port}"] = by_address[f"{host}:{port}"]
    predicted = {k: names[ring.get_node(k)] for k in keys}
    wrong = {k: (held[k], predicted[k]) for k in keys if held[k] != predicted[k]}
    assert not wrong, (
        f"{len(wrong)}/{len(keys)} keys not where distcore says: {list(wrong.items())[:5]}"
    )
    return ring


@pytest.mark.parametrize("distribution", ["ketama", "modula"])
@pytest.mark.parametrize("hash_name", HASH_FUNCTIONS)
def test_every_hash_function_routes_like_nutcracker(
    nutcracker: Proxy, memcached_pool: Pool, hash_name: str, distribution: str
) -> None:
    backends = memcached_pool(5)
    pool = {
        "hash": hash_name,
        "distribution": distribution,
        "servers": [b.entry(weight=w) for b, w in zip(backends, (1, 2, 1, 3, 1), strict=True)],
    }
    keys = memcached_keys(1500, seed=HASH_FUNCTIONS.index(hash_name), prefix=f"{hash_name}:")
    ring = assert_routes_like_nutcracker(nutcracker, backends, pool, keys)
    if hash_name == "crc32" and distribution == "ketama":
        # twemproxy's crc32 is 15 bits wide: keys land only on the servers owning the ring's first
        # arcs, the points up to the first one >= 2**15 (usually just one; the ports decide).
        values, owners = ring.points()
        first_arcs = int(np.searchsorted(values, 2**15 - 1)) + 1
        allowed = {ring.nodes[i] for i in owners[:first_arcs]}
        assert all(ring.hash(k) < 2**15 for k in keys)
        assert {ring.get_node(k) for k in keys} <= allowed


@pytest.mark.parametrize("size", [1, 2, 5, 25, 100])
@pytest.mark.parametrize("hash_name", ["fnv1a_64", "md5"])
def test_pool_sizes_route_like_nutcracker(
    nutcracker: Proxy, memcached_pool: Pool, size: int, hash_name: str
) -> None:
    backends = memcached_pool(size)
    pool = {"hash": hash_name, "distribution": "ketama", "servers": [b.entry() for b in backends]}
    keys = memcached_keys(3000, seed=size, prefix=f"n{size}:")
    ring = assert_routes_like_nutcracker(nutcracker, backends, pool, keys)
    points, _owners = ring.points()
    if size > 1:
        # float32 arithmetic gives 156 points per server, not 160, for 25 and 100 servers.
        assert len(points) == (156 if size in (25, 100) else 160) * size


def test_weights_and_aliases_are_both_honoured(nutcracker: Proxy, memcached_pool: Pool) -> None:
    backends = memcached_pool(5)
    weights = (3, 1, 1, 1, 2)
    aliases = ("cache-e", "b", "cache-a", "zz", "cache-c")  # config order is not name order
    pool = {
        "hash": "murmur",
        "distribution": "ketama",
        "servers": [
            b.entry(weight=w, name=a) for b, w, a in zip(backends, weights, aliases, strict=True)
        ],
    }
    keys = memcached_keys(4000, seed=7, prefix="alias:")
    ring = assert_routes_like_nutcracker(nutcracker, backends, pool, keys)
    assert ring.nodes == ("b", "zz", "cache-a", "cache-c", "cache-e")
    counts = {n: 0 for n in ring.nodes}
    for k in keys:
        counts[ring.get_node(k)] += 1
    assert counts["cache-e"] > 2 * counts["b"]


@pytest.mark.parametrize("distribution", ["ketama", "modula"])
def test_modula_and_ketama_use_sorted_name_order(
    nutcracker: Proxy, memcached_pool: Pool, distribution: str
) -> None:
    backends = memcached_pool(4)
    aliases = ("delta", "al", "charlie", "b")
    pool = {
        "hash": "fnv1a_32",
        "distribution": distribution,
        "servers": [
            b.entry(weight=1 + i, name=a)
            for i, (b, a) in enumerate(zip(backends, aliases, strict=True))
        ],
    }
    assert_routes_like_nutcracker(
        nutcracker, backends, pool, memcached_keys(2000, seed=11, prefix="mod:")
    )


def test_a_port_11211_server_is_hashed_by_its_bare_host(
    nutcracker: Proxy, memcached_pool: Pool, memcached_server: Callable[..., MemcachedServer]
) -> None:
    backends = [memcached_server(port=11211), *memcached_pool(2)]
    pool = {"hash": "md5", "distribution": "ketama", "servers": [b.entry() for b in backends]}
    ring = assert_routes_like_nutcracker(
        nutcracker, backends, pool, memcached_keys(3000, seed=13, prefix="bare:")
    )
    assert "127.0.0.1:11211" in ring.nodes


def test_hash_tag_routes_by_the_tagged_part(nutcracker: Proxy, memcached_pool: Pool) -> None:
    backends = memcached_pool(5)
    pool = {
        "hash": "fnv1a_64",
        "distribution": "ketama",
        "hash_tag": "{}",
        "servers": [b.entry() for b in backends],
    }
    keys = [f"user:{{{i}}}:{field}".encode() for i in range(300) for field in ("name", "mail")]
    keys += memcached_keys(1000, seed=17, prefix="tag:")
    ring = assert_routes_like_nutcracker(nutcracker, backends, pool, keys)
    for i in range(300):
        assert ring.get_node(f"user:{{{i}}}:name") == ring.get_node(f"user:{{{i}}}:mail")


def keys_landing_on(ring: KetamaRing, point: int, hash_name: str, count: int) -> list[bytes]:
    """Keys whose hash falls in the arc that ends at `point`."""
    points, _ = ring.points()
    i = int((points < point).sum())
    low = int(points[i - 1]) if i else -1
    found: list[bytes] = []
    n = 0
    while len(found) < count:
        key = f"tie:{n}".encode()
        if low < hash_key(hash_name, key) <= point:
            found.append(key)
        n += 1
    return found


@pytest.mark.parametrize("order", ["n81 first", "n975 first"])
def test_a_point_collision_goes_to_the_server_sorted_first(
    nutcracker: Proxy, memcached_pool: Pool, order: str
) -> None:
    # md5("n81-j") and md5("n975-j") share the point 607858066: twemproxy gives it to "n81",
    # the name that sorts first (shorter first), whatever the config order.
    backends = memcached_pool(2)
    names = ["n81", "n975"] if order == "n81 first" else ["n975", "n81"]
    pool = {
        "hash": "fnv1a_64",
        "distribution": "ketama",
        "servers": [b.entry(name=n) for b, n in zip(backends, names, strict=True)],
    }
    ring = KetamaRing.from_twemproxy({"pool": pool})
    points, owners = ring.points()
    tied = owners[points == 607858066]
    assert len(tied) == 2 and {ring.nodes[o] for o in tied} == {"n81"}
    keys = keys_landing_on(ring, 607858066, "fnv1a_64", 5)
    assert_routes_like_nutcracker(nutcracker, backends, pool, keys + memcached_keys(500, seed=19))
    assert {ring.get_node(k) for k in keys} == {"n81"}


def test_an_ejected_server_is_routed_around_as_ring_eject_says(
    nutcracker: Proxy, memcached_pool: Pool
) -> None:
    # auto_eject_hosts: after one failure nutcracker rebuilds the ring over the live servers,
    # recomputing every server's points (26 -> 25 live servers also crosses the float32 rule):
    # `KetamaRing.eject` must give the same continuum.
    backends = memcached_pool(26)
    pool = {
        "hash": "md5",
        "distribution": "ketama",
        "auto_eject_hosts": True,
        "server_failure_limit": 1,
        "server_retry_timeout": 600_000,
        "servers": [b.entry() for b in backends],
    }
    proxy = nutcracker({"pool": pool})
    ring = KetamaRing.from_twemproxy({"pool": pool})
    dead = backends[2]
    dead_name = f"{dead.host}:{dead.port}"
    dead.stop()
    probe = next(k for k in memcached_keys(500, seed=31) if ring.get_node(k) == dead_name)
    with socket.create_connection(proxy.address(), timeout=5) as sock:
        sock.sendall(b"get " + probe + b"\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"SERVER_ERROR"), reply
    ring.eject(dead_name)
    live = [b for b in backends if b is not dead]
    keys = memcached_keys(3000, seed=37, prefix="eject:")
    with proxy.client() as mc:
        mc.set_many(keys)
    held = locate(keys, [b.address for b in live])
    index = {f"{b.host}:{b.port}": i for i, b in enumerate(live)}
    wrong = [k for k in keys if held[k] != index[ring.get_node(k)]]
    assert not wrong, f"{len(wrong)}/{len(keys)} keys not where the ejected ring says"
