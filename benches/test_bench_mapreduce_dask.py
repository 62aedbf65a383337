"""MapReduce on Dask: the Dask executor against the local executor and against dask.bag.

The corpus is the word count benchmark's (``test_bench_mapreduce.py``: 223 MB of Zipf text, 31.2 M
words). The cluster is a ``LocalCluster`` of 2 worker processes x 1 thread, started once outside
the timed part and shared by the Dask executor and dask.bag. Every run's counts are checked.

- built-in word count (``read(path).flat_map(tokenize).count_by_key()``, the Rust tokenizer in
  the map tasks) and a word count with a Python mapper and the built-in ``sum``
  (``flat_map(lambda line: [(w, 1) for w in line.split()]).reduce_by_key("sum")``);
- peers: the same job on the local executor (the target: the Dask executor within 2x of it,
  ``max_ratio`` 2), and dask.bag ``read_text(path, blocksize).str.split().flatten()
  .frequencies()`` on the same cluster, its blocks the size of the executor's input splits.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from test_bench_mapreduce import check_counts, corpus, tag

from distcore.mapreduce import Dataset, read, tokenize
from distcore.mapreduce._tasks import MAX_SPLIT_BYTES, MIN_SPLIT_BYTES

distributed = pytest.importorskip("distributed")
dask_bag = pytest.importorskip("dask.bag")

__all__ = ["corpus"]  # the corpus fixture, shared with the word count benchmark

WORKERS = 2
BUILTIN = "Dask executor: word count, built-in tokenizer + count, 223 MB Zipf text"
PYTHON = "Dask executor: word count, Python mapper + built-in sum, 223 MB Zipf text"
LOCAL = "local executor"
BAG = "dask.bag read_text.str.split.flatten.frequencies"


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    # The Python mapper goes to the workers by value: they need not import this module.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(
        n_workers=WORKERS,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )
    try:
        with distributed.Client(cluster, set_as_default=False) as c:
            c.wait_for_workers(WORKERS)
            yield c
    finally:
        cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def pairs(line: str) -> list[tuple[str, int]]:
    return [(w, 1) for w in line.split()]


JOBS: dict[str, Callable[[Path], Dataset]] = {
    BUILTIN: lambda path: read(path).flat_map(tokenize).count_by_key(),
    PYTHON: lambda path: read(path).flat_map(pairs).reduce_by_key("sum"),
}
#: Timed rounds: the Python mapper's job takes about 20 s a run here.
ROUNDS = {BUILTIN: 3, PYTHON: 2}


def split_bytes(path: Path) -> int:
    """The executor's input split size for ``WORKERS`` threads (``_tasks.input_splits``)."""
    return min(max(path.stat().st_size // (4 * WORKERS), MIN_SPLIT_BYTES), MAX_SPLIT_BYTES)


def bag_wc(path: Path, client: Any) -> dict[str, int]:
    bag = dask_bag.read_text(str(path), blocksize=split_bytes(path))
    return dict(bag.str.split().flatten().frequencies().compute(scheduler=client))


def mb(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 1)


@pytest.mark.parametrize("peer", [LOCAL, BAG])
@pytest.mark.parametrize("group", [BUILTIN, PYTHON])
def test_dask_executor(benchmark: Any, corpus: Path, client: Any, group: str, peer: str) -> None:
    target = {"max_ratio": 2.0} if peer == LOCAL else {}
    name = f"dask executor (vs {peer.split()[0]})"
    tag(benchmark, group, "distcore", name, peer=peer, mb=mb(corpus), workers=WORKERS, **target)
    job = JOBS[group](corpus)
    counts = benchmark.pedantic(
        lambda: job.to_dict(executor="dask", client=client), rounds=ROUNDS[group]
    )
    check_counts(counts)
    benchmark.extra_info["mb_per_s"] = round(mb(corpus) / benchmark.stats.stats.median, 1)


@pytest.mark.parametrize("group", [BUILTIN, PYTHON])
def test_local_executor(benchmark: Any, corpus: Path, group: str) -> None:
    tag(benchmark, group, "peer", LOCAL, workers=WORKERS)
    job = JOBS[group](corpus)
    counts = benchmark.pedantic(lambda: job.to_dict(workers=WORKERS), rounds=ROUNDS[group])
    check_counts(counts)


@pytest.mark.parametrize("group", [BUILTIN, PYTHON])
def test_dask_bag(benchmark: Any, corpus: Path, client: Any, group: str) -> None:
    tag(benchmark, group, "peer", BAG, blocksize=split_bytes(corpus))
    counts = benchmark.pedantic(bag_wc, args=(corpus, client), rounds=1)
    check_counts(counts)
    assert counts == JOBS[BUILTIN](corpus).to_dict(executor="dask", client=client)
