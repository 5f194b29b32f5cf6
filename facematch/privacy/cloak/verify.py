"""Verification, as an adversary would try: variants of the copy, faces found again, distances."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

from facematch.detect import detectors
from facematch.detect.boxes import SAME_FACE_IOU, iou, scale_box, shift_box
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


VIEW_MARGIN = 0.5
"""How much of the photo around its faces the checks look at, in the largest face's
side on every side: the chips reach a quarter past the box, the detector's window
less."""

VIEW_GRID = 16
"""The view starts on JPEG's largest block (16 pixels, 4:2:0), and starts and ends on
even pixels, so its JPEG, halved and blurred variants are those of the whole photo
pixel for pixel inside (halving exactly where the photo's sides are even)."""

WHOLE_PHOTO_SHARE = 0.6
"""A view larger than this share of the photo is the whole photo (no saving)."""

SEARCH_FACE_SIDE = 4.0
"""The faces are searched for again on a copy where the smallest of them is at least
this many times the smallest face the detector finds (``search_scale``)."""


def view_window(boxes: Sequence[FaceBox], height: int, width: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right): the part of the photo the checks look at.

    A 12 MP portrait's face fills a quarter of it: its variants made and searched
    again for faces in that part alone cost a third of the whole photo's.
    """
    side = max(max(b.bottom - b.top, b.right - b.left) for b in boxes)
    pad = side * VIEW_MARGIN
    top = max(0, math.floor(min(b.top for b in boxes) - pad))
    left = max(0, math.floor(min(b.left for b in boxes) - pad))
    top, left = top - top % VIEW_GRID, left - left % VIEW_GRID
    bottom = even_end(top, math.ceil(max(b.bottom for b in boxes) + pad), height)
    right = even_end(left, math.ceil(max(b.right for b in boxes) + pad), width)
    if (bottom - top) * (right - left) > WHOLE_PHOTO_SHARE * height * width:
        return 0, height, 0, width
    return top, bottom, left, right


def even_end(start: int, end: int, size: int) -> int:
    """``end`` clipped to ``size`` and moved so that start..end has an even length (halved
    as the whole photo is, two pixels into one)."""
    end = min(end, size)
    if (end - start) % 2:
        end += 1 if end < size else -1
    return end


def search_scale(boxes: Sequence[FaceBox], height: int, width: int) -> float:
    """The scale a (height, width) variant is searched for its faces (``boxes``, in its
    pixels) at: the matcher's working scale, or less where every face is large.

    The detector finds a face at the pyramid level where it fits its window, so a
    12 MP portrait's face is found at a tenth of the size as well, for a hundredth of
    the work; the box comes from a level of about the same coarseness either way.
    """
    settings = FaceSettings()
    side = min(min(b.bottom - b.top, b.right - b.left) for b in boxes)
    smallest = detectors.smallest_detectable(settings.model, settings.upsample)
    return min(settings.working_scale(height, width), SEARCH_FACE_SIDE * smallest / max(side, 1))


def verify(
    boxes: Sequence[FaceBox],
    reference: dict[str, NDArray[np.float64]],
    copy: RGBImage,
    level: Level,
    encoders: Encoders,
    variants: Sequence[str] | None = None,
) -> list[FaceCheck]:
    """For each face, the distances to the original per variant of the copy.

    The variants are made of the part of the copy around its faces
    (``view_window``), and the faces found again there (``search_scale``); each
    face is described in its box found again and in its original box, and the
    nearer counts. SFace is checked where ``reference`` has its descriptors
    (``describe_faces``).
    """
    height, width = copy.shape[:2]
    top, bottom, left, right = view_window(boxes, height, width)
    view = copy[top:bottom, left:right]
    local = [shift_box(b, -top, -left) for b in boxes]
    dlib: list[dict[str, float]] = [{} for _ in boxes]
    second: list[dict[str, float]] = [{} for _ in boxes]
    for name in variants or level.checks:
        image, factor = variant_image(view, name)
        expected = [scale_box(b, factor) for b in local]
        scale = search_scale(expected, round(height * factor), round(width * factor))
        found = [scale_box(b, 1 / factor) for b in detect_as_matcher(image, scale)]
        chosen = [scale_box(b, factor) for b in adversary_boxes(found, local)]
        # Both the box found again and the original's: a box a few pixels off moves a
        # descriptor by up to 0.05 (SFace's by 0.3), and the nearer one counts.
        tried = [describe_faces(image, chosen, encoders)]
        if chosen != expected:
            tried.append(describe_faces(image, expected, encoders))
        for i in range(len(boxes)):
            dlib[i][name] = min(
                float(np.linalg.norm(d[k][i] - reference[k][i])) for k in ALIGNMENTS for d in tried
            )
            if SECOND_MODEL in reference and SECOND_MODEL in tried[0]:
                second[i][name] = min(
                    float(np.linalg.norm(d[SECOND_MODEL][i] - reference[SECOND_MODEL][i]))
                    for d in tried
                )
    return [FaceCheck(d, s or None) for d, s in zip(dlib, second, strict=True)]


def detect_as_matcher(image: RGBImage, scale: float | None = None) -> list[FaceBox]:
    """Face boxes in these pixels as facematch's matcher finds them in a photo: on its
    working copy (``encode.photo.working_pixels``; ``scale``: shrunk by this much
    instead), boxes in full pixels."""
    from facematch.encode.photo import boxes_in_pixels

    return boxes_in_pixels(image, FaceSettings(), scale)
