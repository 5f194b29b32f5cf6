"""Encoding on a Dask cluster: the local pool's answers, whatever happens to the workers.

One LocalCluster of two worker processes (one thread each) serves the whole
module; the tests reach it by its tcp:// address, as a remote cluster would be.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import crashy
import dask_work
import pytest
from helpers import run

from facematch.cli import EXIT_FATAL, EXIT_INTERRUPTED, EXIT_USAGE
from facematch.errors import ClusterError
from facematch.records import Encoded
from facematch.run import dask as dask_runner
from facematch.run.pipeline import Pipeline
from facematch.run.tasks import EncodeTask

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A two-worker cluster; a worker death counts once before a task is given up (default 3)."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: 8787 may be taken
            silence_logs=logging.CRITICAL,
        )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Real photos: portraits, two people in one, a stranger, and one with no face."""
    folder = tmp_path_factory.mktemp("photos")
    data = Path(__file__).parent / "data"
    names = ["obama_small.jpg", "two_people.jpg", "alex-lacamoire.png", "tiny-blank.png"]
    for name in names:
        shutil.copy(data / name, folder / name)
    return [str(folder / name) for name in names]


def summary(results: list[Encoded]) -> list[tuple[object, ...]]:
    """Everything a result carries, comparable exactly (embeddings as their bytes)."""
    return [
        (r.path, r.error, tuple((f.box, f.landmarks, f.embedding.tobytes()) for f in r.faces))
        for r in results
    ]


@pytest.fixture(scope="module")
def local_answers(photos: list[str]) -> list[tuple[object, ...]]:
    with Pipeline(jobs=2) as pipeline:
        return summary(list(pipeline.encode(photos)))


def test_the_cluster_gives_the_local_pool_s_answers(
    scheduler: str, photos: list[str], local_answers: list[tuple[object, ...]]
) -> None:
    with Pipeline(runner=f"dask:{scheduler}") as pipeline:
        assert summary(list(pipeline.encode(photos))) == local_answers
    assert [r[1] for r in local_answers] == [None] * 4  # all read, so the test compares faces
    assert [len(r[2]) for r in local_answers] == [1, 2, 1, 0]  # type: ignore[arg-type]


def test_match_prints_the_same_bytes_on_the_cluster(
    scheduler: str, known_files: Path, unknown: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Relative paths too: workers are handed absolute ones, the output keeps the user's.
    monkeypatch.chdir(unknown.parent)
    args = ["known", "unknown", "--no-cache", "--format", "jsonl", "--all-matches"]
    local = run(*args, "--jobs", "2")
    remote = run(*args, "--scheduler", scheduler)
    assert local.exit_code == remote.exit_code == 0, remote.stderr
    assert remote.stdout == local.stdout
    rows = [json.loads(line) for line in remote.stdout.splitlines()]
    assert [(r["path"], [f["name"] for f in r["faces"]]) for r in rows] == [
        ("unknown/1-obama.jpg", ["Barack Obama"]),
        ("unknown/2-both.jpg", ["Joe Biden", "Barack Obama"]),
        ("unknown/3-stranger.png", [None]),
    ]


def test_index_fills_the_same_library_on_the_cluster(
    scheduler: str, photos: list[str], tmp_path: Path
) -> None:
    folder = str(Path(photos[0]).parent)
    exports = []
    for name, how in (("local", ["--jobs", "2"]), ("cluster", ["--scheduler", scheduler])):
        library = tmp_path / f"{name}.sqlite3"
        indexed = run("index", folder, "--library", library, "--no-cache", *how)
        assert indexed.exit_code == 0, indexed.stderr
        assert "indexed 4 files (4 new" in indexed.stderr
        exports.append(run("library", "export", "--library", library).stdout)
    assert exports[0] == exports[1]
    assert len(exports[1].splitlines()) == 4  # faces: 1 + 2 + 1 + 0


def test_a_worker_killed_mid_run_loses_nothing(
    scheduler: str, photos: list[str], local_answers: list[tuple[object, ...]], tmp_path: Path
) -> None:
    marker = str(tmp_path / "killed-once")
    with Pipeline() as settings:
        tasks = [(EncodeTask(p, settings.settings, settings.engine), "") for p in photos]
    tasks[1] = (tasks[1][0], marker)  # the first worker to read two_people.jpg dies
    runner = dask_runner.DaskRunner(scheduler)
    try:
        out = list(runner.map(dask_work.encode_or_die_once, tasks, dask_work.encode_failed))
    finally:
        runner.close()
    assert os.path.exists(marker), "no worker was killed"
    assert summary(out) == local_answers


@pytest.mark.slow
def test_an_item_that_kills_every_worker_becomes_a_failure(scheduler: str) -> None:
    items = [*range(10), -9, *range(10, 20)]
    runner = dask_runner.DaskRunner(scheduler)
    try:
        out = list(runner.map(crashy.square_or_die, items, lambda item, why: (item, why)))
    finally:
        runner.close()
    assert [o for o in out if not isinstance(o, tuple)] == [i * i for i in items if i >= 0]
    failures = [o for o in out if isinstance(o, tuple)]
    assert [item for item, _ in failures] == [-9]
    assert "every Dask worker process reading this image died (2 tries" in failures[0][1]


def test_a_file_a_worker_cannot_read_is_a_row_naming_the_worker(
    scheduler: str, photos: list[str], tmp_path: Path
) -> None:
    # Without a cache this process never opens the files: only the worker looks.
    missing = str(tmp_path / "only-on-the-client.jpg")
    with Pipeline(runner=f"dask:{scheduler}") as pipeline:
        out = list(pipeline.encode([photos[0], missing]))
    assert out[0].error is None and len(out[0].faces) == 1
    assert out[1].path == missing and out[1].error is not None
    with distributed.Client(scheduler) as client:
        workers = client.scheduler_info()["workers"]
    assert out[1].error.startswith("no such file (on worker tcp://")
    assert any(address in out[1].error for address in workers), out[1].error
    assert f"host {socket.gethostname()})" in out[1].error


def test_a_worker_with_another_version_is_refused(scheduler: str, photos: list[str]) -> None:
    client = distributed.Client(scheduler)
    worker = sorted(client.scheduler_info()["workers"])[0]
    real = client.run(dask_work.set_version, "0.0.0-other", workers=[worker])[worker]
    try:
        with (
            pytest.raises(ClusterError, match=f"worker {worker} runs facematch 0.0.0-other"),
            Pipeline(runner=f"dask:{scheduler}") as pipeline,
        ):
            list(pipeline.encode(photos[:1]))
    finally:
        client.run(dask_work.set_version, real, workers=[worker])
        client.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_scheduler_is_one_line(known_files: Path, unknown: Path) -> None:
    started = time.monotonic()
    result = run(
        known_files, unknown, "--no-cache", "--scheduler", f"tcp://127.0.0.1:{free_port()}"
    )
    assert time.monotonic() - started < dask_runner.CONNECT_TIMEOUT + 10
    assert result.exit_code == EXIT_FATAL
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("facematch: error: cannot reach the Dask scheduler at tcp://")


def test_a_scheduler_is_checked_before_the_cache_answers(
    known_files: Path, unknown: Path, tmp_path: Path
) -> None:
    """With every photo in the cache no work goes to the cluster, yet a malformed
    address is still a usage error and an unreachable scheduler still fatal."""
    cache = ("--cache-dir", tmp_path / "cache", "-j", "1")
    warm = run(known_files, unknown, *cache)
    assert warm.exit_code == 0, warm.stderr
    for bad in ("bogus", "tcp://host", "http://host:8786", "tcp://10.0.0.1:99999"):
        result = run(known_files, unknown, *cache, "--scheduler", bad)
        assert result.exit_code == EXIT_USAGE, bad
        assert result.stdout == ""
        assert result.stderr == (
            "facematch: error: --scheduler takes a Dask scheduler's address (tcp://HOST:PORT, "
            f"e.g. tcp://10.0.0.1:8786) or local:N, not '{bad}'\n"
        )
    address = f"tcp://127.0.0.1:{free_port()}"
    result = run(known_files, unknown, *cache, "--scheduler", address)
    assert result.exit_code == EXIT_FATAL
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(
        f"facematch: error: cannot reach the Dask scheduler at {address}: "
    )


def test_without_the_extra_scheduler_names_it(
    known_files: Path, unknown: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # find_spec: not installed
    result = run(known_files, unknown, "--scheduler", "local:2")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        "facematch: error: --scheduler needs Dask: pip install 'facematch[dask]'\n"
    )


@pytest.mark.parametrize("bad", ["local:0", "local:two", "local:"])
def test_a_malformed_local_cluster_is_a_usage_error(
    bad: str, known_files: Path, unknown: Path
) -> None:
    result = run(known_files, unknown, "--scheduler", bad)
    assert result.exit_code == EXIT_USAGE
    assert "local:N needs a number of worker processes" in result.stderr


def test_help_and_import_load_no_dask() -> None:
    code = (
        "import sys, facematch\n"
        "from facematch.cli import run\n"
        "assert run(['--help']) == 0 and run(['evaluate', '--help']) == 0\n"
        "loaded = {'dask', 'distributed'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "--scheduler ADDRESS" in done.stdout


def many_photos(folder: Path, copies: int, photo: str = "obama2.jpg") -> Path:
    """Distinct files of a real face (so no cache entry serves another): work for a while."""
    from PIL import Image

    folder.mkdir()
    portrait = Image.open(Path(__file__).parent / "data" / photo)
    for i in range(copies):
        portrait.rotate(0.5 * i).save(folder / f"{i:03d}.jpg", quality=92)
    return folder


def process_group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs process groups")
def test_ctrl_c_stops_the_cluster_and_leaves_the_cache_consistent(
    tmp_path: Path, known_files: Path
) -> None:
    photos = many_photos(tmp_path / "many", 10)
    cache = tmp_path / "cache"
    command = [
        sys.executable,
        "-m",
        "facematch",
        str(known_files),
        str(photos),
        "--format",
        "jsonl",
    ]
    job = subprocess.Popen(
        [*command, "--cache-dir", str(cache), "--scheduler", "local:2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, as a terminal's Ctrl-C reaches a job
        # As from a terminal: Ctrl-C not ignored, even when this test runs in the
        # background of a shell (which starts it with SIGINT ignored, and children
        # inherit that).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert job.stdout is not None and job.stdout.readline(), "the run answered nothing"
    os.killpg(job.pid, signal.SIGINT)
    _, err = job.communicate(timeout=120)
    assert job.returncode == EXIT_INTERRUPTED
    assert err.endswith("facematch: interrupted\n") and "Traceback" not in err, err
    deadline = time.monotonic() + 20
    while process_group_alive(job.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not process_group_alive(job.pid), "a worker outlived the run"
    info = run("cache", "info", "--cache-dir", cache).stdout
    kept = int(info.split("images: ")[1].split()[0])
    assert 3 <= kept < 12, info  # the known photos and at least one answer, not all
    resumed = run(known_files, photos, "--format=jsonl", "--cache-dir", cache, "-j", "1")
    fresh = run(known_files, photos, "--format=jsonl", "--no-cache", "-j", "1")
    assert resumed.exit_code == fresh.exit_code == 0, resumed.stderr
    assert resumed.stdout == fresh.stdout


def test_a_worker_that_cannot_see_the_model_converts_the_same_one(tmp_path: Path) -> None:
    import numpy as np

    from facematch.encode import engines
    from facematch.errors import ModelError

    here = engines.prepare("onnx", tmp_path / "client-cache")
    assert here.name == "onnx" and here.onnx_model is not None
    chips = np.random.default_rng(0).integers(0, 256, (2, 150, 150, 3), dtype=np.uint8)
    elsewhere = engines.EngineChoice(
        "onnx", str(tmp_path / "not-on-this-machine.onnx"), here.onnx_sha256
    )
    assert np.array_equal(
        engines.encoder(elsewhere).encode(chips), engines.encoder(here).encode(chips)
    )
    foreign = engines.EngineChoice("onnx", str(tmp_path / "gone.onnx"), "0" * 64)
    with pytest.raises(ModelError, match="is not the one this run uses"):
        engines.encoder(foreign)


# --- every worker lost mid-run (issue 26) -----------------------------------------------

DASK_CLI = Path(sys.executable).with_name("dask")


def start_worker(scheduler_file: Path) -> subprocess.Popen[bytes]:
    """One ``dask worker`` process without a nanny: killed, it stays dead."""
    command = [str(DASK_CLI), "worker", "--scheduler-file", str(scheduler_file)]
    return subprocess.Popen(
        [*command, "--no-nanny", "--nthreads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for_workers(address: str, count: int) -> None:
    with distributed.Client(address, timeout=30) as client:
        client.wait_for_workers(count, timeout=60)


@pytest.fixture
def lone_worker(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """A scheduler and one worker, each a process of its own, as ``dask`` starts them."""
    if not DASK_CLI.exists():
        pytest.skip("no dask command beside this Python")
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen(
        [str(DASK_CLI), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(scheduler_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    workers: list[subprocess.Popen[bytes]] = []
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        workers.append(start_worker(scheduler_file))
        wait_for_workers(address, 1)
        yield address, scheduler_file, workers[0]
    finally:
        for process in [*workers, scheduler]:
            process.kill()
            process.wait()


@pytest.fixture
def jobs() -> Iterator[list[subprocess.Popen[str]]]:
    """Runs to stop at the end of a test, whatever happened."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for job in started:
        job.kill()
        job.communicate()


def start_match(
    known: Path, photos: Path, address: str, out: Path, wait: float
) -> subprocess.Popen[str]:
    """``facematch KNOWN PHOTOS --scheduler ADDRESS``, rows to ``out``, waiting ``wait`` s
    for a worker."""
    env = {**os.environ, "FACEMATCH_DASK_WORKERS_TIMEOUT": str(wait)}
    with out.open("w") as rows:
        return subprocess.Popen(
            [sys.executable, "-m", "facematch", str(known), str(photos), "--scheduler", address,
             "--format", "jsonl", "--no-cache"],
            stdout=rows, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip


def first_row(out: Path, job: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not out.read_text() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert out.read_text() and job.poll() is None, "no row before the end"


@pytest.mark.slow
def test_losing_every_worker_mid_run_ends_after_the_wait(
    lone_worker: tuple[str, Path, subprocess.Popen[bytes]],
    known_files: Path,
    tmp_path: Path,
    jobs: list[subprocess.Popen[str]],
) -> None:
    address, _, worker = lone_worker
    photos = many_photos(tmp_path / "many", 120, "obama_small.jpg")
    out = tmp_path / "rows.jsonl"
    job = start_match(known_files, photos, address, out, wait=3)
    jobs.append(job)
    first_row(out, job)
    worker.kill()
    killed = time.monotonic()
    _, err = job.communicate(timeout=120)
    waited = time.monotonic() - killed
    assert job.returncode == EXIT_FATAL, err
    assert err == (
        f"facematch: warning: the Dask scheduler at {address} has no workers left; "
        "waiting up to 3 s for one\n"
        f"facematch: error: the Dask scheduler at {address} lost every worker and none "
        f"joined within 3 s (start some with: dask worker {address})\n"
    )
    assert 3 <= waited < 30
    rows = [json.loads(line) for line in out.read_text().splitlines()]  # whole rows, kept
    assert 1 <= len(rows) < 120 and all(r["status"] == "ok" for r in rows)


@pytest.mark.slow
def test_a_worker_joining_within_the_wait_finishes_the_run(
    lone_worker: tuple[str, Path, subprocess.Popen[bytes]],
    known_files: Path,
    tmp_path: Path,
    jobs: list[subprocess.Popen[str]],
) -> None:
    address, scheduler_file, worker = lone_worker
    photos = many_photos(tmp_path / "many", 60, "obama_small.jpg")
    out = tmp_path / "rows.jsonl"
    job = start_match(known_files, photos, address, out, wait=120)
    jobs.append(job)
    first_row(out, job)
    worker.kill()
    assert job.stderr is not None
    assert "has no workers left; waiting up to 120 s" in job.stderr.readline()
    replacement = start_worker(scheduler_file)
    try:
        _, err = job.communicate(timeout=180)
    finally:
        replacement.kill()
        replacement.wait()
    assert job.returncode == 0, err
    assert err == "facematch: warning: a Dask worker joined; going on\n"
    assert len(out.read_text().splitlines()) == 60
