"""``distcore mr``: ready-made MapReduce jobs on the native core (``wordcount``, ``sort``) and a
user's own job (``run module:job``), locally or on a Dask cluster."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from distcore._cliutil import CliError, user_errors
from distcore.mapreduce import Job, Result, read, sort_by_key, tokenize, word_count

_EXECUTOR = click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="local: this machine's cores; dask: the cluster at --scheduler.",
)
_SCHEDULER = click.option("--scheduler", help="Dask scheduler address (tcp://host:port).")


def _run_kw(executor: str, scheduler: str | None, workers: int | None = None) -> dict[str, Any]:
    if executor == "dask" and not scheduler:
        raise CliError("--executor dask needs --scheduler ADDRESS")
    if executor == "local" and scheduler:
        raise CliError("--scheduler is for --executor dask")
    kw: dict[str, Any] = {"executor": executor}
    if scheduler:
        kw["scheduler"] = scheduler
    if workers:
        kw["workers"] = workers
    return kw


def _print_stats(console: Console, result: Result) -> None:
    s = result.stats
    for i, st in enumerate(s.stages, 1):
        console.print(
            f"stage {i}: {st.input_records:,} records in, {st.map_output_records:,} pairs, "
            f"{st.shuffle_records:,} shuffled ({st.shuffle_bytes / 1e6:,.1f} MB, "
            f"{st.spills} spills), {st.output_records:,} out; "
            f"map {st.map_seconds:.2f} s, reduce {st.reduce_seconds:.2f} s"
        )
    console.print(f"{s.executor} executor, {s.partitions} partitions: {s.seconds:.2f} s")


@click.group(name="mr", short_help="MapReduce: wordcount, sort, run your own job.")
def mr_group() -> None:
    """MapReduce jobs whose splitting, counting and sorting run in Rust on every core."""


@mr_group.command(short_help="Count the words of text files (as str.split() splits them).")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--top", type=click.IntRange(1), default=20, show_default=True)
@click.option("--threads", type=click.IntRange(0), default=0, help="0: one per core.")
@click.option(
    "--executor",
    type=click.Choice(["threads", "local", "dask"]),
    default="threads",
    show_default=True,
    help="threads: one fused pass in Rust; local / dask: as a MapReduce job (map, shuffle, "
    "reduce) on this machine or on the cluster at --scheduler.",
)
@_SCHEDULER
@user_errors
def wordcount(
    files: tuple[Path, ...], top: int, threads: int, executor: str, scheduler: str | None
) -> None:
    """Count the words of FILES (UTF-8) and print the TOP most frequent."""
    size = sum(_size(f) for f in files)
    start = time.perf_counter()
    if executor == "threads":
        if scheduler:
            raise CliError("--scheduler is for --executor dask")
        counts = word_count(files, threads=threads)
    else:
        kw = _run_kw(executor, scheduler, threads or None)
        job = read([str(f) for f in files]).flat_map(tokenize).count_by_key()
        counts = job.to_dict(**kw)
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


@mr_group.command(name="run", short_help="Run a job of yours (module:job) over files.")
@click.argument("job_ref", metavar="MODULE:JOB")
@click.argument("inputs", nargs=-1, required=True)
@_EXECUTOR
@_SCHEDULER
@click.option("--workers", type=click.IntRange(1), help="Local parallelism (default: cores).")
@click.option("--memory-limit", type=click.IntRange(1), help="Map-side memory, in MB.")
@click.option("--format", "fmt", help="Input format (lines, csv, jsonl, parquet, arrow).")
@click.option(
    "--output", type=click.Path(file_okay=False, path_type=Path), help="Write part files here."
)
@click.option("--top", type=click.IntRange(0), default=20, show_default=True)
@user_errors
def run_job(
    job_ref: str,
    inputs: tuple[str, ...],
    executor: str,
    scheduler: str | None,
    workers: int | None,
    memory_limit: int | None,
    fmt: str | None,
    output: Path | None,
    top: int,
) -> None:
    """Run JOB (a distcore.mapreduce.Job, or a function taking a Dataset and returning one) from
    MODULE (importable, or a .py file) over INPUTS (files, globs, directories), then print its
    first TOP records or write them to --output."""
    job = _load(job_ref)
    kw = _run_kw(executor, scheduler, workers)
    if memory_limit:
        kw["memory_limit"] = memory_limit << 20
    dataset = (
        job.dataset(list(inputs), format=fmt)
        if isinstance(job, Job)
        else job(read(list(inputs), format=fmt))
    )
    with dataset.run(**kw) as result:
        console = Console(file=sys.stdout)
        if output is not None:
            files = result.save(output)
            console.print(f"wrote {len(files)} part files to {output}")
        else:
            table = Table("record", title=f"first {top} records")
            for i, rec in enumerate(result):
                if i >= top:
                    break
                table.add_row(repr(rec))
            console.print(table)
        _print_stats(console, result)


def _load(ref: str) -> Any:
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"{ref}: expected MODULE:JOB (for example jobs.py:wordcount)")
    try:
        if module_name.endswith(".py"):
            spec = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
            if spec is None or spec.loader is None or not Path(module_name).is_file():
                raise CliError(f"{module_name}: no such file")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as e:
        raise CliError(f"{module_name}: cannot import: {e}") from e
    job = getattr(module, attr, None)
    if job is None:
        raise CliError(f"{module_name} has no {attr!r}")
    if not isinstance(job, Job) and not callable(job):
        raise CliError(f"{ref} is a {type(job).__name__}, not a Job or a function")
    return job
