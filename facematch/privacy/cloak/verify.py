"""Verification, as an adversary would try: variants of the copy, faces found again, distances."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

from facematch.detect.boxes import SAME_FACE_IOU, iou, scale_box
from facematch.encode.faces import (
    FaceSettings,
)
from facematch.privacy.cloak.levels import ALIGNMENTS, Level
from facematch.privacy.cloak.photo import SECOND_MODEL, Encoders, describe_faces
from facematch.records import FaceBox
from facematch.sources.images import RGBImage


def variant_image(image: RGBImage, name: str) -> tuple[RGBImage, float]:
    """A variant of the copy and its scale relative to the copy."""
    picture = Image.fromarray(image)
    if name.startswith("jpeg"):
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=int(name[4:]))
        return np.asarray(Image.open(buffer).convert("RGB")), 1.0
    if name == "half":
        width, height = picture.size
        small = picture.resize((max(1, width // 2), max(1, height // 2)), Image.Resampling.LANCZOS)
        return np.asarray(small), small.size[0] / width
    if name == "blur":
        return np.asarray(picture.filter(ImageFilter.GaussianBlur(1))), 1.0
    return image, 1.0


def adversary_boxes(found: Sequence[FaceBox], originals: Sequence[FaceBox]) -> list[FaceBox]:
    """For each original face, the box found again (best overlap), or the original box.

    Falling back to the original box is the conservative choice: an adversary can
    always crop the face by hand.
    """
    chosen = []
    for box in originals:
        best = max(found, key=lambda f: iou(f, box), default=None)
        chosen.append(best if best is not None and iou(best, box) >= SAME_FACE_IOU else box)
    return chosen


@dataclass(frozen=True)
class FaceCheck:
    """One face of a copy against the original face, per variant of the copy: dlib's
    smallest distance over both alignments, and SFace's distance (None: not checked,
    SFace is not installed)."""

    dlib: dict[str, float]
    sface: dict[str, float] | None = None


def verify(
    boxes: Sequence[FaceBox],
    reference: dict[str, NDArray[np.float64]],
    copy: RGBImage,
    level: Level,
    encoders: Encoders,
    variants: Sequence[str] | None = None,
) -> list[FaceCheck]:
    """For each face, the distances to the original per variant of the copy.

    SFace is checked where ``reference`` has its descriptors (``describe_faces``).
    """
    dlib: list[dict[str, float]] = [{} for _ in boxes]
    second: list[dict[str, float]] = [{} for _ in boxes]
    for name in variants or level.checks:
        image, factor = variant_image(copy, name)
        found = [scale_box(b, 1 / factor) for b in detect_as_matcher(image)]
        chosen = [scale_box(b, factor) for b in adversary_boxes(found, boxes)]
        described = describe_faces(image, chosen, encoders)
        for i in range(len(boxes)):
            dlib[i][name] = min(
                float(np.linalg.norm(described[k][i] - reference[k][i])) for k in ALIGNMENTS
            )
            if SECOND_MODEL in reference and SECOND_MODEL in described:
                difference = described[SECOND_MODEL][i] - reference[SECOND_MODEL][i]
                second[i][name] = float(np.linalg.norm(difference))
    return [FaceCheck(d, s or None) for d, s in zip(dlib, second, strict=True)]


def detect_as_matcher(image: RGBImage) -> list[FaceBox]:
    """Face boxes in these pixels as facematch's matcher finds them in a photo: on its
    working copy (``encode.photo.working_pixels``), boxes in full pixels."""
    from facematch.encode.photo import boxes_in_pixels

    return boxes_in_pixels(image, FaceSettings())
