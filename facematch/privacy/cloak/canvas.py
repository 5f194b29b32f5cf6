"""One face on its canvas: the perturbation found at the chip's scale, under random views."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter

from facematch.encode.faces import (
    CHIP_SIZE,
)
from facematch.privacy.cloak.alignment import bilinear_chips, gaussian_kernel
from facematch.privacy.cloak.gradients import (
    descriptor_gradient,
)
from facematch.privacy.cloak.levels import CANVAS, MAX_CHIP_SIDE, FloatImage, Level
from facematch.privacy.cloak.quality import C2, dssim, scaled_within
from facematch.records import FaceBox
from facematch.sources.images import RGBImage


@dataclass(frozen=True)
class Canvas:
    """A face's square working area: canvas (u, v) is photo (left + u / scale, top + v / scale)."""

    left: float
    top: float
    scale: float

    def region(self, box: FaceBox) -> tuple[slice, slice]:
        """A photo box's rows and columns on the canvas (clipped to it)."""

        def side(start: float, end: float, origin: float) -> slice:
            low = min(max(math.floor((start - origin) * self.scale), 0), CANVAS)
            return slice(low, min(max(math.ceil((end - origin) * self.scale), low), CANVAS))

        return side(box.top, box.bottom, self.top), side(box.left, box.right, self.left)

    def to_canvas(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        """A chip -> photo affine map turned into chip -> canvas."""
        out = matrix * self.scale
        out[0, 2] -= self.left * self.scale
        out[1, 2] -= self.top * self.scale
        return out


def place_canvas(matrices: Sequence[NDArray[np.float64]]) -> Canvas:
    """Centre the canvas on the chip, at the chip's scale (never enlarging the photo)."""
    centre = np.mean([m @ np.array([74.5, 74.5, 1.0]) for m in matrices], axis=0)
    side = max(float(np.hypot(m[0, 0], m[1, 0])) * CHIP_SIZE for m in matrices)
    scale = min(1.0, MAX_CHIP_SIDE / side)
    half = CANVAS / (2 * scale)
    left, top = centre[0] - half, centre[1] - half
    if scale == 1.0:  # the photo's own pixel grid
        left, top = math.floor(left), math.floor(top)
    return Canvas(float(left), float(top), scale)


def cut_canvas(photo: RGBImage, canvas: Canvas) -> tuple[FloatImage, FloatImage]:
    """The canvas's pixels and where they lie inside the photo (1) or not (0)."""
    height, width = photo.shape[:2]
    if canvas.scale == 1.0:
        left, top = int(canvas.left), int(canvas.top)
        out = np.zeros((CANVAS, CANVAS, 3), np.float32)
        valid = np.zeros((CANVAS, CANVAS, 1), np.float32)
        y0, y1 = max(top, 0), min(top + CANVAS, height)
        x0, x1 = max(left, 0), min(left + CANVAS, width)
        if y1 > y0 and x1 > x0:
            out[y0 - top : y1 - top, x0 - left : x1 - left] = photo[y0:y1, x0:x1]
            valid[y0 - top : y1 - top, x0 - left : x1 - left] = 1.0
        return out, valid
    span = CANVAS / canvas.scale
    # Crop (zero-padded where the canvas leaves the photo), then resample the exact span.
    x0, y0 = math.floor(canvas.left), math.floor(canvas.top)
    x1, y1 = math.ceil(canvas.left + span), math.ceil(canvas.top + span)
    crop = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    cy0, cy1, cx0, cx1 = max(y0, 0), min(y1, height), max(x0, 0), min(x1, width)
    if cy1 > cy0 and cx1 > cx0:
        crop[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = photo[cy0:cy1, cx0:cx1]
    box = (canvas.left - x0, canvas.top - y0, canvas.left - x0 + span, canvas.top - y0 + span)
    resized = Image.fromarray(crop).resize((CANVAS, CANVAS), Image.Resampling.LANCZOS, box=box)
    u = canvas.left + (np.arange(CANVAS) + 0.5) / canvas.scale
    v = canvas.top + (np.arange(CANVAS) + 0.5) / canvas.scale
    valid = ((v >= 0) & (v < height))[:, None] & ((u >= 0) & (u < width))[None, :]
    return np.asarray(resized, np.float32), valid[..., None].astype(np.float32)


def paste_delta(
    delta: FloatImage, canvas: Canvas, height: int, width: int
) -> tuple[tuple[int, int, int, int], FloatImage]:
    """The canvas perturbation on the photo's pixels: (top, bottom, left, right) and values.

    A downscaled canvas is enlarged bilinearly, so the pattern stays smooth.
    """
    if canvas.scale == 1.0:
        left, top = int(canvas.left), int(canvas.top)
        y0, y1 = max(top, 0), min(top + CANVAS, height)
        x0, x1 = max(left, 0), min(left + CANVAS, width)
        return (y0, y1, x0, x1), delta[y0 - top : y1 - top, x0 - left : x1 - left]
    span = CANVAS / canvas.scale
    y0, x0 = max(math.ceil(canvas.top), 0), max(math.ceil(canvas.left), 0)
    y1 = min(math.floor(canvas.top + span), height)
    x1 = min(math.floor(canvas.left + span), width)
    # Photo pixel centre (x + 0.5) sits at canvas coordinate (x + 0.5 - left) * scale.
    box = (
        (x0 - canvas.left) * canvas.scale,
        (y0 - canvas.top) * canvas.scale,
        (x1 - canvas.left) * canvas.scale,
        (y1 - canvas.top) * canvas.scale,
    )
    channels = [
        np.asarray(
            Image.fromarray(delta[..., c]).resize(
                (x1 - x0, y1 - y0), Image.Resampling.BILINEAR, box=box
            )
        )
        for c in range(3)
    ]
    return (y0, y1, x0, x1), np.stack(channels, axis=-1).astype(np.float32)


LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _blur(image: FloatImage, sigma: float) -> FloatImage:
    """A separable Gaussian blur of an (H, W, C) float image, edges repeated.

    Summed tap by tap in float32 (not SciPy's filter, whose order of sums differs in
    the last bits, and so would every cloaked copy).
    """
    if sigma <= 0:
        return image
    taps = gaussian_kernel(sigma)
    half = len(taps) // 2
    padded = np.pad(image, ((half, half), (half, half), (0, 0)), mode="edge")
    height, width = image.shape[:2]
    rows = np.zeros((height, padded.shape[1], image.shape[2]), np.float32)
    for j, w in enumerate(taps):
        rows += w * padded[j : j + height]
    out = np.zeros_like(image, dtype=np.float32)
    for j, w in enumerate(taps):
        out += w * rows[:, j : j + width]
    return out


def face_mask(points: NDArray[np.float64], feather: float = 0.08) -> FloatImage:
    """Where the cloak may change the canvas: the face from its 68 landmarks (the jaw
    line, and the brows lifted to the hair line), feathered; (CANVAS, CANVAS, 1) in 0..1.

    Nothing outside it changes: no pattern on the wall or the clothes beside a face.
    """
    jaw, brows = points[:17], points[17:27]
    chin, brow_centre = points[8], brows.mean(axis=0)
    up = brow_centre - chin
    height = float(np.hypot(*up))
    lifted = brows[::-1] + 0.45 * up  # from the right brow's end back to the left's
    outline = np.vstack([jaw, lifted])
    centre = outline.mean(axis=0)
    outline = centre + 1.08 * (outline - centre)
    picture = Image.new("L", (CANVAS, CANVAS), 0)
    ImageDraw.Draw(picture).polygon([(float(x), float(y)) for x, y in outline], fill=255)
    blurred = picture.filter(ImageFilter.GaussianBlur(max(1.0, feather * height)))
    return (np.asarray(blurred, np.float32) / 255.0)[..., None]


RMS_STEP = 1.0
"""Grey levels (root mean square over the face region) of one perceptual step."""


def budget_map(base: FloatImage, mask: FloatImage, texture: tuple[float, float]) -> FloatImage:
    """Each canvas pixel's share of the budget: the face mask times a texture factor.

    The factor is what SSIM forgives there: 2 * variance + C2 of the luminance in
    SSIM's own window (Gaussian, sigma 1.5), over its median inside the face;
    clipped to ``texture`` (low, high): little on smooth skin and flat walls, more
    in hair, brows and edges, where a change is masked by what is already there.
    """
    low, high = texture
    luma = (base @ LUMA)[..., None]
    mean = _blur(luma, 1.5)[..., 0]
    variance = np.maximum(_blur(luma * luma, 1.5)[..., 0] - mean * mean, 0)
    inside = mask[..., 0] > 0.5
    typical = float(np.median(variance[inside] if inside.any() else variance))
    factor = np.clip((2 * variance + C2) / (2 * typical + C2), low, high)
    return (mask * factor[..., None]).astype(np.float32)


def luminance_first(change: FloatImage, chroma: float) -> FloatImage:
    """A colour change with its chroma (what is left after its grey part) scaled by
    ``chroma``: the eye sees a shift of hue at an iris or a lip's edge long before it
    sees the same change in brightness."""
    grey = (change @ LUMA)[..., None]
    return (grey + chroma * (change - grey)).astype(np.float32)


def within_dssim(
    delta: FloatImage, base: FloatImage, valid: FloatImage, region: tuple[slice, slice], most: float
) -> FloatImage:
    """``delta`` scaled down once so that the face region's DSSIM is about ``most`` at
    most (the final copy is measured exactly)."""
    original = base[region]

    def seen(change: FloatImage) -> float:
        return dssim(original, np.clip(original + (change * valid)[region], 0, 255))

    return scaled_within(delta, seen, most, rounds=1)


@dataclass(frozen=True)
class Sample:
    """One way the adversary may see the face: alignment, jitter, mirror and image transform."""

    points: int
    matrix: NDArray[np.float64]  # chip -> canvas
    transform: str  # none | jpeg | blur | down
    amount: float  # JPEG quality, blur radius, or downscale factor
    sigma: float  # (canvas pixels) the Gaussian blur whose gradient stands in for the transform's


def draw_samples(
    rng: np.random.Generator, level: Level, matrices: dict[int, NDArray[np.float64]], scale: float
) -> list[Sample]:
    """``level.samples`` random views of the face for one step."""
    samples = []
    for i in range(level.samples):
        points = 5 if i % 2 == 0 else 68
        angle = math.radians(rng.uniform(-3, 3))
        zoom = rng.uniform(0.95, 1.05)
        shift = rng.uniform(-3, 3, size=2)
        centre = np.array([74.5, 74.5])
        rotation = zoom * np.array(
            [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
        )
        if rng.random() < 0.5:  # the mirror image: chip column c read from 149 - c
            rotation = rotation @ np.array([[-1.0, 0.0], [0.0, 1.0]])
        jitter = np.eye(3)
        jitter[:2, :2] = rotation
        jitter[:2, 2] = centre - rotation @ centre + shift
        matrix = np.vstack([matrices[points], [0, 0, 1]]) @ jitter
        kind = "jpeg" if rng.random() < 0.5 else "none"
        amount, sigma = float(rng.integers(70, 96)), 0.0
        if level.robust:
            kind = ["none", "jpeg", "blur", "down"][i % 4] if i < 4 else kind
            if kind == "jpeg":
                amount = float(rng.integers(60, 91))
            elif kind == "blur":
                amount = float(rng.uniform(0.6, 1.3))
                sigma = amount * scale
            elif kind == "down":
                amount = float(rng.choice([0.5, 0.75]))
                sigma = 0.45 / amount * scale
        samples.append(Sample(points, matrix[:2], kind, amount, sigma))
    return samples


def seen_as(image: RGBImage, sample: Sample, scale: float) -> FloatImage:
    """The canvas as the adversary's transformation leaves it (for real, not differentiable)."""
    picture = Image.fromarray(image)
    if sample.transform == "jpeg":
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=int(sample.amount))
        picture = Image.open(buffer).convert("RGB")
    elif sample.transform == "blur":
        picture = picture.filter(ImageFilter.GaussianBlur(sample.amount * scale))
    elif sample.transform == "down":
        small = max(1, round(CANVAS * sample.amount))
        picture = picture.resize((small, small), Image.Resampling.LANCZOS)
        picture = picture.resize((CANVAS, CANVAS), Image.Resampling.BILINEAR)
    return np.asarray(picture, np.float32)


def cloak_canvas(
    base: FloatImage,
    valid: FloatImage,
    matrices: dict[int, NDArray[np.float64]],
    targets: dict[int, NDArray[np.float64]],
    level: Level,
    epsilon: float,
    scale: float,
    rng: np.random.Generator,
    weight: FloatImage,
    most_dssim: float,
    region: tuple[slice, slice],
    compile_cache: str | None = None,
) -> FloatImage:
    """Gradient steps on the canvas, shaped by what the eye forgives: the perturbation.

    Each step follows the loss gradient, smoothed (``level.smooth``) and weighted per
    pixel by ``weight`` (:func:`budget_map`: zero outside the face, more where SSIM
    forgives more), and moves the face ``region`` by RMS_STEP grey levels. The
    perturbation stays within ``most_dssim`` on that region and ``epsilon`` at
    every pixel.
    """
    delta = np.zeros_like(base)
    weight = weight * valid
    limit = epsilon * valid
    far_enough = 0  # steps in a row whose views were at least level.stop away
    for _ in range(level.steps):
        samples = draw_samples(rng, level, matrices, scale)
        current = np.clip(base + delta * valid, 0, 255).round().astype(np.uint8)
        transforms = np.stack([s.matrix for s in samples]).astype(np.float32)
        views = np.stack([seen_as(current, s, scale) for s in samples])
        # What dlib would cut from each view: bilinear, then truncated to 8 bits.
        real = np.floor(bilinear_chips(np, views, transforms)).astype(np.float32)
        kernels = np.stack(
            [gaussian_kernel(s.sigma / math.hypot(*s.matrix[:, 0])) for s in samples]
        )
        wanted = np.stack([targets[s.points] for s in samples]).astype(np.float32)
        distances, gradient = descriptor_gradient(
            delta, base, valid, real, kernels, transforms, wanted, compile_cache
        )
        # The loss is minus the mean distance: step against its gradient.
        direction = luminance_first(_blur(gradient, level.smooth), level.chroma) * weight
        size = float(np.sqrt(np.mean(direction[region] ** 2)))
        if size > 0:
            moved = np.clip(delta - RMS_STEP / size * direction, -limit, limit)
            delta = within_dssim(moved.astype(np.float32), base, valid, region, most_dssim)
        far_enough = far_enough + 1 if float(distances.mean()) >= level.stop else 0
        if far_enough == 2:  # protected with a margin: more steps only add visible noise
            break
    return delta
