"""Run the per-image work on a Dask cluster, behind the same ``map`` as the local pool.

``DaskRunner("tcp://host:8786")`` uses a running scheduler and its workers;
``DaskRunner("local:N")`` starts a cluster of N worker processes (one thread
each) on this machine. Either way:

- Items travel in shards, lists of items one worker runs one after another, so
  a million photos are tens of thousands of tasks, not a million. Results come
  back in item order: this process alone writes (cache, library, output), so
  the output is the same bytes as a local run's.
- Workers read the files themselves: every machine must see them under the
  same absolute paths (a network file system or the same mounted volume). A
  worker's per-item errors name it.
- Before the first shard every worker's versions are compared with ours
  (``fingerprint``); a worker with another facematch, dlib or model is refused
  (``ClusterError``), and so is one that joins later, by its first shard.
- A worker that dies (a crash in native code, out of memory) has its shard
  given to another worker by the scheduler, up to its ``allowed-failures``
  (3 by default); after that the shard's items are run one per task, and an
  item that still kills every worker it meets becomes ``failed(item, reason)``.
- ``close`` cancels whatever is still queued or running on the cluster
  (Ctrl-C, SIGTERM, an error in the caller) and stops a local cluster.
- A local cluster's workers run without Dask's sampling profiler, which costs
  about 5% of the CPU here (benchmarks/speed/bench_dask.py).

Imported only when a ``dask:`` runner is asked for: it needs ``facematch[dask]``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any, TypeVar

from facematch.errors import ClusterError, ModelError, UsageError
from facematch.files import private_temp_folder
from facematch.run.worker import set_worker_label

if TYPE_CHECKING:
    from distributed import Client, Future, LocalCluster

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("facematch")

EXTRA_HINT = "pip install 'facematch[dask]'"
# Seconds to reach the scheduler: an address that does not answer is a typo,
# a firewall or a scheduler not started, and should not look like a hang.
CONNECT_TIMEOUT = 5.0
# Seconds to wait for a worker: the first one, or a new one once every worker is
# gone mid-run. FACEMATCH_DASK_WORKERS_TIMEOUT overrides it (the tests wait seconds).
WORKERS_TIMEOUT = 30.0
WORKERS_TIMEOUT_VARIABLE = "FACEMATCH_DASK_WORKERS_TIMEOUT"
# How often a run waiting for a result checks that the scheduler still has workers.
WORKERS_POLL_SECONDS = 1.0
# Items per shard (benchmarks/speed/bench_dask.py): beyond this the per-task cost is
# lost in the noise, while a dead worker and the last, lone shards cost more.
SHARD_SIZE = 8
# Shards in flight per worker thread: one running, the next ones queued, so
# no worker waits for the scheduler; few enough to bound memory on huge runs.
SHARDS_PER_THREAD = 3
# Versions that must be the same on every worker for embeddings to be the same.
PACKAGES = ("face-recognition-models", "onnx", "onnxruntime")


def require_dask() -> None:
    """A usage error naming the extra when Dask's ``distributed`` is not installed."""
    if importlib.util.find_spec("distributed") is None:
        raise UsageError(f"--scheduler needs Dask: {EXTRA_HINT}")


def workers_timeout() -> float:
    """``WORKERS_TIMEOUT``, or the seconds in ``FACEMATCH_DASK_WORKERS_TIMEOUT``."""
    value = os.environ.get(WORKERS_TIMEOUT_VARIABLE, "")
    try:
        seconds = float(value)
    except ValueError:
        return WORKERS_TIMEOUT
    return seconds if math.isfinite(seconds) and seconds >= 0 else WORKERS_TIMEOUT


def parse_local(address: str) -> int | None:
    """N for ``local:N`` (a cluster started here), None for a scheduler's address."""
    kind, colon, count = address.partition(":")
    if kind != "local" or not colon:
        return None
    if not count.isdigit() or int(count) < 1:
        raise UsageError(f"local:N needs a number of worker processes, not {count!r}")
    return int(count)


@functools.cache
def _package_versions() -> tuple[tuple[str, str], ...]:
    found = []
    for package in PACKAGES:
        try:
            found.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            found.append((package, "not installed"))
    return tuple(found)


@functools.cache
def _model_sizes() -> str:
    from facematch.models import dlib_files as models

    sizes = []
    for name, file_name in sorted(models.MODEL_FILES.items()):
        try:
            sizes.append(f"{name}={(models.models_dir() / file_name).stat().st_size}")
        except (OSError, ModelError):
            sizes.append(f"{name}=missing")
    return " ".join(sizes)


def fingerprint() -> dict[str, str]:
    """What decides the embeddings in this process: versions of facematch, dlib and models."""
    import dlib

    import facematch

    return {
        "facematch": facematch.__version__,
        "dlib": str(getattr(dlib, "__version__", "unknown")),
        **dict(_package_versions()),
        "model files": _model_sizes(),
    }


def differences(ours: dict[str, str], theirs: dict[str, str]) -> str:
    """The versions a worker has that we do not, in one line ("" when none)."""
    return "; ".join(
        f"{name} {theirs.get(name, 'unknown')} (here {version})"
        for name, version in ours.items()
        if theirs.get(name) != version
    )


def run_shard(fn: Callable[[T], R], items: Sequence[T], expected: dict[str, str]) -> list[R]:
    """On a worker: check it runs what the client runs, then ``fn`` over each item in order."""
    from distributed import get_worker

    address = get_worker().address
    mismatch = differences(expected, fingerprint())
    if mismatch:
        raise ClusterError(f"worker {address} runs {mismatch}: {SAME_VERSIONS}")
    set_worker_label(f"{address}, host {socket.gethostname()}")
    return [fn(item) for item in items]


SAME_VERSIONS = "install the same facematch, dlib and model versions on every machine"


def dask_setup(worker: Any) -> None:
    """Run by each worker of a local cluster as it starts (Dask's preload hook).

    Its workers are in the terminal's process group, so Ctrl-C reaches them
    too; they ignore it (as the local pool's do) and the client stops them,
    instead of each printing a traceback.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _quiet_dask() -> None:
    """Dask's own log lines (restarted workers, lost tasks) stay off our stderr.

    What matters to the user reaches them as rows and one-line errors.
    """
    for name in ("distributed", "dask"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _death(killed: Any) -> str:
    """Why an item failed when every worker that tried it died (a ``KilledWorker``)."""
    last = getattr(getattr(killed, "last_worker", None), "address", "unknown")
    tries = getattr(killed, "allowed_failures", 0) + 1
    return (
        f"every Dask worker process reading this image died ({tries} tries, the last on "
        f"{last}): a crash or out of memory"
    )


class DaskRunner:
    """A Dask client, connected on first use; ``map`` and ``close`` as every runner."""

    def __init__(self, address: str) -> None:
        require_dask()
        self.local_workers = parse_local(address)
        self.address = address
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None
        self._expected: dict[str, str] = {}
        self._in_flight: set[Future[Any]] = set()
        self._no_workers_since: float | None = None

    def map(
        self, fn: Callable[[T], R], items: Sequence[T], failed: Callable[[T, str], R]
    ) -> Iterator[R]:
        client = self._connect()
        return self._map(client, fn, items, failed)

    def _connect(self) -> Client:
        """The client, once every worker proved it runs our versions."""
        if self._client is not None:
            return self._client
        from distributed import Client

        _quiet_dask()
        if self.local_workers is not None:
            import dask
            from distributed import LocalCluster

            private_temp_folder()  # decided here, once, for the workers started below
            try:
                with dask.config.set({"distributed.worker.profile.enabled": False}):
                    self._cluster = LocalCluster(
                        n_workers=self.local_workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=":0",  # any free port: 8787 may be taken
                        silence_logs=logging.CRITICAL,
                        preload=[__name__],  # dask_setup below, in each worker
                    )
            except (OSError, RuntimeError) as exc:
                raise ClusterError(f"cannot start a local Dask cluster: {exc}") from None
            self._client = Client(self._cluster)
        else:
            try:
                self._client = Client(self.address, timeout=CONNECT_TIMEOUT)
            except (OSError, ValueError, TypeError) as exc:
                raise ClusterError(
                    f"cannot reach the Dask scheduler at {self.address}: {exc}"
                ) from None
        self._expected = fingerprint()
        self._check_workers(self._client)
        return self._client

    def _check_workers(self, client: Client) -> None:
        try:
            client.wait_for_workers(1, timeout=workers_timeout())
        except TimeoutError:
            raise ClusterError(
                f"the Dask scheduler at {self.address} has no workers "
                f"(start some with: dask worker {self.address})"
            ) from None
        answers = client.run(fingerprint, on_error="return")
        for worker, answer in sorted(answers.items()):
            if isinstance(answer, BaseException):
                raise ClusterError(
                    f"worker {worker} cannot run facematch: {type(answer).__name__}: {answer}"
                )
            mismatch = differences(self._expected, answer)
            if mismatch:
                raise ClusterError(f"worker {worker} runs {mismatch}: {SAME_VERSIONS}")

    def _map(
        self,
        client: Client,
        fn: Callable[[T], R],
        items: Sequence[T],
        failed: Callable[[T, str], R],
    ) -> Iterator[R]:
        threads = max(1, sum(client.nthreads().values()))
        size = shard_size(len(items), threads)
        todo = deque(items[start : start + size] for start in range(0, len(items), size))
        window: deque[tuple[Sequence[T], Future[Any]]] = deque()
        while todo or window:
            while todo and len(window) < SHARDS_PER_THREAD * threads:
                shard = todo.popleft()
                window.append((shard, self._submit(client, fn, shard)))
            shard, future = window.popleft()
            yield from self._results(client, fn, shard, future, failed)

    def _submit(self, client: Client, fn: Callable[[T], R], shard: Sequence[T]) -> Future[Any]:
        future = client.submit(run_shard, fn, list(shard), self._expected, pure=False)
        self._in_flight.add(future)
        return future

    def _results(
        self,
        client: Client,
        fn: Callable[[T], R],
        shard: Sequence[T],
        future: Future[Any],
        failed: Callable[[T, str], R],
    ) -> list[R]:
        """A shard's results; if its workers kept dying, its items one by one.

        One at a time: an item queued behind a killer on the same worker dies
        with it, so only an item that kills the workers it meets alone failed.
        """
        from distributed import KilledWorker

        try:
            return self._wait(future)
        except KilledWorker:
            pass
        results: list[R] = []
        for item in shard:
            try:
                results.extend(self._wait(self._submit(client, fn, [item])))
            except KilledWorker as killed:
                results.append(failed(item, _death(killed)))
        return results

    def _wait(self, future: Future[Any]) -> list[R]:
        """A shard's results, checking while it waits that the scheduler still has workers."""
        from distributed.client import FutureCancelledError

        try:
            while True:
                try:
                    result: list[R] = future.result(timeout=WORKERS_POLL_SECONDS)
                    return result
                except TimeoutError:
                    self._still_has_workers(future.client)
        except FutureCancelledError:
            raise ClusterError(
                f"the Dask scheduler at {self.address} cancelled the work "
                "(connection lost, or the scheduler stopped)"
            ) from None
        finally:
            self._in_flight.discard(future)
            future.release()

    def _still_has_workers(self, client: Client) -> None:
        """Wait for a worker once every worker is gone, as at the start: saying so on
        stderr, then a ClusterError when none joins within ``workers_timeout()``."""
        try:
            workers = client.nthreads()
        except OSError:  # the connection is lost: the future is cancelled, and says so
            return
        if workers:
            if self._no_workers_since is not None:
                self._no_workers_since = None
                log.warning("a Dask worker joined; going on")
            return
        timeout = workers_timeout()
        now = time.monotonic()
        if self._no_workers_since is None:
            self._no_workers_since = now
            log.warning(
                "the Dask scheduler at %s has no workers left; waiting up to %g s for one",
                self.address,
                timeout,
            )
        elif now - self._no_workers_since >= timeout:
            raise ClusterError(
                f"the Dask scheduler at {self.address} lost every worker and none joined "
                f"within {timeout:g} s (start some with: dask worker {self.address})"
            )

    def close(self, abort: bool = False) -> None:
        """Cancel what is still on the cluster, disconnect, and stop a local cluster."""
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        if client is not None:
            if self._in_flight:
                client.cancel(list(self._in_flight), force=True)
                self._in_flight.clear()
            client.close()
        if cluster is not None:
            cluster.close()


def shard_size(items: int, threads: int) -> int:
    """Items per shard: ``SHARD_SIZE``, smaller when there are too few items to share out."""
    return max(1, min(SHARD_SIZE, math.ceil(items / (threads * SHARDS_PER_THREAD))))
