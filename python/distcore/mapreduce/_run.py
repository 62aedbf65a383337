"""``run``: a plan on the executor of the caller's choice."""

from __future__ import annotations

from typing import Any, Literal

from distcore.mapreduce._plan import Plan, with_a_stage
from distcore.mapreduce._result import Result


def run(
    plan: Plan,
    *,
    executor: Literal["local", "dask"] = "local",
    workers: int | None = None,
    memory_limit: int | None = None,
    num_partitions: int | None = None,
    seed: int = 0,
    retries: int = 3,
    progress: bool | None = None,
    client: Any = None,
    scheduler: str | None = None,
    tmp_dir: str | None = None,
) -> Result:
    """Runs ``plan`` and returns its :class:`Result`.

    Parameters
    ----------
    executor
        ``"local"``: this machine, threads for built-in stages and worker processes for user
        functions; ``"dask"``: a Dask distributed cluster (``client`` or ``scheduler`` address).
    workers
        Local parallelism (default: the number of cores).
    memory_limit
        Bytes the map side's tables may hold in all (default: a quarter of RAM locally); past it
        they spill sorted runs to disk and merge them at the end.
    num_partitions
        Reduce partitions of stages that do not set their own (default: ``workers`` locally,
        the cluster's threads on Dask).
    seed
        Seed of the partitioning hash.
    retries
        How many times a task whose worker died is run again.
    progress
        Progress bars on stderr (default: when stderr is a terminal).

    Raises
    ------
    TaskError
        A mapper, combiner, partitioner or reducer raised (record and position in the message).
    RecordTypeError
        A mapper produced something that is not a pair, or a value a reducer cannot take.
    UnpicklableError
        A function that cannot be sent to worker processes.
    WorkerLostError
        A worker process died more than ``retries`` times.
    SchedulerError
        The Dask scheduler cannot be reached.
    OSError, DecodeError
        An input that cannot be read or is not UTF-8.
    """
    # A job of map, flat_map and filter only still runs as tasks, in input order.
    plan = with_a_stage(plan)
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if memory_limit is not None and memory_limit < 1:
        raise ValueError(f"memory_limit must be >= 1, got {memory_limit}")
    if executor == "local":
        from distcore.mapreduce._local import run_local

        return run_local(
            plan,
            workers=workers,
            memory_limit=memory_limit,
            num_partitions=num_partitions,
            seed=seed,
            retries=retries,
            progress=progress,
            tmp_dir=tmp_dir,
        )
    if executor == "dask":
        from distcore.mapreduce._dask import run_dask  # type: ignore[import-not-found,unused-ignore]

        return run_dask(
            plan,
            client=client,
            scheduler=scheduler,
            num_partitions=num_partitions,
            seed=seed,
            memory_limit=memory_limit,
            retries=retries,
            progress=progress,
        )
    raise ValueError(f"executor must be 'local' or 'dask', got {executor!r}")
