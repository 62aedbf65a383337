"""Dotted version vector sets (DVVSet): Riak's sibling-keeping clock.

The conformance scenarios re-derive the eunit cases of ``dvvset.erl`` (ricardobcl/Dotted-Version-
Vectors); the Riak flow tests prove what the clock is for (siblings kept exactly while concurrent);
hypothesis proves the sync laws over random multi-replica histories; the rest proves the encoding,
pickling and that bad input raises a specific exception and changes nothing.
"""

from __future__ import annotations

import copy
import pickle
import random
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distcore.clocks import DVVSet, VectorClock
from distcore.exceptions import CounterOverflowError, DecodeError

U64_MAX = 2**64 - 1


def write(context: DVVSet | None, value: Any, node: Any, server: DVVSet | None = None) -> DVVSet:
    """A client write: the value with the context it read, updated at `node` against `server`."""
    ctx = None if context is None else context.join()
    return DVVSet.new([value], ctx).update(node, server=server)


def state(c: DVVSet) -> tuple[list[tuple[Any, int, list[Any]]], list[Any]]:
    """Everything a clock holds, with the anonymous values (a set under sync) sorted."""
    return c.entries(), sorted(c.anonymous(), key=repr)


# --- conformance with dvvset.erl's eunit scenarios ---------------------------------------------


def test_join_is_the_causal_history() -> None:
    a = DVVSet.new(["v1"])
    a1 = a.update("a")
    b1 = DVVSet.new(["v2"], a1.join()).update("b", server=a1)
    assert a.join().to_dict() == {}
    assert a1.join().to_dict() == {"a": 1}
    assert b1.join().to_dict() == {"a": 1, "b": 1}


def test_update_adds_one_dot_and_drops_only_what_the_client_saw() -> None:
    a0 = DVVSet.new(["v1"]).update("a")
    a1 = write(a0, "v2", "a", a0)
    a2 = write(a1, "v3", "b", a1)
    a3 = write(a0, "v4", "b", a1)
    a4 = write(a0, "v5", "a", a1)
    assert state(a0) == ([("a", 1, ["v1"])], [])
    assert state(a1) == ([("a", 2, ["v2"])], [])
    assert state(a2) == ([("a", 2, []), ("b", 1, ["v3"])], [])
    assert state(a3) == ([("a", 2, ["v2"]), ("b", 1, ["v4"])], [])
    assert state(a4) == ([("a", 3, ["v5", "v2"])], [])


def test_a_write_with_an_old_context_keeps_only_the_values_it_did_not_see() -> None:
    a0 = DVVSet.new(["v1"]).update("a")  # Mary writes v1 without a context
    vv1 = a0.join()  # Peter reads v1
    a1 = DVVSet.new(["v2"]).update("a", server=a0)  # Mary writes v2 without a context
    a2 = DVVSet.new(["v3"], vv1).update("a", server=a1)  # Peter writes v3 having seen v1
    assert vv1.to_dict() == {"a": 1}
    assert state(a1) == ([("a", 2, ["v2", "v1"])], [])
    assert state(a2) == ([("a", 3, ["v3", "v2"])], [])


def test_sync_conformance() -> None:
    x = DVVSet.from_entries([("x", 1, [])])
    a = DVVSet.new(["v1"]).update("a")
    y = DVVSet.new(["v2"]).update("b")
    a1 = DVVSet.new(["v2"], a.join()).update("a")
    a3 = DVVSet.new(["v3"], a1.join()).update("b")
    a4 = DVVSet.new(["v3"], a1.join()).update("c")
    w = DVVSet.from_entries([("a", 1, [])])
    z = DVVSet.from_entries([("a", 2, ["v2", "v1"])])
    assert state(DVVSet.sync([w, z])) == ([("a", 2, ["v2"])], [])
    assert state(DVVSet.sync([w, z])) == state(DVVSet.sync([z, w]))
    assert state(DVVSet.sync([a, a1])) == state(DVVSet.sync([a1, a]))
    assert state(DVVSet.sync([a4, a3])) == state(DVVSet.sync([a3, a4]))
    assert state(DVVSet.sync([a4, a3])) == (
        [("a", 2, []), ("b", 1, ["v3"]), ("c", 1, ["v3"])],
        [],
    )
    assert state(DVVSet.sync([x, a])) == ([("a", 1, ["v1"]), ("x", 1, [])], [])
    assert state(DVVSet.sync([x, a])) == state(DVVSet.sync([a, x]))
    assert state(DVVSet.sync([a, y])) == ([("a", 1, ["v1"]), ("b", 1, ["v2"])], [])
    assert state(DVVSet.sync([y, a])) == state(DVVSet.sync([a, y]))
    winner = a4.lww()
    assert state(winner) == state(DVVSet.sync([a4, winner]))
    assert state(DVVSet.sync([])) == ([], [])


def test_less_conformance() -> None:
    a = DVVSet.new(["v1"]).update("a")
    b = DVVSet.new(["v2"], a.join()).update("a")
    b2 = DVVSet.new(["v2"], a.join()).update("b")
    b3 = DVVSet.new(["v2"], a.join()).update("z")
    c = DVVSet.new(["v3"], b.join()).update("c", server=a)
    d = DVVSet.new(["v4"], c.join()).update("d", server=b2)
    for older, newer in [(a, b), (a, c), (b, c), (b, d), (b2, d), (a, d)]:
        assert older.less(newer)
    for p, q in [(b2, c), (b, b2), (b2, b), (a, a), (c, c), (d, b2), (b3, d)]:
        assert not p.less(q)


def test_equality_compares_causal_histories_only() -> None:
    a = DVVSet.from_entries([("a", 4, ["v5", "v0"]), ("b", 0, []), ("c", 1, ["v3"])], ["v0"])
    b = DVVSet.from_entries([("a", 4, ["v555", "v0"]), ("b", 0, []), ("c", 1, ["v3"])])
    c = DVVSet.from_entries([("a", 4, ["v5", "v0"]), ("b", 0, [])], ["v6", "v1"])
    assert a == b and b == a and hash(a) == hash(b)
    assert a != c and b != c
    assert DVVSet.new(["x"]) == DVVSet.new(["y"])  # no history either side
    assert (a == "a") is False


def test_size_ids_values_and_map() -> None:
    assert DVVSet.new(["v1"]).size() == 1
    big = DVVSet.from_entries(
        [("a", 4, ["v5", "v0"]), ("b", 0, []), ("c", 1, ["v3"])], ["v4", "v1"]
    )
    assert big.size() == len(big) == 5
    a = DVVSet.from_entries([("a", 4, ["v0", "v5"]), ("b", 0, []), ("c", 1, ["v3"])], ["v1"])
    b = DVVSet.from_entries([("a", 4, ["v0", "v555"]), ("b", 0, []), ("c", 1, ["v3"])])
    c = DVVSet.from_entries([("a", 4, []), ("b", 0, [])], ["v1", "v6"])
    # A counter of 0 is no history at all: dvvset keeps {b,0,[]}, distcore drops it.
    assert a.ids() == ["a", "c"] and b.ids() == ["a", "c"] and c.ids() == ["a"]
    assert sorted(a.values()) == ["v0", "v1", "v3", "v5"]
    assert sorted(b.values()) == ["v0", "v3", "v555"]
    assert sorted(c.values()) == ["v1", "v6"]
    m1 = DVVSet.from_entries([("a", 4, []), ("c", 1, [])], [10]).map(lambda v: v * 2)
    assert state(m1) == ([("a", 4, []), ("c", 1, [])], [20])
    m2 = DVVSet.from_entries([("a", 4, [5, 0]), ("c", 1, [2])], [20, 10]).map(lambda v: v * 2)
    assert m2.entries() == [("a", 4, [10, 0]), ("c", 1, [4])]
    assert m2.anonymous() == [40, 20]


X = [("a", 4, [5, 2]), ("b", 1, []), ("c", 1, [3])]
BARE: list[tuple[str, int, list[Any]]] = [("a", 4, []), ("b", 1, []), ("c", 1, [])]


def test_last_and_lww_conformance() -> None:
    x = DVVSet.from_entries(X)
    y = DVVSet.from_entries(X, [10, 0])
    z = DVVSet.from_entries([("a", 4, [5, 2]), ("b", 1, [1])], [3])
    assert x.last() == 5
    assert y.last() == 10
    assert state(x.lww()) == ([("a", 4, [5]), ("b", 1, []), ("c", 1, [])], [])
    assert state(y.lww()) == (BARE, [10])
    assert state(z.lww()) == ([("a", 4, [5]), ("b", 1, [])], [])
    # (value, timestamp): only the newest value of each entry competes.
    t = DVVSet.from_entries(
        [("a", 4, [(5, 1002345), (7, 1002340)]), ("b", 1, [(4, 1001340)])], [(2, 1001140)]
    )
    assert state(t.lww(key=lambda v: v[1])) == ([("a", 4, [(5, 1002345)]), ("b", 1, [])], [])


def test_last_ties_go_to_the_later_candidate() -> None:
    c = DVVSet.from_entries([("a", 1, ["x1"]), ("b", 1, ["x2"])], ["x3"])
    assert c.last(key=len) == "x3"
    assert DVVSet.from_entries([("a", 1, ["x1"]), ("b", 1, ["x2"])]).last(key=len) == "x2"


def test_reconcile_conformance() -> None:
    x = DVVSet.from_entries(X)
    y = DVVSet.from_entries(X, [10, 0])
    assert state(x.reconcile(sum)) == (BARE, [10])
    assert state(y.reconcile(sum)) == (BARE, [20])
    assert state(x.reconcile(min)) == (BARE, [2])
    assert state(y.reconcile(min)) == (BARE, [0])


# --- the Riak multi-value register flow ---------------------------------------------------------


def test_concurrent_writes_with_the_same_context_become_siblings() -> None:
    stored = DVVSet.new(["v0"]).update("s1")
    ctx = stored.join()
    stored = DVVSet.new(["alice"], ctx).update("s1", server=stored)
    stored = DVVSet.new(["bob"], ctx).update("s1", server=stored)
    assert sorted(stored.values()) == ["alice", "bob"]
    # A write made after reading both siblings replaces them.
    stored = DVVSet.new(["merged"], stored.join()).update("s1", server=stored)
    assert stored.values() == ["merged"]
    assert stored.join().to_dict() == {"s1": 4}


def test_siblings_written_at_different_replicas_meet_in_sync() -> None:
    base = DVVSet.new(["v0"]).update("r1")
    r2 = DVVSet.sync([DVVSet(), base])
    r1 = write(base, "on-r1", "r1", base)
    r2 = write(base, "on-r2", "r2", r2)
    merged = DVVSet.sync([r1, r2])
    assert sorted(merged.values()) == ["on-r1", "on-r2"]
    resolved = DVVSet.new(["both"], merged.join()).update("r2", server=merged)
    assert DVVSet.sync([r1, resolved]).values() == ["both"]
    assert r1.less(resolved) and r2.less(resolved)


def test_100_writes_with_stale_contexts_keep_only_the_truly_concurrent_ones() -> None:
    rng = random.Random(20130101)
    stored = DVVSet.new(["w0"]).update("s")
    snapshots = [stored.join()]  # snapshots[i]: the context a client reading after write i gets
    seen_by_a_later_write: set[int] = set()
    for i in range(1, 101):
        read = rng.randrange(max(0, i - 5), i)  # each client read one of the last few states
        seen_by_a_later_write.update(range(read + 1))
        stored = DVVSet.new([f"w{i}"], snapshots[read]).update("s", server=stored)
        snapshots.append(stored.join())
    survivors = {f"w{i}" for i in range(101) if i not in seen_by_a_later_write}
    assert set(stored.values()) == survivors
    assert len(stored.values()) == len(survivors) < 10  # plain per-client VVs would keep ~100
    assert stored.join().to_dict() == {"s": 101}


# --- hypothesis: sync laws over random multi-replica histories ---------------------------------

N_REPLICAS = 3
op = st.one_of(
    st.tuples(
        st.just("write"),
        st.integers(0, N_REPLICAS - 1),
        st.integers(0, N_REPLICAS - 1),
        st.booleans(),
    ),
    st.tuples(st.just("sync"), st.integers(0, N_REPLICAS - 1), st.integers(0, N_REPLICAS - 1)),
    st.tuples(st.just("reconcile"), st.integers(0, N_REPLICAS - 1)),
)


def history(ops: list[tuple[Any, ...]], value: Any = str, clients: bool = False) -> list[DVVSet]:
    """Every clock a run of reads, writes, anti-entropy syncs and server-side reconciliations
    stored; with `clients`, also the client clocks (anonymous values) sent with each write."""
    replicas = [DVVSet() for _ in range(N_REPLICAS)]
    seen = list(replicas)
    for n, o in enumerate(ops):
        to = o[2] if o[0] != "reconcile" else o[1]
        node = to if to % 2 else f"r{to}"  # int and str ids mixed
        if o[0] == "write":
            ctx = None if o[3] else replicas[o[1]].join()
            client = DVVSet.new([value(f"v{n}")], ctx)
        elif o[0] == "sync":
            replicas[to] = DVVSet.sync([replicas[to], replicas[o[1]]])
            seen.append(replicas[to])
            continue
        elif replicas[to].size():
            client = replicas[to].reconcile(
                lambda vs, n=n: value(f"r{n}:" + "|".join(map(str, vs)))
            )
        else:
            continue
        if clients:
            seen.append(client)
        replicas[to] = client.update(node, server=replicas[to])
        seen.append(replicas[to])
    return seen + replicas


clocks3 = st.tuples(st.lists(op, max_size=25), st.integers(0), st.integers(0), st.integers(0))


@settings(max_examples=200, deadline=None)
@given(clocks3)
def test_sync_is_commutative_associative_and_idempotent(data: tuple[Any, ...]) -> None:
    ops, i, j, k = data
    h = history(ops)
    a, b, c = h[i % len(h)], h[j % len(h)], h[k % len(h)]
    assert state(DVVSet.sync([a, b])) == state(DVVSet.sync([b, a]))
    assert state(DVVSet.sync([a, a])) == state(a)
    left = DVVSet.sync([DVVSet.sync([a, b]), c])
    right = DVVSet.sync([a, DVVSet.sync([b, c])])
    assert state(left) == state(right)
    assert state(DVVSet.sync([a, b, c])) == state(left)


@settings(max_examples=200, deadline=None)
@given(clocks3)
def test_sync_with_client_clocks_is_commutative_and_idempotent(data: tuple[Any, ...]) -> None:
    # Associativity needs stored clocks (see test_sync_drops_the_new_values_of_an_older_...).
    ops, i, j, _ = data
    h = history(ops, clients=True)
    a, b = h[i % len(h)], h[j % len(h)]
    assert state(DVVSet.sync([a, b])) == state(DVVSet.sync([b, a]))
    assert state(DVVSet.sync([a, a])) == state(a)


def test_sync_drops_the_new_values_of_an_older_client_clock() -> None:
    # As in dvvset.erl: anonymous values belong to a client clock on its way to update(); synced
    # directly with a strictly newer stored clock, they are outdated with the history they carry.
    stored = DVVSet.new(["v1"]).update("a")
    client = DVVSet.new(["v2"], stored.join())
    newer = write(stored, "v3", "b", stored)
    assert DVVSet.sync([client, newer]).values() == ["v3"]
    assert DVVSet.sync([client, stored]).values() == ["v2"]  # the client saw v1: overwritten
    assert sorted(client.update("a", server=newer).values()) == ["v2", "v3"]


@settings(max_examples=200, deadline=None)
@given(clocks3)
def test_sync_knows_everything_and_less_agrees_with_join(data: tuple[Any, ...]) -> None:
    ops, i, j, _ = data
    h = history(ops)
    a, b = h[i % len(h)], h[j % len(h)]
    s = DVVSet.sync([a, b]).join().to_dict()
    ja, jb = a.join().to_dict(), b.join().to_dict()
    assert s == {n: max(ja.get(n, 0), jb.get(n, 0)) for n in ja.keys() | jb.keys()}
    assert list(s) == list(DVVSet.sync([a, b]).ids())
    dominated = all(jb.get(n, 0) >= c for n, c in ja.items())
    assert a.less(b) == (dominated and ja != jb)
    # sync loses no value unless the other side knows its event and has dropped it
    synced = set(DVVSet.sync([a, b]).values())
    for x, y in [(a, b), (b, a)]:
        for node, counter, values in x.entries():
            y_values = dict((e[0], e) for e in y.entries())
            for k, v in enumerate(values):
                dot = counter - k
                other = y_values.get(node)
                overwritten = other is not None and other[1] >= dot and v not in other[2]
                assert (v in synced) == (not overwritten)


@settings(max_examples=100, deadline=None)
@given(st.lists(op, max_size=25), st.integers(0), st.sampled_from([str, str.encode]))
def test_encoding_round_trips(ops: list[Any], i: int, value: Any) -> None:
    h = history(ops, value)
    c = h[i % len(h)]
    back = DVVSet.from_bytes(bytes(c))
    assert back.entries() == c.entries() and back.anonymous() == c.anonymous()
    assert bytes(back) == bytes(c)
    assert bytes(c)[:3] == b"DV\x01"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64), st.booleans())
def test_random_bytes_decode_or_raise_decode_error(data: bytes, with_header: bool) -> None:
    if with_header:
        data = b"DV\x01" + data
    try:
        c = DVVSet.from_bytes(data)
    except DecodeError:
        return
    assert bytes(c) == data  # the encoding is canonical: what decodes re-encodes identically


def test_decoder_rejects_non_canonical_input() -> None:
    good = bytes(DVVSet.from_entries([("a", 2, [b"x"]), ("b", 1, [])], ["y"]))
    assert DVVSet.from_bytes(bytearray(good)).values() == ["y", b"x"]
    for bad in [
        b"",
        b"VC\x01\x00\x00",
        b"DV\x02\x00\x00",
        good + b"\x00",  # trailing
        good[:-1],  # truncated
        b"DV\x01\x01\x01\x01b\x00\x00\x00",  # zero counter
        b"DV\x01\x01\x01\x01b\x01\x02\x00\x01x\x00\x01y\x00",  # more values than events
        b"DV\x01\x02\x01\x01b\x01\x00\x01\x01a\x01\x00\x00",  # ids out of order
        b"DV\x01\x00\x01\x02\x01x",  # unknown value tag
        b"DV\x01\x00\x01\x01\x01\xff",  # str value not UTF-8
    ]:
        with pytest.raises(DecodeError):
            DVVSet.from_bytes(bad)


def test_encoding_needs_bytes_or_str_values() -> None:
    with pytest.raises(TypeError, match="only bytes and str"):
        bytes(DVVSet.new([1]))
    with pytest.raises(TypeError, match="only bytes and str"):
        bytes(DVVSet.from_entries([("a", 1, [bytearray(b"x")])]))
    with pytest.raises(TypeError):
        DVVSet.from_bytes("DV")  # type: ignore[arg-type]


# --- Python object protocol -------------------------------------------------------------------


def test_pickle_copy_and_repr_keep_every_value() -> None:
    c = DVVSet.from_entries([(7, 3, [{"k": [1]}, None]), ("b", 1, [])], [("t", 1.5)])
    for back in [pickle.loads(pickle.dumps(c, protocol=p)) for p in (2, 5)] + [
        eval(repr(c), {"DVVSet": DVVSet}),
        copy.deepcopy(c),
    ]:
        assert back.entries() == c.entries() and back.anonymous() == c.anonymous()
    assert copy.copy(c) is c  # immutable
    deep = copy.deepcopy(c)
    assert deep.entries()[0][2][0] is not c.entries()[0][2][0]
    assert (
        repr(c) == "DVVSet.from_entries([(7, 3, [{'k': [1]}, None]), ('b', 1, [])], [('t', 1.5)])"
    )


def test_operations_return_new_clocks_and_never_change_their_inputs() -> None:
    server = DVVSet.new(["v1"]).update("a")
    client = DVVSet.new(["v2"], server.join())
    before = (state(server), state(client))
    out = [
        client.update("a", server=server),
        DVVSet.sync([server, client]),
        server.lww(),
        server.reconcile(lambda vs: vs[0]),
        server.map(str.upper),
    ]
    assert all(o is not server and o is not client for o in out)
    assert (state(server), state(client)) == before


def test_clocks_are_shared_safely_between_threads() -> None:
    stored = DVVSet.new(["v0"]).update("s")
    results: list[DVVSet] = []

    def replica(n: int) -> None:
        # Each replica takes a write on its own copy of the stored clock (its own node id).
        for _ in range(50):
            clock = DVVSet.new([f"t{n}"], stored.join()).update(f"s{n}", server=stored)
        results.append(clock)

    threads = [threading.Thread(target=replica, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = DVVSet.sync(results)
    assert stored.values() == ["v0"]
    assert sorted(merged.values()) == [f"t{n}" for n in range(8)]
    assert merged.join().to_dict() == {"s": 1} | {f"s{n}": 1 for n in range(8)}


# --- bad input: a specific exception and nothing changed ---------------------------------------


@pytest.mark.parametrize("bad_id", [True, False, 1.5, None, b"a", ("a",)])
def test_node_ids_must_be_int_or_str(bad_id: Any) -> None:
    with pytest.raises(TypeError, match="node id must be str or int"):
        DVVSet.new(["v"]).update(bad_id)
    with pytest.raises(TypeError, match="node id must be str or int"):
        DVVSet.new(["v"], {bad_id: 1})
    with pytest.raises(TypeError, match="node id must be str or int"):
        DVVSet.from_entries([(bad_id, 1, [])])


@pytest.mark.parametrize("counter", [-1, 2**64, -(2**70)])
def test_counters_out_of_range_raise_counter_overflow(counter: int) -> None:
    with pytest.raises(CounterOverflowError) as err:
        DVVSet.new(["v"], {"a": counter})
    assert isinstance(err.value, OverflowError)
    with pytest.raises(CounterOverflowError):
        DVVSet.from_entries([("a", counter, [])])


@pytest.mark.parametrize("counter", [1.0, "1", None, True])
def test_counters_must_be_ints(counter: Any) -> None:
    with pytest.raises(TypeError, match="must be an int"):
        DVVSet.new(["v"], {"a": counter})


def test_update_at_the_largest_counter_overflows_and_changes_nothing() -> None:
    server = DVVSet.from_entries([("a", U64_MAX, ["old"])])
    client = DVVSet.new(["new"], server.join())
    with pytest.raises(CounterOverflowError):
        client.update("a", server=server)
    assert state(server) == ([("a", U64_MAX, ["old"])], [])
    assert state(client) == ([("a", U64_MAX, [])], ["new"])
    assert client.update("b", server=server).join().to_dict() == {"a": U64_MAX, "b": 1}


def test_other_bad_input() -> None:
    with pytest.raises(ValueError, match="exactly one new value"):
        DVVSet.new(["a", "b"]).update("n")
    with pytest.raises(ValueError, match="exactly one new value"):
        DVVSet().update("n")
    with pytest.raises(TypeError, match="not a single str"):
        DVVSet.new("abc")
    assert DVVSet.new(["v"], [("a", 1)]) == DVVSet.new(["v"], VectorClock({"a": 1}))
    with pytest.raises(TypeError, match="not iterable"):
        DVVSet.new(["v"], 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="appears twice"):
        DVVSet.from_entries([("a", 1, []), ("a", 2, [])])
    with pytest.raises(ValueError, match="at most one value per event"):
        DVVSet.from_entries([("a", 1, ["x", "y"])])
    with pytest.raises(TypeError, match="takes DVVSet"):
        DVVSet.sync([DVVSet(), "clock"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        DVVSet.new(["v"]).update("a", server="clock")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no values"):
        DVVSet.from_entries([("a", 1, [])]).lww()
    with pytest.raises(ValueError, match="no values"):
        DVVSet().last()
    with pytest.raises(ZeroDivisionError):
        DVVSet.new([1]).reconcile(lambda vs: 1 / 0)
    with pytest.raises(TypeError):
        DVVSet.from_entries([("a", 1, ["x"]), ("b", 1, [2])]).last()  # "x" <= 2
