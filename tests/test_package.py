"""The package as users install it: files in the wheel, the exception hierarchy, the raw hashes."""

from __future__ import annotations

import os
from pathlib import Path

import mmh3
import pytest
import xxhash

import distcore
from distcore import exceptions
from distcore.hashing import HASH_FUNCTIONS, KetamaRing, hash_key, murmur3_32, xxh3_64


def test_the_installed_package_carries_its_stub_and_py_typed() -> None:
    here = Path(distcore.__file__).parent
    for name in ("py.typed", "_core.pyi", "hashing.py", "clocks.py", "exceptions.py", "cli.py"):
        assert (here / name).is_file(), f"{name} is missing from the installed package"
    if os.environ.get("DISTCORE_EXPECT_WHEEL"):
        # `make test` installs the release wheel; an editable install would hide a missing file.
        assert "site-packages" in str(here), f"distcore imported from {here}, not from the wheel"


def test_exceptions_subclass_the_matching_builtins() -> None:
    assert issubclass(exceptions.EmptyRingError, exceptions.DistcoreError)
    assert issubclass(exceptions.EmptyRingError, LookupError)
    assert issubclass(exceptions.NodeNotFoundError, KeyError)
    assert issubclass(exceptions.InvalidWeightError, ValueError)
    assert issubclass(exceptions.ConfigError, ValueError)
    assert issubclass(exceptions.DecodeError, ValueError)
    assert issubclass(exceptions.CounterOverflowError, OverflowError)
    assert issubclass(exceptions.KissOfDeathError, exceptions.TimeSyncError)
    assert issubclass(exceptions.PollTooSoonError, exceptions.TimeSyncError)
    assert issubclass(exceptions.TimeSyncError, exceptions.DistcoreError)
    assert issubclass(exceptions.ClockSkewError, exceptions.DistcoreError)
    for name in exceptions.__all__:
        assert getattr(exceptions, name).__module__ == "distcore.exceptions"
    assert exceptions.EmptyRingError.__module__ == "distcore.exceptions"


@pytest.mark.parametrize(
    ("name", "foobar", "cafe"),
    [
        ("one_at_a_time", 0xF952FDE7, 0xD99C709E),
        ("md5", 0x22F65838, 0xE47F1107),
        ("crc16", 0x9EFFB025, 0xF6269667),
        ("crc32", 0x00001EF6, 0x000018AD),
        ("crc32a", 0x9EF61F95, 0x98AD42B5),
        ("fnv1_64", 0xA4DDA9C2, 0x8A06FEF1),
        ("fnv1a_64", 0xF73967E8, 0xCEF6BB89),
        ("fnv1_32", 0x31F0B262, 0xD682F171),
        ("fnv1a_32", 0xBF9CF968, 0x7572C049),
        ("hsieh", 0x07A5862C, 0xDE3F8855),
        ("murmur", 0xABECFF17, 0xDA11981F),
        ("jenkins", 0x0FDD8B60, 0xCB6225AD),
    ],
)
def test_twemproxy_hashes_match_known_values(name: str, foobar: int, cafe: int) -> None:
    assert name in HASH_FUNCTIONS
    assert hash_key(name, "foobar") == hash_key(name, b"foobar") == foobar
    assert hash_key(name, "café") == cafe


def test_murmur3_and_xxh3_match_the_reference_packages() -> None:
    for i in range(2000):
        key = f"key-{i}-é" * (i % 7)
        for seed in (0, 1, 0xDEADBEEF):
            assert murmur3_32(key, seed) == mmh3.hash(key, seed, signed=False)
            assert xxh3_64(key, seed) == xxhash.xxh3_64_intdigest(key.encode(), seed)


def test_bad_keys_and_configs_raise_specific_errors() -> None:
    ring = KetamaRing(["a:1", "b:1"])
    with pytest.raises(TypeError, match="key must be str or bytes, not int"):
        ring.get_node(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown hash function"):
        hash_key("sha1", "x")
    with pytest.raises(exceptions.InvalidWeightError):
        KetamaRing(["a:1:0"])
    with pytest.raises(exceptions.DuplicateNodeError):
        KetamaRing(["a:1", "a:1:2"])
    with pytest.raises(exceptions.EmptyRingError):
        KetamaRing([]).get_node("k")
