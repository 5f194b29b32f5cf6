"""Faces -> SFace descriptors, with SFace's own alignment (a second model beside dlib's).

SFace was trained on faces aligned to the five-point ArcFace template of a
112x112 chip: eye centres, nose tip and mouth corners. OpenCV's
``FaceRecognizerSF.alignCrop`` takes those five points from its YuNet detector
and maps them onto the template with the least-squares similarity transform
(Umeyama 1991: rotation, uniform scale and shift, no reflection), then samples
the chip bilinearly, black outside the image. Here the five points come from
the landmarks facematch already finds (dlib's 68-point shapes: the means of
each eye's six points, point 30 the nose tip, points 48 and 54 the mouth
corners), so both models describe the very faces the matchers find.

SFace's descriptors are unit vectors (:mod:`facematch.models.sface`); two faces
are compared by the Euclidean distance of theirs, 0 to 2, larger is farther.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from facematch.encode.faces import align, shape_points
from facematch.models.sface import CHIP_SIDE, DESCRIPTOR_SIZE, sface
from facematch.records import FaceBox
from facematch.sources.images import RGBImage

TEMPLATE = np.array(
    [
        [38.2946, 51.6963],  # the eye on the image's left (the person's right eye)
        [73.5318, 51.5014],  # the other eye
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # mouth corner on the image's left
        [70.7299, 92.2041],  # the other mouth corner
    ]
)
"""Where the five points go in the 112x112 chip (ArcFace's template, as OpenCV's alignCrop)."""

OPENCV_DISTANCE = 1.128
"""OpenCV's own threshold for SFace, as a distance (its ``FR_NORM_L2`` default; the
same as its cosine similarity 0.363): nearer faces are the same person."""

MATCH_DISTANCE = 1.175
"""SFace's "still matched" distance for the cloak's check: two faces this near are
taken for the same person. Chosen on a tuning half of lfw-dev's people as the distance
where SFace takes different people for one as often as dlib's model does at 0.6
(0.86% of pairs; 0.91% on the checking half), more lenient than OPENCV_DISTANCE
(benchmarks/accuracy/sface_threshold.py; docs/measurements/cloak.md)."""


def five_points(landmarks: Sequence[tuple[int, int]]) -> NDArray[np.float64]:
    """The five alignment points (5, 2) of a dlib 68-point shape, in TEMPLATE's order."""
    if len(landmarks) != 68:
        raise ValueError(f"SFace's alignment needs 68 landmarks, not {len(landmarks)}")
    points = np.asarray(landmarks, dtype=np.float64)
    return np.stack(
        [points[36:42].mean(axis=0), points[42:48].mean(axis=0), points[30], points[48], points[54]]
    )


def similarity_transform(
    source: NDArray[np.float64], target: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The 2x3 similarity (rotation, uniform scale, shift) that maps ``source`` points
    nearest to ``target`` points in least squares, without reflection (Umeyama)."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    centred_source, centred_target = source - source_mean, target - target_mean
    covariance = centred_target.T @ centred_source / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    signs = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        signs[1] = -1.0
    rotation = u @ np.diag(signs) @ vt
    variance = (centred_source**2).sum() / len(source)
    scale = float(singular @ signs) / variance if variance > 0 else 1.0
    shift = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, shift[:, None]])


def aligned_chip(image: RGBImage, points: NDArray[np.float64]) -> NDArray[np.uint8]:
    """The 112x112 RGB chip with the five ``points`` of ``image`` on TEMPLATE.

    Sampled bilinearly, black outside the image, as OpenCV's ``warpAffine``. Its
    matrix maps pixel centres at whole coordinates; Pillow's at half ones, and it
    wants the inverse map (chip to image): hence the half-pixel shifts.
    """
    from PIL import Image

    forward = similarity_transform(points, TEMPLATE)
    inverse = np.linalg.inv(np.vstack([forward, [0.0, 0.0, 1.0]]))[:2]
    half = np.array([0.5, 0.5])
    inverse[:, 2] += half - inverse[:, :2] @ half
    chip = Image.fromarray(np.ascontiguousarray(image[..., :3])).transform(
        (CHIP_SIDE, CHIP_SIDE),
        Image.Transform.AFFINE,
        tuple(inverse.ravel()),
        resample=Image.Resampling.BILINEAR,
    )
    return np.asarray(chip, dtype=np.uint8)


def describe_landmarks(
    image: RGBImage, landmarks: Sequence[Sequence[tuple[int, int]]]
) -> NDArray[np.float64]:
    """SFace descriptors (N, 128) of the faces with these 68-point landmarks."""
    if not landmarks:
        return np.empty((0, DESCRIPTOR_SIZE))
    chips = np.stack([aligned_chip(image, five_points(marks)) for marks in landmarks])
    return sface().describe(chips)


def describe_boxes(image: RGBImage, boxes: Sequence[FaceBox]) -> NDArray[np.float64]:
    """SFace descriptors (N, 128) of the faces at ``boxes``, landmarks found as
    facematch finds them (dlib's 68-point predictor on each box)."""
    return describe_landmarks(image, [shape_points(s) for s in align(image, boxes, 68)])
