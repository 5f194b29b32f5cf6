"""face_recognition 1.3.0's public functions, same names, parameters and return values.

These work on the image exactly as given (no right-sizing), so boxes and
distances equal face_recognition's. The one deliberate difference:
``load_image_file`` turns the image upright by its EXIF orientation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from facematch.detect import detectors
from facematch.detect.boxes import trim_box
from facematch.detect.detectors import fits_detector, rect_to_box
from facematch.models import dlib_files as models
from facematch.sources.images import heif_available, to_rgb

Css = tuple[int, int, int, int]


def load_image_file(file: str | Path | IO[bytes], mode: str = "RGB") -> NDArray[np.uint8]:
    """Load an image file (path or file object) into a numpy array, upright by EXIF."""
    heif_available()
    with Image.open(file) as image:
        upright = ImageOps.exif_transpose(image)
        converted = to_rgb(upright) if mode == "RGB" else upright.convert(mode)
        return np.array(converted)


def _raw_face_locations(
    img: NDArray[np.uint8], number_of_times_to_upsample: int, model: str
) -> list[Any]:
    if not fits_detector(img, number_of_times_to_upsample):
        return []  # too small for any face, and unsafe to hand dlib's CNN
    if model == "cnn":
        return list(models.cnn_detector()(img, number_of_times_to_upsample))
    return list(models.hog_detector()(img, number_of_times_to_upsample))


def _css(rect: Any, shape: tuple[int, ...]) -> Css:
    return trim_box(rect_to_box(rect), shape[0], shape[1]).css()


def face_locations(
    img: NDArray[np.uint8], number_of_times_to_upsample: int = 1, model: str = "hog"
) -> list[Css]:
    """Bounding boxes of faces as (top, right, bottom, left) tuples.

    ``model`` is "hog", "cnn" or "centerface" (facematch[detector]; it runs on
    the image as given, whatever the upsample).
    """
    if detectors.require(model) == "centerface":
        image = np.asarray(img)
        rgb = image if image.ndim == 3 else np.dstack([image] * 3)
        found = detectors.detect(rgb, "centerface")
        return [trim_box(d.box, img.shape[0], img.shape[1]).css() for d in found]
    raw = _raw_face_locations(img, number_of_times_to_upsample, model)
    if model == "cnn":
        return [_css(d.rect, img.shape) for d in raw]
    return [_css(r, img.shape) for r in raw]


def batch_face_locations(
    images: Sequence[NDArray[np.uint8]], number_of_times_to_upsample: int = 1, batch_size: int = 128
) -> list[list[Css]]:
    """CNN face boxes for a batch of same-sized images (a GPU build of dlib batches them)."""
    if not all(fits_detector(img, number_of_times_to_upsample) for img in images):
        return [face_locations(img, number_of_times_to_upsample, "cnn") for img in images]
    detections = models.cnn_detector()(
        list(images), number_of_times_to_upsample, batch_size=batch_size
    )
    return [
        [_css(d.rect, img.shape) for d in dets]
        for img, dets in zip(images, detections, strict=True)
    ]


def _rect(css: Css) -> Any:
    import dlib

    top, right, bottom, left = css
    return dlib.rectangle(left, top, right, bottom)


def _raw_face_landmarks(
    face_image: NDArray[np.uint8], face_locations: Sequence[Css] | None = None, model: str = "large"
) -> list[Any]:
    if face_locations is None:
        rects = _raw_face_locations(face_image, 1, "hog")
    else:
        rects = [_rect(css) for css in face_locations]
    predictor = models.shape_predictor(5 if model == "small" else 68)
    return [predictor(face_image, r) for r in rects]


def face_landmarks(
    face_image: NDArray[np.uint8], face_locations: Sequence[Css] | None = None, model: str = "large"
) -> list[dict[str, list[tuple[int, int]]]]:
    """Facial feature points (eyes, nose, lips, ...) for each face."""
    shapes = _raw_face_landmarks(face_image, face_locations, model)
    points = [[(p.x, p.y) for p in shape.parts()] for shape in shapes]
    if model == "large":
        return [
            {
                "chin": p[0:17],
                "left_eyebrow": p[17:22],
                "right_eyebrow": p[22:27],
                "nose_bridge": p[27:31],
                "nose_tip": p[31:36],
                "left_eye": p[36:42],
                "right_eye": p[42:48],
                "top_lip": [*p[48:55], p[64], p[63], p[62], p[61], p[60]],
                "bottom_lip": [*p[54:60], p[48], p[60], p[67], p[66], p[65], p[64]],
            }
            for p in points
        ]
    if model == "small":
        return [{"nose_tip": [p[4]], "left_eye": p[2:4], "right_eye": p[0:2]} for p in points]
    raise ValueError("Invalid landmarks model type. Supported models are ['small', 'large'].")


def face_encodings(
    face_image: NDArray[np.uint8],
    known_face_locations: Sequence[Css] | None = None,
    num_jitters: int = 1,
    model: str = "small",
) -> list[NDArray[np.float64]]:
    """128-d encodings of each face, computed by dlib's own network (the reference)."""
    shapes = _raw_face_landmarks(face_image, known_face_locations, model)
    encoder = models.dlib_face_encoder()
    return [
        np.array(encoder.compute_face_descriptor(face_image, shape, num_jitters))
        for shape in shapes
    ]


def face_distance(
    face_encodings: Sequence[NDArray[np.float64]] | NDArray[np.float64],
    face_to_compare: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Euclidean distance from each encoding to the one to compare."""
    if len(face_encodings) == 0:
        return np.empty(0)
    return np.asarray(np.linalg.norm(np.asarray(face_encodings) - face_to_compare, axis=1))


def compare_faces(
    known_face_encodings: Sequence[NDArray[np.float64]] | NDArray[np.float64],
    face_encoding_to_check: NDArray[np.float64],
    tolerance: float = 0.6,
) -> list[bool]:
    """For each known encoding, whether it is within ``tolerance`` of the one to check."""
    return [
        bool(v) for v in face_distance(known_face_encodings, face_encoding_to_check) <= tolerance
    ]
