"""What the benchmark scripts share: paths, arguments, timing, markdown tables, datasets.

A benchmark is a module in one of the kind folders (``speed/``, ``accuracy/``,
``scale/``) with a docstring, whose first line is its summary in ``python -m
benchmarks``, and a ``main(argv=None)``. It runs from the repository root as
``python -m benchmarks.KIND.NAME`` (or ``python -m benchmarks NAME``). Importing
one runs nothing: the work starts in ``main``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "benchmarks" / "data"  # what the benchmarks generate (git-ignored)
SHARED_FACES = REPO.parent / "shared" / "faces"  # the shared photos, beside the repository

CPU = time.process_time  # this process, every thread, user + system
WALL = time.perf_counter


# ---------------------------------------------------------------------------
# arguments


def summary(doc: str | None) -> str:
    """The first line of a docstring."""
    lines = (doc or "").strip().splitlines()
    return lines[0] if lines else ""


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser described by the first line of the benchmark's docstring."""
    return argparse.ArgumentParser(description=summary(doc))


def add_faces(
    arguments: argparse.ArgumentParser,
    *,
    required: bool = True,
    default: Path | None = SHARED_FACES,
) -> None:
    """``--faces``: the shared photo folder (lfw-dev/, people/, portraits/, scenes/, ...);
    when not ``required``, ``default`` (the shared/faces folder beside the repository)."""
    text = "the shared face photos (shared/faces)"
    if required:
        arguments.add_argument("--faces", type=Path, required=True, help=text)
    elif default == SHARED_FACES:
        text = "the shared face photos (default: the shared/faces folder beside the repository)"
        arguments.add_argument("--faces", type=Path, default=default, help=text)
    else:
        arguments.add_argument("--faces", type=Path, default=default, help=text)


def add_lfw(arguments: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--lfw``: the lfw-dev folder of the shared photos."""
    arguments.add_argument(
        "--lfw", type=Path, required=required, help="the lfw-dev folder (shared/faces/lfw-dev)"
    )


def add_embeddings(
    arguments: argparse.ArgumentParser,
    *aliases: str,
    required: bool = False,
    positional: bool = False,
) -> None:
    """``--embeddings NPZ`` (``args.embeddings``), the encoded faces of lfw-dev.

    ``aliases`` are the option's older names, still accepted; ``positional`` makes
    it the first positional argument instead.
    """
    text = "lfw-dev's faces encoded (lfw-dev-default.npz, from lfw_faces --save-faces)"
    if positional:
        arguments.add_argument("embeddings", type=Path, metavar="NPZ", help=text)
        return
    arguments.add_argument(
        "--embeddings", *aliases, type=Path, required=required, metavar="NPZ", help=text
    )


def add_rounds(arguments: argparse.ArgumentParser, default: int, help: str | None = None) -> None:
    """``--rounds N``: how many times each measurement runs (the tables give medians)."""
    text = help or f"rounds; the tables give medians (default {default})"
    arguments.add_argument("--rounds", type=int, default=default, help=text)


def add_jobs(
    arguments: argparse.ArgumentParser, default: int | None = None, help: str | None = None
) -> None:
    """``--jobs N``: worker processes."""
    text = help or ("worker processes" + (f" (default {default})" if default else ""))
    arguments.add_argument("--jobs", type=int, default=default, help=text)


def add_cache_dir(arguments: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--cache-dir DIR``: facematch's encoding cache, so that a second run encodes nothing."""
    arguments.add_argument(
        "--cache-dir",
        type=Path,
        required=required,
        default=None,
        help="facematch's encoding cache folder (a second run encodes nothing)",
    )


def add_json(
    arguments: argparse.ArgumentParser, help: str = "also save the raw numbers here"
) -> None:
    """``--json FILE``: the raw numbers, as JSON."""
    arguments.add_argument("--json", type=Path, default=None, help=help)


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


# ---------------------------------------------------------------------------
# timing


@dataclass
class Timing:
    """What a block cost: wall seconds, CPU seconds (user + system) of this process and
    of the child processes it waited for, and the peak RSS in MiB of the largest child
    waited for so far (``ru_maxrss`` of RUSAGE_CHILDREN)."""

    wall: float = 0.0
    cpu: float = 0.0
    children_cpu: float = 0.0
    children_peak_mb: float = 0.0


@contextmanager
def timed() -> Iterator[Timing]:
    """Time the block; the Timing is filled in when it ends."""
    timing = Timing()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, cpu = WALL(), CPU()
    try:
        yield timing
    finally:
        timing.wall = WALL() - wall
        timing.cpu = CPU() - cpu
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        timing.children_cpu = (after.ru_utime - children.ru_utime) + (
            after.ru_stime - children.ru_stime
        )
        timing.children_peak_mb = after.ru_maxrss / 1024


def run_timed(
    command: Sequence[str], **options: Any
) -> tuple[subprocess.CompletedProcess[Any], Timing]:
    """``subprocess.run(command, **options)`` (``check`` False unless given), timed:
    ``children_cpu`` is the command's CPU time, its workers' included."""
    options.setdefault("check", False)
    with timed() as timing:
        done = subprocess.run(list(command), **options)
    return done, timing


def measure(call: Callable[[], T], clock: Callable[[], float] = CPU) -> tuple[float, T]:
    """Seconds one call takes by ``clock`` (CPU by default), and what it returned."""
    start = clock()
    result = call()
    return clock() - start, result


def rounds(
    call: Callable[[], T], count: int, clock: Callable[[], float] = CPU
) -> tuple[list[float], T]:
    """Seconds of each of ``count`` calls (by ``clock``), and the last call's result."""
    if count < 1:
        raise ValueError("at least one round")
    times = []
    for _ in range(count):
        seconds, result = measure(call, clock)
        times.append(seconds)
    return times, result


def interleaved(
    calls: dict[str, Callable[[], object]], count: int, clock: Callable[[], float] = CPU
) -> dict[str, list[float]]:
    """Seconds of every call in every round, the calls taking turns within a round, so
    that a slow phase of a shared machine hits them all alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(count):
        for name, call in calls.items():
            times[name].append(measure(call, clock)[0])
    return times


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (VmHWM: unlike ru_maxrss, not
    carried over from the parent through fork and exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------
# child processes


def child_env(**extra: str) -> dict[str, str]:
    """This environment with the repository first on PYTHONPATH, so that a child
    imports this checkout's ``benchmarks`` and ``facematch`` from any folder."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def python_module(module: str, *args: str) -> list[str]:
    """The command that runs ``module`` as ``python -m`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


# ---------------------------------------------------------------------------
# markdown tables

ALIGN = {"l": "---", "r": "---:", "c": ":---:"}


def header_lines(*columns: str, align: str = "") -> list[str]:
    """A markdown table's header and rule; ``align`` has l, r or c per column (default l)."""
    marks = [ALIGN[a] for a in align.ljust(len(columns), "l")]
    return ["| " + " | ".join(columns) + " |", "|" + "".join(f" {m} |" for m in marks)]


def row_line(*cells: object) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def table_header(*columns: str, align: str = "") -> None:
    """Print a markdown table's header and rule."""
    print("\n".join(header_lines(*columns, align=align)))


def table_row(*cells: object) -> None:
    """Print one row of a markdown table (flushed: rows often come minutes apart)."""
    print(row_line(*cells), flush=True)


# ---------------------------------------------------------------------------
# datasets


def photos(folder: Path, pattern: str = "*.jpg") -> list[Path]:
    """Every file under ``folder`` (recursively) matching ``pattern``, sorted as text."""
    return sorted(folder.rglob(pattern), key=str)


def people_with(lfw: Path, min_photos: int) -> list[Path]:
    """The folders of lfw-dev's people/ (sorted) with at least ``min_photos`` photos."""
    return sorted(d for d in (lfw / "people").iterdir() if len(list(d.glob("*.jpg"))) >= min_photos)


def evenly_spaced(items: Sequence[T], count: int, offset: int = 0) -> list[T]:
    """``count`` items evenly spaced through ``items``, starting at ``offset`` (mod the step)."""
    step = max(1, len(items) // count)
    return list(items[offset % step :: step][:count])


def person_of(path: str) -> str:
    """The person of a photo path relative to lfw-dev: its folder under people/;
    anywhere else (strangers/, more/) the photo is a person of its own: its path."""
    return path.split("/")[1] if path.startswith("people/") else path


@dataclass(frozen=True)
class FaceEmbeddings:
    """Encoded faces of a photo collection, as ``lfw_faces --save-faces`` writes them
    (lfw-dev-default.npz): ``paths`` one per photo, relative to the collection; per
    face, ``image`` (its photo's index in ``paths``), ``face`` (its number in the
    photo; None in older files), ``boxes`` (top, right, bottom, left) and ``embeddings``."""

    paths: list[str]
    image: np.ndarray
    face: np.ndarray | None
    boxes: np.ndarray
    embeddings: np.ndarray

    def largest(self) -> np.ndarray:
        """Rows of the largest face of each photo, in photo order."""
        return largest_face_rows(self.image, self.boxes)


def load_embeddings(path: Path | str) -> FaceEmbeddings:
    with np.load(path, allow_pickle=False) as data:
        return FaceEmbeddings(
            paths=[str(p) for p in data["paths"]],
            image=data["image"],
            face=data["face"] if "face" in data.files else None,
            boxes=data["boxes"],
            embeddings=data["embeddings"],
        )


def largest_face_rows(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The row of the largest face of each photo (the first of equals), in ascending order.

    ``image`` is each face's photo, ``boxes`` its (top, right, bottom, left) box."""
    if len(image) == 0:
        return np.zeros(0, dtype=np.intp)
    boxes = boxes.astype(np.float64)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 1] - boxes[:, 3])
    order = np.lexsort((-area, image))  # stable: equal faces keep their order
    first = np.r_[True, image[order][1:] != image[order][:-1]]
    return np.sort(order[first])


def labelled_faces(npz: Path | str) -> dict[str, np.ndarray]:
    """Every face of lfw-dev's people/ and strangers/ (other folders are left out), for
    clustering: ``embeddings`` (float64), ``photo`` (the photo's index), ``face``,
    ``truth`` (the person, ``person_of`` the path), ``labelled`` (True for the largest
    face of each photo: the others are bystanders with no label) and ``keys``
    (``path#face``)."""
    data = load_embeddings(npz)
    if data.face is None:
        raise SystemExit(f"{npz} has no face numbers: write it with lfw_faces --save-faces")
    paths = data.paths
    image = data.image.astype(np.intp)
    keep_path = np.array([p.startswith(("people/", "strangers/")) for p in paths])
    faces = np.flatnonzero(keep_path[image])
    img = image[faces]
    labelled = np.zeros(len(faces), dtype=bool)
    labelled[largest_face_rows(img, data.boxes[faces])] = True
    face = data.face[faces]
    return {
        "embeddings": data.embeddings[faces].astype(np.float64),
        "photo": img,
        "face": face,
        "truth": np.array([person_of(paths[i]) for i in img]),
        "labelled": labelled,
        "keys": np.array([f"{paths[i]}#{f}" for i, f in zip(img, face, strict=True)]),
    }


def real_faces(npz: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """The largest face of each photo (float64) and its person's number, the person
    being the file name without its ``_NNNN`` number (strangers included)."""
    data = load_embeddings(npz)
    rows = data.largest()
    names = [Path(data.paths[data.image[r]]).stem.rsplit("_", 1)[0] for r in rows]
    people = {name: i for i, name in enumerate(sorted(set(names)))}
    return data.embeddings[rows].astype(np.float64), np.array([people[n] for n in names])
