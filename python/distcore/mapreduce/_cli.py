"""``distcore mr``: ready-made MapReduce jobs on the native core (``wordcount``, ``sort``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from distcore._cliutil import CliError, user_errors
from distcore.mapreduce import sort_by_key, word_count


@click.group(name="mr", short_help="MapReduce jobs on the native core: wordcount, sort.")
def mr_group() -> None:
    """MapReduce jobs whose splitting, counting and sorting run in Rust on every core."""


@mr_group.command(short_help="Count the words of text files (as str.split() splits them).")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--top", type=click.IntRange(1), default=20, show_default=True)
@click.option("--threads", type=click.IntRange(0), default=0, help="0: one per core.")
@user_errors
def wordcount(files: tuple[Path, ...], top: int, threads: int) -> None:
    """Count the words of FILES (UTF-8) and print the TOP most frequent."""
    size = sum(_size(f) for f in files)
    start = time.perf_counter()
    counts = word_count(files, threads=threads)
    took = time.perf_counter() - start
    ranked = sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))[:top]
    console = Console(file=sys.stdout)
    table = Table("word", "count", title=f"top {len(ranked)} of {len(counts):,} distinct words")
    for w, n in ranked:
        table.add_row(w, f"{n:,}")
    console.print(table)
    total = sum(counts.values())
    rate = size / took / 1e6 if took > 0 else float("inf")
    console.print(
        f"{total:,} words, {len(counts):,} distinct, in {size / 1e6:,.1f} MB: "
        f"{took:.2f} s ({rate:,.0f} MB/s)"
    )


@mr_group.command(short_help="Sort a binary file of (uint64 key, uint64 value) pairs by key.")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--threads", type=click.IntRange(0), default=0, help="0: one per core.")
@user_errors
def sort(source: Path, dest: Path, threads: int) -> None:
    """Sort SOURCE, little-endian (uint64 key, uint64 value) pairs, by key (stably) into DEST."""
    raw = np.fromfile(_readable(source), dtype="<u8")
    if raw.size % 2:
        raise CliError(f"{source}: {raw.size * 8} bytes is not a whole number of 16-byte pairs")
    start = time.perf_counter()
    keys, values = sort_by_key(raw[0::2], raw[1::2], threads=threads)
    took = time.perf_counter() - start
    out = np.empty(raw.size, dtype="<u8")
    out[0::2], out[1::2] = keys, values
    out.tofile(dest)
    click.echo(f"sorted {keys.size:,} pairs in {took:.2f} s into {dest}")


def _readable(path: Path) -> Path:
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    return path


def _size(path: Path) -> int:
    return _readable(path).stat().st_size
