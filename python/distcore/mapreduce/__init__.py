"""MapReduce with a native shuffle: Python map and reduce functions (or built-in ones), with the
partitioning, sorting, combining, spilling and merging in Rust, on this machine or on Dask.

- :func:`read` makes a lazy :class:`Dataset` of files (text lines, CSV, JSON lines, Parquet,
  Arrow), Python iterables or numpy arrays; its verbs (``map``, ``flat_map``, ``filter``,
  ``reduce_by_key``, ``group_by_key``, ``fold_by_key``, ``count_by_key``, ``frequencies``,
  ``distinct``, ``sort_by_key``, ``join``, ``top_k``) build the job, :meth:`Dataset.run` runs it;
- :class:`Job` is the same in mrjob's shape (mapper, reducer, combiner, ``then``);
- ``tokenize``, :class:`CsvField` and :class:`JsonField` are built-in mappers: into a built-in
  reducer they run in Rust on the files' bytes;
- jobs run on this machine (``executor="local"``: threads, worker processes) or on a Dask cluster
  (``executor="dask"``), with the same result; ``docs/mapreduce.md`` has the whole story;
- :func:`word_count` counts the words of files or text exactly as ``collections.Counter(
  text.split())`` would, in Rust on every core with the GIL released: the built-in
  tokenize-and-count job, with no Python object per word;
- :func:`sort_by_key` sorts (uint64 key, uint64 value) pairs by key, stably, on every core.

>>> from distcore.mapreduce import read, tokenize, word_count
>>> read(["to be or", "not to be"], format="items").flat_map(tokenize).count_by_key().to_dict()
{'be': 2, 'not': 1, 'or': 1, 'to': 2}
>>> sorted(word_count(text="to be or not to be").items())
[('be', 2), ('not', 1), ('or', 1), ('to', 2)]
>>> word_count(text="to be or not to be", top=2)
[('be', 2), ('to', 2)]
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from distcore._core import count_words, partition_of, sort_pairs
from distcore.mapreduce._plan import (
    CsvField,
    Dataset,
    Job,
    JsonField,
    csv_value,
    read,
    tokenize,
    union,
)
from distcore.mapreduce._result import Result, StageStats, Stats
from distcore.mapreduce._run import run

__all__ = [
    "CsvField",
    "Dataset",
    "Job",
    "JsonField",
    "Result",
    "StageStats",
    "Stats",
    "csv_value",
    "partition_of",
    "read",
    "run",
    "sort_by_key",
    "tokenize",
    "union",
    "word_count",
]

PathArg = str | os.PathLike[str]


@overload
def word_count(
    paths: Iterable[PathArg] = ...,
    *,
    text: str | bytes | None = ...,
    top: None = None,
    threads: int = ...,
) -> dict[str, int]: ...
@overload
def word_count(
    paths: Iterable[PathArg] = ...,
    *,
    text: str | bytes | None = ...,
    top: int,
    threads: int = ...,
) -> list[tuple[str, int]]: ...
def word_count(
    paths: Iterable[PathArg] = (),
    *,
    text: str | bytes | None = None,
    top: int | None = None,
    threads: int = 0,
) -> dict[str, int] | list[tuple[str, int]]:
    """Counts the words of the files at ``paths`` and of ``text``, together.

    Words are what ``str.split()`` returns: runs of characters between Unicode whitespace (the
    characters ``str.isspace()`` accepts). The files must be UTF-8. The counting runs in Rust on
    up to ``threads`` threads (0: one per core) with the GIL released.

    Returns ``{word: count}``, or with ``top`` the ``top`` most frequent ``(word, count)`` pairs,
    most frequent first, ties in code-point order.

    Raises
    ------
    OSError
        If a file cannot be read (the error names it).
    DecodeError
        If a file or ``text`` is not UTF-8 (the message names the file and the byte).
    ValueError
        If ``top`` or ``threads`` is negative.
    """
    if top is not None and top < 0:
        raise ValueError(f"top must be >= 0, got {top}")
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    names: list[str] = []
    texts: list[bytes] = []
    for p in [paths] if isinstance(paths, str | os.PathLike) else paths:
        names.append(os.fspath(p))
        texts.append(Path(p).read_bytes())
    if text is not None:
        names.append("text")
        texts.append(text.encode() if isinstance(text, str) else bytes(text))
    return count_words(texts, top=top, threads=threads, names=names)  # type: ignore[no-any-return]


def sort_by_key(
    keys: ArrayLike, values: ArrayLike, *, threads: int = 0
) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    """Sorts ``values`` by ``keys`` (uint64, one length), stably: pairs with equal keys keep their
    order. Runs in Rust on up to ``threads`` threads (0: one per core), GIL released; returns new
    ``(keys, values)`` arrays.

    >>> import numpy as np
    >>> k, v = sort_by_key(np.array([3, 1, 3, 2], dtype=np.uint64), np.arange(4, dtype=np.uint64))
    >>> k.tolist(), v.tolist()
    ([1, 2, 3, 3], [1, 3, 0, 2])
    """
    k = np.ascontiguousarray(keys, dtype=np.uint64)
    v = np.ascontiguousarray(values, dtype=np.uint64)
    if k.ndim != 1 or v.ndim != 1:
        raise ValueError("keys and values must be 1-d arrays")
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    return sort_pairs(k, v, threads=threads)  # type: ignore[no-any-return]
