"""A job's result: its partitions' result runs, read back as records in batches, and its stats."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distcore._core import RunReader
from distcore.mapreduce._plan import Op, apply_ops

#: A range of a run: ``(bytes or file path, start, end)``.
RunRange = tuple[Any, int, int]


@dataclass
class StageStats:
    """What one stage did."""

    map_tasks: int = 0
    input_records: int = 0
    #: pairs (or keys) the map side emitted
    map_output_records: int = 0
    #: records after map-side combining, summed over map tasks: what the shuffle moved
    shuffle_records: int = 0
    shuffle_bytes: int = 0
    spills: int = 0
    spilled_bytes: int = 0
    reduce_tasks: int = 0
    output_records: int = 0
    map_seconds: float = 0.0
    reduce_seconds: float = 0.0
    #: tasks run again after their worker died
    retried_tasks: int = 0

    def add_map(self, stats: dict[str, int]) -> None:
        """Adds one map task's stats."""
        self.map_tasks += 1
        self.input_records += stats.get("input_records", 0)
        self.map_output_records += stats["records_in"]
        self.shuffle_records += stats["records_out"]
        self.shuffle_bytes += stats["output_bytes"]
        self.spills += stats["spills"]
        self.spilled_bytes += stats["spilled_bytes"]


@dataclass
class Stats:
    """What a job did, stage by stage (``stages``), and where it ran."""

    executor: str
    partitions: int
    stages: list[StageStats] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def spills(self) -> int:
        return sum(s.spills for s in self.stages)

    def as_dict(self) -> dict[str, Any]:
        return {
            "executor": self.executor,
            "partitions": self.partitions,
            "seconds": round(self.seconds, 3),
            "stages": [vars(s) for s in self.stages],
        }


class Result:
    """A job's result: iterate it for the records (in key order unless the job said
    ``sort_keys=False``), or take them all with :meth:`to_dict`, :meth:`to_list`,
    :meth:`to_arrow`, or write them with :meth:`save`. ``stats`` says what the job did.

    The result's runs live in a temporary directory (local executor) or in memory (Dask) until
    :meth:`close` (or the end of a ``with`` block, or garbage collection).
    """

    def __init__(
        self,
        parts: list[list[RunRange]],
        *,
        tail: tuple[Op, ...] = (),
        sort_keys: bool = True,
        stats: Stats,
        workdir: str | None = None,
    ) -> None:
        self._parts = parts
        self._tail = tail
        self._sort_keys = sort_keys
        self.stats = stats
        self._workdir = workdir

    def partition_runs(self) -> list[list[RunRange]]:
        """Each partition's result runs (for a later job that reads this result)."""
        return self._parts

    def _readers(self) -> list[RunReader]:
        # Partitions hold disjoint keys: merging them all gives the keys in order.
        if self._sort_keys:
            return [RunReader("first", [r for part in self._parts for r in part])]
        return [RunReader("first", part) for part in self._parts]

    def batches(self, n: int = 8192) -> Iterator[list[Any]]:
        """The records in batches of up to ``n``."""
        for reader in self._readers():
            while batch := reader.read(n):
                yield apply_ops(self._tail, batch) if self._tail else batch

    def __iter__(self) -> Iterator[Any]:
        for batch in self.batches():
            yield from batch

    def to_list(self) -> list[Any]:
        """Every record."""
        return [r for batch in self.batches() for r in batch]

    def to_dict(self) -> dict[Any, Any]:
        """``{key: value}`` (the records must be pairs)."""
        if not self._tail:
            out: dict[Any, Any] = {}
            for reader in self._readers():
                reader.read_into(out)
            return out
        return dict(iter(self))

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table`` with columns ``key`` and ``value`` (pairs), or ``value``."""
        import pyarrow as pa

        tables = []
        for batch in self.batches(65536):
            if batch and all(isinstance(r, tuple) and len(r) == 2 for r in batch):
                keys, values = zip(*batch, strict=True)
                tables.append(pa.table({"key": list(keys), "value": list(values)}))
            elif batch:
                tables.append(pa.table({"value": batch}))
        if not tables:
            return pa.table({"key": pa.array([], pa.null()), "value": pa.array([], pa.null())})
        return pa.concat_tables(tables)

    def save(self, directory: str | os.PathLike[str], *, format: str = "jsonl") -> list[Path]:
        """Writes one file per partition (``part-00000.jsonl``, ...; ``format`` ``jsonl``: one
        JSON array or value per line, or ``tsv``: key and value separated by a tab). Written to
        temporary names first and renamed, so a failed save leaves no file that looks whole."""
        if format not in ("jsonl", "tsv"):
            raise ValueError(f"format must be 'jsonl' or 'tsv', got {format!r}")
        out_dir = Path(directory)
        out_dir.mkdir(parents=True, exist_ok=True)
        written: list[tuple[Path, Path]] = []
        for p, part in enumerate(self._parts):
            final = out_dir / f"part-{p:05d}.{format}"
            tmp = final.with_suffix(final.suffix + ".tmp")
            reader = RunReader("first", part)
            with open(tmp, "w", encoding="utf-8") as f:
                while batch := reader.read(65536):
                    if self._tail:
                        batch = apply_ops(self._tail, batch)
                    f.write("".join(_line(r, format) for r in batch))
            written.append((tmp, final))
        for tmp, final in written:
            os.replace(tmp, final)
        return [final for _, final in written]

    def close(self) -> None:
        """Frees the result's runs."""
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._parts = []

    def __enter__(self) -> Result:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.stats
        return f"<Result: {s.executor}, {s.partitions} partitions, {len(s.stages)} stages>"


def _line(record: Any, format: str) -> str:
    if format == "tsv":
        if isinstance(record, tuple) and len(record) == 2:
            return f"{record[0]}\t{record[1]}\n"
        return f"{record}\n"
    return json.dumps(list(record) if isinstance(record, tuple) else record, default=str) + "\n"
