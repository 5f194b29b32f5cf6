"""Redaction: copies in which every face not confidently a known person is covered.

A face left clear by mistake is a privacy leak, so redaction looks harder
than matching (``redaction_passes``: CenterFace at a sensitive threshold, more
HOG upsampling, mirrored borders for faces cut by the frame; the CNN detector
on every image without facematch[detector]), covers each face as far as any
pass's box for it reaches, and covers every face it is not sure about:
unknown faces, ambiguous ones (just past the tolerance, or close to two
people) and uncertain ones (named, but a stranger would come as close with a
chance above ``calibration.KEEP_CHANCE``). With no known people, every face
is covered. The copies are
upright and carry no metadata but their colour profile (no EXIF: no GPS
position, no thumbnail of the original).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw, ImageFilter

from facematch.detect.boxes import grow_box, reach, unite
from facematch.encode import engines
from facematch.encode.engines import EngineChoice
from facematch.encode.faces import describe
from facematch.encode.passes import DetectorPass, detect_pass
from facematch.errors import ImageError
from facematch.matching import calibration
from facematch.matching.gallery import Gallery
from facematch.matching.naming import match_faces
from facematch.output.pictures import AMBIGUITY_MARGIN, classify, save_copy
from facematch.records import Encoded, Face, FaceBox, FaceMatch, RedactedFace, RedactedImage
from facematch.records import RedactReason as Reason
from facematch.run.pipeline import Pipeline, paired
from facematch.run.tasks import failure_message
from facematch.sources.images import Found, load_rgb, open_upright

log = logging.getLogger("facematch")

Style = Literal["fill", "blur", "pixelate"]
Shape = Literal["rect", "ellipse"]

# The mask reaches this share of the box's size past each side: dlib's boxes
# stop at the brows and the chin, and an ellipse through the corners of a box
# grown by 21% still covers the whole box.
MASK_GROWTH = 0.25
FILL = (0, 0, 0)
# Blocks across a pixelated face, and a blur radius as a share of its size:
# both far coarser than the mosaics and blurs that published attacks undo.
PIXELATE_BLOCKS = 6
BLUR_SHARE = 0.2


@dataclass(frozen=True)
class FindTask:
    """One image in which to find every face, for redaction."""

    path: str
    passes: tuple[DetectorPass, ...]
    engine: EngineChoice
    threads: int = 1


def find_faces(task: FindTask) -> Encoded:
    """Every face the passes find in one image, encoded; a failure is an error result.

    Each face is described from the box of the first pass that found it, and
    reported (so covered) with the box that reaches as far as every pass's.
    """
    try:
        image = load_rgb(task.path)
        found = [detect_pass(image, detector) for detector in task.passes]
        boxes = unite(found)
        if not boxes:
            return Encoded(task.path)
        first = task.passes[0].settings
        encoder = engines.encoder(task.engine, task.threads, first.jitters, first.mirror)
        faces = describe(image, boxes, first, encoder)
        wide = tuple(replace(face, box=reach(face.box, found)) for face in faces)
        return Encoded(task.path, wide)
    except Exception as exc:  # a per-image failure must never stop the run
        return Encoded(task.path, error=failure_message(exc))


def find_failed(task: FindTask, reason: str) -> Encoded:
    return Encoded(task.path, error=reason)


def decide(face: FaceMatch, tolerance: float | None, margin: float) -> RedactedFace:
    """Keep a face only when it is confidently one known person; cover it otherwise.

    Confidently: named, no second person within ``margin``, and close enough
    that a stranger would come as near with a chance of at most
    ``calibration.KEEP_CHANCE`` (0.1%) in a gallery of this size; a name that is
    good enough to print is not always good enough to leave a face clear.
    """
    kind = classify(face, tolerance, margin)
    if kind == "named":
        if face.stranger_chance is None or face.stranger_chance > calibration.KEEP_CHANCE:
            return RedactedFace(face.box, "covered", "uncertain", None, face.distance)
        return RedactedFace(face.box, "kept", "known", face.name, face.distance)
    reason: Reason = "everyone" if kind == "face" else kind
    if kind == "ambiguous" and face.uncertain:
        reason = "uncertain"
    return RedactedFace(face.box, "covered", reason, None, face.distance)


def mask_box(box: FaceBox, width: int, height: int, growth: float = MASK_GROWTH) -> FaceBox:
    """The box grown by ``growth`` of its size on every side, within the image."""
    return grow_box(box, growth, width, height)


def cover(image: Image.Image, boxes: Iterable[FaceBox], style: Style, shape: Shape) -> Image.Image:
    """``image`` (RGB, changed in place) with every box's grown mask covered."""
    width, height = image.size
    for box in boxes:
        area = mask_box(box, width, height)
        region = (area.left, area.top, area.right, area.bottom)
        if area.right <= area.left or area.bottom <= area.top:
            continue
        size = (area.right - area.left, area.bottom - area.top)
        if style == "fill":
            covered = Image.new("RGB", size, FILL)
        elif style == "blur":
            radius = max(2.0, BLUR_SHARE * max(size))
            # Blurred twice: one wide Gaussian still leaves the face's layout.
            blurred = image.crop(region).filter(ImageFilter.GaussianBlur(radius))
            covered = blurred.filter(ImageFilter.GaussianBlur(radius))
        else:
            block = max(1, max(size) // PIXELATE_BLOCKS)
            small = (max(1, size[0] // block), max(1, size[1] // block))
            covered = image.crop(region).resize(small, Image.Resampling.BOX)
            covered = covered.resize(size, Image.Resampling.NEAREST)
        mask = Image.new("L", size, 0)
        draw = ImageDraw.Draw(mask)
        if shape == "ellipse":
            draw.ellipse((0, 0, size[0] - 1, size[1] - 1), fill=255)
        else:
            draw.rectangle((0, 0, size[0], size[1]), fill=255)
        image.paste(covered, region[:2], mask)
    return image


@dataclass(frozen=True)
class Redaction:
    """What to cover and how."""

    targets: dict[str, Path]  # input path -> where its copy goes
    gallery: Gallery | None = None  # None: cover every face
    tolerance: float | None = None
    margin: float = AMBIGUITY_MARGIN
    style: Style = "fill"
    shape: Shape = "rect"


def redact(
    pipeline: Pipeline, found: Sequence[Found], passes: tuple[DetectorPass, ...], plan: Redaction
) -> Iterator[RedactedImage]:
    """Find every face, decide, and write each covered copy; one row per input, in order."""
    readable = [f.path for f in found if f.problem is None]
    threads = pipeline.jobs if pipeline.solo(len(readable)) else 1
    tasks = [FindTask(path, passes, pipeline.engine, threads) for path in readable]
    encoded = pipeline.run(find_faces, tasks, find_failed)
    for item, image in paired(found, encoded):
        if pipeline.progress is not None:
            pipeline.progress(1)
        if image is None:
            yield RedactedImage(item.path, "error", item.problem)
        elif image.error is not None:
            yield RedactedImage(item.path, "error", image.error)
        else:
            yield write_copy(image, plan)


def once_each(faces: Sequence[RedactedFace]) -> tuple[RedactedFace, ...]:
    """Keep a person's nearest face only: anyone is in a photo once, so the others are doubtful.

    (A face cut by the frame can also be found twice, once mirrored.)
    """
    nearest: dict[str, float] = {}
    for face in faces:
        if face.action == "kept" and face.name is not None and face.distance is not None:
            nearest[face.name] = min(nearest.get(face.name, face.distance), face.distance)
    return tuple(
        replace(face, action="covered", reason="ambiguous", name=None)
        if face.action == "kept" and face.name is not None and face.distance != nearest[face.name]
        else face
        for face in faces
    )


def write_copy(image: Encoded, plan: Redaction) -> RedactedImage:
    """Decide for each face of an image, and write its covered copy."""
    faces = once_each(
        [decide(face, plan.tolerance, plan.margin) for face in face_matches(image.faces, plan)]
    )
    try:
        picture = open_upright(image.path)[0]
    except ImageError as exc:  # changed or removed since its faces were found
        return RedactedImage(image.path, "error", str(exc))
    covered = cover(
        picture, [f.box for f in faces if f.action == "covered"], plan.style, plan.shape
    )
    written = save_copy(covered, plan.targets[image.path])
    return RedactedImage(image.path, image.status, None, str(written), faces)


def face_matches(faces: Sequence[Face], plan: Redaction) -> list[FaceMatch]:
    """Each face of a photo with its nearest known people; with no known people, boxes."""
    if plan.gallery is None or plan.tolerance is None:
        return [FaceMatch(face.box, None, None) for face in faces]
    return match_faces(plan.gallery, faces, plan.tolerance, False)
