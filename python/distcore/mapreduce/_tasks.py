"""The tasks every executor runs: a map task (one split in, one sorted run out) and a reduce task
(one partition of every map task's run in, one result run out).

Tasks are plain functions of picklable arguments, so a process pool or a Dask worker runs them
alike. The plan travels as bytes (cloudpickle, so lambdas work) and is unpickled once per process.
Runs are ``(data, start, end)`` ranges where ``data`` is bytes or a file path: in memory on Dask,
on local disk for the local executor.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import cloudpickle

from distcore._core import (
    DecodeError,
    RecordTypeError,
    ResultWriter,
    RunReader,
    ShuffleWriter,
    TaskError,
    UnpicklableError,
    reduce_runs,
)
from distcore.mapreduce._inputs import (
    Split,
    csv_header,
    iter_splits,
    read_batches,
    read_chunks,
)
from distcore.mapreduce._plan import CsvField, JsonField, Op, Plan, Tokenize, apply_ops
from distcore.mapreduce._result import RunRange

#: Records per batch across the Python boundary.
BATCH_RECORDS = 8192
#: How much of a record a message shows.
_SHOWN = 200


def dump_plan(plan: Plan) -> bytes:
    """The plan as bytes for worker processes, without its inputs' sources (they travel in the
    splits); :class:`UnpicklableError` if a function cannot go."""
    plan = replace(plan, inputs=tuple(replace(i, source=None) for i in plan.inputs))
    try:
        return cloudpickle.dumps(plan)  # type: ignore[no-any-return]
    except Exception as e:
        raise UnpicklableError(
            f"the job's functions cannot be sent to worker processes: {type(e).__name__}: {e}"
        ) from e


@functools.lru_cache(maxsize=8)
def load_plan(blob: bytes) -> Plan:
    """The plan of ``blob``, unpickled once per process."""
    plan: Plan = pickle.loads(blob)
    return plan


@dataclass(frozen=True)
class ResultSplit:
    """An input that is one partition of an earlier stage's (or job's) result."""

    runs: tuple[RunRange, ...]
    name: str


@dataclass(frozen=True)
class TaskInput:
    """A map task's input: a split of input ``index`` (its narrow operations apply), or a
    partition of the previous stage's result (``index`` -1)."""

    index: int
    split: Split | ResultSplit
    #: the task's place among the first stage's tasks (orders a map-only job's output)
    seq: int = 0


#: Byte splits of text files: about four map tasks per worker, within these bounds.
MIN_SPLIT_BYTES = 4 << 20
MAX_SPLIT_BYTES = 64 << 20


def _names_files(source: Any) -> bool:
    if isinstance(source, str | os.PathLike):
        return True
    return isinstance(source, list | tuple) and all(
        isinstance(s, str | os.PathLike) for s in source
    )


def input_splits(plan: Plan, workers: int = 1) -> Iterator[TaskInput]:
    """The first stage's map tasks, lazily (a generator input is pulled as tasks are made).
    Text files are cut into about four splits per worker (4 to 64 MB each) unless the input
    sets ``split_bytes``."""
    from distcore.mapreduce._result import Result

    seq = itertools.count()
    for i, inp in enumerate(plan.inputs):
        if isinstance(inp.source, Result):
            for p, runs in enumerate(inp.source.partition_runs()):
                name = f"result partition {p}"
                yield TaskInput(i, ResultSplit(tuple(runs), name), next(seq))
            continue
        options = dict(inp.options)
        if "split_bytes" not in options and _names_files(inp.source):
            whole = iter_splits(inp.source, format=inp.format, split_bytes=1 << 62, **options)
            total = sum(s.end - s.start for s in whole if s.kind in ("lines", "jsonl"))
            options["split_bytes"] = min(
                max(total // (4 * workers), MIN_SPLIT_BYTES), MAX_SPLIT_BYTES
            )
        for split in iter_splits(inp.source, format=inp.format, **options):
            yield TaskInput(i, split, next(seq))


class _ResultBatch:
    def __init__(self, name: str, first: int, records: list[Any]) -> None:
        self.name, self.first, self.records = name, first, records

    def position(self, i: int) -> str:
        return f"{self.name}, record {self.first + i}"


def _batches(inp: TaskInput) -> Iterator[Any]:
    if isinstance(inp.split, ResultSplit):
        reader = RunReader("first", list(inp.split.runs))
        n = 0
        while recs := reader.read(BATCH_RECORDS):
            yield _ResultBatch(inp.split.name, n, recs)
            n += len(recs)
    else:
        yield from read_batches(inp.split, batch_records=BATCH_RECORDS)


def _show(record: Any) -> str:
    text = repr(record)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _fn_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _raise_at(ops: tuple[Op, ...], batch: Any, error: BaseException) -> None:
    """Finds the record of ``batch`` that makes ``ops`` raise and raises :class:`TaskError`
    naming the function, the record and its position."""
    for i, rec in enumerate(batch.records):
        for op in ops:
            try:
                out = op.apply([rec])
            except RecordTypeError as e:
                # A built-in mapper's refusal keeps its type, as on the native path.
                raise RecordTypeError(f"{e}; record {_show(rec)} at {batch.position(i)}") from e
            except Exception as e:
                raise TaskError(
                    f"{op.kind} {_fn_name(op.fn)} raised {type(e).__name__}: {e}; "
                    f"record {_show(rec)} at {batch.position(i)}"
                ) from e
            if not out:
                break
            rec = out[0] if len(out) == 1 else out
            if len(out) > 1:
                break
    raise TaskError(
        f"the map side raised {type(error).__name__}: {error} in the batch at "
        f"{batch.position(0)} (not again when its records were retried one by one)"
    ) from error


def _record_of_output(ops: tuple[Op, ...], batch: Any, out_index: int) -> int:
    """The index of the record of ``batch`` whose operations produced output ``out_index``."""
    seen = 0
    for i, rec in enumerate(batch.records):
        seen += len(apply_ops(ops, [rec]))
        if seen > out_index:
            return i
    return len(batch.records) - 1


def _pair_index(e: RecordTypeError) -> int | None:
    words = str(e).split()
    if len(words) > 1 and words[0] in ("pair", "key") and words[1].isdigit():
        return int(words[1])
    return None


def _native_mapper(plan: Plan, stage: int, inp: TaskInput) -> Any:
    """The built-in mapper that can run in Rust on this task's raw bytes, or ``None``: the
    tokenizer on text lines into ``count``, a CSV or JSON field mapper on CSV or JSON lines into
    a built-in reducer, each as the only operation."""
    if stage != 0 or not isinstance(inp.split, Split):
        return None
    ops = plan.inputs[inp.index].ops + plan.stages[0].ops
    sh = plan.stages[0].shuffle
    if len(ops) != 1 or sh.keys_only or sh.map_only or sh.partitioner or sh.python_reducer:
        return None
    op, kind = ops[0], inp.split.kind
    if isinstance(op.fn, Tokenize) and op.kind == "flat_map" and kind == "lines":
        return op.fn if sh.reducer == "count" else None
    if isinstance(op.fn, CsvField) and op.kind == "map" and kind == "csv":
        return op.fn
    if isinstance(op.fn, JsonField) and op.kind == "map" and kind == "jsonl":
        return op.fn
    return None


def _column(split: Split, col: str | int | None) -> int | None:
    if col is None or isinstance(col, int):
        return col
    header = csv_header(split)
    if header is None or col not in header:
        raise ValueError(f"{split.source}: no column {col!r} (header: {header})")
    return header.index(col)


def _native_map(writer: ShuffleWriter, mapper: Any, split: Split) -> int:
    """Runs a built-in mapper over the split's raw bytes (2 MB chunks: the reader holds a few at
    once, and they count against memory). Returns the records read."""
    records = 0
    chunks = read_chunks(split, chunk_bytes=2 << 20)
    if isinstance(mapper, Tokenize):
        for offset, chunk in chunks:
            try:
                writer.add_words(chunk)
            except DecodeError as e:
                raise DecodeError(f"{split.source}, chunk at byte {offset}: {e}") from None
            records += chunk.count(b"\n")
    elif isinstance(mapper, CsvField):
        key, value = _column(split, mapper.key), _column(split, mapper.value)
        assert key is not None
        delimiter = str(split.option("delimiter", ","))
        for _, chunk in chunks:
            try:
                records += writer.add_csv(
                    chunk, key=key, value=value, delimiter=delimiter, first_row=records
                )
            except (DecodeError, ValueError, RecordTypeError) as e:
                raise type(e)(f"{split.source}, {e}") from None
    else:
        for offset, chunk in chunks:
            try:
                records += writer.add_json(chunk, key=mapper.key, value=mapper.value, offset=offset)
            except (DecodeError, RecordTypeError) as e:
                raise type(e)(f"{split.source}, {e}") from None
    return records


def _commit(tmp: str | None, path: str | None) -> None:
    if tmp is not None and path is not None:
        os.replace(tmp, path)


def map_task(
    blob: bytes,
    stage: int,
    inp: TaskInput,
    partitions: int,
    *,
    seed: int = 0,
    memory_limit: int = 1 << 62,
    spill_dir: str | None = None,
    out_path: str | None = None,
) -> tuple[bytes | None, list[int], dict[str, int]]:
    """Runs one map task: reads ``inp``, applies the stage's narrow operations, folds the pairs
    into a :class:`ShuffleWriter` (spilling under ``memory_limit`` to ``spill_dir``) and ends
    with one run sorted by (partition, key): bytes, or written to ``out_path`` (atomically: a
    re-run task replaces it). Returns the run, its partition offsets and the task's stats."""
    with _no_gc():
        return _map_task(
            blob,
            stage,
            inp,
            partitions,
            seed=seed,
            memory_limit=memory_limit,
            spill_dir=spill_dir,
            out_path=out_path,
        )


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pauses the cyclic garbage collector: a task makes millions of short-lived tuples (pairs,
    records) and no cycles, and each collection would walk them all (8 % of a Python-mapper
    task's time, measured)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _map_task(
    blob: bytes,
    stage: int,
    inp: TaskInput,
    partitions: int,
    *,
    seed: int,
    memory_limit: int,
    spill_dir: str | None,
    out_path: str | None,
) -> tuple[bytes | None, list[int], dict[str, int]]:
    plan = load_plan(blob)
    sh = plan.stages[stage].shuffle
    ops: tuple[Op, ...] = plan.stages[stage].ops
    if inp.index >= 0:
        ops = plan.inputs[inp.index].ops + ops
    writer = ShuffleWriter(
        sh.writer_reducer, partitions, seed=seed, memory_limit=memory_limit, spill_dir=spill_dir
    )
    records = emitted = 0
    native = _native_mapper(plan, stage, inp)
    if native is not None:
        assert isinstance(inp.split, Split)
        records = _native_map(writer, native, inp.split)
    else:
        for batch in _batches(inp):
            records += len(batch.records)
            try:
                out = apply_ops(ops, batch.records)
            except Exception as e:
                _raise_at(ops, batch, e)
            if sh.map_only:
                # Keyed by (task, position): the result reads back in input order.
                out = [((inp.seq, emitted + j), r) for j, r in enumerate(out)]
                emitted += len(out)
            try:
                if sh.keys_only:
                    writer.add_keys(out)
                elif sh.partitioner is not None:
                    parts = _partition(sh.partitioner, out, partitions)
                    writer.add_pairs(out, parts)
                else:
                    writer.add_pairs(out)
            except RecordTypeError as e:
                at = _pair_index(e)
                if at is None:
                    raise
                i = _record_of_output(ops, batch, at)
                raise RecordTypeError(
                    f"{e}; from record {_show(batch.records[i])} at {batch.position(i)}"
                ) from e
    tmp = None if out_path is None else f"{out_path}.{os.getpid()}.tmp"
    if sh.combiner is not None:
        data, offsets, stats = _combine(
            plan, stage, writer, partitions, seed, memory_limit, spill_dir, tmp
        )
    else:
        data, offsets, stats = writer.finish(tmp)
    _commit(tmp, out_path)
    stats["input_records"] = records
    return data, offsets, stats


def _partition(fn: Any, pairs: list[Any], n: int) -> list[int]:
    try:
        parts = [fn(kv[0], n) for kv in pairs]
    except Exception as e:
        raise TaskError(f"partitioner {_fn_name(fn)} raised {type(e).__name__}: {e}") from e
    bad = next((p for p in parts if not isinstance(p, int) or not 0 <= p < n), None)
    if bad is not None:
        raise TaskError(f"partitioner {_fn_name(fn)} returned {bad!r}, not an int in [0, {n})")
    return parts


def _combine(
    plan: Plan,
    stage: int,
    writer: ShuffleWriter,
    partitions: int,
    seed: int,
    memory_limit: int,
    spill_dir: str | None,
    tmp: str | None,
) -> tuple[bytes | None, list[int], dict[str, int]]:
    """Applies a Python combiner to each key's values of this map task (read back in key order
    from the task's own run) and writes the combined values as the task's run."""
    sh = plan.stages[stage].shuffle
    assert sh.combiner is not None
    grouped = None if tmp is None else f"{tmp}.grouped"
    data, offsets, stats = writer.finish(grouped)
    src: Any = data if grouped is None else grouped
    reader = RunReader("collect", [(src, offsets[p], offsets[p + 1]) for p in range(partitions)])
    out = ShuffleWriter(
        "collect", partitions, seed=seed, memory_limit=memory_limit, spill_dir=spill_dir
    )
    while batch := reader.read(BATCH_RECORDS):
        combined = _fold_groups("combiner", sh.combiner, batch)
        if sh.partitioner is not None:
            out.add_pairs(combined, _partition(sh.partitioner, combined, partitions))
        else:
            out.add_pairs(combined)
    if grouped is not None:
        os.unlink(grouped)
    result = out.finish(tmp)
    result[2]["records_in"] = stats["records_in"]
    result[2]["spills"] += stats["spills"]
    result[2]["spilled_bytes"] += stats["spilled_bytes"]
    return result


def _fold_groups(role: str, fn: Any, groups: list[tuple[Any, list[Any]]]) -> list[Any]:
    """``(key, fn(key, values))`` for each group; :class:`TaskError` naming the function (a
    ``role``), the key and its value count if ``fn`` raises."""
    out = []
    for k, vs in groups:
        try:
            out.append((k, fn(k, vs)))
        except Exception as e:
            raise TaskError(
                f"{role} {_fn_name(fn)} raised {type(e).__name__}: {e}; "
                f"key {_show(k)} with {len(vs)} values"
            ) from e
    return out


def reduce_task(
    blob: bytes, stage: int, runs: list[RunRange], *, out_path: str | None = None
) -> tuple[bytes | None, int, int]:
    """Runs the reduce task of one partition: merges ``runs`` (that partition's range of every
    map task's run, in map-task order) and folds each key's states (built-in reducers, in Rust)
    or calls the reducer function with each key's values. Returns the result run (bytes, or
    ``None`` when written to ``out_path``), its length and its record count."""
    with _no_gc():
        return _reduce_task(blob, stage, runs, out_path=out_path)


def _reduce_task(
    blob: bytes, stage: int, runs: list[RunRange], *, out_path: str | None
) -> tuple[bytes | None, int, int]:
    plan = load_plan(blob)
    sh = plan.stages[stage].shuffle
    tmp = None if out_path is None else f"{out_path}.{os.getpid()}.tmp"
    fn = sh.python_reducer
    if fn is None:
        assert isinstance(sh.reducer, str)
        result = reduce_runs(sh.reducer, runs, path=tmp)
    else:
        reader = RunReader("collect", runs)
        writer = ResultWriter(tmp)
        while batch := reader.read(BATCH_RECORDS):
            writer.add_pairs(_fold_groups("reducer", fn, batch))
        result = writer.finish()
    _commit(tmp, out_path)
    return result
