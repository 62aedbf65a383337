"""The local executor: a job's tasks on this machine, with runs on local disk.

Stages whose map side is all built-in (the Rust tokenizer, the built-in reducers) run their
tasks on threads: the Rust core releases the GIL, so they use every core. Stages with user
functions run them on worker processes (``forkserver``: no thread of this process is forked).
A worker process that dies has its tasks run again, up to ``retries`` times; the tasks write
their runs under temporary names and rename them when complete, so a re-run replaces, never
mixes.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.context import ForkServerContext, ForkServerProcess
from typing import Any

from distcore._core import WorkerLostError
from distcore.mapreduce._plan import Plan
from distcore.mapreduce._progress import Progress
from distcore.mapreduce._result import Result, RunRange, StageStats, Stats
from distcore.mapreduce._tasks import (
    ResultSplit,
    TaskInput,
    dump_plan,
    input_splits,
    map_task,
    reduce_task,
)

Task = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _WorkerProcess(ForkServerProcess):
    """A forkserver process that does not re-run the caller's main module.

    multiprocessing makes a new process import ``__main__`` again so that functions defined
    there resolve, which re-runs a script without an ``if __name__ == "__main__"`` guard. Job
    functions travel by value (cloudpickle), so the workers need no main module: it is hidden
    while the process is prepared.
    """

    def start(self) -> None:
        main = sys.modules["__main__"]
        saved: dict[str, Any] = {
            k: main.__dict__.pop(k) for k in ("__file__", "__spec__") if k in main.__dict__
        }
        main.__spec__ = None
        try:
            super().start()
        finally:
            main.__dict__.update(saved)
            if "__spec__" not in saved:
                del main.__spec__


class _WorkerContext(ForkServerContext):
    Process = _WorkerProcess  # type: ignore[assignment]


_CONTEXT = _WorkerContext()
# The fork server imports the task code once; every worker forked from it starts with it loaded.
_CONTEXT.set_forkserver_preload(["distcore.mapreduce._tasks"])


class _Workers:
    """A process pool that is replaced when one of its processes dies. One per worker count is
    kept between jobs (:func:`_workers`), so a job does not pay for starting processes."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self._workers, mp_context=_CONTEXT)
        return self._pool

    def restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _run_tasks(
    tasks: Iterable[Task],
    *,
    threads: ThreadPoolExecutor | None,
    processes: _Workers | None,
    in_flight: int,
    retries: int,
    on_done: Callable[[int, Any], None],
) -> int:
    """Runs ``tasks`` (numbered in order) with at most ``in_flight`` at once, calls
    ``on_done(number, result)`` as each completes, and returns how many were run again after a
    worker process died. The first task error cancels the rest and is raised."""
    pending: dict[Future[Any], tuple[int, Task, int]] = {}
    source: Iterator[tuple[int, Task]] = enumerate(tasks)
    retried = 0

    def submit(n: int, task: Task, attempt: int) -> None:
        fn, args, kw = task
        executor: Executor
        if processes is not None:
            executor = processes.pool()
        else:
            assert threads is not None
            executor = threads
        pending[executor.submit(fn, *args, **kw)] = (n, task, attempt)

    try:
        for n, task in source:
            submit(n, task, 0)
            if len(pending) >= in_flight:
                break
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            lost: list[tuple[int, Task, int]] = []
            for f in done:
                n, task, attempt = pending.pop(f)
                try:
                    result = f.result()
                except BrokenProcessPool:
                    lost.append((n, task, attempt))
                    continue
                on_done(n, result)
            if lost:
                # The pool is broken: every task still in it is lost with it.
                lost.extend(pending.values())
                pending.clear()
                assert processes is not None
                processes.restart()
                for n, task, attempt in sorted(lost, key=lambda t: t[0]):
                    if attempt >= retries:
                        raise WorkerLostError(
                            f"a worker process died running task {n} "
                            f"({attempt + 1} attempts; retries={retries})"
                        )
                    retried += 1
                    submit(n, task, attempt + 1)
            for n, task in source:
                submit(n, task, 0)
                if len(pending) >= in_flight:
                    break
    except BaseException:
        for f in pending:
            f.cancel()
        if processes is not None:
            processes.restart()
        raise
    return retried


_POOLS: dict[int, _Workers] = {}


def _workers(n: int) -> _Workers:
    """The kept pool of ``n`` worker processes (created on first use)."""
    if n not in _POOLS:
        _POOLS[n] = _Workers(n)
    return _POOLS[n]


@atexit.register
def close_workers() -> None:
    """Stops the worker processes kept between jobs (they also stop when Python exits)."""
    for pool in _POOLS.values():
        pool.close()
    _POOLS.clear()


def default_memory_limit() -> int:
    """A quarter of this machine's physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError):
        return 2 << 30


@dataclass
class _Executors:
    """What a local job's phases run on: threads for built-in work, the kept worker processes
    for user functions, and the progress bars."""

    threads: ThreadPoolExecutor
    processes: _Workers
    workers: int
    retries: int
    bar: Progress

    def phase(
        self,
        name: str,
        total: int | None,
        tasks: Iterable[Task],
        *,
        python: bool,
        on_done: Callable[[int, Any], int],
    ) -> tuple[int, float]:
        """Runs one phase's tasks; ``on_done(n, result)`` returns the records the task made, for
        the bar. Returns the tasks run again after a worker died, and the phase's seconds."""
        started = time.perf_counter()
        self.bar.phase(name, total)

        def done(n: int, result: Any) -> None:
            self.bar.advance(name, on_done(n, result))

        retried = _run_tasks(
            tasks,
            threads=None if python else self.threads,
            processes=self.processes if python else None,
            in_flight=2 * self.workers,
            retries=self.retries,
            on_done=done,
        )
        return retried, time.perf_counter() - started


def run_local(
    plan: Plan,
    *,
    workers: int | None = None,
    memory_limit: int | None = None,
    num_partitions: int | None = None,
    seed: int = 0,
    retries: int = 3,
    progress: bool | None = None,
    tmp_dir: str | None = None,
) -> Result:
    """Runs ``plan`` on this machine; see :func:`distcore.mapreduce.run`."""
    workers = workers or os.cpu_count() or 1
    limit = memory_limit if memory_limit is not None else default_memory_limit()
    per_task = max(limit // workers, 1 << 20)
    blob = dump_plan(plan)
    workdir = tempfile.mkdtemp(prefix="distcore-mr-", dir=tmp_dir)
    started = time.perf_counter()
    stats = Stats("local", 0)
    try:
        with ThreadPoolExecutor(workers) as threads, Progress(progress) as bar:
            run = _Executors(threads, _workers(workers), workers, retries, bar)
            parts: list[list[RunRange]] = []
            for s, stage in enumerate(plan.stages):
                stats.partitions = stage.shuffle.num_partitions or num_partitions or workers
                inputs: Iterable[TaskInput] = (
                    input_splits(plan, workers)
                    if s == 0
                    else (
                        TaskInput(-1, ResultSplit(tuple(runs), f"stage {s - 1} partition {p}"))
                        for p, runs in enumerate(parts)
                    )
                )
                st = StageStats()
                stats.stages.append(st)
                sdir = os.path.join(workdir, f"stage-{s}")
                parts = _run_stage(
                    plan, s, blob, inputs, stats.partitions, run, st, sdir, seed, per_task
                )
        stats.seconds = time.perf_counter() - started
        return Result(parts, tail=plan.tail, sort_keys=plan.sort_keys, stats=stats, workdir=workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _run_stage(
    plan: Plan,
    s: int,
    blob: bytes,
    inputs: Iterable[TaskInput],
    partitions: int,
    run: _Executors,
    st: StageStats,
    sdir: str,
    seed: int,
    per_task: int,
) -> list[list[RunRange]]:
    """One stage: its map tasks write sorted runs under ``sdir``, its reduce tasks merge each
    partition's ranges of them into a result run there. Returns the partitions' result runs."""
    spill_dir = os.path.join(sdir, "spill")
    os.makedirs(spill_dir)
    in_stage = functools.partial(os.path.join, sdir)
    maps: dict[int, list[int]] = {}  # map task -> its run's partition offsets

    def map_tasks() -> Iterator[Task]:
        for n, inp in enumerate(inputs):
            kw = {
                "seed": seed,
                "memory_limit": per_task,
                "spill_dir": spill_dir,
                "out_path": in_stage(f"map-{n:05d}.run"),
            }
            yield map_task, (blob, s, inp, partitions), kw

    def map_done(n: int, result: Any) -> int:
        _, maps[n], task_stats = result
        st.add_map(task_stats)
        return int(task_stats["input_records"])

    st.retried_tasks, st.map_seconds = run.phase(
        f"stage {s + 1} map", None, map_tasks(), python=plan.uses_python(s), on_done=map_done
    )

    lengths: dict[int, int] = {}  # partition -> its result run's length

    def reduce_tasks() -> Iterator[Task]:
        for p in range(partitions):
            runs = [
                (in_stage(f"map-{n:05d}.run"), maps[n][p], maps[n][p + 1])
                for n in sorted(maps)
                if maps[n][p + 1] > maps[n][p]
            ]
            yield reduce_task, (blob, s, runs), {"out_path": in_stage(f"part-{p:05d}.run")}

    def reduce_done(p: int, result: Any) -> int:
        _, lengths[p], records = result
        st.reduce_tasks += 1
        st.output_records += records
        return int(records)

    python_reduce = plan.stages[s].shuffle.python_reducer is not None
    retried, st.reduce_seconds = run.phase(
        f"stage {s + 1} reduce",
        partitions,
        reduce_tasks(),
        python=python_reduce,
        on_done=reduce_done,
    )
    st.retried_tasks += retried
    for n in maps:
        os.unlink(in_stage(f"map-{n:05d}.run"))
    return [[(in_stage(f"part-{p:05d}.run"), 0, lengths[p])] for p in range(partitions)]
