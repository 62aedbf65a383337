"""distcore.mapreduce._inputs: splits own every line exactly once whatever the split size, batches
and chunks read back exactly the input (checked against str.split, csv.DictReader, json and
pyarrow), positions are exact, errors name the file and the byte, and memory stays bounded."""

from __future__ import annotations

import csv
import doctest
import importlib.util
import io
import itertools
import json
import os
import pickle
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distcore.exceptions import DecodeError
from distcore.mapreduce import _inputs
from distcore.mapreduce._inputs import (
    Batch,
    Split,
    csv_header,
    iter_splits,
    plan_splits,
    read_batches,
    read_chunks,
)

# Line ends and characters that str.splitlines() would also split on, to catch its misuse.
PIECES = ["a", "bc", " ", "é", "字", "😀", "\n", "\r\n", "\r", "\n\n", "\u2028", "\x85", "\x0c"]
texts = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)


def lines_of(text: str) -> list[str]:
    """The records of a lines file: split on "\\n" only, one "\\r" before it dropped."""
    lines = text.split("\n")
    tail = lines.pop()  # after the last "\n": "" or an unterminated last line
    records = [s[:-1] if s.endswith("\r") else s for s in lines]
    return [*records, tail] if tail else records


def line_starts(raw: bytes) -> list[int]:
    return [i for i in range(len(raw)) if i == 0 or raw[i - 1] == ord("\n")]


def all_records(splits: list[Split], **kw: Any) -> list[Any]:
    return [r for s in splits for b in read_batches(s, **kw) for r in b.records]


def all_batches(splits: list[Split], **kw: Any) -> list[Batch]:
    return [b for s in splits for b in read_batches(s, **kw)]


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# -- lines ----------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(
    text=texts,
    split_bytes=st.integers(1, 50),
    batch_records=st.integers(1, 5),
    block=st.integers(1, 40),
)
def test_every_line_is_read_once_by_exactly_one_split(
    tmp_path_factory: pytest.TempPathFactory,
    text: str,
    split_bytes: int,
    batch_records: int,
    block: int,
) -> None:
    path = write(tmp_path_factory.mktemp("lines") / "a.txt", text)
    raw = path.read_bytes()
    splits = plan_splits(path, split_bytes=split_bytes)
    assert [(s.start, s.end) for s in splits] == [
        (a, min(a + split_bytes, len(raw))) for a in range(0, len(raw), split_bytes)
    ]
    with mock.patch.object(_inputs, "_BLOCK", block):  # many blocks per split
        batches = all_batches(splits, batch_records=batch_records)
    assert [r for b in batches for r in b.records] == lines_of(text)
    assert all(0 < len(b.records) <= batch_records for b in batches)
    starts = line_starts(raw)
    positions = [b.position(i) for b in batches for i in range(len(b.records))]
    assert positions == [f"{path}, line at byte {o}" for o in starts]
    firsts = iter(starts)
    for b in batches:
        assert b.first == next(firsts)
        for _ in range(len(b.records) - 1):
            next(firsts)


@settings(max_examples=300, deadline=None)
@given(text=texts, split_bytes=st.integers(1, 50), chunk_bytes=st.integers(1, 20))
def test_chunks_cover_the_file_exactly_and_end_at_line_ends(
    tmp_path_factory: pytest.TempPathFactory, text: str, split_bytes: int, chunk_bytes: int
) -> None:
    path = write(tmp_path_factory.mktemp("chunks") / "a.log", text)
    raw = path.read_bytes()
    for size in (1, chunk_bytes):
        chunks = [
            c
            for s in plan_splits(path, split_bytes=split_bytes)
            for c in read_chunks(s, chunk_bytes=size)
        ]
        assert b"".join(c for _, c in chunks) == raw
        assert [o for o, _ in chunks] == list(
            itertools.accumulate((len(c) for _, c in chunks[:-1]), initial=0)
        )[: len(chunks)]
        assert all(c.endswith(b"\n") for _, c in chunks[:-1])
        assert all(c for _, c in chunks)


def test_a_split_reads_the_lines_starting_in_it_and_finishes_the_last(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "one\ntwo\nthree\n")  # lines start at 0, 4, 8

    def read(start: int, end: int) -> list[str]:
        return all_records([Split("lines", str(path), start, end)])

    assert read(0, 1) == ["one"]
    assert read(1, 4) == []  # "one" started before; "two" starts at 4
    assert read(1, 5) == ["two"]
    assert read(4, 14) == ["two", "three"]
    assert read(9, 14) == []


def test_line_records_keep_empty_lines_and_a_last_line_without_newline(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "\n\r\nx\r\n\ny\rz\nlast\r")
    assert all_records(plan_splits(path)) == ["", "", "x", "", "y\rz", "last\r"]
    assert plan_splits(write(tmp_path / "empty.txt", "")) == []  # an empty file has no split
    assert all_records(plan_splits(write(tmp_path / "nl.txt", "\n"))) == [""]


def test_a_position_in_a_file_gone_is_the_index_after_the_first_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "w\nx\ny\nz\n")
    (_, batch) = all_batches(plan_splits(path, split_bytes=4), batch_records=2)
    assert (batch.first, batch.records) == (4, ["y", "z"])
    assert batch.position(-1) == f"{path}, line at byte 6"
    path.unlink()
    assert batch.position(1) == f"{path}, record 1 after the line at byte 4"
    with pytest.raises(IndexError):
        batch.position(2)


def test_invalid_utf8_names_the_file_and_the_byte(tmp_path: Path) -> None:
    data = "hello\nwörld\n".encode("latin-1") + b"ok\n" * 1000 + "é\n".encode("latin-1")
    path = write(tmp_path / "latin1.txt", data)
    with pytest.raises(DecodeError, match=f"^{path}: invalid UTF-8 at byte 7$"):
        all_records(plan_splits(path))
    # in a later split, and in a later block of it: the offset is still the file's
    bad = len(data) - 2
    with mock.patch.object(_inputs, "_BLOCK", 64):
        split = plan_splits(path, split_bytes=1000)[-1]
        with pytest.raises(DecodeError, match=f"^{path}: invalid UTF-8 at byte {bad}$"):
            all_records([split])
    assert issubclass(DecodeError, ValueError)


def peak_memory(path: Path, read: Any) -> int:
    """The peak of Python allocations while reading every split of ``path`` with ``read``."""
    tracemalloc.start()
    try:
        for split in plan_splits(path):
            for _ in read(split):
                pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reading_holds_a_few_blocks_whatever_the_file_size(tmp_path: Path) -> None:
    line = "the quick brown fox jumps over the lazy dog, été 字\n"
    small = write(tmp_path / "small.txt", line * (4_000_000 // len(line.encode())))
    big = write(tmp_path / "big.txt", line * (40_000_000 // len(line.encode())))
    for read in (read_batches, lambda s: read_chunks(s, chunk_bytes=1 << 20)):
        peak_small, peak_big = peak_memory(small, read), peak_memory(big, read)
        assert peak_big < 1.2 * peak_small + (1 << 20), (peak_small, peak_big)
        assert peak_big < 20 << 20, peak_big  # about 1 MiB blocks and their decoded lines


# -- paths: globs, directories, lists, errors -----------------------------------------------------


def test_globs_are_sorted_directories_skip_hidden_files_and_lists_keep_their_order(
    tmp_path: Path,
) -> None:
    for name in ["b.txt", "a.txt", "c.log", ".hidden.txt", "sub/d.txt"]:
        write(tmp_path / name, name + "\n")

    def names(source: object) -> list[str]:
        return [os.path.relpath(s.source, tmp_path) for s in plan_splits(source)]

    assert names(str(tmp_path / "*.txt")) == ["a.txt", "b.txt"]
    assert names(str(tmp_path / "**" / "*.txt")) == ["a.txt", "b.txt", "sub/d.txt"]
    assert names(str(tmp_path / "[bc].*")) == ["b.txt", "c.log"]
    assert names(tmp_path) == ["a.txt", "b.txt", "c.log"]  # no hidden file, no recursion
    assert names([tmp_path / "c.log", str(tmp_path / "a.txt"), tmp_path / "sub"]) == [
        "c.log",
        "a.txt",
        "sub/d.txt",
    ]
    assert all_records(plan_splits([tmp_path / "b.txt", tmp_path / "a.txt"])) == ["b.txt", "a.txt"]


def test_a_file_whose_name_looks_like_a_glob_is_read_as_itself(tmp_path: Path) -> None:
    path = write(tmp_path / "x[1].txt", "one\n")
    write(tmp_path / "x1.txt", "other\n")
    assert all_records(plan_splits(path)) == ["one"]


def test_splits_hold_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "a.txt", "x\n")
    monkeypatch.chdir(tmp_path)
    (split,) = plan_splits("a.txt")
    assert split.source == str(tmp_path / "a.txt")
    monkeypatch.chdir("/")  # a worker elsewhere still finds it
    assert all_records([split]) == ["x"]


def test_every_input_is_checked_before_anything_is_read(tmp_path: Path) -> None:
    bad_parquet = write(tmp_path / "bad.parquet", b"not parquet")  # reading it would fail
    missing = tmp_path / "missing.txt"
    with pytest.raises(FileNotFoundError, match=r"missing\.txt") as err:
        plan_splits([bad_parquet, missing])
    assert err.value.filename == str(missing)
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        iter_splits([tmp_path / "bad.parquet", missing])  # at the call, not at the first next()
    with pytest.raises(FileNotFoundError, match=r"no file matches the pattern: '.*\*\.csv'"):
        plan_splits(str(tmp_path / "*.csv"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no file in the directory"):
        plan_splits(tmp_path / "empty")


def test_strings_that_are_no_files_hint_at_format_items(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="format='items'"):
        plan_splits(["to be", "or not"])
    assert all_records(plan_splits(["to be", "or not"], format="items")) == ["to be", "or not"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads all")
def test_an_unreadable_file_is_a_permission_error_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.txt", "x\n")
    path.chmod(0)
    try:
        with pytest.raises(PermissionError, match=r"secret\.txt"):
            plan_splits([tmp_path / "secret.txt"])
    finally:
        path.chmod(0o600)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(OSError, match=r"not a regular file: '.*pipe'"):
        plan_splits(tmp_path / "pipe")


def test_a_glob_may_match_empty_directories_among_files(tmp_path: Path) -> None:
    write(tmp_path / "a1.txt", "x\n")
    (tmp_path / "a2").mkdir()
    assert [Path(s.source).name for s in plan_splits(str(tmp_path / "a*"))] == ["a1.txt"]
    with pytest.raises(FileNotFoundError, match="no file matches the pattern"):
        plan_splits(str(tmp_path / "a2*"))


def test_bad_arguments_are_refused_with_what_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "x\n")
    with pytest.raises(ValueError, match="unknown format 'xml'; accepted: lines, csv, jsonl"):
        plan_splits(path, format="xml")
    for name in ("split_bytes", "split_records"):
        for value in (0, -1):
            with pytest.raises(ValueError, match=f"{name} must be > 0, got {value}"):
                plan_splits(path, **{name: value})
    (split,) = plan_splits(path)
    with pytest.raises(ValueError, match="batch_records must be > 0"):
        read_batches(split, batch_records=0)
    with pytest.raises(ValueError, match="chunk_bytes must be > 0"):
        read_chunks(split, chunk_bytes=-5)
    with pytest.raises(TypeError, match=r"unknown option 'delimiter' for lines input \(accepted"):
        plan_splits(path, delimiter=";")
    with pytest.raises(TypeError, match="cannot read bytes"):
        plan_splits(b"a.txt")
    with pytest.raises(TypeError, match="cannot read int"):
        plan_splits(42)
    with pytest.raises(ValueError, match="is for files"):
        plan_splits([1, 2], format="csv")
    with pytest.raises(ValueError, match="has no raw bytes; use read_batches"):
        read_chunks(plan_splits([1, 2])[0])

    class DataFrame(list[str]):  # as pandas', it would iterate over column names
        pass

    with pytest.raises(TypeError, match="a DataFrame iterates over its columns"):
        plan_splits(DataFrame(["a", "b"]))


# -- csv ------------------------------------------------------------------------------------------

CSV = (
    'name,age,note\r\nada,36,"likes\nnewlines, and ""quotes"""\r\n'
    "\r\nbob,7,\r\ncy,1,x,extra\r\ndi\r\n"
)


def test_csv_rows_are_what_csv_dictreader_gives(tmp_path: Path) -> None:
    path = write(tmp_path / "people.csv", CSV)
    (split,) = plan_splits(path, split_bytes=1)  # never cut: quoted values hold newlines
    assert (split.kind, split.start, split.end) == ("csv", 0, -1)
    assert split.options == (("delimiter", ","), ("header", True))
    with open(path, newline="", encoding="utf-8") as f:
        want = list(csv.DictReader(f))
    assert all_records([split]) == want
    assert want[0]["note"] == 'likes\nnewlines, and "quotes"' and want[2][None] == ["extra"]
    assert want[3] == {"name": "di", "age": None, "note": None}
    batches = all_batches([split], batch_records=3)
    assert [b.first for b in batches] == [0, 3]
    assert batches[1].position(0) == f"{path}, row 3"  # data rows from 0; no header, no blank
    assert csv_header(split) == ["name", "age", "note"]


def test_csv_without_header_and_fields_by_name_and_index(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", CSV)
    rows = list(csv.reader(io.StringIO(CSV, newline="")))
    assert all_records(plan_splits(path, header=False)) == [r for r in rows if r]
    assert all_records(plan_splits(path, field="age")) == ["36", "7", "1", None]
    assert all_records(plan_splits(path, field=0)) == ["ada", "bob", "cy", "di"]
    assert all_records(plan_splits(path, field=0, header=False))[:2] == ["name", "ada"]
    assert csv_header(plan_splits(path, header=False)[0]) is None
    with pytest.raises(ValueError, match="no column 'agee' in the header"):
        all_records(plan_splits(path, field="agee"))
    with pytest.raises(ValueError, match="needs header=True"):
        plan_splits(path, field="age", header=False)


def test_tsv_and_other_delimiters(tmp_path: Path) -> None:
    tsv = write(tmp_path / "t.tsv", "a\tb\n1,5\t2\n")
    assert all_records(plan_splits(tsv)) == [{"a": "1,5", "b": "2"}]
    semi = write(tmp_path / "s.txt", "a;b\n1;2\n")
    assert all_records(plan_splits(semi, format="csv", delimiter=";")) == [{"a": "1", "b": "2"}]
    with pytest.raises(ValueError, match="delimiter must be one character"):
        plan_splits(semi, format="csv", delimiter=";;")


def test_csv_chunks_hold_whole_rows_after_the_header(tmp_path: Path) -> None:
    rows = [[f"r{i}", "x" * (i % 7), "two\nlines" if i % 3 else 'q"uo"te'] for i in range(300)]
    out = io.StringIO(newline="")
    csv.writer(out).writerow(["id", "pad", "text"])
    csv.writer(out).writerows(rows)
    path = write(tmp_path / "q.csv", "\ufeff" + out.getvalue())  # with a byte order mark
    (split,) = plan_splits(path)
    assert csv_header(split) == ["id", "pad", "text"]
    assert all_records([split], batch_records=7) == [
        dict(zip(["id", "pad", "text"], r, strict=True)) for r in rows
    ]
    data_start = len("\ufeffid,pad,text\r\n".encode())
    for size in (1, 13, 100, 1 << 20):
        chunks = list(read_chunks(split, chunk_bytes=size))
        assert chunks[0][0] == data_start
        assert b"".join(c for _, c in chunks) == path.read_bytes()[data_start:]
        parsed = [r for _, c in chunks for r in csv.reader(io.StringIO(c.decode(), newline=""))]
        assert parsed == rows  # no row was cut in two
    no_header = list(read_chunks(plan_splits(path, header=False)[0]))
    assert no_header[0][0] == 3 and no_header[0][1].startswith(b"id,pad")


cells = st.lists(st.sampled_from(["a", "é", ",", '"', "\n", "\r\n", " ", ""]), max_size=6).map(
    "".join
)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.lists(cells, min_size=1, max_size=4), max_size=12),
    chunk_bytes=st.integers(1, 30),
    block=st.integers(1, 40),
)
def test_any_csv_reads_as_the_csv_module_does_and_chunks_hold_whole_rows(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]], chunk_bytes: int, block: int
) -> None:
    out = io.StringIO(newline="")
    csv.writer(out).writerows(rows)
    path = write(tmp_path_factory.mktemp("csv") / "r.csv", out.getvalue())
    want = [r for r in csv.reader(io.StringIO(out.getvalue(), newline="")) if r]
    (split,) = plan_splits(path, header=False)
    with mock.patch.object(_inputs, "_BLOCK", block):
        assert all_records([split], batch_records=3) == want
    chunks = list(read_chunks(split, chunk_bytes=chunk_bytes))
    assert b"".join(c for _, c in chunks) == path.read_bytes()
    parsed = [r for _, c in chunks for r in csv.reader(io.StringIO(c.decode(), newline="")) if r]
    assert parsed == want


def test_a_stray_quote_cannot_make_the_rest_of_a_csv_one_chunk(tmp_path: Path) -> None:
    path = write(tmp_path / "s.csv", 'size,name\n12",pizza\n' + "1,x\n" * 1000)
    with mock.patch.object(_inputs, "_CSV_OPEN_LIMIT", 100):
        chunks = list(read_chunks(plan_splits(path)[0], chunk_bytes=10))
    assert max(len(c) for _, c in chunks) <= 100 + 10
    assert b"".join(c for _, c in chunks) == path.read_bytes()[len("size,name\n") :]
    assert all(c.endswith(b"\n") for _, c in chunks)


def test_csv_errors_name_the_file_and_the_row(tmp_path: Path) -> None:
    bad = write(tmp_path / "b.csv", b"a,b\n1,2\n\xff,3\n")
    with pytest.raises(DecodeError, match=f"^{bad}: invalid UTF-8 at byte 8$"):
        all_records(plan_splits(bad))
    huge = write(tmp_path / "h.csv", "a\n1\n2\n" + "x" * (csv.field_size_limit() + 1) + "\n")
    with pytest.raises(DecodeError, match=f"^{huge}, row 2: field larger than field limit"):
        all_records(plan_splits(huge))


# -- jsonl ----------------------------------------------------------------------------------------


def test_jsonl_records_fields_and_blank_lines(tmp_path: Path) -> None:
    objs = [{"a": {"b": i, "c": [i, {"d": "é"}]}, "k": "x" * i} for i in range(50)]
    lines = [json.dumps(o, ensure_ascii=False) for o in objs]
    text = "\ufeff" + "\n  \n".join(lines[:25]) + "\r\n\n" + "\n".join(lines[25:])
    path = write(tmp_path / "o.jsonl", text)
    raw = path.read_bytes()
    for split_bytes in (1, 17, 1 << 20):
        splits = plan_splits(path, split_bytes=split_bytes)
        assert all_records(splits) == objs
        assert all_records(plan_splits(path, split_bytes=split_bytes, field="a.b")) == list(
            range(50)
        )
        positions = [
            b.position(i)
            for b in all_batches(splits, batch_records=4)
            for i in range(len(b.records))
        ]
        want = [0] + [raw.index(json.dumps(o, ensure_ascii=False).encode()) for o in objs[1:]]
        assert positions == [f"{path}, line at byte {o}" for o in want]
    assert all_records(plan_splits(path, field="a.c.1.d"))[:2] == ["é", "é"]
    assert all_records(plan_splits(path, field="a.missing"))[:2] == [None, None]
    ndjson = write(tmp_path / "o.ndjson", '{"x": 1}\n')
    assert plan_splits(ndjson)[0].kind == "jsonl"


def test_bad_json_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", '{"a": 1}\n\n{"a": 2}\n{"a": \n{"a": 4}\n')
    at = path.read_bytes().index(b'{"a": \n')
    for block in (4, 1 << 20):
        with (
            mock.patch.object(_inputs, "_BLOCK", block),
            pytest.raises(DecodeError, match=rf"^{path}, line at byte {at}: Expecting value"),
        ):
            all_records(plan_splits(path))
    with pytest.raises(ValueError, match="a jsonl field is a dotted path"):
        plan_splits(path, field=1)


def test_jsonl_chunks_leave_out_the_byte_order_mark(tmp_path: Path) -> None:
    path = write(tmp_path / "o.jsonl", '\ufeff{"a": 1}\n{"a": 2}\n')
    chunks = list(read_chunks(plan_splits(path)[0], chunk_bytes=4))
    assert chunks[0][0] == 3 and b"".join(c for _, c in chunks) == path.read_bytes()[3:]


# -- parquet and arrow ----------------------------------------------------------------------------


def people_table() -> Any:
    pa = pytest.importorskip("pyarrow")
    n = 1000
    return pa.table(
        {
            "id": list(range(n)),
            "name": [f"n{i}é" for i in range(n)],
            "score": [i / 4 for i in range(n)],
            "tags": [[i, i + 1] for i in range(n)],
        }
    )


def test_parquet_splits_per_row_group_with_columns_and_fields(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    table = people_table()
    path = tmp_path / "people.parquet"
    pq.write_table(table, path, row_group_size=300)
    splits = plan_splits(path)
    assert [(s.start, s.end, s.option("row_group")) for s in splits] == [
        (0, 300, 0),
        (300, 600, 1),
        (600, 900, 2),
        (900, 1000, 3),
    ]
    assert all_records(splits, batch_records=128) == table.to_pylist()
    batches = all_batches(splits, batch_records=128)
    assert batches[3].position(2) == f"{path}, row {300 + 2}"
    assert (
        all_records(plan_splits(path, columns=["name", "id"]))
        == table.select(["name", "id"]).to_pylist()
    )
    assert all_records(plan_splits(path, field="score")) == table.column("score").to_pylist()
    assert all_records(plan_splits(path, field=1)) == table.column("name").to_pylist()
    with pytest.raises(ValueError, match=r"people.parquet: no column 'nope' \(columns: id, name"):
        plan_splits(path, columns=["id", "nope"])
    with pytest.raises(DecodeError, match=r"bad.parquet: not a Parquet file"):
        plan_splits(write(tmp_path / "bad.parquet", b"garbage"))


def test_arrow_ipc_files_split_per_record_batch(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    table = people_table()
    for name in ("people.arrow", "people.feather"):
        path = tmp_path / name
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            for rb in table.to_batches(max_chunksize=400):
                writer.write_batch(rb)
        splits = plan_splits(path)
        assert [(s.start, s.end) for s in splits] == [(0, 400), (400, 800), (800, 1000)]
        assert all_records(splits, batch_records=99) == table.to_pylist()
        assert all_records(plan_splits(path, field="id")) == list(range(1000))
        assert all_batches(splits, batch_records=99)[5].position(1) == f"{path}, row {400 + 1}"
    with pytest.raises(DecodeError, match="not an Arrow IPC file"):
        plan_splits(write(tmp_path / "x.arrow", b"garbage"))


def test_pyarrow_tables_in_memory_split_by_records(tmp_path: Path) -> None:
    table = people_table()
    splits = plan_splits(table, split_records=300)
    assert [(s.kind, s.source, s.start, s.end) for s in splits] == [
        ("arrow", "<table>", a, min(a + 300, 1000)) for a in range(0, 1000, 300)
    ]
    assert all_records(splits, batch_records=64) == table.to_pylist()
    assert all_batches(splits, batch_records=64)[5].position(3) == "table[303]"
    assert all_records(plan_splits(table, field="name"))[:2] == ["n0é", "n1é"]
    assert all_records(plan_splits(table.to_batches()[0], columns=["id"]))[:2] == [
        {"id": 0},
        {"id": 1},
    ]
    # a pickled slice carries its own rows, not the whole table's buffers
    assert len(pickle.dumps(splits[1])) < len(pickle.dumps(table)) / 2


def test_without_pyarrow_parquet_asks_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "a.parquet", b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"^reading Parquet needs pyarrow: pip install pyarrow$"):
        plan_splits(path)


# -- items ----------------------------------------------------------------------------------------


def test_sequences_split_into_self_contained_slices() -> None:
    items = [{"i": i} for i in range(25)]
    splits = plan_splits(items, split_records=10)
    assert [(s.start, s.end, len(s.data)) for s in splits] == [
        (0, 10, 10),
        (10, 20, 10),
        (20, 25, 5),
    ]
    assert all_records(splits, batch_records=3) == items
    assert all_batches(splits, batch_records=3)[4].position(1) == "items[11]"  # 10-12
    assert all_records(plan_splits(range(5, 25), split_records=7)) == list(range(5, 25))
    assert all_records(plan_splits(tuple("xyz"), format="items", split_records=2)) == [
        "x",
        "y",
        "z",
    ]
    assert plan_splits([]) == []


def test_a_generator_is_pulled_one_split_at_a_time() -> None:
    pulled = 0

    def endless() -> Iterator[int]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield i

    splits = list(itertools.islice(iter_splits(endless(), split_records=4), 3))
    assert pulled == 12
    assert [(s.start, s.end) for s in splits] == [(0, 4), (4, 8), (8, 12)]
    assert all_records(splits) == list(range(12))
    assert all_records(plan_splits((i * i for i in range(10)), split_records=3)) == [
        i * i for i in range(10)
    ]


def test_numpy_arrays_give_python_scalars_and_row_tuples() -> None:
    one = np.arange(10, dtype=np.int32)
    records = all_records(plan_splits(one, split_records=4), batch_records=3)
    assert records == list(range(10)) and type(records[0]) is int
    two = np.arange(12.0).reshape(6, 2)
    records = all_records(plan_splits(two, split_records=4))
    assert records == [(2.0 * i, 2.0 * i + 1) for i in range(6)] and type(records[0][0]) is float
    assert all_batches(plan_splits(two, split_records=4))[1].position(1) == "array[5]"
    with pytest.raises(ValueError, match="1-d or 2-d"):
        plan_splits(np.zeros((2, 2, 2)))


# -- splits travel --------------------------------------------------------------------------------


def test_every_kind_of_split_pickles_and_reads_the_same(tmp_path: Path) -> None:
    sources: list[tuple[object, dict[str, Any]]] = [
        (write(tmp_path / "a.txt", "a\nbé\r\nc"), {"split_bytes": 2}),
        (write(tmp_path / "a.jsonl", '{"x": [1]}\n{"x": 2}\n'), {"field": "x"}),
        (write(tmp_path / "a.csv", "k,v\n1,2\n"), {"header": True}),
        ([1, "two", None], {}),
        ((i for i in range(7)), {"split_records": 3}),
        (np.arange(6).reshape(3, 2), {}),
    ]
    if importlib.util.find_spec("pyarrow") is not None:
        import pyarrow.parquet as pq

        table = people_table()
        pq.write_table(table, tmp_path / "p.parquet", row_group_size=400)
        sources += [(tmp_path / "p.parquet", {"columns": ["id"]}), (table, {"field": "id"})]
    for source, kw in sources:
        for split in plan_splits(source, **kw):
            copy = pickle.loads(pickle.dumps(split))
            assert copy == split and hash(copy) == hash(split)
            assert [b.records for b in read_batches(copy)] == [
                b.records for b in read_batches(split)
            ]


def test_the_module_examples_run() -> None:
    result = doctest.testmod(_inputs, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
