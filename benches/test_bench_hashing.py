"""Consistent hashing from Python: distcore side by side with the peers, in one run.

Each benchmark records in ``extra_info`` what `report.py` needs to pair it with its peer:
``impl`` ("distcore" or "peer"), ``name`` (its label), ``peer`` (for distcore: the peer's
``name`` in the same group), ``keys`` (keys per timed call, for ns per key) and ``target_ns``
(the issue's per-key target, or the build-time target). Nothing here asserts on time.

Per-call figures time ``deque(map(fn, keys), maxlen=0)`` over 1000 keys: the least loop overhead
Python allows (about 5 ns a key), the same for distcore and the peer.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from itertools import repeat
from typing import Any

import numpy as np
import pytest

from distcore import hashing

uhashring = pytest.importorskip("uhashring")

GET_NODE = "get_node: 1 key per call, 10 servers"
BATCH = "get_node_indices(list of str): 1M keys, 100 servers"
PREHASHED = "pre-hashed uint64 array: 1M keys, 100 servers"
BUILD = "build a 1000-server ring"
HASHES = "hash 1 key per call"

TEN = [f"10.0.0.{i}:11211:1" for i in range(10)]
HUNDRED = [f"10.0.{i // 250}.{i % 250}:11211:1" for i in range(100)]
THOUSAND = [f"10.{i // 62500}.{i // 250 % 250}.{i % 250}:11211:1" for i in range(1000)]
# uhashring nodes named as twemproxy names these servers (host:port), weight 1.
TEN_NAMES = [s.rsplit(":", 1)[0] for s in TEN]
HUNDRED_NAMES = [s.rsplit(":", 1)[0] for s in HUNDRED]
THOUSAND_NAMES = [s.rsplit(":", 1)[0] for s in THOUSAND]

# Peer loops over 1M keys would take seconds per round; they run on the first 100k.
PEER_BATCH = 100_000


def tag(benchmark: Any, group: str, impl: str, name: str, keys: int, **extra: Any) -> None:
    benchmark.group = group
    benchmark.name = name
    benchmark.extra_info.update(impl=impl, name=name, keys=keys, **extra)


def each(fn: Callable[..., Any], *iterables: Any) -> Callable[[], None]:
    """A callable that applies ``fn`` over the iterables with the least Python overhead."""

    def run() -> None:
        deque(map(fn, *iterables), maxlen=0)

    return run


def optional(cls_name: str) -> Any:
    cls = getattr(hashing, cls_name, None)
    if cls is None:
        pytest.skip(f"distcore.hashing.{cls_name} is not in this build")
    return cls


# --- get_node, one key per call, 10 servers ---------------------------------------------------


@pytest.mark.parametrize(
    ("hash_name", "peer", "target_ns"),
    [("fnv1a_64", "uhashring default", 150), ("md5", "uhashring ketama", 400)],
)
def test_get_node_distcore_ketama(
    benchmark: Any, keys_1k: list[str], hash_name: str, peer: str, target_ns: float
) -> None:
    ring = hashing.KetamaRing(TEN, hash=hash_name)
    tag(
        benchmark,
        GET_NODE,
        "distcore",
        f"KetamaRing(hash={hash_name})",
        len(keys_1k),
        peer=peer,
        target_ns=target_ns,
    )
    benchmark(each(ring.get_node, keys_1k))


@pytest.mark.parametrize(
    ("hash_fn", "peer"), [(None, "uhashring default"), ("ketama", "uhashring ketama")]
)
def test_get_node_distcore_hashring(
    benchmark: Any, keys_1k: list[str], hash_fn: str | None, peer: str
) -> None:
    cls = optional("HashRing")
    ring = cls(TEN_NAMES, hash_fn=hash_fn) if hash_fn else cls(TEN_NAMES)
    # Both uhashring modes hash keys with md5, so the md5 target applies.
    tag(
        benchmark,
        GET_NODE,
        "distcore",
        f"HashRing({hash_fn or 'default'})",
        len(keys_1k),
        peer=peer,
        target_ns=400,
    )
    benchmark(each(ring.get_node, keys_1k))


@pytest.mark.parametrize(("hash_fn", "name"), [(None, "default"), ("ketama", "ketama")])
def test_get_node_uhashring(
    benchmark: Any, keys_1k: list[str], hash_fn: str | None, name: str
) -> None:
    ring = uhashring.HashRing(TEN_NAMES, hash_fn=hash_fn)
    tag(benchmark, GET_NODE, "peer", f"uhashring {name}", len(keys_1k))
    benchmark(each(ring.get_node, keys_1k))


# --- batch: 1M keys, 100 servers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("hash_name", "peer", "target_ns"),
    [("fnv1a_64", "uhashring default, loop", 40), ("md5", "uhashring ketama, loop", 250)],
)
def test_batch_distcore_ketama(
    benchmark: Any, keys_1m: list[str], hash_name: str, peer: str, target_ns: float
) -> None:
    ring = hashing.KetamaRing(HUNDRED, hash=hash_name)
    tag(
        benchmark,
        BATCH,
        "distcore",
        f"KetamaRing(hash={hash_name}).get_node_indices",
        len(keys_1m),
        peer=peer,
        target_ns=target_ns,
    )
    out = benchmark.pedantic(ring.get_node_indices, (keys_1m,), rounds=5, warmup_rounds=1)
    assert len(out) == len(keys_1m)


@pytest.mark.parametrize(("hash_fn", "name"), [(None, "default"), ("ketama", "ketama")])
def test_batch_uhashring_loop(
    benchmark: Any, keys_1m: list[str], hash_fn: str | None, name: str
) -> None:
    ring = uhashring.HashRing(HUNDRED_NAMES, hash_fn=hash_fn)
    keys = keys_1m[:PEER_BATCH]
    tag(benchmark, BATCH, "peer", f"uhashring {name}, loop", len(keys))
    out = benchmark.pedantic(lambda: [ring.get_node(k) for k in keys], rounds=3)
    assert len(out) == len(keys)


# --- pre-hashed uint64 arrays: 1M keys, 100 servers -------------------------------------------


@pytest.mark.parametrize(
    ("cls_name", "n", "target_ns"),
    [
        ("MaglevRing", 100, 10),
        ("JumpRing", 100, 10),
        ("AnchorRing", 100, None),
        ("RendezvousRing", 16, 10),
        ("RendezvousRing", 100, None),
    ],
)
def test_prehashed_distcore(
    benchmark: Any, hashes_1m: np.ndarray, cls_name: str, n: int, target_ns: float | None
) -> None:
    ring = optional(cls_name)([f"node-{i}" for i in range(n)])
    extra = {"target_ns": target_ns} if target_ns is not None else {}
    tag(
        benchmark,
        PREHASHED,
        "distcore",
        f"{cls_name}({n}).get_node_indices(uint64)",
        len(hashes_1m),
        peer="jump.hash loop",
        servers=n,
        **extra,
    )
    out = benchmark.pedantic(ring.get_node_indices, (hashes_1m,), rounds=10, warmup_rounds=1)
    assert len(out) == len(hashes_1m)


def test_prehashed_distcore_ketama(benchmark: Any, hashes_1m: np.ndarray) -> None:
    # Ketama key hashes are 32-bit; the same array, truncated.
    hashes = hashes_1m & np.uint64(0xFFFF_FFFF)
    ring = hashing.KetamaRing(HUNDRED)
    tag(
        benchmark,
        PREHASHED,
        "distcore",
        "KetamaRing(100).get_node_indices(uint32 in uint64)",
        len(hashes),
        peer="jump.hash loop",
    )
    out = benchmark.pedantic(ring.get_node_indices, (hashes,), rounds=10, warmup_rounds=1)
    assert len(out) == len(hashes)


def test_prehashed_jump_hash_loop(benchmark: Any, hashes_1m: np.ndarray) -> None:
    jump = pytest.importorskip("jump")
    hashes = hashes_1m.tolist()
    tag(benchmark, PREHASHED, "peer", "jump.hash loop", len(hashes))

    def run() -> list[int]:
        return list(map(jump.hash, hashes, repeat(100)))

    out = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    assert len(out) == len(hashes)


# --- building a 1000-server ketama ring -------------------------------------------------------


def test_build_distcore_ketama(benchmark: Any) -> None:
    tag(
        benchmark,
        BUILD,
        "distcore",
        "KetamaRing(1000 servers)",
        1,
        peer="uhashring ketama",
        target_ns=10e6,
    )
    ring = benchmark.pedantic(hashing.KetamaRing, (THOUSAND,), rounds=20, warmup_rounds=1)
    assert len(ring) == 1000


def test_build_distcore_hashring(benchmark: Any) -> None:
    cls = optional("HashRing")
    tag(benchmark, BUILD, "distcore", "HashRing(1000 nodes, ketama)", 1, peer="uhashring ketama")
    benchmark.pedantic(lambda: cls(THOUSAND_NAMES, hash_fn="ketama"), rounds=10, warmup_rounds=1)


def test_build_uhashring_ketama(benchmark: Any) -> None:
    tag(benchmark, BUILD, "peer", "uhashring ketama", 1)
    ring = benchmark.pedantic(
        # About a second a build (40 md5 x 4 points per node, in Python): two rounds are enough.
        lambda: uhashring.HashRing(THOUSAND_NAMES, hash_fn="ketama"),
        rounds=2,
    )
    assert len(ring.get_nodes()) == 1000


# --- raw hash functions, one key per call -----------------------------------------------------


def test_hash_distcore_murmur3_32(benchmark: Any, keys_1k_bytes: list[bytes]) -> None:
    tag(benchmark, HASHES, "distcore", "murmur3_32", len(keys_1k_bytes), peer="mmh3.hash")
    benchmark(each(hashing.murmur3_32, keys_1k_bytes))


def test_hash_mmh3(benchmark: Any, keys_1k_bytes: list[bytes]) -> None:
    mmh3 = pytest.importorskip("mmh3")
    tag(benchmark, HASHES, "peer", "mmh3.hash", len(keys_1k_bytes))
    benchmark(each(mmh3.hash, keys_1k_bytes, repeat(0), repeat(False)))


def test_hash_distcore_xxh3_64(benchmark: Any, keys_1k_bytes: list[bytes]) -> None:
    tag(
        benchmark,
        HASHES,
        "distcore",
        "xxh3_64",
        len(keys_1k_bytes),
        peer="xxhash.xxh3_64_intdigest",
    )
    benchmark(each(hashing.xxh3_64, keys_1k_bytes))


def test_hash_xxhash(benchmark: Any, keys_1k_bytes: list[bytes]) -> None:
    xxhash = pytest.importorskip("xxhash")
    tag(benchmark, HASHES, "peer", "xxhash.xxh3_64_intdigest", len(keys_1k_bytes))
    benchmark(each(xxhash.xxh3_64_intdigest, keys_1k_bytes))


@pytest.mark.parametrize("name", ["fnv1a_64", "md5"])
def test_hash_distcore_hash_key(benchmark: Any, keys_1k_bytes: list[bytes], name: str) -> None:
    peer = {"md5": "hashlib.md5(k).digest()"}.get(name)
    extra = {"peer": peer} if peer else {}
    tag(benchmark, HASHES, "distcore", f'hash_key("{name}", k)', len(keys_1k_bytes), **extra)
    benchmark(each(hashing.hash_key, repeat(name), keys_1k_bytes))


def test_hash_hashlib_md5(benchmark: Any, keys_1k_bytes: list[bytes]) -> None:
    tag(benchmark, HASHES, "peer", "hashlib.md5(k).digest()", len(keys_1k_bytes))
    md5 = hashlib.md5

    def digest(k: bytes) -> bytes:
        return md5(k).digest()

    benchmark(each(digest, keys_1k_bytes))
