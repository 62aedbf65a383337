"""Shared inputs for the benchmarks, and the machine facts `report.py` prints.

Run with ``make bench`` (a release build first), or ``distcore bench``, which runs per capability
``pytest benches/test_bench_NAME.py --benchmark-only --benchmark-json=bench-results/NAME.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _machine import cpu_model, loadavg, nproc

_LOAD_AT_START: list[float | None] = []


def pytest_configure(config: pytest.Config) -> None:
    _LOAD_AT_START.append(loadavg())
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
    machine_info["loadavg_start"] = _LOAD_AT_START[0] if _LOAD_AT_START else None
    machine_info["loadavg_end"] = loadavg()


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
