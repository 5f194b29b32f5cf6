"""A cloak strength: levels, variants and the constants every part of the cloak shares."""

from __future__ import annotations

import math
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

JPEG_QUALITY_OUT = 95
"""Quality of cloaked JPEG copies (4:4:4, so colour detail of the cloak is kept)."""


@dataclass(frozen=True)
class Level:
    """A cloak's strength: budget (grey levels of 255), steps and the transformations it survives.

    ``checks`` are the variants :func:`verify` requires to be unmatched.
    ``stop``: the steps end early once the step's views are, on average, at least
    this far from the original face in two steps in a row (at most ``steps``).
    ``harder`` multiplies the budget for a face's later attempts.
    """

    name: LevelName
    epsilon: float
    steps: int
    samples: int
    robust: bool
    checks: tuple[str, ...]
    stop: float = math.inf
    harder: tuple[float, ...] = (1.0, 1.5)


LEVELS: dict[str, Level] = {
    "subtle": Level("subtle", 4.0, 20, 4, robust=False, checks=("written", "jpeg90"), stop=0.8),
    "strong": Level(
        "strong", 8.0, 20, 6, robust=True, checks=("written", "jpeg75", "half", "blur"), stop=0.9
    ),
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
