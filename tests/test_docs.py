"""The examples in the public docstrings run and print what they say."""

from __future__ import annotations

import doctest
import time
from types import ModuleType

import pytest

import distcore.clocks
import distcore.gossip
import distcore.gossip.wire
import distcore.hashing
import distcore.mapreduce
import distcore.timesync

MODULES: list[ModuleType] = [
    distcore.hashing,
    distcore.clocks,
    distcore.timesync,
    distcore.gossip,
    distcore.gossip.wire,
    distcore.mapreduce,
]


def _examples() -> list[tuple[ModuleType, doctest.DocTest]]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests: dict[str, tuple[ModuleType, doctest.DocTest]] = {}
    for module in MODULES:
        for test in finder.find(module, module.__name__, module=False):
            if test.examples and test.name == module.__name__:
                tests[test.name] = (module, test)
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, tuple) or not callable(obj):
                continue
            for test in finder.find(obj, f"{module.__name__}.{name}", module=False):
                if test.examples:
                    tests[test.name] = (module, test)
    return [tests[name] for name in sorted(tests)]


EXAMPLES = _examples()


def test_the_public_api_has_examples() -> None:
    documented = {t.name.split(".")[2] for _, t in EXAMPLES if t.name.count(".") >= 2}
    assert {"KetamaRing", "HashRing", "MaglevRing", "PymemcacheRing"} <= documented
    assert {"VectorClock", "HLC", "HLCTimestamp", "LamportClock", "CausalDelivery"} <= documented
    assert {"marzullo", "combine", "SNTPClient", "NTPPacket", "BerkeleyMaster"} <= documented


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e[1].name)
def test_docstring_example_runs(example: tuple[ModuleType, doctest.DocTest]) -> None:
    module, test = example
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    test.globs = {"__name__": "doctest", "time": time, **vars(module)}
    result = runner.run(test, out=lambda _text: None)
    assert result.failed == 0, f"{test.name}: {result.failed} of {result.attempted} failed"
