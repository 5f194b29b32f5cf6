"""``facematch cloak``: copies of photos that dlib-model matchers no longer match, verified."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from facematch.cli.common import (
    EXIT_CODES_HELP,
    EXIT_PARTIAL,
    CliError,
    CliUsageError,
    check_output_folders,
    format_option,
    jobs_option,
    log,
    progress_bar,
    quiet_option,
    recursive_option,
    resolve_cache_dir,
    setup_logging,
    write_all,
)
from facematch.errors import FacematchError, UsageError
from facematch.output.text import printable


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the cloaked copies (same relative paths; never an input's own file).",
)
@click.option(
    "--level",
    type=click.Choice(["subtle", "strong"]),
    default="strong",
    show_default=True,
    help="How much the face may change (DSSIM of its region, JPEG included): subtle "
    "0.0035 (0.004 on a retry), strong 0.0075 (0.008). Both must survive the copy as "
    "written, JPEG q75, a 50% downscale and a blur.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Verify a pair you already have: PATHS are ORIGINAL CLOAKED.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same copies)."
)
@format_option("compat prints path,protected|not_protected,distance per face.")
@recursive_option
@jobs_option
@quiet_option
def cloak(
    paths: tuple[str, ...],
    out_dir: Path | None,
    level: str,
    check: bool,
    seed: int,
    fmt: str,
    recursive: bool,
    jobs: int | None,
    quiet: bool,
) -> None:
    """Write cloaked copies of photos that dlib-model face matchers (face_recognition,
    facematch) no longer match, each verified after it is written.

    Exit status 3 when some photo is not protected: unreadable, no face found
    (no copy is written), or a face still matched after the harder retry.
    """
    setup_logging(quiet)
    from facematch.privacy import cloak as cl

    try:
        cl.require_extra()
    except FacematchError as exc:
        raise CliError(str(exc)) from None
    second_model_warning()
    unprotected: list[str] = []
    second = SecondModelCount()
    if check:
        results = _check(paths, level, seed)
    else:
        if out_dir is None:
            raise CliUsageError("--out DIR is required (or --check ORIGINAL CLOAKED)")
        check_output_folders(click.get_current_context())
        results = _cloak(paths, out_dir, level, seed, recursive, jobs, quiet)
    from facematch.output.writers import CLOAK_ROWS, make_writer

    noted = _noted(results, unprotected, second)
    problems = write_all(noted, make_writer(fmt, sys.stdout, CLOAK_ROWS))
    second.tell()
    if problems or unprotected:
        sys.exit(EXIT_PARTIAL)


def second_model_warning() -> None:
    """One line when the copies cannot be checked against SFace as well as dlib's model."""
    from facematch.models.sface import sface_problem

    problem = sface_problem()
    if problem is not None:
        log.warning("%s: copies are checked against dlib's model only", problem)


@dataclass
class SecondModelCount:
    """How many copies SFace checked, and how many of those it still matches."""

    checked: int = 0
    matched: int = 0

    def add(self, result: Any) -> None:
        if any(face.sface_passed is not None for face in result.faces):
            self.checked += 1
            self.matched += result.sface_matched

    def tell(self) -> None:
        from facematch.encode.sface import MATCH_DISTANCE as SFACE_MATCH_DISTANCE

        if self.checked:
            log.warning(
                "SFace, a second model the cloak is not made against, still matches "
                "%d of %d copies (a face within %.3f of the original's)",
                self.matched,
                self.checked,
                SFACE_MATCH_DISTANCE,
            )


def _noted(
    results: Iterable[Any], unprotected: list[str], second: SecondModelCount
) -> Iterator[Any]:
    """Pass results on; remember (and tell stderr about) each photo that is not protected,
    and count the copies SFace still matches."""
    for result in results:
        if result.status in ("no_faces", "not_protected"):
            unprotected.append(result.path)
            reason = result.error or "a face is still matched"
            log.warning("%s: not protected (%s)", printable(result.path), reason)
        second.add(result)
        yield result


def _engine() -> Any:
    from facematch.encode import engines

    return engines.prepare("onnx", resolve_cache_dir(None))


def _compile_cache() -> str | None:
    """JAX's compiled graphs, in our own (private) cache folder; None if it cannot be made."""
    from facematch.files import make_private_folder

    folder = resolve_cache_dir(None) / "jax"
    try:
        make_private_folder(folder)
    except OSError as exc:
        log.warning("cannot keep compiled graphs in %s (%s)", folder, exc.strerror or exc)
        return None
    return str(folder)


def _check(paths: tuple[str, ...], level: str, seed: int) -> Any:
    from facematch.privacy import cloak as cl

    if len(paths) != 2:
        raise CliUsageError("--check takes two paths: ORIGINAL CLOAKED")
    original, copy = paths
    task = cl.CloakTask(original, copy, level, seed, _engine(), True, _compile_cache())  # type: ignore[arg-type]
    try:
        return [cl.cloak_file(task)]
    except UsageError as exc:  # not a copy of the original: the pair given is wrong
        raise CliUsageError(str(exc)) from None


def _inputs(paths: tuple[str, ...], recursive: bool) -> list[tuple[Any, Path]]:
    """Each input with its copy's path under --out: its path relative to the folder
    given, or its name for a file given by itself."""
    from facematch.cli.common import find_inputs

    found_relative = []
    for item in paths:
        for found in find_inputs([item], recursive):
            if os.path.isdir(item):
                relative = Path(os.path.relpath(found.path, item))
            else:
                relative = Path(Path(found.path).name)
            found_relative.append((found, relative))
    return found_relative


def _cloak(
    paths: tuple[str, ...],
    out_dir: Path,
    level: str,
    seed: int,
    recursive: bool,
    jobs: int | None,
    quiet: bool,
) -> Any:
    from facematch.privacy import cloak as cl
    from facematch.run.pipeline import Pipeline

    inputs = _inputs(paths, recursive)
    engine = _engine()
    compile_cache = _compile_cache()

    def task(path: str, out: str) -> Any:
        return cl.CloakTask(path, out, level, seed, engine, False, compile_cache)  # type: ignore[arg-type]

    tasks, early = cl.plan_copies(inputs, out_dir, task)
    with Pipeline(jobs=jobs) as pipeline:
        # The faces are found once: for the progress bar's total, and for cloak_file.
        counted = list(pipeline.run(cl.with_faces, tasks, cl.count_failed))
        faces = sum(len(t.boxes or ()) for t in counted)
        with progress_bar(faces, "cloak", quiet) as bar:
            bar.unit = "face"
            done = pipeline.run(cl.cloak_file, counted, cl.cloak_failed)
            for index in range(len(inputs)):
                if index in early:
                    yield early[index]
                    continue
                result = next(done)
                bar.update(len(result.faces))
                yield result
