"""Where per-image work runs: in this process, a pool of worker processes, or a Dask cluster.

Every runner has one signature, ``map(fn, items, failed)``, yielding results
in the order of ``items`` whatever the number of workers, so output is
identical for every ``--jobs``. Workers load models lazily, once each, on
their first image.

A worker that dies (a crash in native code, the kernel's OOM killer) takes
only its own item with it: the pool is restarted, the items that may have
been on the dead worker are re-run one at a time in a process of their own,
and the one that kills its process again becomes ``failed(item, reason)``.
Workers ignore Ctrl-C (the main process stops them) and exit by themselves
when the main process dies, so a killed run leaves no worker behind.

A runner is chosen by name: ``process``, ``inline``, or ``dask:ADDRESS``
(``dask:tcp://host:8786``, ``dask:local:N``; see ``dask_runner``, imported
only when asked for, as it needs the ``facematch[dask]`` extra).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from facematch.files import private_temp_folder

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("facematch")

# Items handed to the pool ahead of the one being waited for, per worker:
# enough to keep every worker busy, few enough to bound memory on huge runs.
AHEAD_PER_WORKER = 4
# How often a worker checks that the main process is still there.
PARENT_POLL_SECONDS = 0.5


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity, e.g. in containers)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def resolve_jobs(jobs: int | None) -> int:
    """``None``, 0 or -1 mean every core (``--cpus -1`` in face_recognition).

    More workers than cores only costs memory (each loads the models), so a
    larger number is clamped to the cores, with a warning.
    """
    cores = available_cores()
    if jobs is None or jobs <= 0:
        return cores
    if jobs > cores:
        log.warning("--jobs %d is more than the %d cores here; using %d", jobs, cores, cores)
        return cores
    return jobs


class Runner(Protocol):
    """Runs a picklable function over items, yielding results in input order.

    ``failed(item, reason)`` stands in for the result of an item whose
    worker process died while running it.
    """

    def map(
        self, fn: Callable[[T], R], items: Sequence[T], failed: Callable[[T, str], R]
    ) -> Iterator[R]: ...

    def close(self, abort: bool = False) -> None: ...


class InProcess:
    """Runs everything in this process (one job, or too few items to share)."""

    def map(
        self, fn: Callable[[T], R], items: Sequence[T], failed: Callable[[T, str], R]
    ) -> Iterator[R]:
        return map(fn, items)

    def close(self, abort: bool = False) -> None:
        pass


@dataclass
class _Slot(Generic[T, R]):
    """One item on its way through the pool: its future, or its result once known."""

    item: T
    future: Future[R] | None = None
    result: R | None = None
    ready: bool = False

    def settle(self, result: R) -> None:
        self.result, self.ready, self.future = result, True, None


@dataclass
class ProcessPool:
    """A pool of worker processes, started on first use and reused until closed.

    concurrent.futures rather than multiprocessing.Pool: when a worker dies
    the pool notices at once instead of hanging, and we recover (see above).
    """

    jobs: int
    _pool: ProcessPoolExecutor | None = field(default=None, init=False)

    def _executor(self, workers: int | None = None) -> ProcessPoolExecutor:
        private_temp_folder()  # decided here, once, before any worker needs it
        return ProcessPoolExecutor(
            workers or self.jobs,
            mp_context=_context(),
            initializer=worker_setup,
            initargs=(os.getpid(),),
        )

    def map(
        self, fn: Callable[[T], R], items: Sequence[T], failed: Callable[[T, str], R]
    ) -> Iterator[R]:
        return self._map(fn, items, failed)

    def _map(
        self, fn: Callable[[T], R], items: Sequence[T], failed: Callable[[T, str], R]
    ) -> Iterator[R]:
        todo = deque(items)
        window: deque[_Slot[T, R]] = deque()
        ahead = self.jobs * AHEAD_PER_WORKER
        while todo or window:
            while todo and len(window) < ahead:
                slot: _Slot[T, R] = _Slot(todo.popleft())
                slot.future = self._submit(fn, slot.item)
                window.append(slot)
            head = window[0]
            if not head.ready:
                assert head.future is not None
                try:
                    head.settle(head.future.result())
                except BrokenProcessPool:
                    self._recover(fn, window, failed)
                    continue
            window.popleft()
            yield head.result  # type: ignore[misc]

    def _submit(self, fn: Callable[[T], R], item: T) -> Future[R]:
        if self._pool is None:
            self._pool = self._executor()
        try:
            return self._pool.submit(fn, item)
        except BrokenProcessPool as broken:  # it broke since the last result: recover later
            future: Future[R] = Future()
            future.set_exception(broken)
            return future

    def _recover(
        self, fn: Callable[[T], R], window: deque[_Slot[T, R]], failed: Callable[[T, str], R]
    ) -> None:
        """After a worker died: keep what finished, isolate the suspects, resubmit the rest.

        The pool hands out items in order, at most one per worker plus one
        queued per worker, so the dead worker's item is among the first
        ``2 * jobs + 1`` unfinished ones.
        """
        unfinished: list[_Slot[T, R]] = []
        for slot in window:
            if slot.ready or slot.future is None:
                continue
            error = slot.future.exception()
            if error is None:
                slot.settle(slot.future.result())
            elif isinstance(error, BrokenProcessPool):
                unfinished.append(slot)
            else:
                raise error
        self._shutdown(abort=True)
        suspects = 2 * self.jobs + 1
        for slot in unfinished[:suspects]:
            slot.settle(self._isolated(fn, slot.item, failed))
        for slot in unfinished[suspects:]:
            slot.future = self._submit(fn, slot.item)

    def _isolated(self, fn: Callable[[T], R], item: T, failed: Callable[[T, str], R]) -> R:
        """Run one item in a process of its own; if that process dies too, the item failed."""
        pool = self._executor(1)
        future = pool.submit(fn, item)
        processes = dict(getattr(pool, "_processes", None) or {})
        try:
            return future.result()
        except BrokenProcessPool:
            # The pool's own thread reaps the dead worker; reading its exit status
            # while it does races it (the loser reads 255), so wait for it first.
            pool.shutdown(wait=True)
            return failed(item, _death(processes.values()))
        finally:
            pool.shutdown(wait=True)

    def _shutdown(self, abort: bool) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if abort:
            # shutdown() alone lets each worker finish the item it holds (minutes on
            # a large batch); an aborted run stops them now.
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                with contextlib.suppress(Exception):
                    process.terminate()
        pool.shutdown(wait=True, cancel_futures=abort)

    def close(self, abort: bool = False) -> None:
        """Wait for the workers to finish, or stop them at once with ``abort``."""
        self._shutdown(abort)


def _death(processes: Any) -> str:
    """What killed a worker, as far as its exit status tells."""
    for process in processes:
        for _ in range(20):
            if process.exitcode is not None:
                break
            time.sleep(0.05)
        code = process.exitcode
        if code is None or code == 0:
            continue
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            if -code == signal.SIGKILL:
                return f"the worker process reading this image was killed ({name}: out of memory?)"
            return f"the worker process reading this image crashed ({name})"
        return f"the worker process reading this image exited with status {code}"
    return "the worker process reading this image died"


def worker_setup(main_pid: int) -> None:
    """Run in every worker before its first item: ignore Ctrl-C, die with the main process.

    Ctrl-C reaches the whole process group; the main process stops the
    workers itself, so they ignore it rather than print tracebacks. A worker's
    parent is the forkserver, which outlives the main process as long as any
    worker does, so each worker watches the main process itself and exits
    when it is gone (``kill -9`` of the main process leaves nothing behind).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    born = _start_time(main_pid)
    threading.Thread(target=_watch, args=(main_pid, born), daemon=True).start()


def _start_time(pid: int) -> str | None:
    """A process's start time (Linux), so that a reused pid is not mistaken for it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _alive(pid: int, born: str | None) -> bool:
    if born is not None:  # Linux: a zombie or a new process under the same pid is gone
        return _start_time(pid) == born
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _watch(main_pid: int, born: str | None) -> None:
    while _alive(main_pid, born):
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


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


def _dask(jobs: int, address: str) -> Runner:
    from facematch.run.dask import DaskRunner

    return DaskRunner(address)


RUNNERS: dict[str, Callable[[int, str], Runner]] = {
    "process": lambda jobs, where: ProcessPool(jobs),
    "inline": lambda jobs, where: InProcess(),
    "dask": _dask,
}
REMOTE_RUNNERS = frozenset({"dask"})


def make_runner(name: str, jobs: int) -> Runner:
    """The runner named ``kind`` or ``kind:where``; an unknown kind fails loudly."""
    kind, _, where = name.partition(":")
    try:
        factory = RUNNERS[kind]
    except KeyError:
        raise ValueError(f"unknown runner {name!r}; choose from {sorted(RUNNERS)}") from None
    return factory(jobs, where)


def is_remote(name: str) -> bool:
    """Whether the runner named ``name`` runs work outside this machine's process pool.

    Work for such a runner always goes to it, even a single image: the user
    asked for the cluster, and its workers may see files this process cannot.
    """
    return name.partition(":")[0] in REMOTE_RUNNERS
