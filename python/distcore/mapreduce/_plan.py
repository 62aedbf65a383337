"""What a job is, before it runs: inputs, narrow operations (map, flat_map, filter) and shuffles.

A :class:`Plan` is a list of :class:`Stage` s. Each stage reads its input (the job's inputs for
the first, the previous stage's result for the others), applies its narrow operations record by
record in batches, and shuffles the resulting ``(key, value)`` pairs (or bare keys) into
partitions where a reducer folds each key's values. Narrow operations after the last shuffle are
applied to the result as it is read. Executors run plans; they never see :class:`Dataset` s.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from distcore._core import RecordTypeError, reducer_names

Fn = Callable[..., Any]
OpKind = Literal["map", "flat_map", "filter"]
BUILTIN_REDUCERS: frozenset[str] = frozenset(reducer_names())


@dataclass(frozen=True)
class Op:
    """One narrow operation: ``map`` (one record out per record), ``flat_map`` (any number)
    or ``filter`` (the record if ``fn`` is true for it)."""

    kind: OpKind
    fn: Fn

    def apply(self, records: list[Any]) -> list[Any]:
        """The operation over a batch, iterated in C (``map``/``filter``/``chain``)."""
        if self.kind == "map":
            return list(map(self.fn, records))
        if self.kind == "flat_map":
            return list(itertools.chain.from_iterable(map(self.fn, records)))
        return list(filter(self.fn, records))


def apply_ops(ops: tuple[Op, ...], records: list[Any]) -> list[Any]:
    """Every operation in turn over a batch."""
    for op in ops:
        records = op.apply(records)
    return records


def apply_ops_one(ops: tuple[Op, ...], record: Any) -> list[Any]:
    """Every operation over one record (used to find which record a failing batch failed on)."""
    return apply_ops(ops, [record])


@dataclass(frozen=True)
class Tokenize:
    """The built-in tokenizer: a flat_map from a line of text to ``(word, 1)`` pairs, words as
    ``str.split()`` gives them. Followed by ``count``, on text inputs, it runs in Rust on raw
    bytes (no Python object per word or line)."""

    def __call__(self, line: str) -> Iterator[tuple[str, int]]:
        return ((w, 1) for w in line.split())


tokenize = Tokenize()

_INT = re.compile(r"[+-]?[0-9]+")
# What Rust's f64 parser accepts (the native CSV mapper uses it).
_FLOAT = re.compile(
    r"[+-]?(?:inf|infinity|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)", re.IGNORECASE
)


def csv_value(field: str) -> int | float | str:
    """A CSV field typed as the built-in CSV mapper types it: an ``int`` when it is an optional
    sign and digits that fit 64 bits, else a ``float`` when it is a decimal number (with ``.`` or
    an exponent), ``inf``, ``infinity`` or ``nan``, else the string as written (no trimming)."""
    if _INT.fullmatch(field):
        i = int(field)
        if -(2**63) <= i < 2**63:
            return i
    if _FLOAT.fullmatch(field):
        return float(field)
    return field


@dataclass(frozen=True)
class CsvField:
    """The built-in CSV mapper: ``.map(CsvField(key, value))`` turns each row into the pair
    (its ``key`` column, its ``value`` column or ``None``), columns by header name or index,
    fields typed by :func:`csv_value`. On CSV inputs, followed by a built-in reducer, it runs in
    Rust on the file's bytes (no Python object per row)."""

    key: str | int
    value: str | int | None = None

    def _get(self, row: Any, col: str | int) -> Any:
        if isinstance(row, dict):
            return row[col] if isinstance(col, str) else list(row.values())[col]
        return row[col]

    def __call__(self, row: Any) -> tuple[Any, Any]:
        value = None if self.value is None else csv_value(self._get(row, self.value))
        return csv_value(self._get(row, self.key)), value


def _json_value(v: Any) -> Any:
    if isinstance(v, dict):
        raise RecordTypeError(
            "the built-in JSON mapper takes strings, numbers, bools, null and arrays, not objects"
        )
    if isinstance(v, int) and not isinstance(v, bool) and not -(2**63) <= v < 2**63:
        if v < 2**64:
            raise RecordTypeError(f"the integer {v} does not fit 64 bits")
        return float(v)  # as the native mapper's JSON parser reads it
    if isinstance(v, list):
        return [_json_value(x) for x in v]
    return v


@dataclass(frozen=True)
class JsonField:
    """The built-in JSON-lines mapper: ``.map(JsonField("user.id", "amount"))`` turns each
    record into the pair (the value at the dotted path ``key``, the value at ``value`` or
    ``None``); a missing path gives ``None``. On JSON-lines inputs, followed by a built-in
    reducer, it runs in Rust on the file's bytes (no Python object per line)."""

    key: str
    value: str | None = None

    @staticmethod
    def _at(doc: Any, path: str) -> Any:
        for name in path.split("."):
            if not isinstance(doc, dict):
                return None
            doc = doc.get(name)
        return doc

    def __call__(self, doc: Any) -> tuple[Any, Any]:
        value = None if self.value is None else _json_value(self._at(doc, self.value))
        return _json_value(self._at(doc, self.key)), value


@dataclass(frozen=True)
class Shuffle:
    """A shuffle: pairs (or bare keys, ``keys_only``) to partitions, each key's values folded by
    ``reducer`` (a built-in's name, or ``reducer(key, values) -> value``)."""

    reducer: str | Fn
    combiner: Fn | None = None
    partitioner: Fn | None = None
    num_partitions: int | None = None
    keys_only: bool = False
    #: no shuffle asked for: records are keyed by (task, position) to keep input order
    map_only: bool = False

    @property
    def writer_reducer(self) -> str:
        """The reducer of the map side's table: the built-in, or ``collect`` for a function."""
        return self.reducer if isinstance(self.reducer, str) else "collect"

    @property
    def python_reducer(self) -> Fn | None:
        return None if isinstance(self.reducer, str) else self.reducer


@dataclass(frozen=True)
class Input:
    """One of a job's inputs and the narrow operations its records go through."""

    source: Any
    format: str | None = None
    options: tuple[tuple[str, Any], ...] = ()
    ops: tuple[Op, ...] = ()


@dataclass(frozen=True)
class Stage:
    """Narrow operations, then a shuffle."""

    ops: tuple[Op, ...]
    shuffle: Shuffle


@dataclass(frozen=True)
class Plan:
    """A whole job: inputs, stages, and the operations applied to the last stage's result."""

    inputs: tuple[Input, ...]
    stages: tuple[Stage, ...] = ()
    tail: tuple[Op, ...] = ()
    sort_keys: bool = True

    def uses_python(self, stage: int) -> bool:
        """Whether stage ``stage``'s map side runs user functions (so it needs processes)."""
        ops = self.stages[stage].ops
        if stage == 0:
            ops = ops + tuple(op for i in self.inputs for op in i.ops)
        sh = self.stages[stage].shuffle
        return bool(
            any(not isinstance(op.fn, Tokenize | CsvField | JsonField) for op in ops)
            or sh.combiner is not None
            or sh.partitioner is not None
        )


def _check_fn(fn: Any, what: str) -> None:
    if not callable(fn):
        raise TypeError(f"{what} must be callable, not {type(fn).__name__}")


def _check_reducer(reducer: Any) -> None:
    if isinstance(reducer, str):
        if reducer not in BUILTIN_REDUCERS:
            raise ValueError(
                f"unknown reducer {reducer!r}; one of {', '.join(sorted(BUILTIN_REDUCERS))}"
            )
    else:
        _check_fn(reducer, "reducer")


# Module-level helpers (not lambdas) so plans pickle without cloudpickle.
def _explode(kv: tuple[Any, list[Any]]) -> Iterator[tuple[Any, Any]]:
    k, vs = kv
    return ((k, v) for v in vs)


def _tag_left(kv: tuple[Any, Any]) -> tuple[Any, tuple[int, Any]]:
    return kv[0], (0, kv[1])


def _tag_right(kv: tuple[Any, Any]) -> tuple[Any, tuple[int, Any]]:
    return kv[0], (1, kv[1])


def _join_inner(kv: tuple[Any, list[tuple[int, Any]]]) -> list[tuple[Any, tuple[Any, Any]]]:
    k, tagged = kv
    left = [v for t, v in tagged if t == 0]
    right = [v for t, v in tagged if t == 1]
    return [(k, (a, b)) for a in left for b in right]


def _join_left(kv: tuple[Any, list[tuple[int, Any]]]) -> list[tuple[Any, tuple[Any, Any]]]:
    k, tagged = kv
    left = [v for t, v in tagged if t == 0]
    right = [v for t, v in tagged if t == 1] or [None]
    return [(k, (a, b)) for a in left for b in right]


@dataclass(frozen=True)
class _Fold:
    zero: Any
    op: Fn

    def __call__(self, key: Any, values: list[Any]) -> Any:
        acc = self.zero
        for v in values:
            acc = self.op(acc, v)
        return acc


@dataclass(frozen=True)
class _Reduce:
    op: Fn

    def __call__(self, key: Any, values: list[Any]) -> Any:
        it = iter(values)
        acc = next(it)
        for v in it:
            acc = self.op(acc, v)
        return acc


_first = operator.itemgetter(0)
_second = operator.itemgetter(1)


def with_a_stage(plan: Plan) -> Plan:
    """A plan with no shuffle (map, flat_map, filter only), given the one stage that keeps its
    records in input order: each keyed by (map task, position), folded by ``first``, the keys
    dropped when read."""
    if plan.stages:
        return plan
    return replace(
        plan,
        stages=(Stage((), Shuffle("first", map_only=True)),),
        tail=(Op("map", _second), *plan.tail),
        sort_keys=True,
    )


@dataclass(frozen=True)
class Dataset:
    """A lazy collection of records: narrow operations and shuffles are recorded, and run when
    the dataset is run (:meth:`run`, :meth:`to_dict`, :meth:`to_list`, ...).

    >>> from distcore.mapreduce import read
    >>> read(["a b", "b"], format="items").flat_map(str.split).frequencies().to_dict()
    {'a': 1, 'b': 2}
    """

    plan: Plan = field(repr=False)

    # --- narrow ---------------------------------------------------------------------------
    def _narrow(self, kind: OpKind, fn: Fn) -> Dataset:
        _check_fn(fn, kind)
        op = Op(kind, fn)
        p = self.plan
        if not p.stages:
            inputs = tuple(replace(i, ops=(*i.ops, op)) for i in p.inputs)
            return Dataset(replace(p, inputs=inputs))
        return Dataset(replace(p, tail=(*p.tail, op)))

    def map(self, fn: Fn) -> Dataset:
        """Each record ``r`` becomes ``fn(r)``."""
        return self._narrow("map", fn)

    def flat_map(self, fn: Fn) -> Dataset:
        """Each record ``r`` becomes the records of the iterable ``fn(r)``."""
        return self._narrow("flat_map", fn)

    def filter(self, fn: Fn) -> Dataset:
        """Keeps the records ``r`` for which ``fn(r)`` is true."""
        return self._narrow("filter", fn)

    # --- shuffles ------------------------------------------------------------------------
    def shuffle(
        self,
        reducer: str | Fn,
        *,
        combiner: Fn | None = None,
        partitioner: Fn | None = None,
        num_partitions: int | None = None,
        keys_only: bool = False,
    ) -> Dataset:
        """Groups ``(key, value)`` records by key and folds each key's values with ``reducer``:
        a built-in (``count``, ``sum``, ``min``, ``max``, ``mean``, ``first``, ``last``,
        ``collect``, ``approx_distinct``; run in Rust and combined on the map side) or a
        function ``reducer(key, values) -> value``. ``combiner(key, values) -> value`` folds each
        map task's values first (it must agree with the reducer). ``partitioner(key, n) -> int``
        replaces the seeded hash. The result's records are ``(key, value)``."""
        _check_reducer(reducer)
        if combiner is not None:
            _check_fn(combiner, "combiner")
            if isinstance(reducer, str):
                raise ValueError(
                    f"the built-in reducer {reducer!r} combines on the map side by itself; "
                    "give a combiner only with a reducer function"
                )
        if partitioner is not None:
            _check_fn(partitioner, "partitioner")
        if num_partitions is not None and num_partitions < 1:
            raise ValueError(f"num_partitions must be >= 1, got {num_partitions}")
        sh = Shuffle(reducer, combiner, partitioner, num_partitions, keys_only)
        p = self.plan
        stage = Stage(p.tail, sh)
        return Dataset(replace(p, stages=(*p.stages, stage), tail=()))

    def reduce_by_key(self, fn: str | Fn, **kw: Any) -> Dataset:
        """Folds each key's values pairwise with ``fn(a, b)`` (associative; also the combiner),
        or with a built-in reducer named ``fn``."""
        if isinstance(fn, str):
            return self.shuffle(fn, **kw)
        _check_fn(fn, "reduce_by_key's function")
        r = _Reduce(fn)
        return self.shuffle(r, combiner=r, **kw)

    def fold_by_key(self, zero: Any, fn: Fn, **kw: Any) -> Dataset:
        """Folds each key's values into ``zero`` with ``fn(acc, value)``, in input order."""
        _check_fn(fn, "fold_by_key's function")
        return self.shuffle(_Fold(zero, fn), **kw)

    def group_by_key(self, **kw: Any) -> Dataset:
        """``(key, [values...])`` per key, values in input order."""
        return self.shuffle("collect", **kw)

    def count_by_key(self, **kw: Any) -> Dataset:
        """``(key, number of pairs with that key)``."""
        return self.shuffle("count", **kw)

    def frequencies(self, **kw: Any) -> Dataset:
        """``(record, how many times it occurs)``: records are keys (as dask.bag's)."""
        return self.shuffle("count", keys_only=True, **kw)

    def distinct(self, **kw: Any) -> Dataset:
        """Each distinct record once (in key order)."""
        return self.shuffle("count", keys_only=True, **kw).map(_first)

    def sort_by_key(self, **kw: Any) -> Dataset:
        """The ``(key, value)`` records in key order; equal keys keep their input order."""
        return self.shuffle("collect", **kw).flat_map(_explode)

    def join(self, other: Dataset, how: Literal["inner", "left"] = "inner", **kw: Any) -> Dataset:
        """``(key, (left value, right value))`` for each pair of values with one key (``left``:
        also the left values with no right one, paired with ``None``)."""
        if how not in ("inner", "left"):
            raise ValueError(f"how must be 'inner' or 'left', got {how!r}")
        if self.plan.stages or other.plan.stages:
            raise ValueError(
                "join the inputs before their shuffles, or run each side first and join "
                "their results (read(result))"
            )
        left = self.map(_tag_left).plan.inputs
        right = other.map(_tag_right).plan.inputs
        both = Dataset(Plan(left + right, sort_keys=self.plan.sort_keys))
        return both.shuffle("collect", **kw).flat_map(_join_inner if how == "inner" else _join_left)

    def sorted_keys(self, sort_keys: bool) -> Dataset:
        """The same dataset, its result read in key order (``True``, the default) or in
        partition order (``False``: cheaper, no merge across partitions)."""
        return Dataset(replace(self.plan, sort_keys=sort_keys))

    # --- running --------------------------------------------------------------------------
    def run(self, **kw: Any) -> Any:
        """Runs the plan; returns a :class:`~distcore.mapreduce.Result`. Keywords: see
        :func:`distcore.mapreduce.run`."""
        from distcore.mapreduce._run import run

        return run(self.plan, **kw)

    def to_dict(self, **kw: Any) -> dict[Any, Any]:
        """Runs and returns ``{key: value}`` (records must be pairs)."""
        with self.run(**kw) as r:
            return r.to_dict()  # type: ignore[no-any-return]

    def to_list(self, **kw: Any) -> list[Any]:
        """Runs and returns every record."""
        with self.run(**kw) as r:
            return r.to_list()  # type: ignore[no-any-return]

    def top_k(self, k: int, *, key: Fn | None = None, **kw: Any) -> list[Any]:
        """Runs and returns the ``k`` largest records (by ``key(record)``), largest first; the
        result is streamed, never held whole."""
        import heapq

        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        with self.run(**kw) as r:
            return heapq.nlargest(k, iter(r), key=key)


def read(source: Any, *, format: str | None = None, **options: Any) -> Dataset:
    """A dataset of the records of ``source``: paths, globs or directories of text lines, CSV,
    JSON lines, Parquet or Arrow files (by extension, or ``format``), a Python iterable, a numpy
    array, a pyarrow table, or the :class:`~distcore.mapreduce.Result` of an earlier job."""
    return Dataset(Plan((Input(source, format, tuple(sorted(options.items()))),)))


def union(*datasets: Dataset) -> Dataset:
    """The records of several datasets (none shuffled yet) as one."""
    if any(d.plan.stages for d in datasets):
        raise ValueError("union takes datasets that are not shuffled yet")
    inputs: tuple[Input, ...] = tuple(i for d in datasets for i in d.plan.inputs)
    return Dataset(Plan(inputs))


@dataclass(frozen=True)
class Job:
    """A MapReduce job in mrjob's shape: ``mapper(record)`` yields ``(key, value)`` pairs (or
    ``None``: the records already are pairs), ``reducer`` folds each key's values (a built-in's
    name, or ``reducer(key, values) -> value``), ``combiner(key, values) -> value`` folds each map
    task's values first. ``job.then(other)`` feeds this job's ``(key, value)`` results to
    ``other``'s mapper.

    >>> from distcore.mapreduce import Job, tokenize
    >>> Job(tokenize, "count").run(["a b", "b"], format="items").to_dict()
    {'a': 1, 'b': 2}
    """

    mapper: Fn | None
    reducer: str | Fn
    combiner: Fn | None = None
    partitioner: Fn | None = None
    num_partitions: int | None = None
    sort_keys: bool = True
    steps: tuple[Job, ...] = ()

    def then(self, other: Job) -> Job:
        """A job that runs this one, then ``other`` on its result."""
        return replace(self, steps=(*self.steps, other, *other.steps))

    def _add_to(self, ds: Dataset) -> Dataset:
        if self.mapper is not None:
            ds = ds.flat_map(self.mapper)
        return ds.shuffle(
            self.reducer,
            combiner=self.combiner,
            partitioner=self.partitioner,
            num_partitions=self.num_partitions,
        )

    def dataset(self, source: Any, *, format: str | None = None, **options: Any) -> Dataset:
        """The job over ``source`` (see :func:`read`), as a :class:`Dataset`."""
        ds = self._add_to(read(source, format=format, **options))
        for step in self.steps:
            ds = replace(step, steps=())._add_to(ds)
        return ds.sorted_keys(self.sort_keys)

    def run(self, source: Any, *, format: str | None = None, **kw: Any) -> Any:
        """Runs the job over ``source``; keywords as :func:`distcore.mapreduce.run`."""
        return self.dataset(source, format=format).run(**kw)
