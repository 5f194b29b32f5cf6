"""What a person sees of a cloak: PSNR, and the structural dissimilarity (DSSIM) of the face
and of the whole photo, at full size and at a common viewing size."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from facematch.detect.boxes import grow_box
from facematch.privacy.cloak.alignment import gaussian_kernel
from facematch.records import FaceBox
from facematch.sources.images import RGBImage

Pixels = NDArray[np.uint8] | NDArray[np.float32] | NDArray[np.float64]
"""Pictures to compare: 8-bit, or float on the same 0-255 scale."""


def psnr(a: RGBImage, b: RGBImage, rows: int = 64) -> float:
    """Peak signal-to-noise ratio in dB; the squared error summed exactly, a band of rows
    at a time (a 12 MP photo as one float64 array would cost about a CPU-second)."""
    total = 0
    for y in range(0, a.shape[0], rows):
        difference = np.subtract(a[y : y + rows], b[y : y + rows], dtype=np.int64).ravel()
        total += int(difference @ difference)
    return math.inf if total == 0 else 10 * math.log10(255.0**2 * a.size / total)


SSIM_TAPS = 11
SSIM_SIGMA = 1.5
"""The structural similarity's window: Gaussian, 11 taps, sigma 1.5 (Wang et al. 2004;
TensorFlow's ``tf.image.ssim``, with which Fawkes budgets its DSSIM)."""

VIEWING_SIDE = 1080
"""The longer side of a photo as people commonly view it (a phone or a web page)."""


_SSIM_WINDOW = gaussian_kernel(SSIM_SIGMA, SSIM_TAPS)

C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2
"""SSIM's stabilising constants for 8-bit pictures (K1 = 0.01, K2 = 0.03)."""


def _window_means(z: NDArray[np.float32]) -> NDArray[np.float32]:
    """Gaussian-weighted means over every whole window (valid positions), per channel
    (SciPy's C loop, edges repeated then cut off; the cloak extra has SciPy)."""
    from scipy.ndimage import correlate1d

    taps = _SSIM_WINDOW
    out = correlate1d(correlate1d(z, taps, axis=0, mode="nearest"), taps, axis=1, mode="nearest")
    half = SSIM_TAPS // 2
    return out[half : z.shape[0] - half, half : z.shape[1] - half]  # type: ignore[no-any-return]


BAND = 256
"""Rows of windows worked at a time: a 12 MP photo is never held as five float maps."""


def ssim_sum(a: Pixels, b: Pixels) -> tuple[float, int]:
    """The structural similarity summed over every whole window and colour channel, and
    how many there are (channels x positions); worked a band of rows at a time."""
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if min(a.shape[:2]) < SSIM_TAPS:
        return 0.0, 0
    total, count = 0.0, 0
    for start in range(0, a.shape[0] - SSIM_TAPS + 1, BAND):
        rows = slice(start, min(start + BAND + SSIM_TAPS - 1, a.shape[0]))
        x, y = np.asarray(a[rows], np.float32), np.asarray(b[rows], np.float32)
        mx, my = _window_means(x), _window_means(y)
        squares = mx * mx + my * my
        # Only the sum of the two variances enters SSIM: four maps filtered, not five.
        variances = _window_means(x * x + y * y) - squares
        cxy = _window_means(x * y) - mx * my
        index = ((2 * mx * my + C1) * (2 * cxy + C2)) / ((squares + C1) * (variances + C2))
        total += float(index.sum(dtype=np.float64))
        count += index.size
    return total, count


def dssim(a: Pixels, b: Pixels) -> float:
    """Structural dissimilarity, (1 - SSIM) / 2: 0 for identical pictures.

    SSIM is the mean over colour channels and whole windows, as Fawkes measures
    its budget (0.003 to 0.01 on its face crops). A picture smaller than one
    window counts as identical only if it is.
    """
    total, count = ssim_sum(a, b)
    if count == 0:
        return 0.0 if np.array_equal(a, b) else 0.5
    return (1.0 - total / count) / 2


def at_most(image: RGBImage, side: int) -> RGBImage:
    """The photo scaled (Lanczos) so its longer side is at most ``side``, as shown."""
    if max(image.shape[:2]) <= side:
        return image
    factor = side / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def photo_dssim(a: RGBImage, b: RGBImage, side: int | None = None) -> float:
    """DSSIM of a whole photo, at full size or scaled so its longer side is ``side``.

    Only the windows near changed pixels are computed: every other window is
    identical, and its SSIM exactly 1 (a 12 MP photo is never worked whole).
    """
    if side is not None:
        a, b = at_most(a, side), at_most(b, side)
    changed = np.any(a != b, axis=-1)
    if not changed.any():
        return 0.0
    height, width = a.shape[:2]
    if min(height, width) < SSIM_TAPS:
        return dssim(a, b)
    ys, xs = np.nonzero(changed.any(axis=1))[0], np.nonzero(changed.any(axis=0))[0]
    margin = SSIM_TAPS - 1
    y0, y1 = max(int(ys[0]) - margin, 0), min(int(ys[-1]) + 1 + margin, height)
    x0, x1 = max(int(xs[0]) - margin, 0), min(int(xs[-1]) + 1 + margin, width)
    total, count = ssim_sum(a[y0:y1, x0:x1], b[y0:y1, x0:x1])
    windows = (height - margin) * (width - margin) * a.shape[2]
    return float((count - total) / windows / 2)


def face_region(box: FaceBox, height: int, width: int) -> FaceBox:
    """The face's region of influence: its box widened by 30% of its side on every side,
    about what the descriptor's aligned chip covers (forehead, hair line, jaw)."""
    return grow_box(box, 0.3, width, height)


def face_dssim(a: RGBImage, b: RGBImage, box: FaceBox) -> float:
    """DSSIM of the face's region (:func:`face_region`) at the photo's full resolution."""
    r = face_region(box, a.shape[0], a.shape[1])
    return dssim(a[r.top : r.bottom, r.left : r.right], b[r.top : r.bottom, r.left : r.right])


def scaled_within(
    change: NDArray[np.float32],
    dssim_of: Callable[[NDArray[np.float32]], float],
    most: float,
    rounds: int,
    margin: float = 1.0,
) -> NDArray[np.float32]:
    """``change`` scaled down until ``dssim_of(change)`` is at most ``most``: up to
    ``rounds`` times by sqrt(most / seen) * ``margin`` (DSSIM grows about as the
    square of a change), the last scaling not measured again."""
    for _ in range(rounds):
        seen = dssim_of(change)
        if seen <= most:
            break
        change = (change * math.sqrt(most / seen) * margin).astype(np.float32)
    return change
