"""Files: the unit of work for the runner (cloak one photo, write, read back, verify)."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from facematch.detect.boxes import trim_box
from facematch.encode.faces import (
    FaceSettings,
)
from facematch.encode.sface import MATCH_DISTANCE as SFACE_MATCH_DISTANCE
from facematch.errors import OutputError, UsageError
from facematch.output import pictures
from facematch.privacy.cloak.levels import (
    JPEG_QUALITY_OUT,
    JPEG_SUBSAMPLING_OUT,
    LEVELS,
    MATCH_THRESHOLD,
    Level,
    LevelName,
)
from facematch.privacy.cloak.photo import Encoders, cloak_photo, describe_faces
from facematch.privacy.cloak.quality import VIEWING_SIDE, face_dssim, photo_dssim, psnr
from facematch.privacy.cloak.verify import FaceCheck, detect_as_matcher, verify
from facematch.records import CloakResult, FaceBox, FaceReport
from facematch.sources.images import Found, RGBImage


@dataclass(frozen=True)
class CloakTask:
    """One photo to cloak into ``out`` (or, with ``check``, a copy to verify against it)."""

    path: str
    out: str
    level: LevelName
    seed: int
    engine: Any  # engines.EngineChoice
    check: bool = False
    compile_cache: str | None = None
    boxes: tuple[FaceBox, ...] | None = None  # the photo's faces, if already found


def save_cloaked(image: RGBImage, out: Path) -> None:
    """Write the copy upright, with no metadata at all (no EXIF, GPS or thumbnail), as
    every picture is written (``output.pictures.save_copy``): never half a file; a
    failure is an OutputError naming its cause."""
    pictures.save_copy(Image.fromarray(image), out, JPEG_QUALITY_OUT, JPEG_SUBSAMPLING_OUT)


def as_stored(out: Path) -> Callable[[RGBImage], RGBImage] | None:
    """How pixels come back from the copy's file: JPEG's compression, or unchanged."""
    if out.suffix.lower() not in (".jpg", ".jpeg"):
        return None

    def jpeg(pixels: RGBImage) -> RGBImage:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(
            buffer, "JPEG", quality=JPEG_QUALITY_OUT, subsampling=JPEG_SUBSAMPLING_OUT
        )
        return np.asarray(Image.open(buffer).convert("RGB"))

    return jpeg


def output_name(relative: Path) -> Path:
    """The copy's path under --out: JPEG and PNG keep their names, others become PNG."""
    if relative.suffix.lower() in (".jpg", ".jpeg", ".png"):
        return relative
    return relative.with_name(relative.name + ".png")


def plan_copies(
    inputs: Sequence[tuple[Found, Path]], out_dir: Path, task: Callable[[str, str], CloakTask]
) -> tuple[list[CloakTask], dict[int, CloakResult]]:
    """The tasks for inputs (each with its path relative to ``out_dir``), and the rows of
    those that get no copy, by their place among the inputs: unreadable, a copy that
    would overwrite an input, or one another input is already copied to.

    ``task(path, out)`` makes the task of one input and its copy.
    """
    planned = [(found, out_dir / output_name(relative)) for found, relative in inputs]
    originals = {os.path.realpath(found.path) for found, _ in planned}
    tasks: list[CloakTask] = []
    early: dict[int, CloakResult] = {}
    taken: set[str] = set()
    for index, (found, out) in enumerate(planned):
        target = os.path.realpath(out)
        problem = found.problem
        if problem is None and target in originals:
            problem = f"the copy {out} would overwrite an input"
        elif problem is None and target in taken:
            problem = f"another input is also copied to {out}"
        if problem is not None:
            early[index] = CloakResult(found.path, "error", error=problem)
            continue
        taken.add(target)
        tasks.append(task(found.path, str(out)))
    return tasks, early


def find_original_faces(image: RGBImage) -> list[FaceBox]:
    """The faces of a photo in memory, as ``faces_in_file`` finds them in its file."""
    return [trim_box(b, *image.shape[:2]) for b in detect_as_matcher(image)]


def faces_in_file(path: str) -> list[FaceBox]:
    """The faces of a photo file, found as facematch's matcher finds them: on the working
    copy it decodes (a large JPEG at reduced size, as luminance), boxes in full pixels."""
    from facematch.encode.photo import boxes_in_file

    return boxes_in_file(path, FaceSettings())


def with_faces(task: CloakTask) -> CloakTask:
    """The task with its photo's faces found (the progress bar counts them, and
    ``cloak_file`` need not find them again); as it was if the photo cannot be read,
    for ``cloak_file`` to report."""
    try:
        return replace(task, boxes=tuple(faces_in_file(task.path)))
    except Exception:  # reported by cloak_file, which meets the same problem
        return task


def count_failed(task: CloakTask, reason: str) -> CloakTask:
    """A task whose worker process died finding its faces: ``cloak_file`` tries again."""
    return task


def cloak_file(task: CloakTask) -> CloakResult:
    """Cloak one photo, write the copy, read it back and verify it.

    A problem of the photo is its result; only a copy that cannot be written
    (OutputError: a full disk, no permission) is raised, and ends the run.
    """
    from facematch.run.tasks import failure_message
    from facematch.sources.images import load_rgb

    try:
        boxes = list(task.boxes) if task.boxes is not None else faces_in_file(task.path)
        original = load_rgb(task.path)
        if task.check:
            return check_copy(task, original, boxes)
        if not boxes:
            return CloakResult(task.path, "no_faces", error="no face found; no copy written")
        level = LEVELS[task.level]
        encoders = Encoders(task.engine)
        reference = describe_faces(original, boxes, encoders)
        attempts = [0] * len(boxes)
        while True:
            multipliers = [level.harder[a] for a in attempts]
            copy = cloak_photo(
                original,
                boxes,
                encoders,
                level,
                task.seed,
                multipliers,
                task.compile_cache,
                as_stored(Path(task.out)),
            )
            save_cloaked(copy, Path(task.out))
            written = load_rgb(task.out)
            checked = verify(boxes, reference, written, level, encoders)
            failing = [i for i, c in enumerate(checked) if min(c.dlib.values()) <= MATCH_THRESHOLD]
            harder = [i for i in failing if attempts[i] + 1 < len(level.harder)]
            if not harder:
                break
            for i in harder:
                attempts[i] += 1
        return report(task, original, written, boxes, checked, level, multipliers)
    except (OutputError, UsageError):  # a full disk, or --check given the wrong pair: stop
        raise
    except Exception as exc:  # a per-image failure must never stop the run
        return CloakResult(task.path, "error", error=failure_message(exc))


def check_copy(task: CloakTask, original: RGBImage, boxes: list[FaceBox]) -> CloakResult:
    """``--check ORIGINAL CLOAKED``: verify a pair the user already has."""
    from facematch.sources.images import load_rgb

    if not boxes:
        return CloakResult(
            task.path, "no_faces", out=task.out, error="no face found in the original"
        )
    copy = load_rgb(task.out)
    if copy.shape != original.shape:
        raise UsageError(
            f"the copy is {copy.shape[1]}x{copy.shape[0]}, the original "
            f"{original.shape[1]}x{original.shape[0]}: not a copy of it"
        )
    level = LEVELS[task.level]
    encoders = Encoders(task.engine)
    reference = describe_faces(original, boxes, encoders)
    checked = verify(boxes, reference, copy, level, encoders)
    return report(task, original, copy, boxes, checked, level, [math.nan] * len(boxes))


def report(
    task: CloakTask,
    original: RGBImage,
    copy: RGBImage,
    boxes: Sequence[FaceBox],
    checked: Sequence[FaceCheck],
    level: Level,
    multipliers: Sequence[float],
) -> CloakResult:
    faces = tuple(
        FaceReport(
            box=box,
            level=level.name,
            distance=min(c.dlib.values()),
            passed=min(c.dlib.values()) > MATCH_THRESHOLD,
            dssim=face_dssim(original, copy, box),
            epsilon=level.epsilon * m,
            variants=dict(c.dlib),
            **second_model(c),
        )
        for box, c, m in zip(boxes, checked, multipliers, strict=True)
    )
    status = "protected" if all(f.passed for f in faces) else "not_protected"
    return CloakResult(
        task.path,
        status,
        task.out,
        None,
        psnr(original, copy),
        faces,
        dssim_1080=photo_dssim(original, copy, VIEWING_SIDE),
    )


def second_model(check: FaceCheck) -> dict[str, Any]:
    """FaceReport's SFace fields for a face's check (none where SFace was not checked)."""
    if check.sface is None:
        return {}
    smallest = min(check.sface.values())
    return {
        "sface_distance": smallest,
        "sface_passed": smallest > SFACE_MATCH_DISTANCE,
        "sface_variants": dict(check.sface),
    }


def cloak_failed(task: CloakTask, reason: str) -> CloakResult:
    """The result of a photo whose worker process died cloaking it."""
    return CloakResult(task.path, "error", error=reason)
