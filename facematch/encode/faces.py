"""Image -> faces: detection, alignment and encoding, as small typed steps.

Detection runs on a right-sized copy of the image: just large enough that a
face of ``min_face_size`` pixels (in the original) is still at least the
detector's smallest window. With the defaults that working copy is exactly the
1600 px thumbnail face_recognition's CLI detects on, so we find the faces it
finds. Boxes are then mapped back, and landmarks and embeddings are computed
from the full-resolution pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from facematch.detect import detectors
from facematch.detect.boxes import trim_box
from facematch.detect.detectors import DETECTOR_WINDOW as DETECTOR_WINDOW
from facematch.detect.detectors import DetectorName
from facematch.models import dlib_files as models
from facematch.records import Face
from facematch.records import FaceBox as FaceBox
from facematch.sources.images import RGBImage, dlib_pixels, working_copy

EngineName = Literal["onnx", "dlib"]

CHIP_SIZE = 150
CHIP_PADDING = 0.25
# face_recognition's CLI shrinks unknown images to 1600 px before detecting.
REFERENCE_LONG_SIDE = 1600


@dataclass(frozen=True)
class FaceSettings:
    """Everything that changes which faces are found and what their embeddings are."""

    model: DetectorName = "hog"
    upsample: int = 1
    # None: the detector's own threshold (see facematch.detect.detectors.detect).
    threshold: float | None = None
    min_face_size: int | None = None
    # 68-point alignment and mirror averaging separate people best on the shared
    # labelled sets at about 1.06x the time (docs/measurements/accuracy.md): the defaults.
    landmarks: int = 68
    jitters: int = 1
    mirror: bool = True
    fallback: bool = True

    def smallest_face(self, height: int, width: int) -> float:
        """The smallest face (original pixels) detection must still find in this image.

        By default that is what face_recognition's CLI can find: the detector's
        window at this upsample, on the image shrunk to at most 1600 px.
        """
        if self.min_face_size is not None:
            return float(self.min_face_size)
        shrink = max(1.0, max(height, width) / REFERENCE_LONG_SIDE)
        return DETECTOR_WINDOW / 2.0**self.upsample * shrink

    def working_scale(self, height: int, width: int) -> float:
        """Scale (<= 1) of the copy the detector runs on."""
        detectable = detectors.smallest_detectable(self.model, self.upsample)
        scale = detectable / self.smallest_face(height, width)
        if self.model == "centerface":
            # Small images cost CenterFace little; shrinking them only blurs its boxes.
            scale = max(scale, detectors.CENTERFACE_MIN_WORKING_SIDE / max(height, width, 1))
        return min(1.0, scale)


def sensitive_settings(base: FaceSettings | None = None) -> FaceSettings:
    """``base`` (default: the defaults) with the most sensitive detector available here.

    For redaction and video, where a missed face costs more than a false box:
    CenterFace at a low threshold, or without facematch[detector] HOG with more
    upsampling and a warning naming the extra (see detectors.most_sensitive).
    """
    chosen = detectors.most_sensitive()
    return replace(
        base or FaceSettings(),
        model=chosen.model,
        upsample=chosen.upsample,
        threshold=chosen.threshold,
        min_face_size=chosen.min_face_size,
    )


class Encoder(Protocol):
    """Turns aligned 150x150 face chips into 128-d embeddings."""

    def encode(self, chips: NDArray[np.uint8]) -> NDArray[np.float64]: ...


class DlibEncoder:
    """dlib's own ResNet descriptor, single-threaded, no BLAS (the reference)."""

    def encode(self, chips: NDArray[np.uint8]) -> NDArray[np.float64]:
        if len(chips) == 0:
            return np.empty((0, 128))
        net = models.dlib_face_encoder()
        vectors = net.compute_face_descriptor(list(chips))
        return np.array([np.array(v) for v in vectors], dtype=np.float64)


def _working(
    image: RGBImage, settings: FaceSettings, full_size: tuple[int, int] | None
) -> tuple[RGBImage, tuple[int, int]]:
    """The working copy and the full (height, width): ``image`` is one or the other."""
    if full_size is not None:
        return image, full_size
    full_size = (image.shape[0], image.shape[1])
    return working_copy(image, settings.working_scale(*full_size)), full_size


def box_to_rect(box: FaceBox) -> Any:
    import dlib

    return dlib.rectangle(box.left, box.top, box.right, box.bottom)


def run_detector(
    image: RGBImage,
    model: DetectorName,
    upsample: int,
    threshold: float | None = None,
    *,
    turned: bool = True,
) -> list[FaceBox]:
    """Raw detector boxes on this very image; they may reach past its edges.

    An image too small to hold a face at the detector's scale has none, and
    is never handed to dlib (see MIN_DETECTOR_SIDE). ``turned=False`` leaves out
    faces too turned to describe (see detectors.TURNED_EYE_RATIO).
    """
    found = detectors.detect(image, model, upsample, threshold, turned=turned)
    return [face.box for face in found]


def detect(
    image: RGBImage,
    settings: FaceSettings,
    full_size: tuple[int, int] | None = None,
    *,
    turned: bool = True,
) -> list[FaceBox]:
    """Raw face boxes in full-resolution coordinates, found on a right-sized copy.

    ``image`` is the full image, or (with ``full_size``) already the working
    copy of an image of that (height, width). The boxes are not trimmed to the
    image: like face_recognition, landmarks are predicted from the raw box,
    which matters for faces cut by an edge. ``turned=False`` leaves out faces
    too turned to describe (see detectors.TURNED_EYE_RATIO).
    """
    image, (height, width) = _working(image, settings, full_size)
    boxes = run_detector(
        image, settings.model, settings.upsample, settings.threshold, turned=turned
    )
    if (height, width) == image.shape[:2]:
        return boxes
    sy, sx = height / image.shape[0], width / image.shape[1]
    return [
        FaceBox(
            round(b.top * sy), round(b.right * sx), round(b.bottom * sy), round(b.left * sx), b.roll
        )
        for b in boxes
    ]


def align(image: RGBImage, boxes: Sequence[FaceBox], points: int) -> list[Any]:
    """dlib landmark shapes (full_object_detection) for each box."""
    predictor = models.shape_predictor(points)
    pixels = dlib_pixels(image)
    return [predictor(pixels, box_to_rect(b)) for b in boxes]


def face_chips(image: RGBImage, shapes: Sequence[Any]) -> NDArray[np.uint8]:
    """Aligned 150x150 chips, cut exactly as dlib's own descriptor path cuts them."""
    import dlib

    if not shapes:
        return np.empty((0, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    detections = dlib.full_object_detections()
    for shape in shapes:
        detections.append(shape)
    chips = dlib.get_face_chips(dlib_pixels(image), detections, CHIP_SIZE, CHIP_PADDING)
    return np.stack([np.asarray(c, dtype=np.uint8) for c in chips])


def shape_points(shape: Any) -> tuple[tuple[int, int], ...]:
    return tuple((int(p.x), int(p.y)) for p in shape.parts())


def describe(
    image: RGBImage,
    boxes: Sequence[FaceBox],
    settings: FaceSettings,
    encoder: Encoder,
    *,
    flat_below: float | None = None,
) -> list[Face]:
    """Landmarks and embeddings for boxes, from the full-resolution pixels.

    Landmarks come from the boxes as given; the faces report them trimmed. With
    ``flat_below``, faces whose aligned chip has less contrast than that (see
    ``chip_contrast``) are left out: too dark or blurred to describe.
    """
    height, width = image.shape[:2]
    upright = [abs(b.roll) >= UPRIGHT_FROM_ROLL for b in boxes]
    shapes = align(
        image, [b for b, u in zip(boxes, upright, strict=True) if not u], settings.landmarks
    )
    chips = face_chips(image, shapes)
    if any(upright):
        chips, points = _with_upright(image, boxes, upright, shapes, chips, settings.landmarks)
    else:
        points = [shape_points(s) for s in shapes]
    if flat_below is not None and len(chips):
        keep = chip_contrast(chips) >= flat_below
        boxes = [b for b, k in zip(boxes, keep, strict=True) if k]
        points = [p for p, k in zip(points, keep, strict=True) if k]
        chips = chips[keep]
    embeddings = encoder.encode(chips)
    return [
        Face(trim_box(box, height, width), marks, embedding)
        for box, marks, embedding in zip(boxes, points, embeddings, strict=True)
    ]


UPRIGHT_FROM_ROLL = 10.0
"""A face tilted at least this far (degrees, as its detector measured it: only
CenterFace does) is turned upright before its landmarks are found. dlib's
landmark predictor starts from an upright face inside the box; on a face
tilted 30-40 degrees it settles on an upright shape in the wrong place, and the
embedding lands far from the person (0.60-0.72 from their own photos in a
real clip of two people tilting their heads, instead of 0.35-0.42 when turned
upright first). Chosen on lfw-dev photos turned by known angles
(benchmarks/accuracy/rolled_faces.py; docs/measurements/redaction.md)."""

UPRIGHT_REACH = 1.5
"""Half the side of the square cut around a tilted face, in box sides: room for
the face and the chip's padding after turning."""


def _with_upright(
    image: RGBImage,
    boxes: Sequence[FaceBox],
    upright: Sequence[bool],
    shapes: Sequence[Any],
    chips: NDArray[np.uint8],
    points: int,
) -> tuple[NDArray[np.uint8], list[tuple[tuple[int, int], ...]]]:
    """Chips and landmarks (image pixels) for every box, in order: the upright ones
    from ``shapes``/``chips``, the tilted ones cut out, turned upright and described."""
    level = iter(zip(shapes, chips, strict=True))
    all_chips: list[NDArray[np.uint8]] = []
    all_points: list[tuple[tuple[int, int], ...]] = []
    for box, turn in zip(boxes, upright, strict=True):
        if not turn:
            shape, chip = next(level)
            all_chips.append(chip)
            all_points.append(shape_points(shape))
            continue
        chip, marks = _upright_chip(image, box, points)
        all_chips.append(chip)
        all_points.append(marks)
    return np.stack(all_chips), all_points  # at least the one tilted face


def _upright_chip(
    image: RGBImage, box: FaceBox, points: int
) -> tuple[NDArray[np.uint8], tuple[tuple[int, int], ...]]:
    """One tilted face's chip, found on a square around it turned by its roll, and its
    landmarks mapped back to the image's pixels."""
    from PIL import Image

    side = max(box.right - box.left, box.bottom - box.top)
    reach = max(1, round(side * UPRIGHT_REACH))
    centre_x, centre_y = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    left, top = round(centre_x) - reach, round(centre_y) - reach
    square = Image.fromarray(np.ascontiguousarray(image[..., :3])).crop(
        (left, top, left + 2 * reach, top + 2 * reach)
    )
    turned = np.asarray(
        square.rotate(box.roll, resample=Image.Resampling.BILINEAR, center=(reach, reach))
    )
    half_w, half_h = (box.right - box.left) // 2, (box.bottom - box.top) // 2
    inner = FaceBox(reach - half_h, reach + half_w, reach + half_h, reach - half_w)
    shape = align(turned, [inner], points)[0]
    chip = face_chips(turned, [shape])[0]
    angle = np.radians(box.roll)
    cos, sin = float(np.cos(angle)), float(np.sin(angle))
    marks = []
    for x, y in shape_points(shape):
        dx, dy = x - reach, y - reach
        marks.append(
            (round(left + reach + cos * dx - sin * dy), round(top + reach + sin * dx + cos * dy))
        )
    return chip, tuple(marks)


FLAT_CHIP_CONTRAST = 8.0
"""Faces CenterFace finds whose chip is flatter than this are not described.

CenterFace finds faces in the dark that HOG never sees (it needs edges). Their
chips are nearly uniform, and dlib's descriptor puts such chips near anyone: in
the Hamilton clip, audience faces in the dark (contrast 1-4) were named as a
known person at 0.597. Measured with CenterFace on 300 random lfw-dev photos:
the faces' contrast runs from 5.4 (the darkest) with 0.5% under 13.5 and a
median of 35; in-focus faces in the clip 27-50, Alex Lacamoire at the piano 30."""


def describe_to_match(
    image: RGBImage, boxes: Sequence[FaceBox], settings: FaceSettings, encoder: Encoder
) -> list[Face]:
    """``describe`` for faces that will be matched: CenterFace's faces too dark to
    describe are left out (HOG never finds them; redaction describes every face)."""
    flat = FLAT_CHIP_CONTRAST if settings.model == "centerface" else None
    return describe(image, boxes, settings, encoder, flat_below=flat)


def chip_contrast(chips: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Per aligned 150x150 chip: the standard deviation of its grey levels in the
    central 100x100 (eyes, nose and mouth; little background)."""
    centre = chips[:, 25:125, 25:125].astype(np.float64).mean(axis=3)
    contrast: NDArray[np.float64] = centre.reshape(len(chips), -1).std(axis=1)
    return contrast


# Fallback passes run only where they are affordable: small images, which is
# also where HOG misses faces most (crops, thumbnails, scanned prints).
FALLBACK_UPSAMPLE_MAX_PIXELS = 1_000_000
FALLBACK_CNN_MAX_PIXELS = 300_000


def detect_with_fallback(
    image: RGBImage,
    settings: FaceSettings,
    full_size: tuple[int, int] | None = None,
    *,
    turned: bool = True,
) -> list[FaceBox]:
    """Detect; if nothing is found, retry with one more upsample, then the CNN detector.

    The retries run on the same working copy, and only where they are
    affordable: on small images, which is also where HOG misses faces most.
    ``turned=False``: faces to describe, without those too turned for it.
    """
    image, full_size = _working(image, settings, full_size)
    boxes = detect(image, settings, full_size, turned=turned)
    if boxes or not settings.fallback or settings.model == "centerface":
        return boxes
    pixels = image.shape[0] * image.shape[1]
    if pixels * 4**settings.upsample <= FALLBACK_UPSAMPLE_MAX_PIXELS:
        boxes = detect(image, replace(settings, upsample=settings.upsample + 1), full_size)
        if boxes:
            return boxes
    if settings.model == "hog" and pixels <= FALLBACK_CNN_MAX_PIXELS:
        boxes = detect(image, replace(settings, model="cnn", upsample=1, threshold=None), full_size)
    return boxes


def find_faces(image: RGBImage, settings: FaceSettings, encoder: Encoder) -> list[Face]:
    """Every face in an image that can be described, in the detector's order."""
    boxes = detect_with_fallback(image, settings, turned=False)
    return describe_to_match(image, boxes, settings, encoder)
