"""distcore's libmemcached profiles against libmemcached itself (1.0.16 inside pylibmc's wheel).

pylibmc stores keys in real memcached servers; each key must sit where distcore's ring says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pylibmc
import pytest

from distcore.hashing import KetamaRing

from keys import memcached_keys
from services import MemcachedServer, locate

Pool = Callable[[int], list[MemcachedServer]]


def assert_routes_like_libmemcached(
    backends: Sequence[MemcachedServer],
    weights: Sequence[int],
    behaviors: dict[str, Any],
    ring: KetamaRing,
    keys: Sequence[bytes],
) -> None:
    specs = [f"{b.host}:{b.port}:{w}" for b, w in zip(backends, weights, strict=True)]
    client = pylibmc.Client(specs, binary=False, behaviors=behaviors)
    try:
        for k in keys:
            assert client.set(k, b"x"), f"pylibmc could not set {k!r}"
    finally:
        client.disconnect_all()
    held = locate(keys, [b.address for b in backends])
    index = {f"{b.host}:{b.port}": i for i, b in enumerate(backends)}
    wrong = [(k, held[k], ring.get_node(k)) for k in keys if held[k] != index[ring.get_node(k)]]
    assert not wrong, f"{len(wrong)}/{len(keys)} keys not where distcore says: {wrong[:5]}"


@pytest.mark.parametrize(
    ("size", "weights"),
    [(5, (1, 2, 1, 3, 1)), (25, (1,) * 25), (8, (600, 300, 200, 350, 1000, 800, 950, 100))],
)
def test_weighted_ketama_routes_like_libmemcached(
    memcached_pool: Pool, size: int, weights: tuple[int, ...]
) -> None:
    # PHP's OPT_LIBKETAMA_COMPATIBLE sets exactly this behaviour.
    backends = memcached_pool(size)
    ring = KetamaRing(
        [f"{b.host}:{b.port}:{w}" for b, w in zip(backends, weights, strict=True)],
        profile="libmemcached_weighted",
    )
    keys = memcached_keys(3000, seed=size, prefix="lmw:")
    assert_routes_like_libmemcached(backends, weights, {"ketama_weighted": True}, ring, keys)


@pytest.mark.parametrize("hash_name", [None, "md5", "fnv1a_32", "murmur", "crc"])
def test_plain_ketama_routes_like_libmemcached(memcached_pool: Pool, hash_name: str | None) -> None:
    backends = memcached_pool(5)
    behaviors: dict[str, Any] = {"ketama": True}
    if hash_name:
        behaviors["hash"] = hash_name
    # pylibmc calls twemproxy's 15-bit "crc32" just "crc".
    ours = {None: None, "crc": "crc32"}.get(hash_name, hash_name)
    ring = KetamaRing([f"{b.host}:{b.port}" for b in backends], profile="libmemcached", hash=ours)
    keys = memcached_keys(3000, seed=5, prefix=f"lmk{hash_name}:")
    assert_routes_like_libmemcached(backends, (1,) * 5, behaviors, ring, keys)


def test_plain_ketama_turns_weighted_when_a_weight_is_above_one(memcached_pool: Pool) -> None:
    backends = memcached_pool(4)
    weights = (1, 3, 1, 2)
    ring = KetamaRing(
        [f"{b.host}:{b.port}:{w}" for b, w in zip(backends, weights, strict=True)],
        profile="libmemcached",
    )
    keys = memcached_keys(3000, seed=23, prefix="lmauto:")
    assert_routes_like_libmemcached(backends, weights, {"ketama": True}, ring, keys)


@pytest.mark.parametrize("first", [30472, 31107])
def test_a_point_collision_goes_to_the_server_listed_first(
    memcached_server: Callable[..., MemcachedServer], first: int
) -> None:
    # 127.0.0.1:30472 and :31107 share the point 3059044012; libmemcached keeps config order
    # (twemproxy would pick :30472 both times).
    ports = [first, 31107 if first == 30472 else 30472]
    backends = [memcached_server(port=p) for p in ports]
    ring = KetamaRing([f"127.0.0.1:{p}" for p in ports], profile="libmemcached_weighted")
    points, owners = ring.points()
    assert {ring.nodes[o] for o in owners[points == 3059044012]} == {f"127.0.0.1:{first}"}
    arc_start = int(points[points < 3059044012].max())
    tie_keys: list[bytes] = []
    n = 0
    while len(tie_keys) < 3:
        key = f"tie{n}".encode()
        if arc_start < ring.hash(key) <= 3059044012:
            tie_keys.append(key)
        n += 1
    assert_routes_like_libmemcached(
        backends, (1, 1), {"ketama_weighted": True}, ring, tie_keys + memcached_keys(300, seed=29)
    )
    assert {ring.get_node(k) for k in tie_keys} == {f"127.0.0.1:{first}"}
