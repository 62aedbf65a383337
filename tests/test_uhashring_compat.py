"""distcore.hashing.HashRing side by side with uhashring 2.5 itself: same nodes, same answers."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from hashlib import md5
from typing import Any

import pytest
import uhashring
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distcore._uhashring import HashRing
from distcore.exceptions import EmptyRingError, InvalidWeightError, NodeNotFoundError

MODES: dict[str, dict[str, Any]] = {
    "md5": {},
    "ketama": {"hash_fn": "ketama"},
    "ketama-3-replicas": {"hash_fn": "ketama", "replicas": 3},
}


def random_keys(rng: random.Random, n: int) -> list[Any]:
    """str keys (ASCII, Latin-1, CJK, emoji, combining marks), ints, floats and bytes."""
    alphabet = "abcxyz019:_-/ éüßñ日本語键🙂👍🏽\u0301\u200d"
    keys: list[Any] = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.6:
            keys.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))))
        elif kind < 0.8:
            keys.append(rng.randint(-(10**12), 10**30))
        elif kind < 0.9:
            keys.append(rng.random() * 1e6)
        else:
            keys.append(rng.randbytes(rng.randint(0, 12)))
    return keys


def assert_same_ring(u: uhashring.HashRing, d: HashRing) -> None:
    """Everything uhashring says about its ring, without keys."""
    assert d.get_points() == u.get_points()
    assert d.ring == u.ring
    assert d.continuum == u.continuum
    assert d.size == u.size
    assert d.distribution == u.distribution
    assert list(d.get_nodes()) == list(u.get_nodes())
    assert d.conf == u.conf
    assert d.get_instances() == u.get_instances()
    assert d._keys == u._keys


def assert_same_answers(u: uhashring.HashRing, d: HashRing, keys: Iterable[Any]) -> None:
    """Every per-key answer, key by key."""
    keys = list(keys)
    for key in keys:
        node = u.get_node(key)
        assert d.get_node(key) == node, key
        assert d.get_node_pos(key) == u.get_node_pos(key), key
        assert d.get_server(key) == u.get_server(key), key
        assert d.get(key) == u.get(key), key
        assert d[key] == u[key], key
        assert d.get_node_weight(key) == u.get_node_weight(key), key
        assert d.get_key(key) == u.get_key(key), key
    names = list(d.get_nodes())
    assert d.get_node_indices(keys).tolist() == [names.index(u.get_node(k)) for k in keys]
    for key in keys[:20]:
        assert list(d.range(key)) == list(u.range(key))
        assert list(d.range(key, size=2)) == list(u.range(key, size=2))
        assert list(d.range(key, unique=False)) == list(u.range(key, unique=False))
        assert list(d.range(key, size=5, unique=False)) == list(u.range(key, size=5, unique=False))
        assert list(d.iterate_nodes(key)) == list(u.iterate_nodes(key))
        assert list(d.iterate_nodes(key, distinct=False)) == list(
            u.iterate_nodes(key, distinct=False)
        )


def both(nodes: Any, **kwargs: Any) -> tuple[uhashring.HashRing, HashRing]:
    return uhashring.HashRing(nodes, **kwargs), HashRing(nodes, **kwargs)


NODE_SETS: dict[str, Any] = {
    "one": ["solo"],
    "list": [f"cache-{i}.example.net:11211" for i in range(7)],
    "weights": {"a": 1, "b": 2, "c": 3, "d": 1, "e": 5},
    "confs": {
        "10.0.0.1": {"hostname": "h1", "port": 11211, "instance": "i1", "vnodes": 20},
        "10.0.0.2": {"port": 11212, "instance": "i2", "weight": 3},
        "10.0.0.3": {"vnodes": 7, "weight": 2, "nodename": "third"},
        "10.0.0.4": 4,
    },
    "unicode": ["nœud-é", "節点", "🙂-node", "plain"],
    "int names": [1, 2, 3, 40, 500],
    "many": [f"n{i}" for i in range(40)],
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("nodes", NODE_SETS)
def test_every_key_goes_where_uhashring_sends_it(mode: str, nodes: str) -> None:
    u, d = both(NODE_SETS[nodes], **MODES[mode])
    assert_same_ring(u, d)
    assert_same_answers(u, d, random_keys(random.Random(f"{mode}/{nodes}"), 400))


@pytest.mark.parametrize("mode", MODES)
def test_changes_keep_the_rings_equal(mode: str) -> None:
    rng = random.Random(mode)
    u, d = both(["a", "b", "c"], **MODES[mode])
    keys = random_keys(rng, 150)
    steps: list[Callable[[Any], None]] = [
        lambda r: r.add_node("d"),
        lambda r: r.add_node("e", {"weight": 3, "instance": "E"}),
        lambda r: r.__setitem__("f", 2),
        lambda r: r.remove_node("b"),
        lambda r: r.__delitem__("a"),
        lambda r: r.add_node("b"),  # back, now last in node order
        lambda r: r.add_node("e", {"weight": 1}),  # reweighted
        lambda r: r.add_node("c", {"vnodes": 9}),
        lambda r: r.add_node("c", {"instance": "only-the-instance"}),  # conf only, no rebuild
        lambda r: r.regenerate(),
        lambda r: r.remove_node("d"),
    ]
    for step in steps:
        step(u)
        step(d)
        assert_same_ring(u, d)
        assert_same_answers(u, d, keys)


@pytest.mark.parametrize("mode", MODES)
def test_regenerate_reevaluates_weight_fn(mode: str) -> None:
    load = {"a": 1, "b": 1, "c": 1}

    def weight_fn(**conf: Any) -> int:
        return load[conf["nodename"]]

    u, d = both(list(load), weight_fn=weight_fn, **MODES[mode])
    keys = random_keys(random.Random(1), 200)
    for new in ({"a": 4}, {"b": 2, "c": 3}, {"a": 1}):
        load.update(new)
        u.regenerate()
        d.regenerate()
        assert_same_ring(u, d)
        assert_same_answers(u, d, keys)


def test_weight_fn_sees_the_whole_conf() -> None:
    seen: list[dict[str, Any]] = []

    def weight_fn(**conf: Any) -> int:
        seen.append(conf)
        return conf["port"] - 11210

    d = HashRing({"a": {"port": 11211}, "b": {"port": 11213}}, weight_fn=weight_fn)
    assert {c["nodename"]: c["weight"] for c in d.conf.values()} == {"a": 1, "b": 3}
    assert set(seen[0]) == {"hostname", "instance", "nodename", "port", "vnodes", "weight"}


def test_bytes_keys_hash_as_their_repr_like_uhashring() -> None:
    for mode in MODES.values():
        u, d = both([f"n{i}" for i in range(10)], **mode)
        moved = 0
        for i in range(300):
            key = f"key-{i}".encode()
            assert d.get_node(key) == u.get_node(key) == d.get_node(repr(key))
            moved += d.get_node(key) != d.get_node(key.decode())
        assert moved > 0  # the repr really is what gets hashed


def test_int_and_str_keys_are_the_same_key() -> None:
    d = HashRing([f"n{i}" for i in range(10)])
    assert all(d.get_node(i) == d.get_node(str(i)) for i in range(500))


# md5("node197-0") word 1 == md5("node1651-1") word 2: two ketama points at the same position.
COLLIDING = ("node197", "node1651")
COLLISION_POINT = 2722577711


@pytest.mark.parametrize("order", [COLLIDING, COLLIDING[::-1]])
def test_a_ketama_point_collision_goes_to_the_last_inserted_node(order: tuple[str, str]) -> None:
    nodes = [*order, "other"]
    u, d = both(nodes, hash_fn="ketama")
    assert d.hashi("node197-0", 1) == d.hashi("node1651-1", 2) == COLLISION_POINT
    assert_same_ring(u, d)
    # Both points stay in the list, the ring dict has one entry, owned by the later node.
    assert [p for p, _ in d.get_points()].count(COLLISION_POINT) == 2
    assert d.size == len(d.get_points()) - 1
    assert d.ring[COLLISION_POINT] == order[1]
    # Keys whose first point is the collision go to the later node, as with uhashring.
    keys = [f"k{i}" for i in range(60_000)]
    pos = [p for p, _ in d.get_points()].index(COLLISION_POINT)
    hits = [k for k in keys if d.get_node_pos(k) == pos]
    assert hits, "no key lands on the collision point; widen the search"
    for k in hits:
        assert d.get_node(k) == u.get_node(k) == order[1]
        assert d.get_server(k) == u.get_server(k) == (COLLISION_POINT, order[1])
    assert_same_answers(u, d, hits + keys[:300])


def coarse_hash(key: Any) -> int:
    """A custom hash_fn with only 512 values: collisions and exact hits on points everywhere."""
    return int(md5(str(key).encode()).hexdigest()[:3], 16) % 512


def test_custom_hash_collisions_follow_uhashrings_write_history() -> None:
    kw = {"hash_fn": coarse_hash, "vnodes": 40}
    u, d = both(["a", "b", "c"], **kw)
    keys = random_keys(random.Random(7), 300) + list(range(600))
    steps: list[Callable[[Any], None]] = [
        lambda r: r.add_node("d", {"weight": 2}),
        lambda r: r.add_node("a", {"weight": 2}),  # a rewrites its points: wins its collisions
        lambda r: r.remove_node("d"),  # drops only the points d still owned
        lambda r: r.add_node("b", {"vnodes": 10}),
        lambda r: r.regenerate(),
        lambda r: r.remove_node("a"),
        lambda r: r.add_node("a"),
    ]
    assert_same_ring(u, d)
    assert_same_answers(u, d, keys)
    for step in steps:
        step(u)
        step(d)
        assert_same_ring(u, d)
        assert_same_answers(u, d, keys)


def test_a_key_hashing_exactly_onto_a_point_goes_past_it() -> None:
    points = {"1-0": 100, "2-0": 200}

    def fn(k: Any) -> int:
        return points[k] if k in points else int(k)

    u, d = both(["1", "2"], hash_fn=fn, vnodes=1)
    for h, want in [(99, "1"), (100, "2"), (150, "2"), (200, "1"), (250, "1")]:
        assert d.get_node(h) == u.get_node(h) == want


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    mode=st.sampled_from(sorted(MODES)),
    nodes=st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(
            st.integers(1, 4),
            st.fixed_dictionaries(
                {},
                optional={"weight": st.integers(1, 3), "vnodes": st.integers(0, 30)},
            ),
        ),
        max_size=6,
    ),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["add", "remove", "regenerate"]),
            st.text(min_size=1, max_size=8),
            st.integers(1, 3),
        ),
        max_size=4,
    ),
    keys=st.lists(
        st.one_of(st.text(max_size=12), st.integers(), st.binary(max_size=8)), max_size=30
    ),
)
def test_property_any_nodes_and_changes_route_like_uhashring(
    mode: str, nodes: dict[str, Any], ops: list[tuple[str, str, int]], keys: list[Any]
) -> None:
    kw = dict(MODES[mode], vnodes=12)
    u, d = both(nodes, **kw)
    for op, name, weight in ops:
        if op == "add":
            u.add_node(name, {"weight": weight})
            d.add_node(name, {"weight": weight})
        elif op == "remove" and name in u.conf:
            u.remove_node(name)
            d.remove_node(name)
        elif op == "regenerate":
            u.regenerate()
            d.regenerate()
    assert_same_ring(u, d)
    if u.size == 0:
        for key in keys:
            assert u.get_node(key) is None
            with pytest.raises(EmptyRingError):
                d.get_node(key)
    else:
        assert_same_answers(u, d, keys)


# ------------------------------------------------------------------------------------------
# Deliberate differences


def test_an_empty_ring_raises_empty_ring_error_where_uhashring_returns_none() -> None:
    for ring in (HashRing(), HashRing(hash_fn="ketama"), HashRing({"a": {"vnodes": 0}})):
        for lookup in (ring.get_node, ring.get, ring.get_node_pos, ring.get_server):
            with pytest.raises(EmptyRingError):
                lookup("k")
        with pytest.raises(LookupError):
            ring["k"]
        with pytest.raises(EmptyRingError):
            next(ring.iterate_nodes("k"))
        assert list(ring.range("k")) == []  # as uhashring
        assert ring.size == 0
    assert uhashring.HashRing().get_node("k") is None


def test_removing_every_node_empties_the_ring() -> None:
    d = HashRing(["a", "b"])
    d.remove_node("a")
    del d["b"]
    with pytest.raises(EmptyRingError):
        d.get_node("k")
    d.add_node("c")
    assert d.get_node("k") == "c"


@pytest.mark.parametrize("weight", [0, -1, 1.5, "2", None])
def test_weights_must_be_positive_ints(weight: Any) -> None:
    with pytest.raises(InvalidWeightError):
        HashRing({"a": {"weight": weight}})
    d = HashRing(["a", "b"])
    before = d.get_points()
    with pytest.raises(InvalidWeightError):
        d.add_node("c", {"weight": weight})
    with pytest.raises(InvalidWeightError):
        d.add_node("a", {"weight": weight})
    assert d.get_points() == before
    assert list(d.get_nodes()) == ["a", "b"]
    assert d.conf["a"]["weight"] == 1


def test_a_bad_weight_fn_result_leaves_the_ring_as_it_was() -> None:
    weights = {"a": 1, "b": 2}
    d = HashRing(list(weights), weight_fn=lambda **c: weights[c["nodename"]])
    before = (d.get_points(), {n: dict(c) for n, c in d.conf.items()})
    weights["b"] = 0
    with pytest.raises(InvalidWeightError):
        d.regenerate()
    assert (d.get_points(), {n: dict(c) for n, c in d.conf.items()}) == before


def test_bad_options_are_refused() -> None:
    with pytest.raises(TypeError):
        HashRing(["a"], hash_fn="md5")
    with pytest.raises(TypeError):
        HashRing(["a"], weight_fn=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        HashRing(["a"], unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="replicas"):
        HashRing(["a"], hash_fn="ketama", replicas=5)
    with pytest.raises(ValueError, match="vnodes"):
        HashRing(["a"], vnodes=-1)
    with pytest.raises(ValueError):
        HashRing({"a": 1.5})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        HashRing({"a"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="points"):
        HashRing({"a": {"vnodes": 2**20, "weight": 2**10}})


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (1.5, TypeError),
        ("12", TypeError),
        (None, TypeError),
        (-1, ValueError),
        (2**128, ValueError),
    ],
)
def test_a_custom_hash_must_return_an_int_in_range(result: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="hash_fn"):
        HashRing(["a"], hash_fn=lambda k: result)

    def fn(k: Any) -> Any:
        return 5 if k == "a-0" else result

    d = HashRing(["a"], hash_fn=fn, vnodes=1)
    with pytest.raises(error, match="hash_fn"):
        d.get_node("key")
    assert HashRing(["a"], hash_fn=lambda k: 2**128 - 1, vnodes=1).get_node("k") == "a"


def test_removing_an_unknown_node_is_a_key_error() -> None:
    d = HashRing(["a"])
    with pytest.raises(NodeNotFoundError):
        d.remove_node("zz")
    with pytest.raises(KeyError):
        del d["zz"]


def test_a_custom_hash_fn_is_given_the_key_itself() -> None:
    seen: list[Any] = []

    def fn(k: Any) -> int:
        seen.append(k)
        return int(md5(str(k).encode()).hexdigest(), 16)

    d = HashRing(["a", "b"], hash_fn=fn, vnodes=3)
    assert seen == ["a-0", "a-1", "a-2", "b-0", "b-1", "b-2"]
    key = ("tuple", 1)
    d.get_node(key)
    assert seen[-1] is key
    assert d.get_node(key) == HashRing(["a", "b"], vnodes=3).get_node(key)


# ------------------------------------------------------------------------------------------
# Speed-related shape and thread safety


def test_lookups_are_bound_to_the_native_core() -> None:
    d = HashRing(["a", "b"])
    assert type(d.get_node).__name__ == "builtin_function_or_method"
    assert d.get_node.__self__ is d._core  # type: ignore[attr-defined]

    class Traced(HashRing):
        def get_node(self, key: Any) -> Any:
            return ("traced", super().get_node(key))

    assert Traced(["a"]).get_node("k") == ("traced", "a")


def test_print_continuum_prints_what_uhashring_prints(capsys: pytest.CaptureFixture[str]) -> None:
    u, d = both({"a": 1, "b": 2}, hash_fn="ketama", vnodes=4)
    u.print_continuum()
    want = capsys.readouterr().out
    d.print_continuum()
    assert capsys.readouterr().out == want
    HashRing().print_continuum()
    assert capsys.readouterr().out == "Continuum empty\n"


def test_lookups_during_changes_see_the_ring_before_or_after() -> None:
    d = HashRing([f"n{i}" for i in range(5)])
    keys = [f"k{i}" for i in range(200)]
    before = {k: d.get_node(k) for k in keys}
    after_ring = HashRing([f"n{i}" for i in range(6)])
    after = {k: after_ring.get_node(k) for k in keys}
    bad: list[Any] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            for k in keys:
                if d.get_node(k) not in (before[k], after[k]):
                    bad.append(k)

    t = threading.Thread(target=reader)
    t.start()
    for _ in range(30):
        d.add_node("n5")
        d.remove_node("n5")
    stop.set()
    t.join()
    assert bad == []
