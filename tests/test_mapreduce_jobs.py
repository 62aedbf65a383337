"""The MapReduce job API on the local executor, against plain-Python references (Counter, sorted,
itertools), including spills to disk, dying workers and bad input."""

from __future__ import annotations

import collections
import functools
import itertools
import operator
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distcore._core import RunReader, ShuffleWriter, decode_record_value, encode_record_value
from distcore.exceptions import (
    DecodeError,
    RecordTypeError,
    TaskError,
    UnpicklableError,
    WorkerLostError,
)
from distcore.mapreduce import Job, partition_of, read, tokenize, union

from texts import write_zipf


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("mr") / "zipf.txt"
    return path, write_zipf(path, random.Random(7), 300_000, huge_word=True)


def _py_pairs(line: str) -> list[tuple[str, int]]:
    return [(w, 1) for w in line.split()]


# --- word count, every path ---------------------------------------------------------------


def test_builtin_tokenizer_job_equals_counter(corpus: tuple[Path, str]) -> None:
    path, text = corpus
    want = collections.Counter(text.split())
    with read(path, split_bytes=64 << 10).flat_map(tokenize).count_by_key().run() as r:
        assert r.to_dict() == want
        st0 = r.stats.stages[0]
        assert st0.map_tasks > 4
        assert st0.map_output_records == sum(want.values())
        assert st0.output_records == len(want)
        assert list(dict(r.to_dict())) == sorted(want), "keys in order"


def test_python_mapper_and_reducers_equal_counter(corpus: tuple[Path, str]) -> None:
    path, text = corpus
    want = collections.Counter(text.split())
    ds = read(path, split_bytes=256 << 10).flat_map(_py_pairs)
    assert ds.count_by_key().to_dict() == want
    assert ds.reduce_by_key(operator.add).to_dict() == want
    assert ds.reduce_by_key("sum").to_dict() == want
    assert ds.fold_by_key(0, operator.add, num_partitions=3).to_dict() == want
    assert read(path).flat_map(str.split).frequencies().to_dict() == want
    job = Job(_py_pairs, "sum", num_partitions=5)
    assert job.run(path).to_dict() == want


def test_hot_key_holding_half_the_records() -> None:
    records = ["hot"] * 50_000 + [f"k{i}" for i in range(50_000)]
    got = read(records, format="items", split_records=7_000).frequencies().to_dict()
    assert got == collections.Counter(records)


def test_every_builtin_reducer_matches_python() -> None:
    rng = np.random.default_rng(3)
    pairs = [
        (f"k{int(k)}", int(v))
        for k, v in zip(rng.integers(0, 50, 20_000), rng.integers(-1000, 1000, 20_000), strict=True)
    ]
    pairs += [("f", 0.5), ("f", 2), ("f", True)]
    groups: dict[str, list[object]] = collections.defaultdict(list)
    for k, v in pairs:
        groups[k].append(v)
    ds = read(pairs, split_records=1_500)
    assert ds.shuffle("count").to_dict() == {k: len(v) for k, v in groups.items()}
    assert ds.shuffle("sum").to_dict() == {k: sum(v) for k, v in groups.items()}  # type: ignore[arg-type]
    assert ds.shuffle("min").to_dict() == {k: min(v) for k, v in groups.items()}  # type: ignore[type-var]
    assert ds.shuffle("max").to_dict() == {k: max(v) for k, v in groups.items()}  # type: ignore[type-var]
    assert ds.shuffle("first").to_dict() == {k: v[0] for k, v in groups.items()}
    assert ds.shuffle("last").to_dict() == {k: v[-1] for k, v in groups.items()}
    assert ds.shuffle("collect").to_dict() == groups, "values in input order"
    means = ds.shuffle("mean").to_dict()
    for k, v in groups.items():
        assert means[k] == pytest.approx(statistics.fmean(v))  # type: ignore[arg-type]
    distinct = ds.shuffle("approx_distinct").to_dict()
    assert distinct == {k: len(set(v)) for k, v in groups.items()}, "exact while small"


def test_sum_over_strings_is_a_type_error_naming_the_record() -> None:
    with pytest.raises(RecordTypeError, match=r"expected a number, got str.*'oops'"):
        read([("a", 1), ("a", "oops")]).shuffle("sum").to_dict()
    with pytest.raises(RecordTypeError, match=r"not a \(key, value\) tuple.*record 'abc'"):
        read(["abc"], format="items").count_by_key().to_dict()


# --- verbs, stages, ordering ----------------------------------------------------------------


def test_verbs_match_their_python_meaning() -> None:
    left = [("a", 1), ("b", 2), ("a", 3), ("d", 9)]
    right = [("a", "x"), ("c", "y"), ("a", "z")]
    inner = sorted((k, (lv, rv)) for k, lv in left for k2, rv in right if k == k2)
    assert sorted(read(left).join(read(right)).to_list()) == inner
    left_join = read(left).join(read(right), how="left").to_list()
    assert ("b", (2, None)) in left_join and ("d", (9, None)) in left_join
    assert read(left).group_by_key().to_dict() == {"a": [1, 3], "b": [2], "d": [9]}
    assert read(["x", "y", "x", "z"], format="items").distinct().to_list() == ["x", "y", "z"]
    assert read(range(100)).map(lambda i: i * i).filter(lambda i: i % 2).map(
        lambda i: (i % 10, i)
    ).reduce_by_key(max).to_dict() == {1: 9801, 5: 9025, 9: 9409}
    counts = read(["a b b c c c"], format="items").flat_map(tokenize).count_by_key()
    assert counts.top_k(2, key=operator.itemgetter(1)) == [("c", 3), ("b", 2)]
    both = union(read([("u", 1)]), read([("u", 2), ("v", 3)])).shuffle("collect").to_dict()
    assert both == {"u": [1, 2], "v": [3]}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.integers()), max_size=300))
def test_sort_by_key_is_stable(pairs: list[tuple[int, int]]) -> None:
    got = read(pairs, split_records=37).sort_by_key(num_partitions=3).to_list()
    assert got == sorted(pairs, key=operator.itemgetter(0))


def test_two_stage_pipeline(corpus: tuple[Path, str]) -> None:
    path, text = corpus
    counts = collections.Counter(text.split())
    by_count: dict[int, int] = collections.Counter(counts.values())
    job = Job(_py_pairs, "sum").then(Job(lambda kv: [(kv[1], 1)], "count"))
    assert job.run(path).to_dict() == by_count
    # A result is an input too.
    with read(path).flat_map(tokenize).count_by_key().run() as first:
        again = read(first).map(lambda kv: (len(kv[0]), kv[1])).reduce_by_key("sum").to_dict()
    assert again == dict(
        functools.reduce(
            lambda acc, kv: acc.update({len(kv[0]): acc.get(len(kv[0]), 0) + kv[1]}) or acc,
            counts.items(),
            {},
        )
    )


def test_keys_of_every_type_round_trip_and_sort() -> None:
    keys = [
        None,
        False,
        True,
        -(2**63),
        2**63 - 1,
        -1.5,
        2.25,
        "",
        "a\x00b",
        "日本",
        b"\x00\xff",
        (1, "a"),
        (1, "a", None),
        10**30,
    ]
    for k in keys:
        assert decode_record_value(encode_record_value(k)) == k
    strings = ["b", "a", "ab", "", "\x00", "é", "z\x00"]
    assert read(strings, format="items").distinct().to_list() == sorted(strings)
    ints = [5, -3, 2**40, 0, -(2**50)]
    assert read(ints).distinct().to_list() == sorted(ints)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.one_of(st.text(max_size=6), st.integers(), st.binary(max_size=4)), max_size=50),
    st.integers(1, 9),
    st.integers(0, 2**32),
)
def test_every_key_lands_in_exactly_one_partition(keys: list[object], n: int, seed: int) -> None:
    w = ShuffleWriter("count", n, seed=seed)
    w.add_keys(keys)
    data, offsets, _ = w.finish()
    assert data is not None
    seen: collections.Counter[object] = collections.Counter()
    for p in range(n):
        for k, _ in RunReader("count", [(data, offsets[p], offsets[p + 1])]).read(10_000):
            assert partition_of(k, n, seed=seed) == p
            seen[k] += 1
    assert set(seen) == set(keys) and all(c == 1 for c in seen.values())


# --- memory, spills -----------------------------------------------------------------------


def test_data_larger_than_the_memory_limit_spills_and_gives_the_same_result(
    tmp_path: Path,
) -> None:
    path = tmp_path / "unique.txt"
    path.write_text("\n".join(f"key-{i:07d} key-{i % 1000}" for i in range(200_000)) + "\n")
    want = collections.Counter(path.read_text().split())
    with read(path).flat_map(tokenize).count_by_key().run(memory_limit=4 << 20, workers=2) as r:
        assert r.to_dict() == want
        assert r.stats.spills > 0
        assert r.stats.stages[0].spilled_bytes > 0
    py = read(path).flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(operator.add)
    with py.run(memory_limit=2 << 20) as r:
        assert r.to_dict() == want
        assert r.stats.spills > 0


# --- faults and bad input -----------------------------------------------------------------


def test_a_mapper_that_raises_names_the_record_and_its_position(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_text("fine\nalso fine\nboom here\nlast\n")

    def mapper(line: str) -> list[tuple[str, int]]:
        if "boom" in line:
            raise ValueError("no booms")
        return [(line, 1)]

    before = set(os.listdir(tmp_path))
    with pytest.raises(
        TaskError, match=r"ValueError: no booms; record 'boom here' at .*in\.txt.*byte 15"
    ) as e:
        read(path).flat_map(mapper).count_by_key().run(tmp_dir=str(tmp_path))
    # From a worker process the cause is the worker's traceback, with the original error.
    assert "ValueError: no booms" in str(e.value.__cause__)
    assert set(os.listdir(tmp_path)) == before, "the job's files are removed"


def test_a_reducer_that_raises_names_the_key() -> None:
    with pytest.raises(TaskError, match=r"reducer .* raised ZeroDivisionError.*key 'b'"):
        read([("a", 1), ("b", 0)]).shuffle(lambda k, vs: 1 / vs[0]).to_dict()


def test_unpicklable_functions_are_refused_before_anything_runs() -> None:
    import threading

    lock = threading.Lock()
    with pytest.raises(UnpicklableError, match="cannot be sent to worker processes"):
        read(["a"], format="items").map(lambda r: (r, lock.locked())).count_by_key().to_dict()


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        read(tmp_path / "nothing-here.txt").flat_map(tokenize).count_by_key().to_dict()
    latin = tmp_path / "latin.txt"
    latin.write_bytes("ok\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DecodeError, match=r"latin\.txt"):
        read(latin).flat_map(tokenize).count_by_key().to_dict()
    with pytest.raises(DecodeError, match=r"latin\.txt"):
        read(latin).flat_map(_py_pairs).count_by_key().to_dict()


def _die_once(flag: str, line: str) -> list[tuple[str, int]]:
    if not os.path.exists(flag):
        Path(flag).touch()
        os._exit(17)  # the worker process dies mid-task
    return [(w, 1) for w in line.split()]


def test_a_worker_that_dies_has_its_task_run_again(
    tmp_path: Path, corpus: tuple[Path, str]
) -> None:
    path, text = corpus
    flag = str(tmp_path / "died")
    job = read(path, split_bytes=512 << 10).flat_map(functools.partial(_die_once, flag))
    with job.count_by_key().run(workers=2) as r:
        assert r.to_dict() == collections.Counter(text.split())
        assert r.stats.stages[0].retried_tasks >= 1
    assert os.path.exists(flag)


def _always_die(line: str) -> list[tuple[str, int]]:
    os._exit(3)


def test_a_task_that_always_kills_its_worker_gives_up() -> None:
    with pytest.raises(WorkerLostError, match="retries=1"):
        read(["x"], format="items").flat_map(_always_die).count_by_key().run(retries=1)


# --- outputs ------------------------------------------------------------------------------


def test_outputs_arrow_and_part_files(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    ds = read(["b a", "a c"], format="items").flat_map(tokenize).count_by_key(num_partitions=3)
    with ds.run() as r:
        table = r.to_arrow()
        assert table.column_names == ["key", "value"]
        assert table.to_pylist() == [
            {"key": "a", "value": 2},
            {"key": "b", "value": 1},
            {"key": "c", "value": 1},
        ]
        assert isinstance(table, pa.Table)
        files = r.save(tmp_path / "out")
    assert [f.name for f in files] == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    lines = sorted(line for f in files for line in f.read_text().splitlines())
    assert lines == ['["a", 2]', '["b", 1]', '["c", 1]']


def test_cli_runs_a_users_job(tmp_path: Path, corpus: tuple[Path, str]) -> None:
    path, text = corpus
    jobs = tmp_path / "myjobs.py"
    jobs.write_text(
        "from distcore.mapreduce import Job\n"
        "lengths = Job(lambda line: [(len(w), 1) for w in line.split()], 'count')\n"
    )
    out = tmp_path / "out"
    cli = [sys.executable, "-m", "distcore.cli", "mr", "run"]
    done = subprocess.run(
        [*cli, f"{jobs}:lengths", str(path), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "stage 1:" in done.stdout
    got = {}
    for f in out.iterdir():
        for line in f.read_text().splitlines():
            k, v = eval(line)  # JSON arrays of two ints
            got[k] = v
    assert got == collections.Counter(len(w) for w in text.split())
    bad = subprocess.run(
        [*cli, f"{jobs}:nope", str(path)], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode != 0 and "has no 'nope'" in bad.stderr


def test_itertools_reference_for_group_by_key_on_a_generator() -> None:
    gen = ((i % 7, i) for i in range(10_000))
    got = read(gen, split_records=999).group_by_key().to_dict()
    want = {
        k: [v for _, v in g]
        for k, g in itertools.groupby(
            sorted(((i % 7, i) for i in range(10_000)), key=operator.itemgetter(0)),
            key=operator.itemgetter(0),
        )
    }
    assert got == want


# --- built-in field mappers: Rust on raw bytes, the same as their Python form ----------------

_TRICKY = [
    "42",
    "-7",
    "+7",
    "99999999999999999999",
    "2.5",
    "1e3",
    ".5",
    "1.",
    "Inf",
    "nan",
    " 42",
    "1_000",
    "",
    "abc",
    "0x10",
    "1e",
    "-",
    "日本",
]


def _no_op(kv: object) -> bool:
    return True


def test_csv_field_mapper_native_equals_python(tmp_path: Path) -> None:
    from distcore.mapreduce import CsvField, csv_value

    path = tmp_path / "sales.csv"
    rows = [(f"c{i % 5}", _TRICKY[i % len(_TRICKY)]) for i in range(2_000)]
    rows.append(("quoted, with comma", "3"))
    lines = ["city,amount"] + [f'"{c}",{a}' if "," in c else f"{c},{a}" for c, a in rows]
    path.write_text("\n".join(lines) + "\n\n")
    want: dict[object, list[object]] = collections.defaultdict(list)
    for c, a in rows:
        want[c].append(csv_value(a))
    native = read(path).map(CsvField("city", "amount")).shuffle("collect").to_dict()
    python = read(path).map(CsvField("city", "amount")).filter(_no_op).shuffle("collect").to_dict()
    for got in (native, python):
        assert got.keys() == want.keys()
        for k, vs in want.items():
            assert repr(got[k]) == repr(vs), k  # nan != nan: compare their reprs
    by_index = read(path).map(CsvField(0)).shuffle("count").to_dict()
    assert by_index == collections.Counter(c for c, _ in rows)
    with pytest.raises(ValueError, match="no column 'nope'"):
        read(path).map(CsvField("nope")).count_by_key().to_dict()


def test_json_field_mapper_native_equals_python(tmp_path: Path) -> None:
    import json

    from distcore.mapreduce import JsonField

    path = tmp_path / "events.jsonl"
    docs = [
        {"user": {"id": i % 7}, "amount": [1, 2.5, -3, True, None, "x"][i % 6]}
        for i in range(3_000)
    ]
    docs.append({"amount": 4})  # no user: key None
    path.write_text("\n".join(json.dumps(d) for d in docs) + "\n\n")
    want: dict[object, object] = {}
    for d in docs:
        k = d.get("user", {}).get("id") if isinstance(d.get("user"), dict) else None
        want.setdefault(k, d["amount"])
    native = read(path).map(JsonField("user.id", "amount")).shuffle("first").to_dict()
    python = read(path).map(JsonField("user.id", "amount")).filter(_no_op).shuffle("first")
    assert native == python.to_dict() == want
    counts = read(path).map(JsonField("user.id")).count_by_key().to_dict()
    assert sum(counts.values()) == len(docs)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"a": {"b": 2}}\n')
    with pytest.raises(RecordTypeError, match=r"bad\.jsonl, line at byte 9: .*not objects"):
        read(bad).map(JsonField("a")).count_by_key().to_dict()
    with pytest.raises(RecordTypeError, match="not objects"):
        read(bad).map(JsonField("a")).filter(_no_op).count_by_key().to_dict()


def test_progress_bars_do_not_change_the_result(capsys: pytest.CaptureFixture[str]) -> None:
    got = read(["a b", "b"], format="items").flat_map(tokenize).count_by_key()
    assert got.to_dict(progress=True) == {"a": 1, "b": 2}
    assert "stage 1 map" in capsys.readouterr().err


def test_a_job_without_a_shuffle_keeps_input_order(tmp_path: Path) -> None:
    got = read(range(10_000), split_records=333).map(lambda x: x * 3).filter(lambda x: x % 2)
    assert got.to_list() == [x * 3 for x in range(10_000) if x * 3 % 2]
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"line {i}\n" for i in range(5_000)))
    lines = read(path, split_bytes=4096).flat_map(lambda line: [line, line.upper()])
    with lines.run(num_partitions=3) as r:
        assert r.to_list() == [x for i in range(5_000) for x in (f"line {i}", f"LINE {i}")]
        assert r.stats.stages[0].map_tasks > 5


def _by_first_letter(key: str, n: int) -> int:
    return (ord(key[0]) - ord("a")) % n


def test_a_users_partitioner_places_the_keys_and_a_bad_one_is_a_task_error() -> None:
    words = ["apple", "avocado", "banana", "cherry", "cranberry", "apple"] * 50
    ds = read(words, format="items").map(lambda w: (w, 1))
    with ds.reduce_by_key(operator.add, partitioner=_by_first_letter, num_partitions=3).run() as r:
        assert r.to_dict() == collections.Counter(words)
        parts = [[k for k, _ in RunReader("first", runs).read(100)] for runs in r.partition_runs()]
    assert parts == [["apple", "avocado"], ["banana"], ["cherry", "cranberry"]]
    with pytest.raises(TaskError, match=r"returned 7, not an int in \[0, 3\)"):
        ds.count_by_key(partitioner=lambda k, n: 7, num_partitions=3).to_dict()
