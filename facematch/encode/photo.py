"""A photo or a video frame -> its faces: the one way every command finds and describes faces.

Detection runs on a working copy just large enough for the smallest face asked
for (``FaceSettings.working_scale``); faces are described from the full pixels,
which are only made, and the descriptor engine only loaded, once a face is found.

* ``faces_in_file`` / ``faces_in_working_copy``: faces with landmarks and
  embeddings, as matching, ``index``, video frames and the known folder use them;
* ``boxes_in_file`` / ``boxes_in_pixels``: boxes only, found the same way
  (``cloak`` and ``detect``);
* redaction looks harder, with several detector passes (``encode.passes``), and
  describes their united boxes with the same ``describe``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from facematch.detect.boxes import trim_box
from facematch.encode.faces import (
    FALLBACK_CNN_MAX_PIXELS,
    Encoder,
    FaceSettings,
    describe_to_match,
    detect_with_fallback,
)
from facematch.records import Face, FaceBox
from facematch.sources.images import (
    RGBImage,
    load_rgb,
    load_scaled,
    scaled_size,
    shrink,
    shrinks_to_luminance,
    working_copy,
)


def load_working(path: str, settings: FaceSettings) -> tuple[RGBImage, tuple[int, int]]:
    """The working copy detection runs on, and the full (height, width).

    For HOG, which sees only luminance, a shrunk copy is decoded as luminance
    (a JPEG then decodes no colour at all); the faces are described from the
    full-resolution pixels anyway. A copy that is not shrunk stays RGB: it is
    the image the faces are described from; so does one small enough for the
    CNN fallback (detect_with_fallback), which sees colour.
    """
    return load_scaled(path, settings.working_scale, luminance_over=_luminance_over(settings))


def working_pixels(image: RGBImage, settings: FaceSettings, scale: float | None = None) -> RGBImage:
    """``load_working``'s working copy, made from pixels already in memory; ``scale``:
    shrunk by this much instead of ``settings.working_scale``'s."""
    height, width = image.shape[:2]
    if scale is None:
        scale = settings.working_scale(height, width)
    target = scaled_size(width, height, scale)
    if shrinks_to_luminance((width, height), target, _luminance_over(settings)):
        from PIL import Image

        grey = Image.fromarray(image).convert("L")
        return np.asarray(shrink(grey, width, height, scale))
    return working_copy(image, scale)


def _luminance_over(settings: FaceSettings) -> int | None:
    """The pixels above which HOG's shrunk working copy is luminance; None: never."""
    if settings.model != "hog":
        return None
    return FALLBACK_CNN_MAX_PIXELS if settings.fallback else 0


def faces_in_working_copy(
    small: RGBImage,
    full_size: tuple[int, int],
    load_full: Callable[[], RGBImage],
    settings: FaceSettings,
    encoder: Callable[[], Encoder],
) -> list[Face]:
    """The faces of a photo or a video frame, from its working copy and full pixels.

    Detection runs on ``small``, a copy of the (height, width) ``full_size``
    picture scaled as ``settings.working_scale`` says; only if it finds a face
    are the full pixels made (``load_full``) and the descriptor engine built
    (``encoder``).
    """
    # Faces to describe: CenterFace's faces seen in profile are left out.
    boxes = detect_with_fallback(small, settings, full_size, turned=False)
    if not boxes:
        return []
    full = small if small.shape[:2] == full_size and small.ndim == 3 else load_full()
    return describe_to_match(full, boxes, settings, encoder())


def faces_in_file(path: str, settings: FaceSettings, encoder: Callable[[], Encoder]) -> list[Face]:
    """Every describable face of an image file (raises ImageError when it cannot be read)."""
    small, full_size = load_working(path, settings)
    return faces_in_working_copy(small, full_size, lambda: load_rgb(path), settings, encoder)


def boxes_in_pixels(
    image: RGBImage, settings: FaceSettings, scale: float | None = None
) -> list[FaceBox]:
    """Face boxes in pixels already in memory, found as in a file of them (untrimmed);
    ``scale``: on a working copy shrunk by this much (``working_pixels``)."""
    small = working_pixels(image, settings, scale)
    return detect_with_fallback(small, settings, (image.shape[0], image.shape[1]))


def boxes_in_file(path: str, settings: FaceSettings) -> list[FaceBox]:
    """Face boxes of an image file, in its full pixels, trimmed to it.

    Found as ``faces_in_file`` finds them: the same working copy, and the
    retries of ``detect_with_fallback`` when ``settings.fallback`` (matching's
    boxes, before faces too turned or too dark to describe are left out).
    """
    small, (height, width) = load_working(path, settings)
    found = detect_with_fallback(small, settings, (height, width))
    return [trim_box(b, height, width) for b in found]
