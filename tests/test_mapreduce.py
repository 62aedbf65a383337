"""distcore.mapreduce: the built-in word count against collections.Counter(str.split()), and the
pair sort against numpy's stable argsort."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from distcore.cli import main
from distcore.exceptions import DecodeError
from distcore.mapreduce import sort_by_key, word_count

from texts import write_zipf

#: Every character str.isspace() accepts, and look-alikes it does not.
SPACES = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2005\u200a\u2028\u2029\u202f\u205f\u3000"
)
NOT_SPACES = "\u200b\u180e\ufeff\u2030\u3001é字😀"


def test_the_separators_are_exactly_pythons() -> None:
    assert all(c.isspace() for c in SPACES)
    assert not any(c.isspace() for c in NOT_SPACES)
    text = "x".join(SPACES) + "y" + "z".join(NOT_SPACES)
    assert word_count(text=text) == Counter(text.split())


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.one_of(st.sampled_from(SPACES + NOT_SPACES), st.characters(codec="utf-8")),
        max_size=200,
    )
)
def test_any_text_counts_as_counter_of_str_split(text: str) -> None:
    assert word_count(text=text) == Counter(text.split())


def test_files_count_as_counter_on_every_thread_count(tmp_path: Path) -> None:
    rng = random.Random(5)
    files = []
    for i in range(3):
        f = tmp_path / f"part{i}.txt"
        write_zipf(f, rng, 400_000)  # ~2.5 MB: several threads
        files.append(f)
    want: Counter[str] = Counter()
    for f in files:
        want.update(f.read_text(encoding="utf-8").split())
    for threads in (0, 1, 2, 5):
        assert word_count(files, threads=threads) == want
    top = word_count(files, top=10)
    assert top == sorted(want.items(), key=lambda wc: (-wc[1], wc[0]))[:10]
    assert word_count(files[0]) == Counter(files[0].read_text(encoding="utf-8").split())


def test_hot_keys_huge_keys_and_empty_input(tmp_path: Path) -> None:
    hot = " ".join(["hot"] * 500_000 + [f"k{i}" for i in range(500_000)])
    got = word_count(text=hot)
    assert got["hot"] == 500_000 and len(got) == 500_001
    huge = "x" * 3_000_000
    assert word_count(text=f"a {huge} b {huge}") == {"a": 1, "b": 1, huge: 2}
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert word_count([empty]) == {}
    assert word_count(text=" \n\t\u3000 ") == {}
    assert word_count() == {}
    assert word_count(text="a b", top=0) == []


def test_bad_input_is_refused_with_where(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("ok café".encode("latin-1"))
    with pytest.raises(DecodeError, match=r"latin1\.txt: the text is not UTF-8 at byte 6"):
        word_count([bad])
    with pytest.raises(FileNotFoundError):
        word_count([tmp_path / "missing.txt"])
    with pytest.raises(ValueError, match="top"):
        word_count(text="a", top=-1)
    with pytest.raises(ValueError, match="threads"):
        word_count(text="a", threads=-1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 30), max_size=300), st.integers(1, 4))
def test_sort_by_key_is_a_stable_sort(keys: list[int], threads: int) -> None:
    k = np.array(keys, dtype=np.uint64)
    v = np.arange(len(keys), dtype=np.uint64)  # input positions: stable means increasing per key
    got_k, got_v = sort_by_key(k, v, threads=threads)
    order = np.argsort(k, kind="stable")
    assert got_k.tolist() == k[order].tolist()
    assert got_v.tolist() == v[order].tolist()


def test_sort_by_key_at_scale_and_bad_shapes() -> None:
    rng = np.random.default_rng(3)
    k = rng.integers(0, 1000, 2_000_000, dtype=np.uint64)  # many ties: stability matters
    v = np.arange(k.size, dtype=np.uint64)
    got_k, got_v = sort_by_key(k, v)
    order = np.argsort(k, kind="stable")
    assert np.array_equal(got_k, k[order]) and np.array_equal(got_v, v[order])
    assert got_k.dtype == np.uint64 and got_v.dtype == np.uint64
    with pytest.raises(ValueError, match="differ in length"):
        sort_by_key(k[:3], v[:2])
    with pytest.raises(ValueError, match="1-d"):
        sort_by_key(k.reshape(2, -1), v.reshape(2, -1))


def test_the_mr_commands(tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("b a b\nc b a\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["mr", "wordcount", str(f), "--top", "2"])
    assert r.exit_code == 0, r.output
    assert "6 words, 3 distinct" in r.output
    assert r.output.index("b") < r.output.index("a")
    bad = CliRunner().invoke(main, ["mr", "wordcount", str(tmp_path / "nope.txt")])
    assert bad.exit_code == 2 and "no such file" in bad.output
    pairs = np.array([5, 0, 1, 1, 5, 2, 0, 3], dtype="<u8")
    src, dest = tmp_path / "in.bin", tmp_path / "out.bin"
    pairs.tofile(src)
    r = CliRunner().invoke(main, ["mr", "sort", str(src), str(dest)])
    assert r.exit_code == 0, r.output
    assert np.fromfile(dest, dtype="<u8").tolist() == [0, 3, 1, 1, 5, 0, 5, 2]
    (tmp_path / "odd.bin").write_bytes(b"\0" * 24)
    odd = CliRunner().invoke(main, ["mr", "sort", str(tmp_path / "odd.bin"), str(dest)])
    assert odd.exit_code == 2 and "16-byte pairs" in odd.output
