"""VectorClock, VersionVector, LamportClock, the batch helpers, causal_order and CausalDelivery."""

from __future__ import annotations

import copy
import itertools
import pickle
import random
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distcore.clocks import (
    CausalDelivery,
    LamportClock,
    Ordering,
    VectorClock,
    VersionVector,
    causal_order,
    compare_many,
    merge_all,
)
from distcore.exceptions import CounterOverflowError, DecodeError, DuplicateNodeError

U64_MAX = 2**64 - 1

# Few nodes and small counters, so random pairs are often ordered, not only concurrent.
node_ids = st.one_of(st.sampled_from(["a", "b", "c", "dé"]), st.integers(-2, 2))
clock_dicts = st.dictionaries(node_ids, st.integers(0, 3), max_size=5)
clocks = clock_dicts.map(VectorClock)


def reference_compare(a: dict, b: dict) -> Ordering:
    """The definition, on plain dicts."""
    keys = set(a) | set(b)
    le = all(a.get(k, 0) <= b.get(k, 0) for k in keys)
    ge = all(a.get(k, 0) >= b.get(k, 0) for k in keys)
    if le and ge:
        return Ordering.EQUAL
    if le:
        return Ordering.BEFORE
    if ge:
        return Ordering.AFTER
    return Ordering.CONCURRENT


def nonzero(d: dict) -> dict:
    return {k: v for k, v in d.items() if v}


# --- VectorClock: the partial order and the join --------------------------------------------


@given(clock_dicts, clock_dicts)
def test_compare_matches_the_definition(a: dict, b: dict) -> None:
    va, vb = VectorClock(a), VectorClock(b)
    want = reference_compare(a, b)
    assert va.compare(vb) is want
    assert (va < vb) == (want is Ordering.BEFORE)
    assert (va <= vb) == (want in (Ordering.BEFORE, Ordering.EQUAL))
    assert (va == vb) == (want is Ordering.EQUAL)
    assert (va != vb) == (want is not Ordering.EQUAL)
    assert (va > vb) == (want is Ordering.AFTER)
    assert (va >= vb) == (want in (Ordering.AFTER, Ordering.EQUAL))
    assert va.dominates(vb) == (want in (Ordering.AFTER, Ordering.EQUAL))
    assert va.concurrent_with(vb) == (want is Ordering.CONCURRENT)
    assert va.happened_before(vb) == (want is Ordering.BEFORE)
    mirror = {Ordering.BEFORE: Ordering.AFTER, Ordering.AFTER: Ordering.BEFORE}
    assert vb.compare(va) is mirror.get(want, want)


@given(clocks)
def test_compare_is_reflexive(a: VectorClock) -> None:
    assert a.compare(a) is Ordering.EQUAL
    assert a.compare(a.copy()) is Ordering.EQUAL
    assert a <= a


@given(clocks, clocks)
def test_compare_is_antisymmetric(a: VectorClock, b: VectorClock) -> None:
    if a <= b and b <= a:
        assert a == b
        assert a.to_dict() == b.to_dict()


@given(clocks, clocks, clocks)
def test_compare_is_transitive(a: VectorClock, b: VectorClock, c: VectorClock) -> None:
    if a <= b and b <= c:
        assert a <= c
    if a < b and b <= c:
        assert a < c


@given(clocks, clocks, clocks)
def test_merge_is_a_semilattice_join(a: VectorClock, b: VectorClock, c: VectorClock) -> None:
    assert a.merged(b) == b.merged(a)
    assert a.merged(b).merged(c) == a.merged(b.merged(c))
    assert a.merged(a) == a
    m = a | b
    assert m >= a
    assert m >= b
    # Least: any upper bound of both is above the merge.
    if c >= a and c >= b:
        assert c >= m
    keys = set(a) | set(b)
    assert m.to_dict() == {k: max(a[k], b[k]) for k in sorted(keys, key=_id_order)}


def _id_order(node: int | str) -> tuple[int, int | bytes]:
    return (0, node) if isinstance(node, int) else (1, node.encode())


@given(clock_dicts, clock_dicts)
def test_merge_in_place_equals_merged(a: dict, b: dict) -> None:
    va, vb = VectorClock(a), VectorClock(b)
    want = va.merged(vb)
    va.merge(vb)
    assert va == want
    vc = VectorClock(a)
    vc |= vb
    assert vc == want
    assert vb.to_dict() == nonzero(b)  # the argument is untouched


def test_entries_are_sorted_ints_first_and_zeros_dropped() -> None:
    vc = VectorClock({"b": 1, 3: 2, "a": 0, -1: 5, "é": 1})
    assert list(vc.to_dict().items()) == [(-1, 5), (3, 2), ("b", 1), ("é", 1)]
    assert vc.nodes() == [-1, 3, "b", "é"]
    assert list(vc) == vc.nodes()
    assert vc.items() == [(-1, 5), (3, 2), ("b", 1), ("é", 1)]
    assert len(vc) == 4
    assert "a" not in vc
    assert vc["a"] == 0
    assert vc.get(3) == 2
    assert vc.total() == 9
    assert VectorClock([("x", 1), ("y", 2)]).to_dict() == {"x": 1, "y": 2}
    assert VectorClock(VectorClock({"x": 1})) == VectorClock.from_dict({"x": 1})


def test_increment_remove_prune() -> None:
    vc = VectorClock()
    assert vc.increment("a") == 1
    assert vc.increment("a", 5) == 6
    assert vc.increment(7) == 1
    assert vc.to_dict() == {7: 1, "a": 6}
    assert vc.remove("a") == 6
    assert vc.remove("missing") == 0
    vc = VectorClock({"a": 1, "b": 2, "c": 3})
    assert vc.prune(["a", "c", "zzz"]) == 1
    assert vc.to_dict() == {"a": 1, "c": 3}
    assert vc.prune(lambda node, counter: counter > 1) == 1
    assert vc.to_dict() == {"c": 3}


def test_ordering_members_pickle_and_copy_as_themselves() -> None:
    for member in (Ordering.BEFORE, Ordering.AFTER, Ordering.EQUAL, Ordering.CONCURRENT):
        assert pickle.loads(pickle.dumps(member)) is member
        assert copy.copy(member) is member
        assert copy.deepcopy(member) is member
        assert getattr(Ordering, member.name) is member
    assert repr(Ordering.CONCURRENT) == "Ordering.CONCURRENT"


def test_version_vector_keeps_its_type() -> None:
    a = VersionVector({"r1": 2})
    b = VersionVector.from_dict({"r2": 1})
    for result in (
        a.merged(b),
        a | b,
        a.copy(),
        copy.deepcopy(a),
        VersionVector.from_bytes(bytes(a)),
    ):
        assert type(result) is VersionVector
    assert pickle.loads(pickle.dumps(a)) == a
    assert type(pickle.loads(pickle.dumps(a))) is VersionVector
    assert repr(a) == "VersionVector({'r1': 2})"
    assert isinstance(a, VectorClock)
    assert a.compare(VectorClock({"r1": 2})) is Ordering.EQUAL


# --- bad input: a specific error, nothing changed ---------------------------------------------


def test_bad_node_ids_and_counters() -> None:
    with pytest.raises(TypeError, match="node id must be str or int, not float"):
        VectorClock({1.5: 1})
    with pytest.raises(TypeError, match="not bool"):
        VectorClock({True: 1})
    with pytest.raises(TypeError, match="counter must be an int"):
        VectorClock({"a": 1.0})
    with pytest.raises(CounterOverflowError, match=r"0\.\.2\*\*64-1"):
        VectorClock({"a": -1})
    with pytest.raises(OverflowError):
        VectorClock({"a": 2**64})
    with pytest.raises(OverflowError, match="64 signed bits"):
        VectorClock({2**63: 1})
    with pytest.raises(TypeError, match="mapping or \\(node, counter\\) pairs"):
        VectorClock([1, 2])
    with pytest.raises(DuplicateNodeError, match="duplicate node"):
        VectorClock([("a", 1), ("a", 2)])


def test_overflowing_increment_changes_nothing() -> None:
    vc = VectorClock({"a": U64_MAX - 1, "b": 1})
    assert vc.increment("a") == U64_MAX
    with pytest.raises(CounterOverflowError, match="would pass"):
        vc.increment("a")
    with pytest.raises(CounterOverflowError):
        vc.increment("b", -1)
    assert vc.to_dict() == {"a": U64_MAX, "b": 1}


def test_mismatched_types_in_compare() -> None:
    vc = VectorClock({"a": 1})
    with pytest.raises(TypeError, match="expected a VectorClock, not dict"):
        vc.compare({"a": 1})
    with pytest.raises(TypeError):
        _ = vc < 3  # type: ignore[operator]
    assert (vc == {"a": 1}) is False
    with pytest.raises(TypeError):
        vc.merge("a")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        hash(vc)
    assert vc.to_dict() == {"a": 1}


# --- the binary encoding -------------------------------------------------------------------


def test_encoding_is_the_documented_format() -> None:
    vc = VectorClock({"ab": 300, 2: 1})
    # magic, version, 2 entries; int 2 (zigzag 4) -> 1; str "ab" -> 300 (0xac 0x02)
    assert bytes(vc) == b"VC\x01\x02\x00\x04\x01\x01\x02ab\xac\x02"
    assert bytes(VectorClock()) == b"VC\x01\x00"


@given(clock_dicts)
def test_encoding_round_trips(d: dict) -> None:
    vc = VectorClock(d)
    data = bytes(vc)
    assert VectorClock.from_bytes(data) == vc
    assert VectorClock.from_bytes(data).to_dict() == vc.to_dict()
    assert pickle.loads(pickle.dumps(vc)) == vc
    assert copy.copy(vc) == vc
    assert copy.copy(vc) is not vc


@given(st.binary(max_size=64))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    for blob in (data, b"VC\x01" + data):
        try:
            vc = VectorClock.from_bytes(blob)
        except DecodeError:
            continue
        # Whatever decodes is canonical: it encodes back to the same bytes.
        assert bytes(vc) == blob


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(clock_dicts.filter(bool), st.data())
def test_corrupted_encodings_are_refused_or_canonical(d: dict, data: st.DataObject) -> None:
    good = bytearray(bytes(VectorClock(d)))
    i = data.draw(st.integers(0, len(good) - 1))
    good[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(good)))
    for blob in (bytes(good), bytes(good[:cut])):
        try:
            vc = VectorClock.from_bytes(blob)
        except DecodeError as e:
            assert "vector clock" in str(e)
        else:
            assert bytes(vc) == blob


def test_decode_errors_say_what_is_wrong() -> None:
    with pytest.raises(DecodeError, match="not an encoded vector clock"):
        VectorClock.from_bytes(b"XX\x01\x00")
    with pytest.raises(DecodeError, match="version 9"):
        VectorClock.from_bytes(b"VC\x09\x00")
    with pytest.raises(DecodeError, match="trailing bytes"):
        VectorClock.from_bytes(b"VC\x01\x00\x00")
    with pytest.raises(DecodeError, match="out of order"):
        VectorClock.from_bytes(b"VC\x01\x02\x00\x04\x01\x00\x02\x01")
    with pytest.raises(DecodeError, match="zero counter"):
        VectorClock.from_bytes(b"VC\x01\x01\x00\x02\x00")
    with pytest.raises(DecodeError, match="count larger than the data"):
        VectorClock.from_bytes(b"VC\x01\xff\xff\xff\xff\x0f")


# --- batches -------------------------------------------------------------------------------


@given(st.lists(st.tuples(clock_dicts, clock_dicts), max_size=20))
def test_compare_many_and_merge_all_match_one_at_a_time(pairs: list) -> None:
    a = [VectorClock(x) for x, _ in pairs]
    b = [VectorClock(y) for _, y in pairs]
    assert compare_many(a, b) == [x.compare(y) for x, y in zip(a, b, strict=True)]
    want = VectorClock()
    for c in a:
        want.merge(c)
    assert merge_all(a) == want


def test_batch_errors() -> None:
    with pytest.raises(ValueError, match="equally long"):
        compare_many([VectorClock()], [])
    with pytest.raises(TypeError, match="expected a VectorClock"):
        merge_all([VectorClock(), {"a": 1}])
    with pytest.raises(TypeError, match="\\(VectorClock, payload\\) tuples"):
        causal_order([VectorClock()])


def random_execution(
    rng: random.Random, processes: int, steps: int
) -> list[tuple[VectorClock, int]]:
    """Events of a random message-passing run, each stamped with its vector clock."""
    local = [VectorClock() for _ in range(processes)]
    in_flight: list[tuple[int, VectorClock]] = []
    events = []
    for step in range(steps):
        p = rng.randrange(processes)
        if in_flight and rng.random() < 0.4:
            to, stamp = in_flight.pop(rng.randrange(len(in_flight)))
            p = to
            local[p].merge(stamp)
        local[p].increment(f"p{p}")
        events.append((local[p].copy(), step))
        if rng.random() < 0.5:
            in_flight.append((rng.randrange(processes), local[p].copy()))
    return events


@settings(max_examples=50)
@given(st.integers(0, 2**32), st.integers(1, 6), st.integers(0, 80))
def test_causal_order_is_a_linear_extension_with_concurrent_groups(
    seed: int, processes: int, steps: int
) -> None:
    rng = random.Random(seed)
    events = random_execution(rng, processes, steps)
    shuffled = events[:]
    rng.shuffle(shuffled)
    ordered = causal_order(shuffled)
    assert sorted(p for _, p in ordered) == list(range(steps))
    position = {p: i for i, (_, p) in enumerate(ordered)}
    for (ca, pa), (cb, pb) in itertools.combinations(events, 2):
        if ca < cb:
            assert position[pa] < position[pb]
        elif cb < ca:
            assert position[pb] < position[pa]
    groups = causal_order(shuffled, groups=True)
    assert [e for g in groups for e in g] == ordered
    for g in groups:
        for (ca, _), (cb, _) in itertools.combinations(g, 2):
            assert ca.compare(cb) in (Ordering.CONCURRENT, Ordering.EQUAL)
    # Deterministic: another input order of the same (distinct) clocks gives the same clocks out.
    rng.shuffle(shuffled)
    assert [bytes(c) for c, _ in causal_order(shuffled)] == [bytes(c) for c, _ in ordered]


def test_causal_order_returns_the_same_objects() -> None:
    ev = (VectorClock({"a": 1}), object())
    assert causal_order([ev])[0] is ev
    assert causal_order([]) == []
    assert causal_order([], groups=True) == []


# --- CausalDelivery ------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.integers(2, 5), st.integers(1, 40), st.booleans())
def test_causal_delivery_delivers_everything_once_in_causal_order(
    seed: int, nodes: int, messages: int, duplicates: bool
) -> None:
    rng = random.Random(seed)
    buffers = [CausalDelivery(i) for i in range(nodes)]
    sent: list[tuple[int, VectorClock, int]] = []
    network: list[list[tuple[int, VectorClock, int]]] = [[] for _ in range(nodes)]
    delivered: list[list[tuple[int, VectorClock, int]]] = [[] for _ in range(nodes)]
    for m in range(messages):
        # A node broadcasts after delivering some of what reached it, in random order.
        sender = rng.randrange(nodes)
        box = network[sender]
        rng.shuffle(box)
        for _ in range(rng.randrange(len(box) + 1)):
            delivered[sender] += buffers[sender].receive(*box.pop())
        stamp = buffers[sender].broadcast()
        sent.append((sender, stamp, m))
        delivered[sender].append((sender, stamp, m))
        for other in range(nodes):
            if other != sender:
                network[other].append((sender, stamp, m))
                if duplicates and rng.random() < 0.2:
                    network[other].append((sender, stamp, m))
    for n in range(nodes):
        box = network[n]
        rng.shuffle(box)
        for msg in box:
            delivered[n] += buffers[n].receive(*msg)
        assert len(buffers[n]) == 0
        assert buffers[n].waiting_for() == {}
        assert sorted(p for _, _, p in delivered[n]) == list(range(messages))
        # Causal order: whatever happened before a message was delivered before it.
        for i, (_, ci, _) in enumerate(delivered[n]):
            for _, cj, _ in delivered[n][i + 1 :]:
                assert not cj < ci
    final = merge_all([s for _, s, _ in sent])
    assert all(b.delivered == final for b in buffers)


def test_causal_delivery_says_what_it_waits_for() -> None:
    a, b, c = CausalDelivery("a"), CausalDelivery("b"), CausalDelivery("c")
    m1 = a.broadcast()
    m2 = a.broadcast()
    assert b.receive("a", m1, "m1") == [("a", m1, "m1")]
    reply = b.broadcast()
    assert c.receive("b", reply, "reply") == []
    assert c.receive("a", m2, "m2") == []
    assert len(c) == 2
    assert c.waiting_for() == {"a": (1, 1)}
    assert [p for _, _, p in c.held()] == ["m2", "reply"]
    out = c.receive("a", m1, "m1")
    assert [p for _, _, p in out] == ["m1", "m2", "reply"]
    assert c.receive("a", m1, "m1") == []  # duplicate
    assert c.delivered.to_dict() == {"a": 2, "b": 1}
    assert c.me == "c"
    with pytest.raises(ValueError, match="must count it"):
        c.receive("z", VectorClock({"a": 1}), "bad")
    with pytest.raises(TypeError, match="expected a VectorClock"):
        c.receive("a", {"a": 3}, "bad")
    assert c.delivered.to_dict() == {"a": 2, "b": 1}


# --- LamportClock --------------------------------------------------------------------------


def test_lamport_rules() -> None:
    c = LamportClock()
    assert (c.tick(), c.tick()) == (1, 2)
    assert c.update(10) == 11
    assert c.update(3) == 12
    assert c.witness(5) == 12  # Serf: an older time is not an event
    assert c.witness(12) == 13
    assert c.value == int(c) == 13
    assert repr(c) == "LamportClock(13)"
    assert pickle.loads(pickle.dumps(c)).value == 13
    d = copy.copy(c)
    d.tick()
    assert (c.value, d.value) == (13, 14)


def test_lamport_errors_change_nothing() -> None:
    c = LamportClock(U64_MAX)
    with pytest.raises(CounterOverflowError):
        c.tick()
    with pytest.raises(CounterOverflowError):
        LamportClock(1).update(U64_MAX)
    with pytest.raises(CounterOverflowError):
        c.update(-1)
    with pytest.raises(TypeError, match="must be an int"):
        c.update("3")  # type: ignore[arg-type]
    with pytest.raises(CounterOverflowError):
        LamportClock(-5)
    assert c.value == U64_MAX


def test_lamport_ticks_from_threads_are_unique() -> None:
    c = LamportClock()
    seen: list[list[int]] = [[] for _ in range(4)]

    def work(out: list[int]) -> None:
        out.extend(c.tick() for _ in range(5000))

    threads = [threading.Thread(target=work, args=(s,)) for s in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [v for s in seen for v in s]
    assert len(set(flat)) == len(flat) == 20_000
    assert all(s == sorted(s) for s in seen)
    assert c.value == 20_000


def test_vector_clock_is_safe_to_share_between_threads() -> None:
    vc = VectorClock()
    peers = [VectorClock({f"p{i}": 1000}) for i in range(4)]

    def work(i: int) -> None:
        for _ in range(1000):
            vc.increment(f"t{i}")
            vc.merge(peers[i])
            vc.compare(peers[(i + 1) % 4])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert vc.to_dict() == {
        **{f"p{i}": 1000 for i in range(4)},
        **{f"t{i}": 1000 for i in range(4)},
    }


def test_causal_delivery_pickles_and_copies_with_its_held_messages() -> None:
    a, c = CausalDelivery("a"), CausalDelivery("c")
    first, second = a.broadcast(), a.broadcast()
    assert c.receive("a", second, ["second"]) == []
    for other in (pickle.loads(pickle.dumps(c)), copy.copy(c), copy.deepcopy(c)):
        assert other.me == "c"
        assert len(other) == 1
        assert other.waiting_for() == {"a": (1, 1)}
        assert [p for _, _, p in other.receive("a", first, ["first"])] == [["first"], ["second"]]
    deep = copy.deepcopy(c)
    assert deep.held()[0][2] is not c.held()[0][2]
    assert len(c) == 1  # the copies are independent
