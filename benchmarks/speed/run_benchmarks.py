"""Time facematch against face_recognition 1.3.0's CLI on the same photos.

    pip install psutil                         # the one dependency besides the stdlib
    python -m benchmarks.speed.make_datasets   # builds benchmarks/data (once)
    python -m benchmarks.speed.run_benchmarks [--rounds 3] [--fr-venv DIR] [--facematch PATH]
                                              [--json out.json]

Benchmarks, each repeated ``--rounds`` times with the two tools interleaved
(facematch, face_recognition, facematch, face_recognition, ...); the tables give
medians:

phone       ``facematch --no-cache known unknown`` against
            ``face_recognition --cpus -1 known unknown`` on the 12 MP photos, and
            whether both name the same people in every photo.
portraits   the same on a few hundred small portraits.
warm        facematch with a fresh ``--cache-dir`` (a temporary folder) per round:
            one cold run that fills the cache, then one warm run that reads it.
help        ``facematch --help`` against ``face_recognition --help`` (``--help-rounds``).

Both tools run from the repository root with stdout on a pseudo-terminal, so that they
write it line by line as in a shell (see TerminalOutput), without PYTHONUNBUFFERED and
PYTHONDONTWRITEBYTECODE and with PYTHONSAFEPATH=1 (see tool_environment); stderr is
not compared.
Every run's wall time is measured from start to exit, and its peak memory as the
largest sum of the resident set sizes (RSS) of the process and all its descendants
(worker processes), sampled every 20 ms with psutil. Pages shared between processes
count once per process, as ``ps`` would show them.

face_recognition comes from ``--fr-venv``. Without it, ``benchmarks/.venv-fr`` is used,
and created when missing with ``python3 -m venv`` and pip (dlib-bin,
face-recognition-models, click, numpy, pillow, setuptools<81, then
face-recognition==1.3.0 without its dependencies, since it would build dlib from source).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import pty
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

try:
    import psutil
except ImportError:  # pragma: no cover - main says what to install
    psutil = None

from benchmarks import harness
from benchmarks.harness import REPO, median

DEFAULT_FR_VENV = REPO / "benchmarks" / ".venv-fr"
FR_PACKAGES = ["dlib-bin", "face-recognition-models", "click", "numpy", "pillow", "setuptools<81"]
FR_PACKAGE = "face-recognition==1.3.0"
SAMPLE_SECONDS = 0.02
TREE_REFRESH = 5  # list the process tree every 5th sample (100 ms)
DROPPED_ENVIRONMENT = ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")
SAFE_PATH = {"PYTHONSAFEPATH": "1"}
BENCHMARKS = ("phone", "portraits", "warm", "help")
DATASETS = {
    "phone": "phone photos",
    "portraits": "small portraits",
}
FACEMATCH = "facematch"
FACE_RECOGNITION = "face_recognition"
CACHED = "facematch --cache-dir"


# ---------------------------------------------------------------------------
# running one command


@dataclass
class Run:
    """One timed run of one command."""

    benchmark: str
    tool: str
    round: int
    command: list[str]
    seconds: float
    peak_rss: int  # bytes, summed over the process tree
    exit_code: int
    timed_out: bool = False
    stdout: str = field(default="", repr=False)
    stderr_tail: str = field(default="", repr=False)


class TreeMemory:
    """The peak of the summed RSS of a process and its descendants.

    Listing descendants scans all of /proc (about 2 ms), so the list is refreshed every
    TREE_REFRESH samples only; the RSS of the processes known is read at every sample.
    """

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.processes = [self.root]
        self.samples = 0
        self.peak = 0

    def sample(self) -> None:
        if self.samples % TREE_REFRESH == 0:
            with contextlib.suppress(psutil.Error):
                self.processes = [self.root, *self.root.children(recursive=True)]
        self.samples += 1
        total = 0
        for process in self.processes:
            with contextlib.suppress(psutil.Error):  # gone, or a zombie
                total += process.memory_info().rss
        self.peak = max(self.peak, total)


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process group the command runs in (started with a new session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class TerminalOutput:
    """A pseudo-terminal for a command's stdout, read into memory by a thread.

    On a terminal Python writes stdout line by line, as a user running the tool sees
    it. Into a pipe or file it would write 8 KB blocks instead: face_recognition's
    pool workers then cut each other's lines at block boundaries (and with
    PYTHONUNBUFFERED, between a name and its newline).
    """

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        attributes = termios.tcgetattr(self.slave)
        attributes[1] &= ~termios.OPOST  # keep "\n" as is, no "\r\n"
        termios.tcsetattr(self.slave, termios.TCSANOW, attributes)
        self.chunks: list[bytes] = []
        self.finishing = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> None:
        """Call once the command has its copy of the slave end."""
        os.close(self.slave)
        self.thread.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                if self.finishing.is_set():
                    return  # the command has exited and nothing more came
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every process holding the slave end has closed it
                return
            if not data:
                return
            self.chunks.append(data)

    def text(self) -> str:
        """Everything written, once the command has exited."""
        self.finishing.set()
        self.thread.join()
        os.close(self.master)
        return b"".join(self.chunks).decode("utf-8", "replace")


def run_measured(
    command: Sequence[str],
    *,
    benchmark: str,
    tool: str,
    round_number: int,
    timeout: float,
    env: dict[str, str],
) -> Run:
    """Run ``command`` from the repository root; time it and sample its memory.

    stdout goes to a pseudo-terminal (see TerminalOutput), stderr to a file; stdin is
    empty. The command runs in a session of its own, so that a timeout kills its
    workers too.
    """
    with tempfile.TemporaryFile() as err:
        out = TerminalOutput()
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                list(command),
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out.slave,
                stderr=err,
                start_new_session=True,
            )
        finally:
            out.start()
        memory: TreeMemory | None = None
        stop = threading.Event()

        def sample() -> None:
            nonlocal memory
            try:
                memory = TreeMemory(proc.pid)
            except psutil.Error:
                return
            while True:
                memory.sample()
                if stop.wait(SAMPLE_SECONDS):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timed_out = False
        try:
            exit_code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_tree(proc)
            exit_code = proc.returncode
        except BaseException:
            kill_tree(proc)
            raise
        finally:
            seconds = time.perf_counter() - start
            stop.set()
            sampler.join()
            stdout = out.text()
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    return Run(
        benchmark=benchmark,
        tool=tool,
        round=round_number,
        command=list(command),
        seconds=seconds,
        peak_rss=memory.peak if memory is not None else 0,
        exit_code=exit_code,
        timed_out=timed_out,
        stdout=stdout,
        stderr_tail="\n".join(stderr.strip().splitlines()[-5:]),
    )


# ---------------------------------------------------------------------------
# the tools


def find_facematch(given: str | None) -> Path:
    """``--facematch``, else ``facematch`` on PATH, else the one next to this Python."""
    if given:
        found = shutil.which(given)
    else:
        sibling = Path(sys.executable).parent / FACEMATCH
        found = shutil.which(FACEMATCH) or shutil.which(str(sibling))
    if not found:
        raise SystemExit(
            f"run_benchmarks: cannot find facematch ({given or 'not on PATH'}); "
            "install it (pip install -e .) or pass --facematch"
        )
    return Path(found).absolute()


def create_fr_venv(venv: Path) -> None:
    """A virtual environment with face_recognition 1.3.0 and prebuilt dlib."""
    python3 = shutil.which("python3") or sys.executable
    print(f"creating {venv} for face_recognition 1.3.0 ...", file=sys.stderr)
    subprocess.run([python3, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, *FR_PACKAGES], check=True)
    subprocess.run([*pip, "--no-deps", FR_PACKAGE], check=True)


def find_face_recognition(venv: Path) -> Path:
    executable = venv / "bin" / FACE_RECOGNITION
    if not venv.exists():
        create_fr_venv(venv)
    if not executable.is_file():
        raise SystemExit(
            f"run_benchmarks: {executable} is missing; is {venv} a face_recognition venv?"
        )
    return executable.absolute()


def script_python(script: Path) -> str | None:
    """The interpreter named on a console script's ``#!`` line."""
    try:
        with script.open("rb") as handle:
            first = handle.readline().decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = shlex.split(first[2:])
    return words[0] if words else None


def capture(command: Sequence[str], first_on_path: Path | None = None) -> str:
    """A short command's stdout, or a note that it failed; ``first_on_path`` goes first
    on the command's PYTHONPATH."""
    env = dict(os.environ, **SAFE_PATH)
    if first_on_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(first_on_path), env.get("PYTHONPATH")])
        )
    try:
        done = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"({err})"
    return done.stdout.strip() if done.returncode == 0 else f"(exit {done.returncode})"


def facematch_source(facematch: Path) -> Path | None:
    """The folder of the facematch package that ``facematch`` runs.

    A Python script imports from its own folder first, then from its interpreter's
    path, so this asks the script's interpreter with the script's folder in front.
    """
    python = script_python(facematch)
    if python is None:
        return None
    code = "import os, facematch; print(os.path.dirname(os.path.abspath(facematch.__file__)))"
    found = capture([python, "-c", code], first_on_path=facematch.parent)
    return Path(found) if found and not found.startswith("(") else None


def source_digest(folder: Path | None) -> str | None:
    """A digest of every .py file under ``folder``: did the code change during the run?"""
    if folder is None:
        return None
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with contextlib.suppress(OSError):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def machine_info(facematch: Path, face_recognition: Path) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    version = "import sys; print(sys.version.split()[0])"
    fm_python = script_python(facematch)
    fr_python = str(face_recognition.parent / "python")
    fr_versions = (
        "import importlib.metadata as m, sys; import dlib; "
        "print(f\"face_recognition {m.version('face_recognition')}, dlib {dlib.__version__}\")"
    )
    source = facematch_source(facematch)
    git = (
        capture(["git", "-C", str(source.parent), "describe", "--always", "--dirty"])
        if source
        else ""
    )
    return {
        "cpu": cpu,
        "facematch_source": str(source) if source else None,
        "facematch_git": git if git and not git.startswith("(") else None,
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_bytes": psutil.virtual_memory().total,
        "os": platform.platform(),
        "facematch_version": capture([str(facematch), "--version"]),
        "facematch_python": capture([fm_python, "-c", version]) if fm_python else "?",
        "face_recognition_version": capture([fr_python, "-c", fr_versions]),
        "face_recognition_python": capture([fr_python, "-c", version]),
    }


# ---------------------------------------------------------------------------
# comparing outputs


def parse_names(stdout: str, unknown: Path) -> tuple[dict[str, list[str]], list[str]]:
    """``path,name`` lines as {path relative to ``unknown``: sorted names}, and other lines.

    Lines starting with WARNING (face_recognition's notes about known photos) are
    skipped; lines that are not ``path,name`` with an existing photo are returned apart.
    """
    names: dict[str, set[str]] = {}
    unparsed: list[str] = []
    for line in stdout.splitlines():
        line = line.rstrip("\r")
        if not line.strip() or line.startswith("WARNING"):
            continue
        path, comma, name = line.rpartition(",")
        if not comma or not path:
            unparsed.append(line)
            continue
        full = Path(path) if Path(path).is_absolute() else REPO / path
        if not full.is_file():  # e.g. two processes' lines run into each other
            unparsed.append(line)
            continue
        key = os.path.relpath(os.path.normpath(full), unknown)
        names.setdefault(key, set()).add(name)
    return {path: sorted(found) for path, found in sorted(names.items())}, unparsed


def differences(
    first: dict[str, list[str]],
    second: dict[str, list[str]],
    labels: tuple[str, str] = (FACEMATCH, FACE_RECOGNITION),
) -> list[dict[str, Any]]:
    """Photos whose set of names differs between two outputs (None: photo not listed)."""
    out = []
    for path in sorted(set(first) | set(second)):
        if first.get(path) != second.get(path):
            out.append({"path": path, labels[0]: first.get(path), labels[1]: second.get(path)})
    return out


def merge_rounds(per_round: list[tuple[int, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """One entry per distinct difference, with the rounds it showed up in."""
    merged: dict[str, dict[str, Any]] = {}
    for round_number, found in per_round:
        for difference in found:
            key = json.dumps(difference, sort_keys=True)
            merged.setdefault(key, {**difference, "rounds": []})["rounds"].append(round_number)
    return sorted(merged.values(), key=lambda d: (d["path"], d["rounds"]))


# ---------------------------------------------------------------------------
# reporting


def fmt_seconds(value: float) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:.3f} s" if value < 1 else f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def fmt_time_cell(values: Sequence[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return fmt_seconds(values[0])
    return (
        f"{fmt_seconds(median(values))} ({fmt_seconds(min(values))} - {fmt_seconds(max(values))})"
    )


def fmt_bytes(value: float) -> str:
    if value != value or value <= 0:
        return "-"
    mib = value / 2**20
    return f"{mib / 1024:.2f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


def fmt_ratio(numerator: float, denominator: float) -> str:
    if not denominator or numerator != numerator or denominator != denominator:
        return "-"
    return f"{numerator / denominator:.2f}x"


def fmt_names(names: list[str] | None) -> str:
    return "(photo not listed)" if names is None else ", ".join(names)


def fmt_rounds(rounds: list[int], comparison: dict[str, Any]) -> str:
    if rounds == comparison["rounds"]:
        return "every round" if len(rounds) > 1 else f"round {rounds[0]}"
    return ("round " if len(rounds) == 1 else "rounds ") + ", ".join(map(str, rounds))


def count_photos(comparison: dict[str, Any]) -> int:
    return len({d["path"] for d in comparison["differences"]})


def relative(path: Path) -> str:
    """``path`` as typed from the repository root where possible."""
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def display(command: Sequence[str]) -> str:
    return shlex.join(command)


# ---------------------------------------------------------------------------
# the benchmark


@dataclass
class Plan:
    facematch: Path
    face_recognition: Path
    data: Path
    rounds: int
    help_rounds: int
    benchmarks: list[str]
    timeout: float
    env: dict[str, str]

    def folders(self, dataset: str) -> tuple[str, str]:
        base = self.data / dataset
        return relative(base / "known"), relative(base / "unknown")

    def match_commands(self, dataset: str) -> dict[str, list[str]]:
        known, unknown = self.folders(dataset)
        return {
            FACEMATCH: [str(self.facematch), "--no-cache", known, unknown],
            FACE_RECOGNITION: [str(self.face_recognition), "--cpus", "-1", known, unknown],
        }

    def warm_datasets(self) -> list[str]:
        """The photo sets of the cache benchmark: those chosen with --only, else both."""
        return [d for d in DATASETS if d in self.benchmarks] or list(DATASETS)

    def help_commands(self) -> dict[str, list[str]]:
        return {
            FACEMATCH: [str(self.facematch), "--help"],
            FACE_RECOGNITION: [str(self.face_recognition), "--help"],
        }


class Bench:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.runs: list[Run] = []

    def run(self, command: Sequence[str], benchmark: str, tool: str, round_number: int) -> Run:
        run = run_measured(
            command,
            benchmark=benchmark,
            tool=tool,
            round_number=round_number,
            timeout=self.plan.timeout,
            env=self.plan.env,
        )
        self.runs.append(run)
        status = "" if run.exit_code == 0 else f", EXIT {run.exit_code}"
        if run.timed_out:
            status += ", TIMED OUT"
        print(
            f"  {benchmark:<16} {tool:<17} round {round_number}: "
            f"{fmt_seconds(run.seconds)}, {fmt_bytes(run.peak_rss)}{status}",
            file=sys.stderr,
            flush=True,
        )
        return run

    def warm_up(self) -> None:
        """One untimed run of each tool, so model files and imports are in the page cache."""
        known, unknown = self.plan.folders("portraits")
        photo = sorted(Path(REPO / unknown).iterdir())[0]
        print("warm-up (not counted)", file=sys.stderr)
        for tool, command in (
            (FACEMATCH, [str(self.plan.facematch), "--no-cache", known, relative(photo)]),
            (FACE_RECOGNITION, [str(self.plan.face_recognition), known, relative(photo)]),
        ):
            run = run_measured(
                command,
                benchmark="warm-up",
                tool=tool,
                round_number=0,
                timeout=self.plan.timeout,
                env=self.plan.env,
            )
            if run.exit_code != 0:
                raise SystemExit(
                    f"run_benchmarks: warm-up of {tool} failed (exit {run.exit_code}):\n"
                    f"{display(command)}\n{run.stderr_tail}"
                )

    def execute(self) -> None:
        plan = self.plan
        self.warm_up()
        datasets = [d for d in DATASETS if d in plan.benchmarks]
        warm = "warm" in plan.benchmarks
        for round_number in range(1, plan.rounds + 1):
            print(f"round {round_number}/{plan.rounds}", file=sys.stderr)
            for dataset in datasets:
                for tool, command in plan.match_commands(dataset).items():
                    self.run(command, dataset, tool, round_number)
            if warm:
                for dataset in plan.warm_datasets():
                    self.warm_round(dataset, round_number)
        if "help" in plan.benchmarks:
            print(f"--help x {plan.help_rounds}", file=sys.stderr)
            for round_number in range(1, plan.help_rounds + 1):
                for tool, command in plan.help_commands().items():
                    self.run(command, "help", tool, round_number)

    def warm_commands(self, dataset: str, cache: str) -> list[str]:
        known, unknown = self.plan.folders(dataset)
        return [str(self.plan.facematch), "--cache-dir", cache, known, unknown]

    def warm_round(self, dataset: str, round_number: int) -> None:
        with tempfile.TemporaryDirectory(prefix="facematch-bench-cache-") as cache:
            command = self.warm_commands(dataset, cache)
            self.run(command, f"{dataset}-cold", FACEMATCH, round_number)
            self.run(command, f"{dataset}-warm", FACEMATCH, round_number)

    def select(self, benchmark: str, tool: str) -> list[Run]:
        return [r for r in self.runs if r.benchmark == benchmark and r.tool == tool]


def summarize(bench: Bench) -> dict[str, Any]:
    """Medians, naming differences, unstable answers and failures, as plain data."""
    plan = bench.plan
    summary: dict[str, Any] = {"timings": {}, "names": {}, "failures": [], "unstable": []}
    answers: dict[tuple[str, str], dict[int, dict[str, list[str]]]] = {}
    for run in bench.runs:
        entry = summary["timings"].setdefault(
            f"{run.benchmark}/{run.tool}", {"seconds": [], "peak_rss": [], "exit_codes": []}
        )
        entry["seconds"].append(run.seconds)
        entry["peak_rss"].append(run.peak_rss)
        entry["exit_codes"].append(run.exit_code)
        failure = {"benchmark": run.benchmark, "tool": run.tool, "round": run.round}
        if run.exit_code != 0 or run.timed_out:
            summary["failures"].append(
                {
                    **failure,
                    "exit_code": run.exit_code,
                    "timed_out": run.timed_out,
                    "command": display(run.command),
                    "stderr_tail": run.stderr_tail,
                }
            )
        if run.benchmark == "help":
            continue
        dataset = run.benchmark.split("-")[0]
        unknown = (REPO / plan.folders(dataset)[1]).resolve()
        parsed, unparsed = parse_names(run.stdout, unknown)
        if unparsed:
            summary["failures"].append({**failure, "unparsed_lines": unparsed[:10]})
        answers.setdefault((run.benchmark, run.tool), {})[run.round] = parsed
    for entry in summary["timings"].values():
        entry["median_seconds"] = median(entry["seconds"])
        entry["median_peak_rss"] = median(entry["peak_rss"])

    for dataset in DATASETS:
        photos = len(list((REPO / plan.folders(dataset)[1]).iterdir()))
        ours = answers.get((dataset, FACEMATCH), {})
        theirs = answers.get((dataset, FACE_RECOGNITION), {})
        rounds = sorted(set(ours) & set(theirs))
        if rounds:
            summary["names"][dataset] = {
                "photos": photos,
                "rounds": rounds,
                "labels": [FACEMATCH, FACE_RECOGNITION],
                "differences": merge_rounds([(r, differences(ours[r], theirs[r])) for r in rounds]),
            }
        labels = (CACHED, f"{FACEMATCH} --no-cache")
        per_round = []
        for kind in ("cold", "warm"):
            cached = answers.get((f"{dataset}-{kind}", FACEMATCH), {})
            for r in sorted(set(cached) & set(ours)):
                found = differences(cached[r], ours[r], labels)
                per_round.append((r, [{**d, "run": kind} for d in found]))
        if per_round:
            summary["names"][f"{dataset}-cache"] = {
                "photos": photos,
                "rounds": sorted({r for r, _ in per_round}),
                "labels": list(labels),
                "differences": merge_rounds(per_round),
            }

    for (benchmark, tool), by_round in answers.items():
        first = min(by_round)
        for r in sorted(by_round):
            found = differences(by_round[r], by_round[first], (f"round {r}", f"round {first}"))
            if r != first and found:
                summary["unstable"].append(
                    {
                        "benchmark": benchmark,
                        "tool": tool,
                        "round": r,
                        "first_round": first,
                        "differences": found,
                    }
                )
    return summary


def render(bench: Bench, summary: dict[str, Any], machine: dict[str, Any]) -> str:
    plan = bench.plan
    timings = summary["timings"]
    lines: list[str] = []

    def get(benchmark: str, tool: str) -> dict[str, Any]:
        return dict(timings.get(f"{benchmark}/{tool}", {"seconds": [], "peak_rss": []}))

    def med(benchmark: str, tool: str, what: str = "seconds") -> float:
        return median(get(benchmark, tool)[what])

    lines.append("## facematch vs face_recognition 1.3.0")
    lines.append("")
    lines.append(
        f"Medians of {plan.rounds} interleaved rounds ({plan.help_rounds} for --help); "
        "times are wall clock, (min - max) in brackets; speed-up = face_recognition time / "
        "facematch time; peak RSS summed over each tool's process tree."
    )
    lines.append("")
    lines += harness.header_lines(
        "benchmark",
        "facematch",
        "face_recognition",
        "speed-up",
        "facematch peak RSS",
        "face_recognition peak RSS",
        "same names",
    )
    for dataset, title in DATASETS.items():
        if dataset not in plan.benchmarks:
            continue
        known, unknown = plan.folders(dataset)
        n_known = len(list((REPO / known).iterdir()))
        n_unknown = len(list((REPO / unknown).iterdir()))
        names = summary["names"].get(dataset)
        if names is None:
            same = "-"
        elif names["differences"]:
            same = f"no: {count_photos(names)} of {names['photos']} photos differ"
        else:
            same = f"yes ({names['photos']} photos)"
        lines.append(
            harness.row_line(
                f"{title} ({n_known} known, {n_unknown} unknown)",
                fmt_time_cell(get(dataset, FACEMATCH)["seconds"]),
                fmt_time_cell(get(dataset, FACE_RECOGNITION)["seconds"]),
                fmt_ratio(med(dataset, FACE_RECOGNITION), med(dataset, FACEMATCH)),
                fmt_bytes(med(dataset, FACEMATCH, "peak_rss")),
                fmt_bytes(med(dataset, FACE_RECOGNITION, "peak_rss")),
                same,
            )
        )
    if "help" in plan.benchmarks:
        lines.append(
            harness.row_line(
                "--help",
                fmt_time_cell(get("help", FACEMATCH)["seconds"]),
                fmt_time_cell(get("help", FACE_RECOGNITION)["seconds"]),
                fmt_ratio(med("help", FACE_RECOGNITION), med("help", FACEMATCH)),
                fmt_bytes(med("help", FACEMATCH, "peak_rss")),
                fmt_bytes(med("help", FACE_RECOGNITION, "peak_rss")),
                "-",
            )
        )

    if "warm" in plan.benchmarks:
        lines.append("")
        lines.append(
            "### facematch encoding cache (fresh --cache-dir per round: cold run, then warm run)"
        )
        lines.append("")
        lines += harness.header_lines(
            "photos",
            "--no-cache",
            "cold",
            "warm",
            "cold / warm",
            "face_recognition / warm",
            "warm peak RSS",
            "warm output = --no-cache output",
        )
        for dataset, title in DATASETS.items():
            cold, warm = f"{dataset}-cold", f"{dataset}-warm"
            if not get(warm, FACEMATCH)["seconds"]:
                continue
            cache_names = summary["names"].get(f"{dataset}-cache")
            if cache_names is None:
                same = "-"
            elif cache_names["differences"]:
                same = f"no: {count_photos(cache_names)} photos differ"
            else:
                same = "yes"
            lines.append(
                harness.row_line(
                    title,
                    fmt_time_cell(get(dataset, FACEMATCH)["seconds"]),
                    fmt_time_cell(get(cold, FACEMATCH)["seconds"]),
                    fmt_time_cell(get(warm, FACEMATCH)["seconds"]),
                    fmt_ratio(med(cold, FACEMATCH), med(warm, FACEMATCH)),
                    fmt_ratio(med(dataset, FACE_RECOGNITION), med(warm, FACEMATCH)),
                    fmt_bytes(med(warm, FACEMATCH, "peak_rss")),
                    same,
                )
            )

    lines.append("")
    lines.append("### Machine")
    lines.append("")
    cores = f"{machine['logical_cores']} logical"
    if machine["physical_cores"]:
        cores += f", {machine['physical_cores']} physical"
    if machine["usable_cores"] and machine["usable_cores"] != machine["logical_cores"]:
        cores += f", {machine['usable_cores']} usable"
    lines.append(f"- CPU: {machine['cpu']} ({cores} cores)")
    lines.append(f"- RAM: {fmt_bytes(machine['ram_bytes'])}")
    lines.append(f"- OS: {machine['os']}")
    if "load_before" in machine:
        lines.append(
            f"- load average (1 min) before / after: {machine['load_before']:.2f} / "
            f"{machine['load_after']:.2f} (a busy machine makes every time longer)"
        )
    where = machine["facematch_source"] or "?"
    if machine["facematch_git"]:
        where += f", git {machine['facematch_git']}"
    lines.append(
        f"- {machine['facematch_version']}, Python {machine['facematch_python']} ({where})"
    )
    if machine.get("source_digest_before") != machine.get("source_digest_after"):
        lines.append(
            "- WARNING: facematch's source files changed while the benchmark ran; "
            "the rounds may have run different code"
        )
    lines.append(
        f"- {machine['face_recognition_version']}, Python {machine['face_recognition_python']}"
    )

    lines.append("")
    lines.append(
        "### Commands (run from the repository root, stdout on a pseudo-terminal, "
        f"without {' and '.join(DROPPED_ENVIRONMENT)}, with PYTHONSAFEPATH=1 and "
        "PYTHONPYCACHEPREFIX=a temp folder)"
    )
    lines.append("")
    lines.append("```")
    for dataset in DATASETS:
        if dataset in plan.benchmarks:
            lines.extend(display(c) for c in plan.match_commands(dataset).values())
    if "warm" in plan.benchmarks:
        for dataset in plan.warm_datasets():
            command = display(bench.warm_commands(dataset, "CACHE_DIR"))
            lines.append(f"{command}  # cold, then warm; CACHE_DIR: a new temp folder per round")
    if "help" in plan.benchmarks:
        lines.extend(display(c) for c in plan.help_commands().values())
    lines.append("```")

    lines.append("")
    lines.append("### Naming differences")
    lines.append("")
    any_difference = False
    for dataset, names in summary["names"].items():
        first, second = names["labels"]
        for diff in names["differences"]:
            any_difference = True
            run = f" ({diff['run']} run)" if "run" in diff else ""
            lines.append(
                f"- {dataset}: `{diff['path']}`: {first}{run} {fmt_names(diff[first])}; "
                f"{second} {fmt_names(diff[second])} ({fmt_rounds(diff['rounds'], names)})"
            )
    if not summary["names"]:
        lines.append("(no photo benchmark ran)")
    elif not any_difference:
        lines.append("None: both tools name the same set of people in every photo, every round.")
    if summary["unstable"]:
        lines.append("")
        lines.append("Answers that changed from one round to the next:")
        lines.append("")
    for unstable in summary["unstable"]:
        now, then = f"round {unstable['round']}", f"round {unstable['first_round']}"
        for diff in unstable["differences"]:
            lines.append(
                f"- {unstable['benchmark']} {unstable['tool']}: `{diff['path']}`: "
                f"{then} {fmt_names(diff[then])}, {now} {fmt_names(diff[now])}"
            )

    if summary["failures"]:
        lines.append("")
        lines.append("### Failures")
        lines.append("")
        for failure in summary["failures"]:
            if "unparsed_lines" in failure:
                lines.append(
                    f"- {failure['benchmark']} {failure['tool']} round {failure['round']}: "
                    f"unparsed output lines {failure['unparsed_lines']}"
                )
                continue
            what = "timed out" if failure["timed_out"] else f"exit status {failure['exit_code']}"
            lines.append(
                f"- {failure['benchmark']} {failure['tool']} round {failure['round']}: {what}: "
                f"`{failure['command']}`"
            )
            for line in failure["stderr_tail"].splitlines():
                lines.append(f"    {line}")
    return "\n".join(lines)


def tool_environment(pycache: Path) -> dict[str, str]:
    """This environment as a shell user's would be: buffered output, bytecode cached.

    PYTHONUNBUFFERED makes print() write a line and its newline separately, so pool
    workers interleave them; PYTHONDONTWRITEBYTECODE makes every run recompile the
    modules that have no .pyc yet. Bytecode goes to ``pycache`` (PYTHONPYCACHEPREFIX)
    rather than into the source trees; the warm-up run fills it. PYTHONSAFEPATH keeps
    the current folder (the repository root) off sys.path: Python 3.11's forkserver
    process, which imports the worker modules, would otherwise import this checkout's
    facematch/ rather than the one the ``--facematch`` command belongs to.
    """
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENVIRONMENT}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env.update(SAFE_PATH)
    return env


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = harness.parser(__doc__)
    parser.add_argument(
        "--fr-venv",
        type=Path,
        default=DEFAULT_FR_VENV,
        help="virtual environment with face_recognition 1.3.0 (default: benchmarks/.venv-fr, "
        "created when missing)",
    )
    parser.add_argument(
        "--facematch",
        default=None,
        help="the facematch command (default: facematch on PATH, else next to this Python)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=harness.DATA,
        help="the folder make_datasets wrote (default: benchmarks/data)",
    )
    harness.add_rounds(parser, 3, "rounds per benchmark (default 3)")
    parser.add_argument(
        "--help-rounds", type=int, default=10, help="rounds of the --help benchmark (default 10)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=BENCHMARKS,
        default=list(BENCHMARKS),
        help="run only these benchmarks (default: all)",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds before a run is killed (default 3600)"
    )
    harness.add_json(parser)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.help_rounds < 1:
        parser.error("--rounds and --help-rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if psutil is None:
        print("run_benchmarks: needs psutil (pip install psutil)", file=sys.stderr)
        return 2
    data: Path = args.data.resolve()
    missing = [
        relative(data / d / f)
        for d in DATASETS
        for f in ("known", "unknown")
        if not (data / d / f).is_dir()
    ]
    if missing:
        print(
            f"run_benchmarks: missing {', '.join(missing)}; "
            "run python -m benchmarks.speed.make_datasets",
            file=sys.stderr,
        )
        return 2
    facematch = find_facematch(args.facematch)
    face_recognition = find_face_recognition(args.fr_venv.absolute())
    machine = machine_info(facematch, face_recognition)
    with tempfile.TemporaryDirectory(prefix="facematch-bench-pycache-") as pycache:
        plan = Plan(
            facematch=facematch,
            face_recognition=face_recognition,
            data=data,
            rounds=args.rounds,
            help_rounds=args.help_rounds,
            benchmarks=list(args.only),
            timeout=args.timeout,
            env=tool_environment(Path(pycache)),
        )
        bench = Bench(plan)
        started = time.perf_counter()
        machine["load_before"] = os.getloadavg()[0]
        source = Path(machine["facematch_source"]) if machine["facematch_source"] else None
        machine["source_digest_before"] = source_digest(source)
        bench.execute()
        machine["load_after"] = os.getloadavg()[0]
        machine["source_digest_after"] = source_digest(source)
        total = time.perf_counter() - started
    summary = summarize(bench)
    print(render(bench, summary, machine))
    print(f"\n(whole benchmark: {total / 60:.1f} min)")
    if args.json is not None:
        report = {
            "machine": machine,
            "rounds": plan.rounds,
            "help_rounds": plan.help_rounds,
            "total_seconds": total,
            "commands": {
                **{d: plan.match_commands(d) for d in DATASETS if d in plan.benchmarks},
                "help": plan.help_commands(),
            },
            "runs": [{k: v for k, v in asdict(run).items() if k != "stdout"} for run in bench.runs],
            "summary": summary,
        }
        harness.write_json(args.json, report)
        print(f"raw numbers: {args.json}", file=sys.stderr)
    failed = bool(summary["failures"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
