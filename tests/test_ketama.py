"""KetamaRing's own guarantees: minimal disruption, ejection, replicas, batches, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distcore.exceptions import DuplicateNodeError, InvalidWeightError, NodeNotFoundError
from distcore.hashing import KetamaRing

KEYS = [f"key:{i}:{i * 7919 % 10007}" for i in range(20_000)]


def servers(n: int) -> list[str]:
    return [f"10.0.{i // 200}.{i % 200}:11211" for i in range(n)]


def assign(ring: KetamaRing) -> list[str]:
    nodes = ring.nodes
    return [nodes[i] for i in ring.get_node_indices(KEYS)]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(min_value=1, max_value=40))
def test_adding_a_server_moves_only_its_share_onto_it(n: int) -> None:
    # libmemcached's plain ketama has a fixed 100 points per server, so nothing else moves.
    ring = KetamaRing(servers(n), profile="libmemcached")
    before = assign(ring)
    new = servers(n + 1)[-1]
    ring.add_node(new)
    after = assign(ring)
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert all(a == new for _, a in moved)
    assert abs(len(moved) / len(KEYS) - 1 / (n + 1)) < 0.6 / (n + 1) + 0.01


@settings(max_examples=25, deadline=None)
@given(n=st.integers(min_value=2, max_value=40), data=st.data())
def test_removing_a_server_moves_only_its_keys(n: int, data: st.DataObject) -> None:
    ring = KetamaRing(servers(n), profile="libmemcached")
    before = assign(ring)
    gone = data.draw(st.sampled_from(servers(n)))
    ring.remove_node(gone)
    after = assign(ring)
    assert all(b == gone for b, a in zip(before, after, strict=True) if b != a)
    assert gone not in after


@pytest.mark.parametrize(("n", "moves_between_old"), [(9, False), (24, True)])
def test_twemproxy_moves_keys_between_old_servers_only_when_points_per_server_change(
    n: int, moves_between_old: bool
) -> None:
    # 24 -> 25 servers changes every server's points from 160 to 156 (the float32 rule).
    ring = KetamaRing(servers(n))
    before = assign(ring)
    new = servers(n + 1)[-1]
    ring.add_node(new)
    after = assign(ring)
    between_old = sum(1 for b, a in zip(before, after, strict=True) if b != a and a != new)
    assert (between_old > 0) is moves_between_old


def test_eject_rebuilds_over_live_servers_and_restore_brings_back_the_same_ring() -> None:
    ring = KetamaRing(servers(5), hash="md5")
    before = assign(ring)
    ring.eject(servers(5)[2])
    during = assign(ring)
    assert servers(5)[2] not in during
    assert ring.distribution()[servers(5)[2]] == 0
    ring.restore(servers(5)[2])
    assert assign(ring) == before


def test_random_distribution_spreads_over_live_servers_only() -> None:
    ring = KetamaRing(servers(4), distribution="random")
    ring.eject(servers(4)[0])
    counts = {s: 0 for s in servers(4)}
    for k in KEYS[:6000]:
        counts[ring.get_node(k)] += 1
    assert counts[servers(4)[0]] == 0
    assert all(1700 < counts[s] < 2300 for s in servers(4)[1:])


@pytest.mark.parametrize("distribution", ["ketama", "modula"])
def test_get_nodes_gives_distinct_servers_starting_with_get_node(distribution: str) -> None:
    ring = KetamaRing(servers(6), distribution=distribution)
    for k in KEYS[:500]:
        nodes = ring.get_nodes(k, 3)
        assert len(set(nodes)) == 3 and nodes[0] == ring.get_node(k)
    assert sorted(ring.get_nodes("k", 99)) == sorted(servers(6))


@pytest.mark.parametrize("hash_name", ["fnv1a_64", "md5", "murmur"])
def test_batch_lookups_equal_single_lookups(hash_name: str) -> None:
    ring = KetamaRing(servers(30), hash=hash_name, hash_tag="{}")
    keys = [*KEYS, "a{tag}b", "", "é" * 40]
    single = [ring.get_index(k) for k in keys]
    assert ring.get_node_indices(keys).tolist() == single
    assert ring.get_node_indices(tuple(k.encode() for k in keys)).tolist() == single
    hashes = np.array([ring.hash(k) for k in keys], dtype=np.uint64)
    assert ring.get_node_indices(hashes).tolist() == single


def test_a_rejected_change_leaves_the_ring_as_it_was() -> None:
    ring = KetamaRing(servers(4))
    before = assign(ring)
    with pytest.raises(DuplicateNodeError):
        ring.add_node(servers(4)[1])
    with pytest.raises(InvalidWeightError):
        ring.set_weight(servers(4)[1], 0)
    with pytest.raises(NodeNotFoundError):
        ring.remove_node("10.9.9.9:1")
    with pytest.raises(ValueError, match="2\\*\\*32"):
        ring.get_node_indices(np.array([2**40], dtype=np.uint64))
    with pytest.raises(TypeError):
        ring.get_node_indices(["ok", 3])
    assert assign(ring) == before and len(ring) == 4
