"""PymemcacheRing and PythonMemcachedRing against the real clients: pymemcache 4.0.0's HashClient
and python-memcached 1.62's Client, on thousands of keys, offline and through real memcached."""

from __future__ import annotations

import random
from typing import Any

import memcache
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymemcache.client.hash import HashClient
from pymemcache.client.murmur3 import murmur3_32 as pymemcache_murmur3

from distcore._clients import PymemcacheRing, PythonMemcachedRing
from distcore.exceptions import EmptyRingError, InvalidWeightError

from services import locate

# Characters a memcached key may hold (no space or control character), ASCII and beyond.
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789:_-./éüßñçœ日本語键値🙂👍Ωж"


def random_keys(n: int, seed: int = 0, max_len: int = 30) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, max_len))) for _ in range(n)]


KEYS = random_keys(4000)
NON_ASCII = [k for k in KEYS if not k.isascii()]


def test_the_key_set_has_plenty_of_non_ascii_keys() -> None:
    assert len(NON_ASCII) > 1000


# ------------------------------------------------------------------------------------------
# pymemcache

PYMEMCACHE_SERVERS: dict[str, list[Any]] = {
    "tuples": [("10.0.0.1", 11211), ("10.0.0.2", 11211), ("10.0.0.3", 11212)],
    "strings": ["cache-a:11211", "cache-b", "[::1]:11213", "10.1.1.1:7000"],
    "mixed with a socket": [("10.0.0.1", 11211), "unix:/tmp/memcached.sock", "/var/run/mc.sock"],
    "many": [(f"10.0.{i // 256}.{i % 256}", 11211 + i % 3) for i in range(50)],
    "one": [("solo", 11211)],
}


@pytest.mark.parametrize("servers", PYMEMCACHE_SERVERS)
def test_pymemcache_keys_go_where_hashclient_sends_them(servers: str) -> None:
    specs = PYMEMCACHE_SERVERS[servers]
    client = HashClient(specs, use_pooling=False, allow_unicode_keys=True)
    ring = PymemcacheRing(specs)
    assert list(ring.nodes) == client.hasher.nodes
    keys = KEYS if servers != "many" else KEYS[:1000]
    for key in keys:
        assert ring.get_node(key) == client.hasher.get_node(key), key
    # HashClient's own choice of client object, not just its hasher's answer.
    for key in keys[:500]:
        assert client._get_client(key) is client.clients[ring.get_node(key)], key
    idx = ring.get_node_indices(keys)
    assert idx.dtype == np.int32
    assert [ring.nodes[i] for i in idx.tolist()] == [client.hasher.get_node(k) for k in keys]


def test_pymemcache_bytes_keys_hash_as_their_repr() -> None:
    specs = PYMEMCACHE_SERVERS["tuples"]
    client = HashClient(specs, use_pooling=False)
    ring = PymemcacheRing(specs)
    differ = 0
    for key in KEYS[:1500]:
        raw = key.encode()
        assert ring.get_node(raw) == client.hasher.get_node(raw) == ring.get_node(repr(raw))
        assert client._get_client(raw) is client.clients[ring.get_node(raw)]
        differ += ring.get_node(raw) != ring.get_node(key)
    assert differ > 0
    assert ring.get_node_indices([k.encode() for k in KEYS[:200]]).tolist() == [
        ring.get_index(k.encode()) for k in KEYS[:200]
    ]


def test_pymemcache_hashes_code_points_by_their_low_byte_not_utf8() -> None:
    ring = PymemcacheRing([("a", 1), ("b", 2), ("c", 3)])
    client = HashClient([("a", 1), ("b", 2), ("c", 3)], use_pooling=False)
    # "é" is U+00E9 and "ǩ" U+01E9: the same low byte, so pymemcache cannot tell them apart.
    for stem in ("k", "key-", "x" * 7):
        assert ring.get_node(stem + "é") == ring.get_node(stem + "\u01e9")
        assert pymemcache_murmur3(f"a:1-{stem}é") == pymemcache_murmur3(f"a:1-{stem}\u01e9")
        assert ring.get_node(stem + "é") == client.hasher.get_node(stem + "é")
    # Lone surrogates have no UTF-8 but do have code points.
    for key in ("\ud800", "ab\udfffcd", "\udc80" * 5):
        assert ring.get_node(key) == client.hasher.get_node(key)


@settings(max_examples=150, deadline=None)
@given(
    hosts=st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=8),
    ports=st.lists(st.integers(1, 65535), min_size=8, max_size=8),
    keys=st.lists(
        # Every code point, lone surrogates included: pymemcache hashes them too.
        st.one_of(st.text(st.characters(exclude_categories=()), max_size=20), st.binary()),
        min_size=1,
        max_size=40,
    ),
)
def test_property_pymemcache_any_servers_and_keys(
    hosts: list[str], ports: list[int], keys: list[str | bytes]
) -> None:
    specs = [(h, p) for h, p in zip(hosts, ports, strict=False)]
    hasher = HashClient(specs, use_pooling=False).hasher
    ring = PymemcacheRing(specs)
    assert list(ring.nodes) == hasher.nodes
    for key in keys:
        assert ring.get_node(key) == hasher.get_node(key)


def test_pymemcache_equal_scores_go_to_the_larger_node_name() -> None:
    # murmur3("n83149-tie") == murmur3("n122186-tie"), found by a birthday search.
    a, b, key = "n83149", "n122186", "tie"
    tie = pymemcache_murmur3(f"{a}-{key}")
    assert pymemcache_murmur3(f"{b}-{key}") == tie
    low = next(n for n in (f"m{i}" for i in range(100)) if pymemcache_murmur3(f"{n}-{key}") < tie)
    for order in ([a, b], [b, a], [a, low, b], [b, low, a]):
        specs = [f"unix:{n}" for n in order]
        ring = PymemcacheRing(specs)
        client = HashClient(specs, use_pooling=False)
        assert ring.get_node(key) == client.hasher.get_node(key) == max(a, b)


def test_pymemcache_repeated_servers_count_once() -> None:
    specs = [("a", 1), "a:1", ("b", 2)]
    ring = PymemcacheRing(specs)
    assert ring.nodes == ("a:1", "b:2")
    assert ring.nodes == tuple(HashClient(specs, use_pooling=False).hasher.nodes)


def test_pymemcache_ring_from_a_live_client_follows_its_servers() -> None:
    specs = [("10.0.0.1", 11211), "10.0.0.2:0011", "unix:relative.sock", "/abs.sock"]
    client = HashClient(specs, use_pooling=False)
    ring = PymemcacheRing.from_client(client)
    assert list(ring.nodes) == client.hasher.nodes
    client.hasher.remove_node("10.0.0.1:11211")  # as HashClient does with a dead server
    after = PymemcacheRing.from_client(client)
    assert all(after.get_node(k) == client.hasher.get_node(k) for k in KEYS[:500])
    with pytest.raises(TypeError):
        PymemcacheRing.from_client(object())


def test_pymemcache_ring_refuses_what_hashclient_refuses() -> None:
    with pytest.raises(EmptyRingError):
        PymemcacheRing([]).get_node("k")
    with pytest.raises(TypeError):
        PymemcacheRing("10.0.0.1:11211")
    with pytest.raises(TypeError):
        PymemcacheRing([["10.0.0.1", 11211]])
    with pytest.raises(ValueError):
        PymemcacheRing(["10.0.0.1:port"])
    with pytest.raises(TypeError):
        PymemcacheRing(["a:1"]).get_node_indices(np.zeros(3, dtype=np.uint64))


def test_pymemcache_through_real_memcached(memcached_pool: Any) -> None:
    servers = memcached_pool(4)
    specs = [s.address for s in servers]
    client = HashClient(specs, use_pooling=False, allow_unicode_keys=True, default_noreply=False)
    keys = random_keys(1500, seed=11, max_len=20)
    for key in keys:
        assert client.set(key, b"x") is True
    where = locate(keys, specs)
    ring = PymemcacheRing(specs)
    index = ring.get_node_indices(keys).tolist()
    assert [where[k.encode()] for k in keys] == index


# ------------------------------------------------------------------------------------------
# python-memcached

PYTHON_MEMCACHED_SERVERS: dict[str, list[Any]] = {
    "plain": ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"],
    "weights": [("10.0.0.1:11211", 1), ("10.0.0.2:11211", 2), "10.0.0.3", ("10.0.0.4:7", 3)],
    "forms": ["inet:cache-a:11211", "inet6:[::1]:11212", "unix:/tmp/mc.sock", "cache-b"],
    "many": [f"10.0.{i // 256}.{i % 256}:11211" for i in range(37)],
    "one": ["solo:11211"],
}


def host_name(host: Any) -> str:
    """distcore's name for a python-memcached _Host."""
    if host.family.name == "AF_UNIX":
        return f"unix:{host.address}"
    if host.family.name == "AF_INET6":
        return f"[{host.ip}]:{host.port}"
    return f"{host.ip}:{host.port}"


def python_memcached_choice(client: memcache.Client, key: Any) -> Any:
    """Client._get_server's pick with every server alive, without connecting."""
    key = client._encode_key(key)
    serverhash = key[0] if isinstance(key, tuple) else memcache.serverHashFunction(key)
    return client.buckets[serverhash % len(client.buckets)]


@pytest.mark.parametrize("servers", PYTHON_MEMCACHED_SERVERS)
def test_python_memcached_keys_go_where_client_sends_them(servers: str) -> None:
    specs = PYTHON_MEMCACHED_SERVERS[servers]
    client = memcache.Client(specs)
    ring = PythonMemcachedRing(specs)
    assert list(ring.nodes) == [host_name(h) for h in client.servers]
    assert ring.weights == [h.weight for h in client.servers]
    for key in KEYS:
        assert ring.get_node(key) == host_name(python_memcached_choice(client, key)), key
        raw = key.encode()
        assert ring.get_node(raw) == ring.get_node(key)
    idx = ring.get_node_indices(KEYS).tolist()
    assert idx == [ring.get_index(k) for k in KEYS]
    assert [ring.nodes[i] for i in idx] == [ring.get_node(k) for k in KEYS]


@settings(max_examples=150, deadline=None)
@given(
    weights=st.lists(st.integers(1, 5), min_size=1, max_size=8),
    keys=st.lists(st.one_of(st.text(max_size=20), st.binary(max_size=20)), max_size=40),
)
def test_property_python_memcached_any_weights_and_keys(
    weights: list[int], keys: list[str | bytes]
) -> None:
    specs = [(f"10.0.0.{i}:{11211 + i}", w) for i, w in enumerate(weights)]
    client = memcache.Client(specs)
    ring = PythonMemcachedRing(specs)
    for key in keys:
        assert ring.get_node(key) == host_name(python_memcached_choice(client, key))


def test_python_memcached_hash_is_cmemcache_hash() -> None:
    for key in KEYS[:500]:
        raw = key.encode()
        assert PythonMemcachedRing.hash(raw) == memcache.cmemcache_hash(raw)
        assert PythonMemcachedRing.hash(key) == memcache.cmemcache_hash(raw)


def test_python_memcached_tuple_and_int_keys() -> None:
    specs = PYTHON_MEMCACHED_SERVERS["weights"]
    client = memcache.Client(specs)
    ring = PythonMemcachedRing(specs)
    for h in (0, 1, 6, 7, 12345, -5, 2**70):
        want = host_name(python_memcached_choice(client, (h, "k")))
        assert ring.get_node((h, "whatever")) == want
    hashes = np.array([0, 1, 6, 7, 12345, 2**63], dtype=np.uint64)
    assert ring.get_node_indices(hashes).tolist() == [ring.get_index((int(h), "k")) for h in hashes]
    # *_multi hash int keys as str(key).
    assert all(ring.get_node(i) == ring.get_node(str(i)) for i in range(300))


def test_python_memcached_ring_from_a_live_client() -> None:
    specs = PYTHON_MEMCACHED_SERVERS["weights"] + PYTHON_MEMCACHED_SERVERS["forms"]
    client = memcache.Client(specs)
    ring = PythonMemcachedRing.from_client(client)
    assert ring.nodes == PythonMemcachedRing(specs).nodes
    assert all(ring.get_node(k) == host_name(python_memcached_choice(client, k)) for k in KEYS)
    with pytest.raises(TypeError):
        PythonMemcachedRing.from_client(object())


def test_python_memcached_ring_refuses_bad_servers() -> None:
    with pytest.raises(EmptyRingError):
        PythonMemcachedRing([]).get_node("k")
    with pytest.raises(EmptyRingError):
        PythonMemcachedRing([]).get_node((1, "k"))
    with pytest.raises(InvalidWeightError):
        PythonMemcachedRing([("a:1", 0)])
    with pytest.raises(ValueError, match="parse"):
        PythonMemcachedRing(["a:b:c"])
    with pytest.raises(ValueError):
        memcache.Client(["a:b:c"])
    with pytest.raises(TypeError):
        PythonMemcachedRing("a:1")
    with pytest.raises(TypeError):
        PythonMemcachedRing(["a:1"]).get_node(1.5)


def test_python_memcached_through_real_memcached(memcached_pool: Any) -> None:
    servers = memcached_pool(3)
    specs = [f"{s.host}:{s.port}" for s in servers]
    weighted = [(specs[0], 1), (specs[1], 3), (specs[2], 2)]
    client = memcache.Client(weighted)
    ring = PythonMemcachedRing(weighted)
    keys = random_keys(1500, seed=12, max_len=20)
    # _get_server itself (it connects to the live servers).
    for key in keys[:300]:
        server, _ = client._get_server(client._encode_key(key))
        assert f"{server.ip}:{server.port}" == ring.get_node(key), key
    for key in keys:
        assert client.set(key, "x")
    where = locate(keys, [s.address for s in servers])
    assert [where[k.encode()] for k in keys] == ring.get_node_indices(keys).tolist()
    client.disconnect_all()
