"""The Dask executor: a job's tasks on a Dask distributed cluster, with runs in workers' memory.

The whole job is submitted at once as a graph of futures and the client only waits: per stage,
one map task per input split (or per partition of the previous stage's result), which ends with
its run cut into one ``bytes`` slice per partition; one tiny task per (map task, partition) that
picks its slice, so that a reducer fetches only its own partition's bytes; and one reduce task
per partition, whose result run (``bytes``) is the input of one map task of the next stage.
Only the last stage's result runs, and each task's small stats, come back to the client.

What travels between workers is always ``bytes`` (runs in distcore's record encoding), never
Python containers of records: Dask moves ``bytes`` as one frame, while a dict of records is
pickled object by object under the GIL (docs/mapreduce.md measured 80 s against 11 s).

Inputs are split on the client. Splits of files carry their paths, so input files must be
readable by every worker at the same path (true on a ``LocalCluster`` and with a shared
filesystem); in-memory inputs travel inside their splits, in the task graph.

A task whose worker dies, or whose result is lost with its worker, is run again by the
scheduler, up to ``distributed.scheduler.allowed-failures`` times per task (Dask's setting,
3 by default); past that the job raises :class:`~distcore.exceptions.WorkerLostError`.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import uuid
from typing import TYPE_CHECKING, Any

from distcore._core import SchedulerError, WorkerLostError
from distcore.mapreduce._plan import Plan
from distcore.mapreduce._progress import Progress
from distcore.mapreduce._result import Result, StageStats, Stats
from distcore.mapreduce._tasks import (
    ResultSplit,
    TaskInput,
    dump_plan,
    input_splits,
    map_task,
    reduce_task,
)

if TYPE_CHECKING:
    from distributed import Client, Future

#: Seconds to wait for a scheduler given by address.
CONNECT_TIMEOUT = 10
#: Per-task memory budget of the map side when the workers have no memory limit.
DEFAULT_TASK_MEMORY = 1 << 30


# --- the functions workers run (module level: they travel by reference) ---------------------


def _spill_root() -> str | None:
    """The worker's local directory (Dask's own scratch space), else the system's temp dir."""
    try:
        from distributed import get_worker

        return str(get_worker().local_directory)
    except (ImportError, ValueError, AttributeError):
        return None


def _map(
    blob: bytes,
    stage: int,
    inp: TaskInput | None,
    partitions: int,
    prev: tuple[bytes, int, int] | None,
    name: str,
    seed: int,
    memory_limit: int,
) -> tuple[list[bytes], dict[str, int]]:
    """One map task on a worker: :func:`map_task` on ``inp`` (or, for a later stage, on the
    previous stage's result run ``prev``, called ``name`` in error messages), spilling to the
    worker's local directory; returns the run cut into its partitions' slices, and the stats."""
    if prev is not None:
        inp = TaskInput(-1, ResultSplit(((prev[0], 0, prev[1]),), name))
    assert inp is not None
    spill_dir = tempfile.mkdtemp(prefix="distcore-spill-", dir=_spill_root())
    try:
        data, offsets, stats = map_task(
            blob, stage, inp, partitions, seed=seed, memory_limit=memory_limit, spill_dir=spill_dir
        )
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)
    assert data is not None
    return [data[offsets[p] : offsets[p + 1]] for p in range(partitions)], stats


def _slice(out: tuple[list[bytes], dict[str, int]], partition: int) -> bytes:
    """One partition's slice of a map task's run."""
    return out[0][partition]


def _map_stats(out: tuple[list[bytes], dict[str, int]]) -> dict[str, int]:
    """A map task's stats."""
    return out[1]


def _reduce(blob: bytes, stage: int, slices: list[bytes]) -> tuple[bytes, int, int]:
    """One reduce task on a worker: :func:`reduce_task` over one partition's slices of every map
    task's run, in map-task order (empty ones left out)."""
    runs = [(b, 0, len(b)) for b in slices if b]
    data, length, records = reduce_task(blob, stage, runs)
    assert data is not None
    return data, length, records


def _reduce_counts(out: tuple[bytes, int, int]) -> tuple[int, int]:
    """A reduce task's result length and records, without its bytes."""
    return out[1], out[2]


# --- the client side ---------------------------------------------------------------------


def _connect(address: str) -> Client:
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise SchedulerError(
            f"cannot reach the dask scheduler at {address}: {type(e).__name__}: {e}"
        ) from e


def _cluster_shape(client: Client, memory_limit: int | None) -> tuple[int, int]:
    """The cluster's worker threads (at least 1) and each map task's memory budget."""
    nthreads: dict[str, int] = client.nthreads()
    threads = max(sum(nthreads.values()), 1)
    if memory_limit is not None:
        # As locally, ``memory_limit`` is the budget of all the tasks running at once.
        return threads, max(memory_limit // threads, 1 << 20)
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # distributed < 2025: no n_workers, and every worker is listed
        workers = client.scheduler_info()["workers"]
    per_thread = [
        int(w["memory_limit"]) // max(int(w.get("nthreads", 1)), 1)
        for w in workers.values()
        if w.get("memory_limit")
    ]
    return threads, min(per_thread) // 4 if per_thread else DEFAULT_TASK_MEMORY


class _Attempts:
    """Counts how many times the scheduler started each task of a job (a scheduler plugin), so
    that tasks run again after their worker died show in ``retried_tasks``. Best effort: where
    the scheduler refuses plugins (``distributed.scheduler.pickle`` off), nothing is counted."""

    def __init__(self, client: Client, prefix: str) -> None:
        self._client = client
        self._name = f"{prefix}attempts"
        self.registered = False
        from distributed.diagnostics.plugin import SchedulerPlugin

        # Defined here so that it travels by value (cloudpickle): the scheduler needs only
        # distributed, not distcore.
        class DistcoreAttempts(SchedulerPlugin):  # type: ignore[misc]
            def __init__(self, prefix: str) -> None:
                self.prefix = prefix
                self.starts: dict[str, int] = {}

            def transition(self, key: Any, start: str, finish: str, *a: Any, **kw: Any) -> None:
                if finish == "processing" and isinstance(key, str) and key.startswith(prefix):
                    self.starts[key] = self.starts.get(key, 0) + 1

        # A count is not worth failing the job for.
        with contextlib.suppress(Exception):
            client.register_plugin(DistcoreAttempts(prefix), name=self._name)
            self.registered = True

    def retried(self) -> dict[str, int]:
        """``{key: runs beyond the first}`` of the tasks started more than once."""
        if not self.registered:
            return {}
        name = self._name

        def read(dask_scheduler: Any) -> dict[str, int]:
            plugin = dask_scheduler.plugins.get(name)
            starts = getattr(plugin, "starts", {})
            return {k: n - 1 for k, n in starts.items() if n > 1}

        try:
            return dict(self._client.run_on_scheduler(read))
        except Exception:
            return {}

    def close(self) -> None:
        if self.registered:
            with contextlib.suppress(Exception):
                self._client.unregister_scheduler_plugin(self._name)
            self.registered = False


def run_dask(
    plan: Plan,
    *,
    client: Any = None,
    scheduler: str | None = None,
    num_partitions: int | None = None,
    seed: int = 0,
    memory_limit: int | None = None,
    retries: int = 3,
    progress: bool | None = None,
) -> Result:
    """Runs ``plan`` on a Dask distributed cluster; see :func:`distcore.mapreduce.run`.

    Parameters
    ----------
    plan
        The job.
    client
        A ``distributed.Client`` to run on (left open).
    scheduler
        Else the address of a scheduler (``"tcp://host:port"``) to connect to for this job.
    num_partitions
        Reduce partitions of stages that do not set their own (default: the cluster's worker
        threads).
    seed
        Seed of the partitioning hash.
    memory_limit
        Bytes the map side's tables of all running tasks may hold (divided among the cluster's
        threads); past it a task spills sorted runs to its worker's local directory. Default: a
        quarter of the smallest worker memory limit per thread, or 1 GiB per task.
    retries
        Not used by this executor: Dask's scheduler itself runs again the tasks lost with a
        worker, up to its ``distributed.scheduler.allowed-failures`` per task (Dask's own
        ``retries`` would re-run tasks that raised, and a job's errors are deterministic).
    progress
        A progress bar per stage and phase on stderr (default: when stderr is a terminal).

    Returns
    -------
    Result
        The last stage's result runs, in the client's memory.

    Raises
    ------
    ValueError
        Neither ``client`` nor ``scheduler``.
    SchedulerError
        The scheduler at ``scheduler`` cannot be reached within 10 s.
    TaskError, RecordTypeError, DecodeError, OSError
        As raised by a task on a worker (same type and message); the job's other tasks are
        cancelled.
    WorkerLostError
        A task's workers died more often than the scheduler allows.
    UnpicklableError
        A job function that cannot be sent to the workers.
    """
    del retries  # see the docstring
    if client is None and scheduler is None:
        raise ValueError("the dask executor needs a client or a scheduler address")
    try:
        import distributed  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "the dask executor needs dask.distributed: pip install 'dask[distributed]'"
        ) from e
    blob = dump_plan(plan)
    own = client is None
    if client is None:
        assert scheduler is not None
        client = _connect(scheduler)
    try:
        return _DaskJob(plan, blob, client, num_partitions, seed, memory_limit, progress).run()
    finally:
        if own:
            client.close()


class _DaskJob:
    def __init__(
        self,
        plan: Plan,
        blob: bytes,
        client: Client,
        num_partitions: int | None,
        seed: int,
        memory_limit: int | None,
        progress: bool | None,
    ) -> None:
        self.plan, self.blob, self.client = plan, blob, client
        self.num_partitions, self.seed, self.progress = num_partitions, seed, progress
        self.threads, self.per_task = _cluster_shape(client, memory_limit)
        self.prefix = f"distcore-mr-{uuid.uuid4().hex[:12]}-"
        #: The futures the client follows: each map task's stats, each reduce task's counts (the
        #: last stage's: its result) as ("map" | "reduce", stage, index). Every other task of the
        #: job is needed by one of them, so cancelling them cancels the job.
        self.watch: dict[Future, tuple[str, int, int]] = {}
        self.totals: dict[tuple[str, int], int] = {}

    def submit(self, fn: Any, *args: Any, key: str) -> Future:
        return self.client.submit(fn, *args, key=self.prefix + key, pure=False)

    def submit_stage(self, s: int, inputs: list[Future]) -> list[Future]:
        """Submits stage ``s`` (its map tasks read ``inputs``, the previous stage's reduce
        tasks, or for the first stage the job's input splits) and returns its reduce tasks.

        The futures of the tasks in between are dropped here, so that the cluster frees each
        result once the tasks that read it are done (a future the client holds keeps its result
        in memory); the scheduler still knows how to compute them again while they are needed.
        """
        plan, blob, seed, budget = self.plan, self.blob, self.seed, self.per_task
        partitions = plan.stages[s].shuffle.num_partitions or self.num_partitions or self.threads
        maps: list[Future] = []
        args: tuple[Any, ...]
        if s == 0:
            for i, inp in enumerate(input_splits(plan, self.threads)):
                args = (blob, s, inp, partitions, None, "", seed, budget)
                maps.append(self.submit(_map, *args, key=f"s{s}-map-{i}"))
        else:
            for p, prev in enumerate(inputs):
                name = f"stage {s - 1} partition {p}"
                args = (blob, s, None, partitions, prev, name, seed, budget)
                maps.append(self.submit(_map, *args, key=f"s{s}-map-{p}"))
        for i, m in enumerate(maps):
            self.watch[self.submit(_map_stats, m, key=f"s{s}-stats-{i}")] = ("map", s, i)
        reduces = []
        for p in range(partitions):
            slices = [
                self.submit(_slice, m, p, key=f"s{s}-slice-{i}-{p}") for i, m in enumerate(maps)
            ]
            r = self.submit(_reduce, blob, s, slices, key=f"s{s}-reduce-{p}")
            reduces.append(r)
            last = s == len(plan.stages) - 1
            # The last stage's results come to the client; of the others, only their counts.
            counts = r if last else self.submit(_reduce_counts, r, key=f"s{s}-counts-{p}")
            self.watch[counts] = ("reduce", s, p)
        self.totals[("map", s)] = len(maps)
        self.totals[("reduce", s)] = partitions
        return reduces

    def run(self) -> Result:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        started = time.perf_counter()
        stats = Stats("dask", 0)
        attempts = _Attempts(self.client, self.prefix)
        try:
            reduces: list[Future] = []
            for s in range(len(self.plan.stages)):
                reduces = self.submit_stage(s, reduces)
                stats.partitions = len(reduces)
                stats.stages.append(StageStats())
            del reduces
            events = as_completed(list(self.watch), with_results=True, loop=self.client.loop)
            parts = self._wait(events, stats)
        except KilledWorker as e:
            self.cancel()
            raise WorkerLostError(
                f"dask workers died running task {e.task!r} more often than the scheduler "
                f"allows: {e}"
            ) from None
        except BaseException:
            self.cancel()
            raise
        finally:
            retried = attempts.retried()
            attempts.close()
        for key, n in retried.items():
            # Keys are ``{prefix}s{stage}-{task}-...``.
            stats.stages[int(key[len(self.prefix) + 1 :].split("-")[0])].retried_tasks += n
        self.watch.clear()
        stats.seconds = time.perf_counter() - started
        return Result(parts, tail=self.plan.tail, sort_keys=self.plan.sort_keys, stats=stats)

    def _wait(self, events: Any, stats: Stats) -> list[list[tuple[Any, int, int]]]:
        """Follows the job's tasks as they complete (stats, progress, timings) and returns the
        last stage's result runs."""
        last = len(self.plan.stages) - 1
        results: dict[int, tuple[bytes, int, int]] = {}
        totals = self.totals
        done: dict[tuple[str, int], int] = dict.fromkeys(totals, 0)
        # A stage's map phase starts when its first input is ready (the job's start, or the
        # previous stage's first reduce), and its reduce phase when its last map task is done.
        phase_start: dict[tuple[str, int], float] = {("map", 0): time.perf_counter()}
        with Progress(self.progress) as bar:
            for future, value in events:
                kind, s, i = self.watch[future]
                st = stats.stages[s]
                label = f"stage {s + 1} {kind}"
                if done[(kind, s)] == 0:
                    bar.phase(label, totals[(kind, s)])
                done[(kind, s)] += 1
                now = time.perf_counter()
                if kind == "map":
                    st.add_map(value)
                    bar.advance(label, value.get("input_records", 0))
                    if done[(kind, s)] == totals[(kind, s)]:
                        st.map_seconds = now - phase_start.get(("map", s), now)
                        phase_start[("reduce", s)] = now
                else:
                    records = value[2] if s == last else value[1]
                    if s == last:
                        results[i] = value
                    st.reduce_tasks += 1
                    st.output_records += records
                    bar.advance(label, records)
                    phase_start.setdefault(("map", s + 1), now)
                    if done[(kind, s)] == totals[(kind, s)]:
                        st.reduce_seconds = now - phase_start.get(("reduce", s), now)
        return [[(results[p][0], 0, results[p][1])] for p in range(len(results))]

    def cancel(self) -> None:
        """Cancels every task of the job, so the cluster is left as it was."""
        if self.watch:
            # The job's own error matters more than one from here.
            with contextlib.suppress(Exception):
                self.client.cancel(list(self.watch))
            self.watch.clear()
