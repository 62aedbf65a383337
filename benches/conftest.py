"""Shared inputs for the benchmarks, and the machine facts `report.py` prints.

Run with ``make bench`` (a release build first), or:
``pytest benches --benchmark-only --benchmark-json=bench-results/hashing.json``.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what the platform module knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nproc() -> int:
    """CPUs this process may run on (what `nproc` prints)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def pytest_configure(config: pytest.Config) -> None:
    # pytest-benchmark writes --benchmark-json at the end and does not create its folder.
    path = getattr(config.option, "benchmark_json", None)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def pytest_benchmark_update_machine_info(
    config: pytest.Config, machine_info: dict[str, Any]
) -> None:
    import distcore

    machine_info["nproc"] = nproc()
    machine_info["cpu_model"] = cpu_model()
    machine_info["distcore_version"] = distcore.__version__


def make_keys(n: int, seed: int) -> list[str]:
    """Keys like ``"key:3f09a1c4b2e7"`` (16 bytes), the reference's uhashring benchmark keys."""
    rng = np.random.default_rng(seed)
    return [f"key:{x:012x}" for x in rng.integers(0, 1 << 48, size=n, dtype=np.uint64).tolist()]


@pytest.fixture(scope="session")
def keys_1k() -> list[str]:
    return make_keys(1000, seed=1)


@pytest.fixture(scope="session")
def keys_1k_bytes(keys_1k: list[str]) -> list[bytes]:
    return [k.encode() for k in keys_1k]


@pytest.fixture(scope="session")
def keys_1m() -> list[str]:
    return make_keys(1_000_000, seed=2)


@pytest.fixture(scope="session")
def hashes_1m() -> np.ndarray:
    """1M pre-hashed keys: uniform uint64, as `xxh3_64(key)` gives."""
    return np.random.default_rng(3).integers(0, 2**64 - 1, size=1_000_000, dtype=np.uint64)
