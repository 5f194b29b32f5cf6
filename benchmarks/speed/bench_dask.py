"""The Dask path against the local process pool, on the same cores and the same photos.

    python -m benchmarks.speed.bench_dask --faces PATH/TO/shared/faces [--count 200] [--rounds 3]

Encodes the first ``--count`` photos of lfw-dev/ (sorted), cold (no cache),
interleaved round by round, medians over rounds, two ways:

- warm workers (models loaded, as on a standing cluster): the local process
  pool of ``--jobs`` workers, kept between runs, against a Dask cluster of as
  many worker processes (one thread each) reached by its tcp:// address, for
  each shard size in ``--shard-sizes``;
- whole runs as a user starts them: ``Pipeline(jobs=N)`` (the pool starts and
  its workers load the models) against ``--scheduler local:N`` (the cluster
  starts too).

Then the time to start: importing distributed, a local cluster ready to work
(workers up, versions checked), connecting to a running scheduler, and the
pool's first result. Every run's answers are checked equal to the pool's.
"""

from __future__ import annotations

import logging
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence

from benchmarks import harness
from benchmarks.harness import WALL
from facematch.records import Encoded
from facematch.run import dask as dask_runner
from facematch.run.pipeline import Pipeline
from facematch.run.runners import ProcessPool, Runner
from facematch.run.tasks import EncodeTask, encode_failed, encode_image

Answers = list[tuple[object, ...]]
# CPU seconds per run: this process (the client, and the test cluster's scheduler), and
# every process below it (pool and cluster workers). On a shared machine wall times
# swing with the load; CPU seconds show what each runner costs.
client_cpu: dict[str, list[float]] = {}
total_cpu: dict[str, list[float]] = {}


def cpu_seconds() -> tuple[float, dict[int, float]]:
    """This process's CPU seconds, and each descendant's."""
    import psutil

    me = psutil.Process()
    below = {}
    for child in me.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        below[child.pid] = times.user + times.system
    mine = me.cpu_times()
    return mine.user + mine.system, below


def cpu_used(before: tuple[float, dict[int, float]]) -> tuple[float, float]:
    """(this process, everything) CPU seconds since ``before``; new processes count whole."""
    mine, below = cpu_seconds()
    spent_below = sum(t - before[1].get(pid, 0.0) for pid, t in below.items())
    return mine - before[0], mine - before[0] + spent_below


def summary(results: list[Encoded]) -> Answers:
    return [
        (r.path, r.error, tuple((f.box, f.embedding.tobytes()) for f in r.faces)) for r in results
    ]


def whole_run(paths: list[str], runner: str, jobs: int) -> Callable[[], tuple[float, Answers]]:
    def encode() -> list[Encoded]:
        with Pipeline(jobs=jobs, runner=runner) as pipeline:
            return list(pipeline.encode(paths))

    def run() -> tuple[float, Answers]:
        seconds, out = harness.measure(encode, WALL)
        return seconds, summary(out)

    return run


def warm_run(
    runner: Runner, tasks: list[EncodeTask], shard: int
) -> Callable[[], tuple[float, Answers]]:
    def run() -> tuple[float, Answers]:
        dask_runner.SHARD_SIZE = shard
        seconds, out = harness.measure(
            lambda: list(runner.map(encode_image, tasks, encode_failed)), WALL
        )
        return seconds, summary(out)

    return run


def start_times(address: str, jobs: int, rounds: int) -> dict[str, float]:
    """Median seconds to get ready, each way."""
    imports, local, remote, pool = [], [], [], []
    code = (
        "import time; t = time.perf_counter(); import distributed; print(time.perf_counter() - t)"
    )
    for _ in range(rounds):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        imports.append(float(done.stdout))
        for spec, into in ((f"local:{jobs}", local), (address, remote)):
            with harness.timed() as timing:
                runner = dask_runner.DaskRunner(spec)
                list(runner.map(abs, [-1], lambda item, why: 0))
                runner.close()
            into.append(timing.wall)
        with harness.timed() as timing:
            process_pool = ProcessPool(jobs)
            list(process_pool.map(abs, [-1, -2], lambda item, why: 0))
            process_pool.close()
        pool.append(timing.wall)
    return {
        "import distributed (fresh process)": statistics.median(imports),
        f"local:{jobs} cluster ready (workers up, versions checked)": statistics.median(local),
        "connect to a running scheduler, versions checked": statistics.median(remote),
        f"local process pool of {jobs}, first result": statistics.median(pool),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_faces(parser)
    parser.add_argument("--count", type=int, default=200)
    harness.add_rounds(parser, 3)
    harness.add_jobs(parser, 2)
    parser.add_argument("--shard-sizes", default="1,4,8,16,32")
    parser.add_argument("--no-whole-runs", action="store_true")
    args = parser.parse_args(argv)

    import distributed

    paths = [str(p) for p in harness.photos(args.faces / "lfw-dev")[: args.count]]
    cluster = distributed.LocalCluster(
        n_workers=args.jobs,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    )
    address = cluster.scheduler_address
    with Pipeline(jobs=args.jobs) as settings:
        tasks = [EncodeTask(p, settings.settings, settings.engine) for p in paths]
    pool = ProcessPool(args.jobs)
    dask = dask_runner.DaskRunner(address)
    default_shard = dask_runner.SHARD_SIZE
    runs: dict[str, Callable[[], tuple[float, Answers]]] = {
        "warm: pool": warm_run(pool, tasks, default_shard)
    }
    for size in (int(s) for s in args.shard_sizes.split(",")):
        runs[f"warm: dask tcp, shard {size}"] = warm_run(dask, tasks, size)
    if not args.no_whole_runs:
        runs["run: pool (Pipeline, jobs)"] = whole_run(paths, "process", args.jobs)
        runs[f"run: dask local:{args.jobs}"] = whole_run(
            paths, f"dask:local:{args.jobs}", args.jobs
        )
    list(pool.map(encode_image, tasks[: 4 * args.jobs], encode_failed))  # load the models
    list(dask.map(encode_image, tasks[: 4 * args.jobs], encode_failed))
    times: dict[str, list[float]] = {name: [] for name in runs}
    reference = None
    for round_number in range(args.rounds):
        for name, run in runs.items():
            before = cpu_seconds()
            seconds, answers = run()
            client, everything = cpu_used(before)
            client_cpu.setdefault(name, []).append(client)
            total_cpu.setdefault(name, []).append(everything)
            reference = reference or answers
            assert answers == reference, f"{name} answered differently"
            times[name].append(seconds)
            print(f"round {round_number + 1} {name}: {seconds:.2f} s", file=sys.stderr)
    dask_runner.SHARD_SIZE = default_shard
    pool.close()
    dask.close()
    starts = start_times(address, args.jobs, args.rounds)
    cluster.close()

    print(f"{len(paths)} lfw-dev photos, {args.jobs} workers, {args.rounds} interleaved rounds\n")
    harness.table_header(
        "runner",
        "median s",
        "ms per photo",
        "vs pool",
        "CPU ms per photo (all processes)",
        "CPU vs pool",
        "of which client",
        "rounds (s)",
    )
    for name, values in times.items():
        median = statistics.median(values)
        base = statistics.median(times["warm: pool" if name.startswith("warm") else runs_pool])
        rounds = ", ".join(f"{v:.1f}" for v in values)
        cpu_columns = ["-", "-", "-"]  # whole runs: their workers are gone before we can count
        if name.startswith("warm"):
            cpu = statistics.median(total_cpu[name])
            base_cpu = statistics.median(total_cpu["warm: pool"])
            client = 1000 * statistics.median(client_cpu[name]) / len(paths)
            cpu_columns = [
                f"{1000 * cpu / len(paths):.1f}",
                f"{cpu / base_cpu:.3f}",
                f"{client:.1f}",
            ]
        harness.table_row(
            name,
            f"{median:.2f}",
            f"{1000 * median / len(paths):.1f}",
            f"{median / base:.3f}",
            *cpu_columns,
            rounds,
        )
    print()
    harness.table_header("start-up", "median s")
    for name, seconds in starts.items():
        harness.table_row(name, f"{seconds:.2f}")


runs_pool = "run: pool (Pipeline, jobs)"

if __name__ == "__main__":
    main()
