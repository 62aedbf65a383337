"""A MapReduce job's input: cut into splits (one map task each) and read back as batches.

:func:`plan_splits` (or the lazy :func:`iter_splits`) turns a source into :class:`Split` s: small,
picklable descriptions of a part of the input that a worker process (or a Dask worker) reads with
:func:`read_batches` as :class:`Batch` es of Python records, or with :func:`read_chunks` as raw
byte chunks for the native mappers. Reading streams: a split is read a block at a time, never
whole, so memory stays bounded whatever the size of the input.

Sources and the records they give:

=========================  ===========================================  ========================
source                     split                                        record
=========================  ===========================================  ========================
text file (``lines``)      about ``split_bytes`` of lines               the line, ``str``
``.jsonl`` / ``.ndjson``   about ``split_bytes`` of lines               ``json.loads(line)``
``.csv`` / ``.tsv``        the whole file (quoted fields may span       ``dict`` per row
                           lines, so byte ranges are unsafe)            (``list`` without header)
``.parquet``               one row group                                ``dict`` per row
``.arrow`` / ``.feather``  one record batch of the Arrow IPC file       ``dict`` per row
iterable, numpy array      ``split_records`` records                    the item (a row tuple
                                                                        for a 2-d array)
``pyarrow.Table``          ``split_records`` rows                       ``dict`` per row
=========================  ===========================================  ========================

>>> from distcore.mapreduce._inputs import plan_splits, read_batches
>>> splits = plan_splits(range(10), split_records=4)
>>> [(s.start, s.end) for s in splits]
[(0, 4), (4, 8), (8, 10)]
>>> batch = next(read_batches(splits[1]))
>>> batch.records, batch.position(0)
([4, 5, 6, 7], 'items[4]')
"""

from __future__ import annotations

import csv
import errno
import glob
import importlib
import io
import itertools
import json
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from distcore.exceptions import DecodeError

__all__ = [
    "FORMATS",
    "Batch",
    "Split",
    "csv_header",
    "iter_splits",
    "plan_splits",
    "read_batches",
    "read_chunks",
]

#: The accepted values of ``format``: file formats, and "items" to read a list of strings as
#: records rather than as paths.
FORMATS = ("lines", "csv", "jsonl", "parquet", "arrow", "items")

_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
}
#: The options each kind accepts.
_OPTIONS: dict[str, tuple[str, ...]] = {
    "lines": (),
    "jsonl": ("field",),
    "csv": ("delimiter", "field", "header"),
    "parquet": ("columns", "field"),
    "arrow": ("columns", "field"),
    "items": (),
}
_BLOCK = 1 << 20  # read_batches' read size: big enough that per-block work is noise
_SKIP = 64 << 10  # read size while looking for the end of the line a split starts inside
_BOM = b"\xef\xbb\xbf"
_JSON_SPACE = " \t\r\n\x0b\x0c"  # a jsonl line of only these is blank (skipped)
_BYTES_SPACE = _JSON_SPACE.encode()
# A csv chunk that finds no newline outside quotes is cut at any newline from this size, or 4 x
# chunk_bytes if more: a stray quote in an unquoted value must not make the rest of the file one
# chunk, and a real quoted value is never this long.
_CSV_OPEN_LIMIT = 64 << 20


@dataclass(frozen=True)
class Split:
    """One map task's input: picklable and small (no big data inside except in-memory items).

    Attributes
    ----------
    kind
        ``"lines"``, ``"csv"``, ``"jsonl"``, ``"parquet"``, ``"arrow"`` or ``"items"``.
    source
        The file's absolute path, or ``"<items>"``, ``"<array>"`` or ``"<table>"`` for data held
        in :attr:`data`.
    start, end
        For ``lines`` and ``jsonl``, the byte range ``[start, end)``: the split owns every line
        that *starts* in it (Hadoop's rule), so each line belongs to exactly one split. For the
        other kinds, the index of the first row or record and one past the last (``-1``: to the
        end, as for a csv file).
    options
        ``(name, value)`` pairs sorted by name: the reading options (``delimiter``, ``header``,
        ``field``, ``columns``) and, for Parquet and Arrow IPC files, the ``row_group`` or
        ``record_batch`` index the split reads.
    data
        The records themselves for in-memory sources: a slice of the list, tuple, range, numpy
        array or ``pyarrow.Table``. A table slice is pickled as its own rows only (a plain
        slice would carry the whole table's buffers). Splits compare and hash without it: within
        one plan, ``(kind, source, start, end)`` tells them apart.
    """

    kind: str
    source: str
    start: int
    end: int
    options: tuple[tuple[str, object], ...] = ()
    data: object = field(default=None, repr=False, compare=False)

    def option(self, name: str, default: object = None) -> object:
        """The value of option ``name``, or ``default`` when the split does not set it."""
        for key, value in self.options:
            if key == name:
                return value
        return default

    def __reduce__(self) -> tuple[Any, ...]:
        if self.kind == "arrow" and self.data is not None:
            _pyarrow("pyarrow.ipc", "an Arrow table")
            pa = _pyarrow("pyarrow", "an Arrow table")
            table: Any = self.data
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            ipc = sink.getvalue().to_pybytes()
            return (_arrow_split, (self.source, self.start, self.end, self.options, ipc))
        return (Split, (self.kind, self.source, self.start, self.end, self.options, self.data))


def _arrow_split(
    source: str, start: int, end: int, options: tuple[tuple[str, object], ...], ipc: bytes
) -> Split:
    """Unpickles an in-memory Arrow split (see :meth:`Split.__reduce__`)."""
    pa = _pyarrow("pyarrow.ipc", "an Arrow table")
    return Split("arrow", source, start, end, options, pa.open_stream(ipc).read_all())


@dataclass
class Batch:
    """Records read from one split, with where they came from.

    Attributes
    ----------
    split
        The split they were read from.
    first
        Where ``records[0]`` is: its line's byte offset in the file for ``lines`` and ``jsonl``,
        its row or record index (from 0, in the whole file or source) otherwise. A csv row index
        counts data rows only: not the header, not blank lines.
    records
        The records, Python objects.
    """

    split: Split
    first: int
    records: list[Any]

    def __repr__(self) -> str:
        return f"Batch({self.split!r}, first={self.first}, records=<{len(self.records)}>)"

    def position(self, i: int) -> str:
        """Where ``records[i]`` came from, exactly, for error messages: ``'/data/a.txt, line at
        byte 1234'``, ``'/data/b.csv, row 17'``, ``'items[5012]'``.

        For ``lines`` and ``jsonl`` the offset is found by reading the file again from
        :attr:`first` (records do not keep their offsets, to stay light); when the file can no
        longer be read, the answer is the record's index after that offset.

        Raises
        ------
        IndexError
            If ``i`` is not an index of :attr:`records`.
        """
        n = len(self.records)
        if not -n <= i < n:
            raise IndexError(f"record {i} is not in this batch of {n}")
        i %= n
        split = self.split
        if split.kind in ("lines", "jsonl"):
            try:
                offset = _nth_line(split.source, self.first, i, skip_blank=split.kind == "jsonl")
            except OSError:
                return f"{split.source}, record {i} after the line at byte {self.first}"
            return f"{split.source}, line at byte {offset}"
        if split.source.startswith("<"):
            return f"{split.source.strip('<>')}[{self.first + i}]"
        return f"{split.source}, row {self.first + i}"


# -- planning -------------------------------------------------------------------------------------


def plan_splits(
    source: object,
    *,
    format: str | None = None,
    split_bytes: int = 64 << 20,
    split_records: int = 100_000,
    **options: object,
) -> list[Split]:
    """Cuts ``source`` into the splits of a job, one map task each: ``list(iter_splits(...))``.

    Every file is checked up front (it exists, is a regular file and opens) before anything is
    read. A generator source is consumed in full here; use :func:`iter_splits` to stream it.

    Parameters
    ----------
    source
        A path (``str`` or ``os.PathLike``); a glob pattern (a path with ``*``, ``?`` or ``[``
        that is not itself a file; ``**`` recurses), its matches sorted; a directory, for its
        regular files sorted by name, hidden ones (``.*``) skipped, not recursing; a list or tuple
        of these, in the order given. Or records: any other iterable, a numpy array (1-d, or 2-d
        for a tuple per row), a ``pyarrow.Table`` or ``RecordBatch``. A list of strings is read
        as paths, unless ``format="items"``.
    format
        ``None`` to go by each file's extension: ``.csv``/``.tsv`` csv (tab-separated for
        ``.tsv``), ``.jsonl``/``.ndjson`` jsonl, ``.parquet`` parquet, ``.arrow``/``.feather``
        /``.ipc`` an Arrow IPC file, anything else lines. Else one of :data:`FORMATS` for all
        files; ``"items"`` reads a list of strings as records.
    split_bytes
        The size of a ``lines`` or ``jsonl`` split, in bytes (a split ends at the end of the line
        crossing it). An empty file has no split.
    split_records
        The number of records of an in-memory split.
    **options
        ``delimiter`` (csv, one character, default ``","``), ``header`` (csv, default ``True``:
        records are dicts keyed by the first non-blank row; ``False``: lists), ``field`` (just
        this value of each record: a csv column's name or index, a jsonl dotted path such as
        ``"a.b"`` with ``None`` when missing, a Parquet or Arrow column's name or index),
        ``columns`` (Parquet and Arrow: the columns to read).

    Raises
    ------
    FileNotFoundError
        If a path does not exist, a glob pattern matches nothing or a directory holds no file.
    PermissionError, OSError
        If a file cannot be opened or is not a regular file (a FIFO, a device).
    DecodeError
        If a Parquet or Arrow IPC file is not one.
    ImportError
        If Parquet or Arrow input is given without pyarrow installed.
    ValueError
        If ``format`` is unknown or does not fit the source, ``split_bytes`` or ``split_records``
        is not positive, or an option's value is invalid (a ``columns`` or ``field`` that a
        Parquet or Arrow schema lacks included).
    TypeError
        If an option is one no input of this source accepts, or the source cannot be read.

    >>> [(s.start, s.end, s.data) for s in plan_splits([5, 6, 7, 8, 9], split_records=2)]
    [(0, 2, [5, 6]), (2, 4, [7, 8]), (4, 5, [9])]
    """
    return list(
        iter_splits(
            source,
            format=format,
            split_bytes=split_bytes,
            split_records=split_records,
            **options,
        )
    )


def iter_splits(
    source: object,
    *,
    format: str | None = None,
    split_bytes: int = 64 << 20,
    split_records: int = 100_000,
    **options: object,
) -> Iterator[Split]:
    """The splits of ``source``, made as they are consumed, for sources too big to plan at once.

    A generator (any iterable that is not a sequence) is pulled ``split_records`` items per split
    and no further, so an endless stream works. The arguments, and for files that every file
    exists and opens, are checked when this is called, before the first split is asked for.
    Takes the arguments of :func:`plan_splits` and raises the same errors.

    >>> import itertools
    >>> stream = itertools.count()
    >>> [s.data for s in itertools.islice(iter_splits(stream, split_records=3), 2)]
    [[0, 1, 2], [3, 4, 5]]
    >>> next(stream)  # nothing more was pulled
    6
    """
    _check_positive("split_bytes", split_bytes)
    _check_positive("split_records", split_records)
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; accepted: {', '.join(FORMATS)}")
    if isinstance(source, bytes | bytearray | memoryview):
        raise TypeError(
            f"cannot read {type(source).__name__}: pass a path, or records in a list or iterable"
        )
    if type(source).__name__ == "DataFrame":  # pandas and polars iterate over column names
        raise TypeError(
            "a DataFrame iterates over its columns: pass pyarrow.Table.from_pandas(df)"
            " (or df.to_arrow() for polars) for a record per row"
        )
    arrow_table = _arrow_table(source)
    if arrow_table is not None:
        if format not in (None, "arrow"):
            raise ValueError(f"format={format!r} does not fit a pyarrow table (use 'arrow')")
        opts = _check_options(options, {"arrow"})
        _check_columns(opts, arrow_table.schema.names, "the table")
        return _table_splits(arrow_table, split_records, opts)
    if isinstance(source, np.ndarray):
        if format not in (None, "items"):
            raise ValueError(f"format={format!r} does not fit a numpy array (use 'items')")
        if source.ndim not in (1, 2):
            raise ValueError(f"a numpy array source must be 1-d or 2-d, got {source.ndim}-d")
        _check_options(options, {"items"})
        return _sequence_splits(source, "<array>", split_records)
    if format == "items" and isinstance(source, str | os.PathLike):
        raise ValueError("format='items' reads records, not a path")
    if format != "items" and _is_paths(source):
        files = _resolve(cast("str | list[Any]", source))
        kinds = [_kind_of(path, format) for path, _ in files]
        opts = _check_options(options, set(kinds))
        if "parquet" in kinds:
            _pyarrow("pyarrow.parquet", "Parquet")
        if "arrow" in kinds:
            _pyarrow("pyarrow.ipc", "Arrow IPC files")
        return _file_splits(files, kinds, split_bytes, opts)
    if not isinstance(source, Iterable):
        raise TypeError(
            f"cannot read {type(source).__name__}: pass a path, a list of paths, an iterable of"
            " records, a numpy array or a pyarrow Table"
        )
    if format not in (None, "items"):
        raise ValueError(f"format={format!r} is for files; records in memory are 'items'")
    _check_options(options, {"items"})
    if isinstance(source, list | tuple | range):
        return _sequence_splits(source, "<items>", split_records)
    return _stream_splits(iter(source), split_records)


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def _is_paths(source: object) -> bool:
    if isinstance(source, str | os.PathLike):
        return True
    return (
        isinstance(source, list | tuple)
        and len(source) > 0
        and all(isinstance(p, str | os.PathLike) for p in source)
    )


def _resolve(source: str | os.PathLike[str] | list[Any] | tuple[Any, ...]) -> list[tuple[str, int]]:
    """The files of ``source`` as (absolute path, size), each checked to exist and open."""
    given = [source] if isinstance(source, str | os.PathLike) else list(source)
    strings = not isinstance(source, str | os.PathLike) and all(isinstance(p, str) for p in given)
    names: list[str] = []
    for item in given:
        path = os.fsdecode(os.fspath(item))
        if os.path.isdir(path):
            names += _directory_files(path)
        elif os.path.lexists(path) or not glob.has_magic(path):
            names.append(path)
        else:
            found = [
                name
                for match in sorted(glob.glob(path, recursive=True))
                for name in (
                    _directory_files(match, strict=False) if os.path.isdir(match) else [match]
                )
            ]
            if not found:
                raise FileNotFoundError(errno.ENOENT, "no file matches the pattern", path)
            names += found
    files = []
    for path in names:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            hint = " (a list of str is read as paths: pass format='items' for records)"
            raise FileNotFoundError(
                errno.ENOENT, os.strerror(errno.ENOENT) + (hint if strings else ""), path
            ) from None
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        with open(path, "rb"):  # PermissionError names the path
            pass
        files.append((os.path.abspath(path), st.st_size))
    return files


def _directory_files(path: str, *, strict: bool = True) -> list[str]:
    """The regular files in directory ``path``, sorted, hidden ones skipped; with ``strict``, at
    least one (a directory a glob matched may be empty)."""
    with os.scandir(path) as entries:
        names = sorted(e.path for e in entries if not e.name.startswith(".") and e.is_file())
    if strict and not names:
        raise FileNotFoundError(errno.ENOENT, "no file in the directory", path)
    return names


def _kind_of(path: str, format: str | None) -> str:
    if format is not None:
        return format
    return _EXTENSIONS.get(os.path.splitext(path)[1].lower(), "lines")


def _check_options(options: dict[str, object], kinds: set[str]) -> dict[str, object]:
    """Validated options, lists made tuples (so splits hash); raises on unknown or bad ones."""
    accepted = sorted({name for kind in kinds for name in _OPTIONS[kind]})
    out: dict[str, object] = {}
    for name, value in options.items():
        if name not in accepted:
            allowed = ", ".join(accepted) if accepted else "none"
            raise TypeError(
                f"unknown option {name!r} for {', '.join(sorted(kinds))} input"
                f" (accepted: {allowed})"
            )
        if name == "delimiter" and not (isinstance(value, str) and len(value) == 1):
            raise ValueError(f"delimiter must be one character, got {value!r}")
        if name == "header" and not isinstance(value, bool):
            raise ValueError(f"header must be True or False, got {value!r}")
        if name == "field":
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ValueError(f"field must be a name or an index, got {value!r}")
            if isinstance(value, int) and value < 0:
                raise ValueError(f"field must be a name or an index >= 0, got {value}")
            if "jsonl" in kinds and not isinstance(value, str):
                raise ValueError(f"a jsonl field is a dotted path such as 'a.b', got {value!r}")
        if name == "columns":
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise ValueError(f"columns must be a list of names, got {value!r}")
            value = tuple(value)
            if not all(isinstance(c, str) for c in value):
                raise ValueError(f"columns must be a list of names, got {value!r}")
        out[name] = value
    if options.get("header") is False and isinstance(options.get("field"), str):
        raise ValueError("a csv field by name needs header=True; use an index")
    return out


def _check_columns(opts: dict[str, object], names: list[str], what: str) -> None:
    """Checks ``columns`` and ``field`` against the columns of an Arrow or Parquet schema."""
    wanted = list(cast("tuple[str, ...]", opts.get("columns", ())))
    fld = opts.get("field")
    if isinstance(fld, int):
        if fld >= len(names):
            raise ValueError(f"{what}: no column {fld} (it has {len(names)})")
    elif fld is not None:
        wanted.append(str(fld))
    missing = [c for c in wanted if c not in names]
    if missing:
        raise ValueError(f"{what}: no column {missing[0]!r} (columns: {', '.join(names)})")


def _split_options(kind: str, path: str, opts: dict[str, object]) -> dict[str, object]:
    """The options a split of this kind keeps: its own ones, with the csv defaults filled in."""
    mine = {k: v for k, v in opts.items() if k in _OPTIONS[kind]}
    if kind == "csv":
        tsv = os.path.splitext(path)[1].lower() == ".tsv"
        mine.setdefault("delimiter", "\t" if tsv else ",")
        mine.setdefault("header", True)
    return mine


def _file_splits(
    files: list[tuple[str, int]], kinds: list[str], split_bytes: int, opts: dict[str, object]
) -> Iterator[Split]:
    for (path, size), kind in zip(files, kinds, strict=True):
        mine = _split_options(kind, path, opts)
        if kind in ("lines", "jsonl"):
            options = tuple(sorted(mine.items()))
            for start in range(0, size, split_bytes):
                yield Split(kind, path, start, min(start + split_bytes, size), options)
        elif kind == "csv":
            yield Split(kind, path, 0, -1, tuple(sorted(mine.items())))
        elif kind == "parquet":
            yield from _parquet_splits(path, mine)
        else:
            yield from _arrow_file_splits(path, mine)


def _parquet_splits(path: str, opts: dict[str, object]) -> Iterator[Split]:
    pq = _pyarrow("pyarrow.parquet", "Parquet")
    try:
        pf = pq.ParquetFile(path)
    except _pyarrow("pyarrow", "Parquet").ArrowInvalid as e:
        raise DecodeError(f"{path}: not a Parquet file ({e})") from None
    try:
        _check_columns(opts, pf.schema_arrow.names, path)
        meta = pf.metadata
        row = 0
        for group in range(meta.num_row_groups):
            rows = meta.row_group(group).num_rows
            if rows:
                options = tuple(sorted({**opts, "row_group": group}.items()))
                yield Split("parquet", path, row, row + rows, options)
            row += rows
    finally:
        pf.close()


def _arrow_file_splits(path: str, opts: dict[str, object]) -> Iterator[Split]:
    _pyarrow("pyarrow.ipc", "Arrow IPC files")
    pa = _pyarrow("pyarrow", "Arrow IPC files")
    with pa.memory_map(path) as mapped:
        try:
            reader = pa.ipc.open_file(mapped)
        except pa.ArrowInvalid as e:
            raise DecodeError(f"{path}: not an Arrow IPC file ({e})") from None
        _check_columns(opts, reader.schema.names, path)
        row = 0
        for index in range(reader.num_record_batches):
            rows = reader.get_batch(index).num_rows  # zero-copy: metadata only
            if rows:
                options = tuple(sorted({**opts, "record_batch": index}.items()))
                yield Split("arrow", path, row, row + rows, options)
            row += rows


def _sequence_splits(seq: Any, name: str, n: int) -> Iterator[Split]:
    for start in range(0, len(seq), n):
        part = seq[start : start + n]
        yield Split("items", name, start, start + len(part), (), part)


def _stream_splits(items: Iterator[Any], n: int) -> Iterator[Split]:
    start = 0
    while part := list(itertools.islice(items, n)):
        yield Split("items", "<items>", start, start + len(part), (), part)
        start += len(part)


def _table_splits(table: Any, n: int, opts: dict[str, object]) -> Iterator[Split]:
    options = tuple(sorted(opts.items()))
    for start in range(0, table.num_rows, n):
        part = table.slice(start, n)
        yield Split("arrow", "<table>", start, start + part.num_rows, options, part)


def _arrow_table(source: object) -> Any:
    """``source`` as a ``pyarrow.Table`` if it is a Table or RecordBatch, else None."""
    if not type(source).__module__.startswith("pyarrow"):
        return None
    pa = _pyarrow("pyarrow", "an Arrow table")
    if isinstance(source, pa.Table):
        return source
    if isinstance(source, pa.RecordBatch):
        return pa.Table.from_batches([source])
    return None


def _pyarrow(module: str, what: str) -> Any:
    """Imports ``module`` (pyarrow or one of its modules) on first use: pyarrow is optional,
    needed only for Parquet and Arrow data."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"reading {what} needs pyarrow: pip install pyarrow") from None


# -- reading --------------------------------------------------------------------------------------


def read_batches(split: Split, *, batch_records: int = 8192) -> Iterator[Batch]:
    """Reads ``split``'s records, ``batch_records`` per :class:`Batch` (the last one fewer).

    Streams: a file is read a block at a time and only the batch being made is held. Records
    are those of the table in :func:`plan_splits`; a ``lines`` record is the line without its
    ``"\\n"`` (nor a ``"\\r"`` before it), empty lines included; blank ``jsonl`` lines and blank
    csv rows are skipped. Csv values stay strings; a csv row longer than the header keeps its
    extra values in a list under the key ``None``, a shorter one gets ``None`` for the missing
    values (as ``csv.DictReader``). A UTF-8 byte order mark is skipped in csv and jsonl files.

    Raises
    ------
    DecodeError
        If text is not UTF-8 (``'/d/a.txt: invalid UTF-8 at byte 1234'``), a jsonl line is not
        JSON (``'/d/a.jsonl, line at byte 77: Expecting value (column 1)'``) or a csv row is
        malformed (``'/d/b.csv, row 17: ...'``).
    ValueError
        If ``batch_records`` is not positive, the split's kind is unknown, or a csv ``field``
        names a column that the header lacks.
    OSError
        If the file cannot be read any more.

    >>> [b.records for b in read_batches(plan_splits(["a", "b", "c"], format="items")[0],
    ...                                  batch_records=2)]
    [['a', 'b'], ['c']]
    """
    _check_positive("batch_records", batch_records)
    reader = _READERS.get(split.kind)
    if reader is None:
        raise ValueError(f"unknown split kind {split.kind!r}")
    return reader(split, batch_records)


def read_chunks(split: Split, *, chunk_bytes: int = 8 << 20) -> Iterator[tuple[int, bytes]]:
    """Reads a ``lines``, ``jsonl`` or ``csv`` split's raw bytes as ``(offset, chunk)`` pairs.

    For the native mappers, which parse bytes themselves. Each chunk is about ``chunk_bytes``
    (more when a line is longer) and ends with ``b"\\n"``, except the last one of a file without
    a final newline; together they are exactly the bytes of the lines the split owns (the
    ownership rule of :class:`Split`), in order, so a file's splits' chunks concatenate to the
    file. Bytes are not checked to be UTF-8.

    A csv split's chunks cover the file after its header row (when ``header=True``; get the
    header with :func:`csv_header`) and end at a newline outside quotes (the count of ``"``
    before it is even), so that for well-formed csv each chunk holds whole rows even when quoted
    values hold newlines. (A stray ``"`` inside an unquoted value can make that count lie; a
    chunk is then cut at any newline once it reaches 64 MiB or 4 x ``chunk_bytes``, to bound
    memory.) Csv and jsonl chunks leave out a UTF-8 byte order mark at the start of the file.

    Raises
    ------
    ValueError
        If ``chunk_bytes`` is not positive, or the split has no raw bytes (Parquet, Arrow,
        in-memory items): use :func:`read_batches`.
    DecodeError
        If a csv file's header row is not UTF-8 or malformed.
    """
    _check_positive("chunk_bytes", chunk_bytes)
    if split.kind == "lines":
        return _owned_blocks(split.source, split.start, split.end, chunk_bytes)
    if split.kind == "jsonl":
        return _skip_bom(_owned_blocks(split.source, split.start, split.end, chunk_bytes))
    if split.kind == "csv":
        return _csv_chunks(split, chunk_bytes)
    raise ValueError(f"a {split.kind} split ({split.source}) has no raw bytes; use read_batches")


def csv_header(split: Split) -> list[str] | None:
    """The header row of a csv split (its first non-blank row), or None with ``header=False`` or
    when the file has no row. :func:`read_chunks` leaves this row out of the chunks.

    Raises
    ------
    ValueError
        If ``split`` is not a csv split.
    DecodeError
        If the header is not UTF-8 or not valid csv.
    """
    if split.kind != "csv":
        raise ValueError(f"a {split.kind} split has no csv header")
    if not split.option("header", True):
        return None
    return _csv_header_end(split)[0]


def _owned_blocks(
    path: str, start: int, end: int, size: int, *, cr: bool = False
) -> Iterator[tuple[int, bytes]]:
    """The lines starting in ``[start, end)`` (``end`` -1: to EOF) as ``(offset, bytes)`` blocks of
    about ``size`` bytes, each ending at a line end. With ``cr``, a block with no ``"\\n"`` may end
    at a ``"\\r"`` (csv with old Mac line ends)."""
    with open(path, "rb") as f:
        pos = start
        if start > 0:  # skip the line begun before start: its owner is the previous split
            f.seek(start - 1)
            pos -= 1
            while True:
                block = f.read(_SKIP)
                if not block:
                    return
                i = block.find(b"\n")
                if i >= 0:
                    pos += i + 1
                    f.seek(pos)
                    break
                pos += len(block)
        if 0 <= end <= pos:
            return
        first = pos  # offset of parts[0]
        parts: list[bytes] = []  # a line begun and not ended yet
        while end < 0 or pos < end:
            block = f.read(size if end < 0 else min(size, end - pos))
            if not block:
                break
            pos += len(block)
            cut = block.rfind(b"\n") + 1
            if cut == 0 and cr:
                cut = block.rfind(b"\r") + 1
            if cut == 0:
                parts.append(block)
                continue
            if parts:
                parts.append(block[:cut])
                out = b"".join(parts)
                parts = []
            else:
                out = block[:cut]
            yield first, out
            first += len(out)
            if cut < len(block):
                parts.append(block[cut:])
        while parts:  # the last line began before end: read on to its end
            block = f.read(min(size, _SKIP))
            i = block.find(b"\n")
            if i < 0:
                parts.append(block)
                if block:
                    continue
                yield first, b"".join(parts)
                return
            parts.append(block[: i + 1])
            yield first, b"".join(parts)
            return


def _skip_bom(blocks: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
    for offset, block in blocks:
        if offset == 0 and block.startswith(_BOM):
            offset, block = len(_BOM), block[len(_BOM) :]
            if not block:
                continue
        yield offset, block


def _decode(block: bytes, path: str, offset: int) -> str:
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError(f"{path}: invalid UTF-8 at byte {offset + e.start}") from None


class _Lines:
    """A decoded block's lines, with the byte offset of any of them on demand."""

    def __init__(self, offset: int, block: bytes, path: str) -> None:
        self.text = _decode(block, path, offset)
        self.raw = self.text.split("\n")
        ended = block.endswith(b"\n")
        if ended:
            self.raw.pop()  # the "" after the last "\n"
        self.lines = self.raw
        if "\r" in self.text:
            self.lines = [s[:-1] if s.endswith("\r") else s for s in self.raw]
            if not ended:  # a "\r" ends a line only before "\n"
                self.lines[-1] = self.raw[-1]
        self.ascii = len(self.text) == len(block)
        self._base = offset
        self._k, self._char, self._byte = 0, 0, offset

    def offset(self, k: int) -> int:
        """The byte offset of line ``k`` (cheap when called with increasing ``k``)."""
        if k < self._k:
            self._k, self._char, self._byte = 0, 0, self._base
        char = self._char + sum(map(len, self.raw[self._k : k])) + (k - self._k)
        self._byte += self._bytes(self._char, char)
        self._k, self._char = k, char
        return self._byte

    def _bytes(self, a: int, b: int) -> int:
        return b - a if self.ascii else len(self.text[a:b].encode())


def _read_lines(split: Split, n: int) -> Iterator[Batch]:
    batch: list[str] = []
    first = 0
    for offset, block in _owned_blocks(split.source, split.start, split.end, _BLOCK):
        lines = _Lines(offset, block, split.source)
        records, k, count = lines.lines, 0, len(lines.lines)
        while k < count:
            if not batch:
                first = lines.offset(k)
            take = min(n - len(batch), count - k)
            batch += records[k : k + take]
            k += take
            if len(batch) == n:
                yield Batch(split, first, batch)
                batch = []
    if batch:
        yield Batch(split, first, batch)


def _read_jsonl(split: Split, n: int) -> Iterator[Batch]:
    path = split.source
    fld = split.option("field")
    keys = fld.split(".") if isinstance(fld, str) else None
    loads = json.JSONDecoder().decode  # json.loads without its per-call checks
    batch: list[Any] = []
    first = 0
    for offset, block in _owned_blocks(path, split.start, split.end, _BLOCK):
        lines = _Lines(offset, block, path)
        records = lines.lines
        if offset == 0 and records and records[0].startswith("\ufeff"):
            records = [records[0][1:], *records[1:]]
        for k, line in enumerate(records):
            if not line.strip(_JSON_SPACE):
                continue
            try:
                record = loads(line)
            except json.JSONDecodeError as e:
                at = lines.offset(k)
                raise DecodeError(
                    f"{path}, line at byte {at}: {e.msg} (column {e.colno})"
                ) from None
            if keys is not None:
                record = _dig(record, keys)
            if not batch:
                first = lines.offset(k)
            batch.append(record)
            if len(batch) == n:
                yield Batch(split, first, batch)
                batch = []
    if batch:
        yield Batch(split, first, batch)


def _dig(record: Any, keys: list[str]) -> Any:
    """``record["a"]["b"]`` for keys ``["a", "b"]`` (a digit indexes a list); None if missing."""
    for key in keys:
        if isinstance(record, dict):
            record = record.get(key)
        elif isinstance(record, list) and key.isdigit() and int(key) < len(record):
            record = record[int(key)]
        else:
            return None
    return record


def _nth_line(path: str, first: int, i: int, *, skip_blank: bool) -> int:
    """The byte offset of the ``i``-th line (non-blank line with ``skip_blank``) from ``first``."""
    with open(path, "rb") as f:
        f.seek(first)
        offset = first
        for line in f:
            content = line[len(_BOM) :] if offset == 0 and line.startswith(_BOM) else line
            if not skip_blank or content.strip(_BYTES_SPACE):
                if i == 0:
                    return offset
                i -= 1
            offset += len(line)
    raise OSError(errno.EIO, "the file has fewer lines than when it was read", path)


def _csv_lines(path: str) -> Iterator[str]:
    """The text lines of a csv file as ``open(path, newline="")`` gives them (split after
    ``"\n"``, ``"\r\n"`` or a lone ``"\r"``, which the csv module needs), read a block at a time,
    the byte order mark dropped."""
    for offset, block in _owned_blocks(path, 0, -1, _BLOCK, cr=True):
        text = _decode(block, path, offset)
        if offset == 0 and text.startswith("\ufeff"):
            text = text[1:]
        yield from io.StringIO(text, newline="")


def _read_csv(split: Split, n: int) -> Iterator[Batch]:
    path = split.source
    header = split.option("header", True)
    fld = split.option("field")
    names: list[str] | None = None
    column = fld if isinstance(fld, int) else -1
    batch: list[Any] = []
    row = 0  # index of the next record
    rows = csv.reader(_csv_lines(path), delimiter=str(split.option("delimiter", ",")))
    try:
        for values in rows:
            if not values:
                continue
            if header and names is None:
                names = values
                if isinstance(fld, str):
                    if fld not in names:
                        raise ValueError(
                            f"{path}: no column {fld!r} in the header ({', '.join(names)})"
                        )
                    column = names.index(fld)
                continue
            record: Any
            if fld is not None:
                record = values[column] if column < len(values) else None
            elif names is None:
                record = values
            elif len(values) == len(names):
                record = dict(zip(names, values, strict=True))
            else:
                record = _dict_row(names, values)
            batch.append(record)
            row += 1
            if len(batch) == n:
                yield Batch(split, row - n, batch)
                batch = []
    except csv.Error as e:
        raise DecodeError(f"{path}, row {row}: {e}") from None
    if batch:
        yield Batch(split, row - len(batch), batch)


def _dict_row(names: list[str], values: list[str]) -> dict[str | None, Any]:
    """A row whose length differs from the header's, as ``csv.DictReader`` makes it."""
    record: dict[str | None, Any] = dict(zip(names, values, strict=False))
    if len(values) > len(names):
        record[None] = values[len(names) :]
    for name in names[len(values) :]:
        record[name] = None
    return record


def _csv_header_end(split: Split) -> tuple[list[str] | None, int]:
    """The csv header row (None if there is no row) and the byte offset where the data starts."""
    path = split.source
    consumed = _bom_length(path)

    def counted() -> Iterator[str]:
        nonlocal consumed
        for line in _csv_lines(path):
            consumed += len(line.encode())
            yield line

    try:
        for values in csv.reader(counted(), delimiter=str(split.option("delimiter", ","))):
            if values:
                return values, consumed
    except csv.Error as e:
        raise DecodeError(f"{path}, header: {e}") from None
    return None, consumed


def _bom_length(path: str) -> int:
    with open(path, "rb") as f:
        return len(_BOM) if f.read(len(_BOM)) == _BOM else 0


def _csv_chunks(split: Split, size: int) -> Iterator[tuple[int, bytes]]:
    path = split.source
    start = _csv_header_end(split)[1] if split.option("header", True) else _bom_length(path)
    with open(path, "rb") as f:
        f.seek(start)
        first = start
        parts: list[bytes] = []
        pending = 0
        odd = False  # an odd number of quotes in parts: a quoted value is open
        while block := f.read(size):
            cut = _record_end(block, odd)
            if cut == 0 and pending + len(block) >= max(4 * size, _CSV_OPEN_LIMIT):
                cut = block.rfind(b"\n") + 1  # the quote count is off: cut anyway
            if cut == 0:
                parts.append(block)
                pending += len(block)
                odd ^= bool(block.count(b'"') & 1)
                continue
            parts.append(block[:cut])
            out = b"".join(parts)
            yield first, out
            first += len(out)
            rest = block[cut:]
            parts, pending, odd = ([rest] if rest else []), len(rest), bool(rest.count(b'"') & 1)
        if parts:
            yield first, b"".join(parts)


def _record_end(block: bytes, odd: bool) -> int:
    """One past the last ``"\\n"`` of ``block`` with an even number of quotes before it (counting
    ``odd``, the parity before the block), or 0 if there is none."""
    parity = odd ^ bool(block.count(b'"') & 1)  # at the end of the block
    end = len(block)
    while (nl := block.rfind(b"\n", 0, end)) >= 0:
        parity ^= bool(block.count(b'"', nl + 1, end) & 1)
        if not parity:
            return nl + 1
        end = nl
    return 0


def _read_parquet(split: Split, n: int) -> Iterator[Batch]:
    pq = _pyarrow("pyarrow.parquet", "Parquet")
    pf = pq.ParquetFile(split.source)
    try:
        names = pf.schema_arrow.names
        fld, columns = _arrow_projection(split, names)
        first = split.start
        batches = pf.iter_batches(
            batch_size=n, row_groups=[split.option("row_group")], columns=columns
        )
        for rb in batches:
            if rb.num_rows:
                yield Batch(split, first, _arrow_records(rb, fld))
                first += rb.num_rows
    finally:
        pf.close()


def _read_arrow(split: Split, n: int) -> Iterator[Batch]:
    if split.data is not None:
        table: Any = split.data
        fld, columns = _arrow_projection(split, table.schema.names)
        if columns is not None:
            table = table.select(columns)
        first = split.start
        for rb in table.to_batches(max_chunksize=n):
            if rb.num_rows:
                yield Batch(split, first, _arrow_records(rb, fld))
                first += rb.num_rows
        return
    _pyarrow("pyarrow.ipc", "Arrow IPC files")
    pa = _pyarrow("pyarrow", "Arrow IPC files")
    with pa.memory_map(split.source) as mapped:
        reader = pa.ipc.open_file(mapped)
        fld, columns = _arrow_projection(split, reader.schema.names)
        rb = reader.get_batch(split.option("record_batch"))
        if columns is not None:
            rb = rb.select(columns)
        for start in range(0, rb.num_rows, n):
            yield Batch(split, split.start + start, _arrow_records(rb.slice(start, n), fld))


def _arrow_projection(split: Split, names: list[str]) -> tuple[str | None, list[str] | None]:
    """The ``field`` to return (a name) and the columns to read (None: all) of an Arrow split."""
    fld = split.option("field")
    if isinstance(fld, int):
        fld = names[fld]
    if fld is not None:
        return str(fld), [str(fld)]
    columns = split.option("columns")
    return None, (list(cast("tuple[str, ...]", columns)) if columns is not None else None)


def _arrow_records(rb: Any, fld: str | None) -> list[Any]:
    if fld is not None:
        return rb.column(fld).to_pylist()  # type: ignore[no-any-return]
    return rb.to_pylist()  # type: ignore[no-any-return]


def _read_items(split: Split, n: int) -> Iterator[Batch]:
    data: Any = split.data
    if data is None:
        raise ValueError(f"an items split ({split.source}) holds no data")
    rows = isinstance(data, np.ndarray) and data.ndim == 2
    for start in range(0, len(data), n):
        part = data[start : start + n]
        if isinstance(part, np.ndarray):
            records = part.tolist()
            if rows:
                records = list(map(tuple, records))
        else:
            records = list(part)
        yield Batch(split, split.start + start, records)


_READERS = {
    "lines": _read_lines,
    "jsonl": _read_jsonl,
    "csv": _read_csv,
    "parquet": _read_parquet,
    "arrow": _read_arrow,
    "items": _read_items,
}
