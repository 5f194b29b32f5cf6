"""Where per-image work runs: in this process, or in a pool of worker processes.

Every runner has one signature, ``map(fn, items)``, yielding results in the
order of ``items`` whatever the number of workers, so output is identical for
every ``--jobs``. Workers load models lazily, once each, on their first image.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol, TypeVar

from facematch.errors import WorkerDiedError

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity, e.g. in containers)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def resolve_jobs(jobs: int | None) -> int:
    """``None``, 0 or -1 mean every core (``--cpus -1`` in face_recognition)."""
    if jobs is None or jobs <= 0:
        return available_cores()
    return jobs


class Runner(Protocol):
    """Runs a picklable function over items, yielding results in input order."""

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]: ...

    def close(self, abort: bool = False) -> None: ...


class InProcess:
    """Runs everything in this process (one job, or too few items to share)."""

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        return map(fn, items)

    def close(self, abort: bool = False) -> None:
        pass


class ProcessPool:
    """A pool of worker processes, started on first use and reused until closed.

    concurrent.futures rather than multiprocessing.Pool: when a worker dies
    (killed for memory, say) the run stops with an error instead of hanging.
    """

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.jobs, mp_context=_context())
        return self._map(self._pool, fn, items)

    @staticmethod
    def _map(pool: ProcessPoolExecutor, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        try:
            yield from pool.map(fn, items)
        except BrokenProcessPool:
            raise WorkerDiedError(
                "a worker process died (out of memory? try fewer --jobs)"
            ) from None

    def close(self, abort: bool = False) -> None:
        """Wait for the workers to finish, or stop them at once with ``abort``."""
        if self._pool is not None:
            self._pool.shutdown(wait=not abort, cancel_futures=abort)
            self._pool = None


def _context() -> multiprocessing.context.BaseContext:
    # forkserver: workers start from a clean server process, never from a
    # parent that may hold ONNX Runtime or BLAS threads (fork is unsafe then).
    # Nothing is preloaded in the server: it starts with the current folder on
    # sys.path, so a preload could import a facematch checkout found there
    # instead of the installed one; each worker imports after taking our path.
    if sys.platform != "win32" and "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([])
        return ctx
    return multiprocessing.get_context("spawn")


RUNNERS: dict[str, Callable[[int], Runner]] = {
    "process": ProcessPool,
    "inline": lambda jobs: InProcess(),
}


def make_runner(name: str, jobs: int) -> Runner:
    """The runner registered under ``name``; an unknown name fails loudly."""
    try:
        factory = RUNNERS[name]
    except KeyError:
        raise ValueError(f"unknown runner {name!r}; choose from {sorted(RUNNERS)}") from None
    return factory(jobs)
