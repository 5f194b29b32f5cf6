"""Detector passes: how redaction looks harder for faces than matching does.

Each pass is a detector with its settings, run on a working copy, optionally with
mirrored borders so that faces cut by the frame are found whole.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from facematch.detect.boxes import trim_box
from facematch.encode.faces import FaceSettings, run_detector
from facematch.records import FaceBox
from facematch.sources.images import RGBImage, working_copy

# Mirrored border added on every side for the passes that look for cut faces.
MIRROR_PAD = 0.25


@dataclass(frozen=True)
class DetectorPass:
    """One detector run: its settings, and how much mirrored border to add first.

    A face cut by the frame is hard to detect; mirroring the border (``pad``, a
    share of each side added on every edge) completes it, and the detectors find
    it (measured: 7 of the 7 faces of a selfie instead of 4). Boxes wholly
    in the border are dropped.
    """

    settings: FaceSettings
    pad: float = 0.0


def redaction_passes(settings: FaceSettings) -> tuple[DetectorPass, ...]:
    """The detector passes whose faces redaction covers: the most sensitive affordable ones.

    The one place that chooses them. With facematch[detector] installed:
    CenterFace at its sensitive threshold (small, turned and cut faces), plus
    HOG at the command's upsample (2, one more than matching) and HOG at
    upsample 1 on a copy with mirrored borders. Without it (a warning names the
    extra): the two HOG passes and dlib's CNN detector (in ONNX Runtime) at
    upsample 0 with mirrored borders. ``--no-fallback`` leaves the CNN pass
    out; ``--model cnn`` runs the CNN alone, with mirrored borders. Measured in
    docs/measurements/redaction.md.
    """
    from facematch.detect.detectors import most_sensitive

    first = replace(settings, fallback=False)
    if settings.model == "cnn":
        return (DetectorPass(first, MIRROR_PAD),)
    hog = first if first.model == "hog" else replace(first, model="hog", threshold=None)
    passes = [DetectorPass(hog), DetectorPass(replace(hog, upsample=1), MIRROR_PAD)]
    sensitive = most_sensitive(warn=settings.model != "centerface")
    if sensitive.model == "centerface":
        centerface = replace(
            first,
            model="centerface",
            upsample=sensitive.upsample,
            threshold=sensitive.threshold,
            min_face_size=first.min_face_size or sensitive.min_face_size,
        )
        return (DetectorPass(centerface), *passes)
    if settings.fallback:
        passes.append(DetectorPass(replace(hog, model="cnn", upsample=0), MIRROR_PAD))
    return tuple(passes)


def detect_pass(image: RGBImage, detector: DetectorPass) -> list[FaceBox]:
    """Face boxes of one pass, in full-image pixels, trimmed to the image."""
    settings = detector.settings
    height, width = image.shape[:2]
    small = working_copy(image, settings.working_scale(height, width))
    pad_y, pad_x = (round(side * detector.pad) for side in small.shape[:2])
    if pad_y or pad_x:
        small = np.pad(small, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="reflect")
    inner_h, inner_w = small.shape[0] - 2 * pad_y, small.shape[1] - 2 * pad_x
    sy, sx = height / inner_h, width / inner_w
    boxes = []
    for b in run_detector(small, settings.model, settings.upsample, settings.threshold):
        box = FaceBox(
            round((b.top - pad_y) * sy),
            round((b.right - pad_x) * sx),
            round((b.bottom - pad_y) * sy),
            round((b.left - pad_x) * sx),
            b.roll,
        )
        trimmed = trim_box(box, height, width)
        if trimmed.right > trimmed.left and trimmed.bottom > trimmed.top:
            boxes.append(trimmed)
    return boxes
