"""MapReduce core: the built-in word count and the pair sort, next to the native engines.

The corpus is the research notes' (docs/mapreduce.md): 223 MB of generated text, 2.6 M lines of 12
words drawn from 100,000 random lowercase words (3-10 letters) with Zipf weights (s = 1), numpy
seed 42. Every contender's result is checked (31.2 M words, and the peers' counts equal distcore's).

- word count: ``distcore.mapreduce.word_count`` against DuckDB (``string_split`` + ``GROUP BY``),
  polars (``str.split`` + ``explode`` + ``group_by``) and ``collections.Counter(line.split())``;
  the issue's target is to be at least as fast as DuckDB and polars (``max_ratio`` 1).
- sort: 10 M (uint64 key, uint64 value) pairs, ``sort_by_key`` against polars ``sort`` and numpy's
  ``argsort`` + gather; the target is at least as fast as polars.
"""

from __future__ import annotations

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
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(42)
    lengths = rng.integers(3, 11, VOCAB)
    letters = rng.integers(ord("a"), ord("z") + 1, int(lengths.sum()), dtype=np.uint8)
    cuts = np.concatenate([[0], np.cumsum(lengths)])
    vocab = [letters[cuts[i] : cuts[i + 1]].tobytes() for i in range(VOCAB)]
    weights = 1.0 / np.arange(1, VOCAB + 1)
    picks = rng.choice(VOCAB, size=LINES * WORDS_PER_LINE, p=weights / weights.sum())
    path = tmp_path_factory.mktemp("corpus") / "words.txt"
    with path.open("wb") as f:
        for start in range(0, LINES, 100_000):
            block = picks[start * WORDS_PER_LINE : (start + 100_000) * WORDS_PER_LINE]
            rows = block.reshape(-1, WORDS_PER_LINE)
            f.write(b"".join(b" ".join(vocab[i] for i in row) + b"\n" for row in rows))
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
