"""A cloak strength: levels, variants and the constants every part of the cloak shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

LevelName = Literal["subtle", "strong"]
FloatImage = NDArray[np.float32]

EXTRA_MESSAGE = "facematch cloak needs the optional extra: pip install 'facematch[cloak]'"

CANVAS = 320
"""Side of the square canvas a face is cloaked on (one compiled graph for every face)."""

MAX_CHIP_SIDE = 220
"""Largest chip side on the canvas: bigger faces are worked on a downscaled copy."""

KERNEL_TAPS = 7
"""Length of the separable Gaussian kernels standing in for blur and downscales."""

MATCH_THRESHOLD = 0.6
"""face_recognition's and facematch's default tolerance: a face nearer than this matches."""

JPEG_QUALITY_OUT = 100
JPEG_SUBSAMPLING_OUT = 0
"""Quality and chroma subsampling (Pillow's 0: 4:4:4, so the colour of the cloak is
kept) of cloaked JPEG copies."""

ALL_CHECKS = ("written", "jpeg75", "half", "blur")


@dataclass(frozen=True)
class Level:
    """A cloak's strength: what the eye may see of it, steps, and what it survives.

    ``dssim``: the most the face's region may change, as structural dissimilarity
    at the photo's full resolution, the copy's own JPEG compression included
    (Fawkes budgets 0.003 to 0.01 on its face crops). ``epsilon``: the most any
    pixel may change (grey levels of 255). ``texture``: the least and most of a
    step a pixel gets, relative to the face's typical one, by what SSIM forgives
    there (:func:`canvas.budget_map`). ``smooth``: the blur (canvas pixels) of
    each step's gradient, so the pattern is not pixel noise.
    ``checks`` are the variants :func:`verify` requires to be unmatched.
    ``stop``: the steps end early once the step's views are, on average, at least
    this far from the original face in two steps in a row (at most ``steps``).
    ``harder`` multiplies ``epsilon`` for a face's later attempts, and ``dssim``
    by its square.
    """

    name: LevelName
    epsilon: float
    dssim: float
    harder: tuple[float, ...]
    steps: int = 20
    samples: int = 6
    robust: bool = True
    checks: tuple[str, ...] = ALL_CHECKS
    stop: float = 0.9
    texture: tuple[float, float] = (0.1, 4.0)
    smooth: float = 1.0
    chroma: float = 0.25


LEVELS: dict[str, Level] = {
    # The retries: DSSIM 0.0035 * 1.069 ** 2 = 0.0040, and 0.0075 * 1.032 ** 2 = 0.0080.
    "subtle": Level("subtle", 12.0, 0.0035, (1.0, 1.069)),
    "strong": Level("strong", 16.0, 0.0075, (1.0, 1.032)),
}

VARIANTS: dict[str, str] = {
    "written": "the copy as written",
    "jpeg90": "re-saved as JPEG quality 90",
    "jpeg75": "re-saved as JPEG quality 75",
    "half": "downscaled to 50%",
    "blur": "blurred (Gaussian, radius 1)",
}

ALIGNMENTS: dict[str, tuple[int, bool]] = {
    "face_recognition": (5, False),  # 5-point alignment, no mirror: face_recognition 1.3.0
    "facematch": (68, True),  # facematch's defaults
}
