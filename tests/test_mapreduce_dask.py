"""The Dask executor on a real two-process LocalCluster: every job gives what the local executor
and a plain-Python reference give; a worker killed mid-job changes nothing; a task's error reaches
the caller as the same exception with the same message, and leaves the cluster clean."""

from __future__ import annotations

import operator
import os
import random
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from distcore.exceptions import (
    DecodeError,
    RecordTypeError,
    SchedulerError,
    TaskError,
    WorkerLostError,
)
from distcore.mapreduce import Dataset, Result, read, run, tokenize

from services._common import HOST, free_port, service_unavailable
from texts import write_zipf

pytestmark = pytest.mark.services

PREFIX = "distcore-mr-"  # the executor's task keys


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    try:
        from distributed import LocalCluster
    except ImportError as e:
        service_unavailable(
            f"dask.distributed is not importable ({e})", "pip install dask[distributed]"
        )
    # The jobs' functions are defined here; the worker processes need not import this module.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    c = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host=HOST,
        dashboard_address=None,
        # No dashboard, and the scheduler's remaining HTTP routes on a free port, not 8787.
        scheduler_kwargs={"dashboard_address": f"{HOST}:0"},
    )
    try:
        yield c
    finally:
        c.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[Any]:
    from distributed import Client

    with Client(cluster, set_as_default=False) as c:
        yield c


def on_dask(ds: Dataset, client: Any, **kw: Any) -> Result:
    return ds.run(executor="dask", client=client, **kw)


@pytest.fixture(scope="module")
def zipf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 3 MB of Zipf-distributed words, some non-ASCII, with odd spaces and empty lines."""
    path = tmp_path_factory.mktemp("dask") / "zipf.txt"
    write_zipf(path, random.Random(11), 600_000)
    return path


def test_built_in_word_count_equals_counter_and_the_local_executor(
    client: Any, zipf_file: Path
) -> None:
    want = Counter(zipf_file.read_text(encoding="utf-8").split())
    ds = read(zipf_file, split_bytes=512 << 10).flat_map(tokenize).count_by_key()
    with on_dask(ds, client) as r:
        assert r.to_dict() == want
        st = r.stats
        assert st.executor == "dask" and st.partitions == 2  # the cluster's two threads
        (stage,) = st.stages
        assert stage.map_tasks >= 5 and stage.reduce_tasks == 2
        assert stage.input_records == len(zipf_file.read_bytes().splitlines())
        assert stage.map_output_records == sum(want.values())
        assert stage.output_records == len(want) and stage.retried_tasks == 0
        assert stage.spills == 0
        assert list(r) == sorted(want.items())  # key order across partitions
    assert ds.to_dict() == want


def test_python_mapper_by_scheduler_address_equals_counter(cluster: Any, zipf_file: Path) -> None:
    want = Counter(zipf_file.read_text(encoding="utf-8").split())
    ds = (
        read(zipf_file, split_bytes=1 << 20)
        .flat_map(lambda line: [(w, 1) for w in line.split()])
        .reduce_by_key(operator.add)
    )
    with run(ds.plan, executor="dask", scheduler=cluster.scheduler_address) as r:
        assert r.to_dict() == want
        assert r.stats.stages[0].map_tasks >= 3
    assert ds.to_dict() == want


def test_group_by_key_and_python_reducers_keep_input_order(client: Any) -> None:
    rng = random.Random(3)
    pairs = [(rng.randrange(500), rng.randrange(10**6)) for _ in range(60_000)]
    groups: dict[int, list[int]] = defaultdict(list)
    for k, v in pairs:
        groups[k].append(v)
    src = read(pairs, format="items", split_records=7_000)
    grouped = src.group_by_key(num_partitions=5)
    with on_dask(grouped, client) as r:
        assert r.to_dict() == groups
        assert r.stats.partitions == 5 and r.stats.stages[0].map_tasks == 9
    assert grouped.to_dict() == groups

    # A reducer function sees each key's values in input order; a fold has no combiner.
    firsts = src.shuffle(lambda k, vs: (vs[0], vs[-1], len(vs)))
    want = {k: (vs[0], vs[-1], len(vs)) for k, vs in groups.items()}
    assert on_dask(firsts, client).to_dict() == want == firsts.to_dict()
    folded = src.fold_by_key("", lambda acc, v: acc + str(v % 10))
    want_fold = {k: "".join(str(v % 10) for v in vs) for k, vs in groups.items()}
    assert on_dask(folded, client).to_dict() == want_fold == folded.to_dict()


def test_a_job_without_a_shuffle_keeps_input_order(client: Any) -> None:
    ds = read(range(5_000), split_records=400).map(lambda x: x * 7).filter(lambda x: x % 3)
    want = [x * 7 for x in range(5_000) if x * 7 % 3]
    with run(ds.plan, executor="dask", client=client) as r:
        assert r.to_list() == want
    assert ds.to_list() == want


def test_a_two_stage_job_counts_words_then_counts_the_counts(client: Any, zipf_file: Path) -> None:
    counts = Counter(zipf_file.read_text(encoding="utf-8").split())
    want = Counter(counts.values())
    ds = (
        read(zipf_file, split_bytes=512 << 10)
        .flat_map(tokenize)
        .count_by_key()
        .map(lambda kv: (kv[1], kv[0]))
        .count_by_key(num_partitions=3)
    )
    with on_dask(ds, client) as r:
        assert r.to_dict() == want
        first, second = r.stats.stages
        assert first.output_records == len(counts)
        assert second.map_tasks == 2 and second.input_records == len(counts)
        assert second.reduce_tasks == 3 and second.output_records == len(want)
        assert leftover_tasks(client) == []  # the result is on the client, the cluster is clean
    assert ds.to_dict() == want


def test_a_dask_result_feeds_a_later_job(client: Any) -> None:
    words = [f"k{i % 97}" for i in range(10_000)]
    with on_dask(read(words, format="items").frequencies(), client) as first:
        again = read(first).map(lambda kv: (kv[1], kv[0])).group_by_key()
        got = {k: sorted(v) for k, v in on_dask(again, client).to_dict().items()}
    want: dict[int, list[str]] = defaultdict(list)
    for w, n in Counter(words).items():
        want[n].append(w)
    assert got == {k: sorted(v) for k, v in want.items()}


@pytest.mark.parametrize("how", ["inner", "left"])
def test_join_pairs_every_left_value_with_every_right_one(client: Any, how: str) -> None:
    rng = random.Random(5)
    left = [(rng.randrange(300), f"l{i}") for i in range(3_000)]
    right = [(rng.randrange(400) + 100, f"r{i}") for i in range(2_000)]
    rights: dict[int, list[str]] = defaultdict(list)
    for k, v in right:
        rights[k].append(v)
    want = sorted(
        (k, (a, b)) for k, a in left for b in (rights.get(k) or ([None] if how == "left" else []))
    )
    ds = read(left, format="items", split_records=500).join(
        read(right, format="items", split_records=500),
        how=how,  # type: ignore[arg-type]
    )
    got = on_dask(ds, client).to_list()
    assert sorted(got) == want
    assert got == ds.to_list()


def test_sort_by_key_is_stable_across_partitions(client: Any) -> None:
    rng = random.Random(8)
    pairs = [
        (rng.choice(["b", "a", "c", "ä", "字"]) + str(rng.randrange(50)), i) for i in range(20_000)
    ]
    ds = read(pairs, format="items", split_records=3_000).sort_by_key(num_partitions=4)
    got = on_dask(ds, client).to_list()
    assert got == sorted(pairs, key=operator.itemgetter(0))  # sorted() is stable
    assert got == ds.to_list()


def test_unicode_huge_and_hot_keys(client: Any) -> None:
    huge = "x" * (1 << 20)
    keys = ["ключ", "🔑", "e\u0301", "é", "", "\x00", huge, huge + "y"]
    items = [(k, 1) for k in keys for _ in range(3)] + [("hot", 1)] * 100_000
    random.Random(2).shuffle(items)
    want = Counter(k for k, _ in items)
    ds = read(items, format="items", split_records=20_000).count_by_key()
    with on_dask(ds, client) as r:
        got = r.to_dict()
        assert got == want and got[huge] == 3 and got["hot"] == 100_000
        assert r.stats.stages[0].shuffle_records < 6 * 20  # combined on the map side
    assert ds.to_dict() == want


def test_a_small_memory_limit_spills_on_the_workers_and_changes_nothing(
    client: Any, zipf_file: Path
) -> None:
    lines = zipf_file.read_text(encoding="utf-8").removesuffix("\n").split("\n")
    want = Counter(lines)
    ds = read(zipf_file, split_bytes=4 << 20).frequencies()  # one task, ~3 MB of distinct keys
    # 2 MiB for the cluster's two threads: 1 MiB (the floor) per task.
    with on_dask(ds, client, memory_limit=2 << 20) as r:
        assert r.to_dict() == want
        assert r.stats.spills > 0 and r.stats.stages[0].spilled_bytes > 0
    assert on_dask(ds, client).stats.spills == 0


def test_a_worker_killed_mid_job_changes_nothing(client: Any, tmp_path: Path) -> None:
    """Map tasks 4.. block on a flag file until the test has killed the worker running one of
    them: the scheduler runs that task again elsewhere (and recomputes the lost outputs of the
    tasks the dead worker had finished), and the result is the same."""
    flags = tmp_path

    def slow(x: int) -> list[tuple[int, int]]:
        if x >= 4:
            (flags / f"started-{x}-{os.getpid()}").touch()
            deadline = time.monotonic() + 120
            while not (flags / "go").exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("the test never set the flag")
                time.sleep(0.02)
        return [(x % 7, x), (x % 3 + 100, -x)]

    items = list(range(24))
    ds = read(items, format="items", split_records=1).flat_map(slow).group_by_key()
    box: dict[str, Any] = {}

    def job() -> None:
        try:
            with on_dask(ds, client) as r:
                box["got"], box["stats"] = r.to_dict(), r.stats
        except BaseException as e:  # reported by the main thread
            box["error"] = e

    worker_pids = set(client.run(os.getpid).values())
    thread = threading.Thread(target=job)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            started = {int(p.name.split("-")[2]) for p in flags.glob("started-*")}
            if len(started) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(started) >= 2, f"the slow tasks did not start on both workers: {box}"
        victim = min(started)
        assert victim in worker_pids
        os.kill(victim, signal.SIGKILL)
    finally:
        (flags / "go").touch()
        thread.join(120)
    assert not thread.is_alive()
    assert "error" not in box, box.get("error")
    want: dict[int, list[int]] = defaultdict(list)
    for x in items:
        for k, v in slow(x):
            want[k].append(v)
    assert box["got"] == want
    assert box["stats"].stages[0].retried_tasks >= 1
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the dead worker
    assert victim not in set(client.run(os.getpid).values())


def test_a_task_that_kills_every_worker_it_runs_on_is_a_worker_lost_error(client: Any) -> None:
    def die(x: int) -> list[tuple[int, int]]:
        if x == 3:
            os._exit(1)
        return [(x, x)]

    ds = read(range(6), split_records=1).flat_map(die).count_by_key()
    with pytest.raises(WorkerLostError, match="died running task"):
        on_dask(ds, client)
    assert leftover_tasks(client) == []
    client.wait_for_workers(2, timeout=60)
    assert on_dask(read(range(6)).map(lambda x: (x, x)).count_by_key(), client).to_dict() == {
        x: 1 for x in range(6)
    }


def leftover_tasks(client: Any) -> list[str]:
    def keys(dask_scheduler: Any) -> list[str]:
        return [str(k) for k in dask_scheduler.tasks if str(k).startswith(PREFIX)]

    deadline = time.monotonic() + 10
    while (left := client.run_on_scheduler(keys)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left  # type: ignore[no-any-return]


def raises_at_17(line: str) -> list[str]:
    if line == "line 17":
        raise ValueError("no seventeen")
    return line.split()


def not_a_pair(x: int) -> Any:
    return (x, x) if x != 1234 else [x]


@pytest.mark.parametrize(
    ("error", "make"),
    [
        (
            TaskError,
            lambda p: (
                read([f"line {i}" for i in range(50)], format="items")
                .flat_map(raises_at_17)
                .frequencies()
            ),
        ),
        (
            RecordTypeError,
            lambda p: (
                read(range(5000), format="items", split_records=1000).map(not_a_pair).count_by_key()
            ),
        ),
        (DecodeError, lambda p: read(p).flat_map(tokenize).count_by_key()),
    ],
    ids=["mapper raises", "not a pair", "not utf-8"],
)
def test_a_task_error_reaches_the_caller_as_it_is_and_leaves_the_cluster_clean(
    client: Any, tmp_path: Path, error: type[Exception], make: Any
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine words\n" * 1000 + b"bad \xff byte\n")
    ds = make(bad)
    with pytest.raises(error) as on_cluster:
        on_dask(ds, client)
    with pytest.raises(error) as locally:
        ds.run()
    assert type(on_cluster.value) is error
    assert str(on_cluster.value) == str(locally.value)  # the record and where it is
    if error is TaskError:
        assert "'line 17'" in str(on_cluster.value) and "items[17]" in str(on_cluster.value)
    assert leftover_tasks(client) == []
    ok = read(["a b", "b"], format="items").flat_map(str.split).frequencies()
    assert on_dask(ok, client).to_dict() == {"a": 1, "b": 2}


def test_an_unreachable_scheduler_is_a_scheduler_error_soon(cluster: Any) -> None:
    address = f"tcp://{HOST}:{free_port()}"
    ds = read(["a"], format="items").frequencies()
    t0 = time.monotonic()
    with pytest.raises(SchedulerError, match=address.replace(".", r"\.")) as e:
        run(ds.plan, executor="dask", scheduler=address)
    assert time.monotonic() - t0 < 15
    assert isinstance(e.value, ConnectionError)


def test_neither_client_nor_scheduler_is_refused(cluster: Any) -> None:
    with pytest.raises(ValueError, match="client or a scheduler"):
        run(read(["a"], format="items").frequencies().plan, executor="dask")
