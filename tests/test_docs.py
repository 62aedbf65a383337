"""The examples in the public docstrings run and print what they say."""

from __future__ import annotations

import doctest

import pytest

import distcore.hashing

PUBLIC = [getattr(distcore.hashing, name) for name in distcore.hashing.__all__]


def _examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests: dict[str, doctest.DocTest] = {}
    for obj in PUBLIC:
        if isinstance(obj, tuple):
            continue
        for test in finder.find(obj, getattr(obj, "__name__", repr(obj)), module=False):
            if test.examples:
                tests[test.name] = test
    return [tests[name] for name in sorted(tests)]


EXAMPLES = _examples()


def test_the_public_api_has_examples() -> None:
    documented = {t.name.split(".")[0] for t in EXAMPLES}
    assert {"KetamaRing", "HashRing", "MaglevRing", "PymemcacheRing"} <= documented


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda t: t.name)
def test_docstring_example_runs(example: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    example.globs = {"__name__": "doctest", **vars(distcore.hashing)}
    result = runner.run(example, out=lambda _text: None)
    assert result.failed == 0, f"{example.name}: {result.failed} of {result.attempted} failed"
