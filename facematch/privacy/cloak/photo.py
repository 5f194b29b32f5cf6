"""Whole photos: every face cloaked on its canvas and pasted back."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facematch.encode import sface
from facematch.encode.faces import (
    Encoder,
    align,
    face_chips,
    shape_points,
)
from facematch.models.sface import sface_problem
from facematch.privacy.cloak.alignment import as_matrix, bilinear_chips, chip_transform
from facematch.privacy.cloak.canvas import (
    budget_map,
    cloak_canvas,
    cut_canvas,
    face_mask,
    paste_delta,
    place_canvas,
)
from facematch.privacy.cloak.levels import ALIGNMENTS, FloatImage, Level
from facematch.privacy.cloak.quality import dssim, face_region, scaled_within
from facematch.records import FaceBox
from facematch.sources.images import RGBImage


def seed_for(image: RGBImage, seed: int, face: int) -> int:
    """A face's random seed from the pixels, the run's seed and its index: reproducible."""
    digest = hashlib.sha256(image.tobytes())
    digest.update(f"{seed}:{face}".encode())
    return int.from_bytes(digest.digest()[:8], "little")


SECOND_MODEL = "sface"
"""The key of SFace's descriptors among ``describe_faces``'s: a second model, which the
cloak is checked against but not made against."""


@dataclass
class Encoders:
    """The adversary's descriptor engines, one per alignment setting (built lazily)."""

    engine: Any  # an engines.EngineChoice
    _built: dict[str, Encoder] = field(default_factory=dict)

    def get(self, name: str) -> Encoder:
        if name not in self._built:
            from facematch.encode import engines

            _, mirror = ALIGNMENTS[name]
            self._built[name] = engines.encoder(self.engine, 1, 1, mirror)
        return self._built[name]


def describe_faces(
    image: RGBImage, boxes: Sequence[FaceBox], encoders: Encoders
) -> dict[str, NDArray[np.float64]]:
    """Descriptors of the faces at ``boxes`` under each alignment setting: name -> (n, 128);
    where SFace is installed (``facematch.models.sface.sface_problem``), also SFace's
    (SECOND_MODEL), aligned by the same 68-point landmarks."""
    out = {}
    for name, (points, _) in ALIGNMENTS.items():
        shapes = align(image, boxes, points)
        out[name] = encoders.get(name).encode(face_chips(image, shapes))
        if points == 68 and sface_problem() is None:
            marks = [shape_points(s) for s in shapes]
            out[SECOND_MODEL] = sface.describe_landmarks(image, marks)
    return out


def cloak_photo(
    photo: RGBImage,
    boxes: Sequence[FaceBox],
    encoders: Encoders,
    level: Level,
    seed: int,
    multipliers: Sequence[float],
    compile_cache: str | None = None,
    stored: Callable[[RGBImage], RGBImage] | None = None,
) -> RGBImage:
    """The photo with face ``i`` cloaked at ``multipliers[i]`` times the level's budget.

    ``stored``: how the copy's pixels will come back from its file (JPEG): each
    face is kept within the level's DSSIM as the file will hold it.
    """
    height, width = photo.shape[:2]
    pasted = []
    for index, box in enumerate(boxes):
        epsilon = level.epsilon * multipliers[index]
        shapes = {p: align(photo, [box], p)[0] for p in (5, 68)}
        photo_maps = {p: as_matrix(chip_transform(s)) for p, s in shapes.items()}
        canvas = place_canvas(list(photo_maps.values()))
        base, valid = cut_canvas(photo, canvas)
        matrices = {p: canvas.to_canvas(m) for p, m in photo_maps.items()}
        transforms = np.stack([matrices[5], matrices[68]]).astype(np.float32)
        chips = np.floor(bilinear_chips(np, base, transforms)).astype(np.uint8)
        plain = encoders.get("face_recognition").encode(chips)  # no mirror: as the samples
        targets = {5: plain[0], 68: plain[1]}
        rng = np.random.default_rng(seed_for(photo, seed, index))
        points = np.array(shape_points(shapes[68]), np.float64)
        on_canvas = (points - [canvas.left, canvas.top]) * canvas.scale
        most = level.dssim * multipliers[index] ** 2
        delta = cloak_canvas(
            base,
            valid,
            matrices,
            targets,
            level,
            epsilon,
            canvas.scale,
            rng,
            budget_map(base, face_mask(on_canvas), level.texture),
            # A canvas smaller than the photo is enlarged smoothly onto it: its
            # DSSIM there is about scale**2 of the canvas's (measured exactly below).
            most / canvas.scale**2,
            canvas.region(face_region(box, height, width)),
            compile_cache,
        )
        where, values = paste_delta(delta, canvas, height, width)
        values = within_face_dssim(photo, box, where, values, most, stored)
        pasted.append((where, values))
    out = photo.copy()
    if not pasted:
        return out
    # Only the region the canvases cover changes: a 12 MP photo is not worked as floats.
    top, bottom = min(p[0][0] for p in pasted), max(p[0][1] for p in pasted)
    left, right = min(p[0][2] for p in pasted), max(p[0][3] for p in pasted)
    total = np.zeros((bottom - top, right - left, 3), np.float32)
    for (y0, y1, x0, x1), values in pasted:
        total[y0 - top : y1 - top, x0 - left : x1 - left] += values
    limit = level.epsilon * max(multipliers, default=1.0)
    total = np.clip(total, -limit, limit)
    if len(pasted) > 1:  # faces close together add up: each face is held to its DSSIM again
        for box, multiplier in zip(boxes, multipliers, strict=True):
            most = level.dssim * multiplier**2
            total = within_face_dssim(photo, box, (top, bottom, left, right), total, most, stored)
    region = photo[top:bottom, left:right]
    out[top:bottom, left:right] = np.clip(region + total, 0, 255).round().astype(np.uint8)
    return out


def within_face_dssim(
    photo: RGBImage,
    box: FaceBox,
    where: tuple[int, int, int, int],
    values: FloatImage,
    most: float,
    stored: Callable[[RGBImage], RGBImage] | None = None,
) -> FloatImage:
    """A face's perturbation on the photo's pixels, scaled down until its face region
    (:func:`quality.face_region`) is within ``most`` DSSIM at full resolution, as
    ``stored`` leaves it (a JPEG copy's compression counts: it is what people see).

    The region is cut on JPEG's 8-pixel grid, so a crop is compressed block for
    block as the whole photo will be.
    """
    y0, y1, x0, x1 = where
    region = face_region(box, photo.shape[0], photo.shape[1])
    top, left = region.top - region.top % 8, region.left - region.left % 8
    bottom, right = region.bottom, region.right
    original = photo[top:bottom, left:right]
    inner = (
        slice(max(y0, top) - top, min(y1, bottom) - top),
        slice(max(x0, left) - left, min(x1, right) - left),
    )
    part = (
        slice(max(y0, top) - y0, min(y1, bottom) - y0),
        slice(max(x0, left) - x0, min(x1, right) - x0),
    )
    cut = (slice(region.top - top, None), slice(region.left - left, None))

    def seen(change: FloatImage) -> float:
        changed = original.astype(np.float32)
        changed[inner] += change[part]
        pixels = np.clip(changed, 0, 255).round().astype(np.uint8)
        if stored is not None:
            pixels = stored(pixels)
        return dssim(original[cut], pixels[cut])

    return scaled_within(values, seen, most, rounds=4, margin=0.97)
