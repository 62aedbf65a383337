"""MapReduce core: the built-in word count and the pair sort, next to the native engines.

The corpus is the research notes' (docs/mapreduce.md): 223 MB of generated text, 2.6 M lines of 12
words drawn from 100,000 random lowercase words (3-10 letters) with Zipf weights (s = 1), numpy
seed 42. Every contender's result is checked (31.2 M words, and the peers' counts equal distcore's).

- word count: ``distcore.mapreduce.word_count`` against DuckDB (``string_split`` + ``GROUP BY``),
  polars (``str.split`` + ``explode`` + ``group_by``) and ``collections.Counter(line.split())``;
  the issue's target is to be at least as fast as DuckDB and polars (``max_ratio`` 1).
- sort: 10 M (uint64 key, uint64 value) pairs, ``sort_by_key`` against polars ``sort`` and numpy's
  ``argsort`` + gather; the target is at least as fast as polars.
- a job with a user-written Python mapper and the built-in count, on 2 worker processes (the
  mapper yields words, as for dask.bag's ``frequencies``; or ``(word, 1)`` pairs, as in mrjob)
  against ``multiprocessing.Pool(2)`` with a ``Counter`` per 16 MB range and dask.bag's
  ``frequencies`` on its process scheduler; the target is 2x faster (``max_ratio`` 0.5).
- memory: a built-in word count over text 4x its ``memory_limit`` with almost every word distinct
  (so combining cannot help), in a fresh process, its peak RSS over the limit; target 1.5.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from distcore.mapreduce import sort_by_key, word_count

duckdb = pytest.importorskip("duckdb")
pl = pytest.importorskip("polars")

LINES = 2_600_000
WORDS_PER_LINE = 12
VOCAB = 100_000
PAIRS = 10_000_000

WC = "word count, 223 MB Zipf text (31.2 M words)"
SORT = "sort 10 M (uint64 key, uint64 value) pairs"


@pytest.fixture(scope="module")
def corpus() -> Path:
    """The corpus, generated once per machine into the temp folder (both MapReduce bench files,
    run as separate pytest processes, share it)."""
    path = Path(tempfile.gettempdir()) / "distcore-bench" / f"zipf-{LINES}x{WORDS_PER_LINE}-42.txt"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    lengths = rng.integers(3, 11, VOCAB)
    letters = rng.integers(ord("a"), ord("z") + 1, int(lengths.sum()), dtype=np.uint8)
    cuts = np.concatenate([[0], np.cumsum(lengths)])
    vocab = [letters[cuts[i] : cuts[i + 1]].tobytes() for i in range(VOCAB)]
    weights = 1.0 / np.arange(1, VOCAB + 1)
    picks = rng.choice(VOCAB, size=LINES * WORDS_PER_LINE, p=weights / weights.sum())
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        for start in range(0, LINES, 100_000):
            block = picks[start * WORDS_PER_LINE : (start + 100_000) * WORDS_PER_LINE]
            rows = block.reshape(-1, WORDS_PER_LINE)
            f.write(b"".join(b" ".join(vocab[i] for i in row) + b"\n" for row in rows))
    os.replace(tmp, path)
    return path


def tag(benchmark: Any, group: str, impl: str, name: str, **extra: Any) -> None:
    benchmark.group = group
    benchmark.name = name
    benchmark.extra_info.update(impl=impl, name=name, keys=1, unit="run", **extra)


def check_counts(counts: dict[str, int] | dict[bytes, int]) -> None:
    """Every word counted once (the peers' counts are also compared with distcore's)."""
    assert sum(counts.values()) == LINES * WORDS_PER_LINE


def distcore_wc(path: Path) -> dict[str, int]:
    return word_count([path])


def duckdb_wc(path: Path) -> dict[str, int]:
    con = duckdb.connect()
    rows = con.execute(
        "SELECT w, count(*) FROM (SELECT unnest(string_split(line, ' ')) AS w FROM "
        "read_csv(?, columns={'line': 'VARCHAR'}, delim='\\x01', header=false, quote='', "
        "escape='')) GROUP BY w",
        [str(path)],
    ).fetchall()
    return dict(rows)


def polars_wc(path: Path) -> dict[str, int]:
    df = (
        pl.scan_csv(path, has_header=False, separator="\x01", new_columns=["line"], quote_char=None)
        .select(pl.col("line").str.split(" ").explode().alias("w"))
        .group_by("w")
        .len()
        .collect()
    )
    return dict(zip(df["w"].to_list(), df["len"].to_list(), strict=True))


def counter_wc(path: Path) -> dict[str, int]:
    c: Counter[str] = Counter()
    with path.open(encoding="utf-8") as f:
        for line in f:
            c.update(line.split())
    return dict(c)


PEERS = {"DuckDB string_split + GROUP BY": duckdb_wc, "polars split + group_by": polars_wc}


@pytest.mark.parametrize("peer", list(PEERS))
def test_word_count_distcore(benchmark: Any, corpus: Path, peer: str) -> None:
    size = corpus.stat().st_size
    tag(
        benchmark,
        WC,
        "distcore",
        f"word_count (vs {peer.split()[0]})",
        peer=peer,
        max_ratio=1.0,
        mb=round(size / 1e6, 1),
    )
    counts = benchmark.pedantic(distcore_wc, args=(corpus,), rounds=3)
    check_counts(counts)
    assert len(counts) <= VOCAB
    benchmark.extra_info["mb_per_s"] = round(size / 1e6 / benchmark.stats.stats.median, 1)


@pytest.mark.parametrize("peer", list(PEERS))
def test_word_count_peer(benchmark: Any, corpus: Path, peer: str) -> None:
    tag(benchmark, WC, "peer", peer)
    counts = benchmark.pedantic(PEERS[peer], args=(corpus,), rounds=3)
    check_counts(counts)
    assert counts == distcore_wc(corpus)


def test_word_count_vs_counter(benchmark: Any, corpus: Path) -> None:
    tag(benchmark, WC, "distcore", "word_count (vs Counter)", peer="Counter(line.split())")
    benchmark.pedantic(distcore_wc, args=(corpus,), rounds=3)


def test_word_count_counter(benchmark: Any, corpus: Path) -> None:
    tag(benchmark, WC, "peer", "Counter(line.split())")
    counts = benchmark.pedantic(counter_wc, args=(corpus,), rounds=1)
    assert counts == distcore_wc(corpus)


@pytest.fixture(scope="module")
def pairs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.integers(0, 2**63, PAIRS, dtype=np.uint64), np.arange(PAIRS, dtype=np.uint64)


SORT_PEERS = ["polars DataFrame.sort", "numpy argsort + gather"]


@pytest.mark.parametrize("peer", SORT_PEERS)
def test_sort_distcore(benchmark: Any, pairs: tuple[np.ndarray, np.ndarray], peer: str) -> None:
    name = f"sort_by_key (vs {peer.split()[0]})"
    tag(benchmark, SORT, "distcore", name, peer=peer, max_ratio=1.0)
    k, _ = benchmark.pedantic(sort_by_key, args=pairs, rounds=3)
    assert bool(np.all(k[:-1] <= k[1:]))


def test_sort_polars(benchmark: Any, pairs: tuple[np.ndarray, np.ndarray]) -> None:
    tag(benchmark, SORT, "peer", "polars DataFrame.sort")
    df = pl.DataFrame({"k": pairs[0], "v": pairs[1]})
    out = benchmark.pedantic(lambda: df.sort("k", maintain_order=True), rounds=3)
    assert np.array_equal(out["k"].to_numpy(), sort_by_key(*pairs)[0])


def test_sort_numpy(benchmark: Any, pairs: tuple[np.ndarray, np.ndarray]) -> None:
    tag(benchmark, SORT, "peer", "numpy argsort + gather")

    def run() -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(pairs[0], kind="stable")
        return pairs[0][order], pairs[1][order]

    benchmark.pedantic(run, rounds=3)


# --- jobs with a Python mapper: distcore's shuffle vs multiprocessing and dask.bag -----------

JOB = "word count with a Python mapper, 223 MB Zipf text (2 workers)"


def py_pairs(line: str) -> list[tuple[str, int]]:
    return [(w, 1) for w in line.split()]


def py_words(line: str) -> list[str]:
    return line.split()


def distcore_pairs_job(path: Path) -> dict[str, int]:
    """mrjob's shape: the mapper yields (word, 1), the built-in count reduces."""
    from distcore.mapreduce import read

    return read(path).flat_map(py_pairs).count_by_key().to_dict(workers=2)


def distcore_words_job(path: Path) -> dict[str, int]:
    """dask.bag's shape: the mapper yields words, the built-in count (frequencies) reduces."""
    from distcore.mapreduce import read

    return read(path).flat_map(py_words).frequencies().to_dict(workers=2)


MAPPERS = {"mapper yields words": distcore_words_job, "mapper yields (word, 1)": distcore_pairs_job}


def _count_range(args: tuple[str, int, int]) -> Counter[str]:
    # Lines that start in [start, end), Hadoop's rule, as a hand-written job would do it.
    name, start, end = args
    c: Counter[str] = Counter()
    with open(name, "rb") as f:
        if start:
            f.seek(start - 1)
            f.readline()
        while f.tell() < end:
            line = f.readline()
            if not line:
                break
            c.update(line.decode().split())
    return c


def multiprocessing_job(path: Path) -> dict[str, int]:
    import multiprocessing

    size = path.stat().st_size
    step = 16 << 20
    ranges = [(str(path), s, min(s + step, size)) for s in range(0, size, step)]
    total: Counter[str] = Counter()
    with multiprocessing.get_context("forkserver").Pool(2) as pool:
        for c in pool.imap_unordered(_count_range, ranges):
            total.update(c)
    return dict(total)


def dask_bag_job(path: Path) -> dict[str, int]:
    import dask.bag as db

    bag = db.read_text(str(path), blocksize=16 << 20).map(str.split).flatten().frequencies()
    return dict(bag.compute(scheduler="processes", num_workers=2))


JOB_PEERS = {
    "multiprocessing Pool(2) + Counter": multiprocessing_job,
    "dask.bag frequencies (processes)": dask_bag_job,
}


@pytest.mark.parametrize("peer", list(JOB_PEERS))
@pytest.mark.parametrize("mapper", list(MAPPERS))
def test_python_mapper_job_distcore(benchmark: Any, corpus: Path, mapper: str, peer: str) -> None:
    tag(
        benchmark,
        JOB,
        "distcore",
        f"job, {mapper} (vs {peer.split()[0]})",
        peer=peer,
        max_ratio=0.5,
    )
    # One warm-up run outside the timing: the worker processes start once per Python process.
    counts = benchmark.pedantic(MAPPERS[mapper], args=(corpus,), rounds=1, warmup_rounds=1)
    check_counts(counts)


@pytest.mark.parametrize("peer", list(JOB_PEERS))
def test_python_mapper_job_peer(benchmark: Any, corpus: Path, peer: str) -> None:
    tag(benchmark, JOB, "peer", peer)
    counts = benchmark.pedantic(JOB_PEERS[peer], args=(corpus,), rounds=1)
    check_counts(counts)
    assert counts == distcore_wc(corpus)


# --- memory: a job over 4x its memory limit ----------------------------------------------------

MEM = "peak RSS of a word count over 4x its memory limit"
MEM_LIMIT = 128 << 20

# The peak is VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec(), so a child
# of the (large) pytest process would report the parent's size.
_MEM_SCRIPT = """
import sys, tempfile
from distcore.mapreduce import read, tokenize
with read(sys.argv[1]).flat_map(tokenize).count_by_key().run(memory_limit=int(sys.argv[2])) as r:
    with tempfile.TemporaryDirectory() as out:
        r.save(out, format="tsv")
    print(r.stats.spills, r.stats.stages[0].output_records)
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(int(hwm.split()[1]) * 1024)
"""


@pytest.fixture(scope="module")
def unique_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4x the memory limit of text where almost every word is distinct (no combining helps)."""
    path = tmp_path_factory.mktemp("unique") / "keys.txt"
    rng = np.random.default_rng(7)
    with path.open("wb") as f:
        written = 0
        while written < 4 * MEM_LIMIT:
            ids = rng.integers(0, 1 << 40, 1_000_000)
            block = ("\n".join(f"k{i:x} k{i % 9973}" for i in ids) + "\n").encode()
            f.write(block)
            written += len(block)
    return path


def test_memory_over_four_times_the_limit(benchmark: Any, unique_keys: Path) -> None:
    import subprocess
    import sys

    benchmark.group = MEM
    benchmark.name = "peak RSS / memory_limit"
    peaks: list[float] = []

    def job() -> None:
        done = subprocess.run(
            [sys.executable, "-c", _MEM_SCRIPT, str(unique_keys), str(MEM_LIMIT)],
            capture_output=True,
            text=True,
            check=True,
        )
        spills, distinct, peak = (int(x) for x in done.stdout.split())
        assert spills > 0 and distinct > 1_000_000
        peaks.append(peak / MEM_LIMIT)

    benchmark.pedantic(job, rounds=1)
    benchmark.extra_info.update(
        impl="measure",
        name="peak RSS / memory_limit",
        value=round(max(peaks), 2),
        unit="x",
        target_max=1.5,
        limit_mb=MEM_LIMIT >> 20,
        data_mb=round(unique_keys.stat().st_size / 1e6),
    )
