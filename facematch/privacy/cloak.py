"""Faces -> cloaked copies that dlib-model matchers no longer match, and their verification.

The cloak is an untargeted projected gradient attack in an L-infinity budget:
each step pushes the face's 128-d descriptor away from the original one,
averaged over the ways an adversary may see the photo (5- and 68-point
alignment, small shifts, scales and rotations of the alignment, the mirror
image, JPEG re-saves and, for the strong level, blur and downscales).

Each face is worked on a fixed-size canvas around it, at the face chip's
scale: at most ``MAX_CHIP_SIDE`` canvas pixels per chip side, the photo's own
pixels when the face is smaller. The perturbation found there is resized
smoothly (bilinear) onto the photo's pixels, so it is a pattern at the scale
the descriptor sees, whatever the size of the photo, and it survives the
resizing detectors and matchers apply to large photos.

Transformations that cannot be differentiated (JPEG, Pillow's blur and
resizing, rounding to 8 bits) are applied for real in the forward pass, and
their gradient is that of a Gaussian blur of matching strength (BPDA).

Every copy is verified as an adversary would try it (:func:`verify`): read
back, faces detected again, encoded with both alignments, also after a JPEG
re-save, a downscale and a blur, and compared with the original face.

The gradients come from :func:`_descriptor_gradient`, the one function that
needs JAX (the optional extra ``facematch[cloak]``); it runs the ONNX graph of
dlib's ResNet (:mod:`facematch.models.resnet_onnx`) through a small interpreter.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

from facematch.detect.boxes import SAME_FACE_IOU, iou, scale_box, trim_box
from facematch.encode.faces import (
    CHIP_PADDING,
    CHIP_SIZE,
    Encoder,
    FaceSettings,
    align,
    face_chips,
)
from facematch.errors import OutputError, UsageError
from facematch.output import pictures
from facematch.records import CloakResult, FaceBox, FaceReport

LevelName = Literal["subtle", "strong"]
FloatImage = NDArray[np.float32]
RGBImage = NDArray[np.uint8]

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


# --------------------------------------------------------------------------------------
# The one place JAX is used


def jax_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("jax") is not None


def require_extra() -> None:
    """Fail with a one-line message naming the extra when JAX is missing."""
    if not jax_available():
        raise UsageError(EXTRA_MESSAGE)


def _load_jax(compile_cache: str | None = None) -> Any:
    """JAX on one CPU thread per process (parallelism comes from worker processes).

    With ``compile_cache``, compiled graphs are kept there across runs: compiling
    the gradient costs several CPU seconds, as much as cloaking a face.
    """
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
    import jax

    config: Any = jax.config
    if compile_cache is not None:
        config.update("jax_compilation_cache_dir", compile_cache)
        config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return jax


@functools.cache
def _graph_function(compile_cache: str | None = None, smooth: bool = True) -> Callable[..., Any]:
    """The jitted loss-and-gradient of the canvas -> descriptors -> distances computation.

    Built once per process from the ONNX graph of dlib's ResNet. Without ``smooth``
    the chips are not blurred (every kernel is the identity): a cheaper graph.
    """
    jax = _load_jax(compile_cache)
    import jax.numpy as jnp

    from facematch.models import dlib_files as models
    from facematch.models.resnet_onnx import build_model

    run_network = _interpreter(build_model(models.model_path("recognition")))

    def blur(chips: Any, kernels: Any) -> Any:
        # chips (N, 150, 150, 3), kernels (N, taps): separable Gaussian, edges repeated.
        half = KERNEL_TAPS // 2
        padded = jnp.pad(chips, ((0, 0), (half, half), (half, half), (0, 0)), mode="edge")
        rows = jnp.stack([padded[:, j : j + CHIP_SIZE] for j in range(KERNEL_TAPS)], axis=1)
        by_rows = jnp.einsum("nj,njhwc->nhwc", kernels, rows)
        cols = jnp.stack([by_rows[:, :, j : j + CHIP_SIZE] for j in range(KERNEL_TAPS)], axis=1)
        return jnp.einsum("nj,njhwc->nhwc", kernels, cols)

    def loss(
        delta: Any,
        base: Any,
        valid: Any,
        real: Any,
        kernels: Any,
        transforms: Any,
        targets: Any,
    ) -> Any:
        x = jnp.clip(base + delta * valid, 0.0, 255.0)
        chips = bilinear_chips(jnp, x, transforms)
        differentiable = blur(chips, kernels) if smooth else chips
        seen = differentiable + jax.lax.stop_gradient(real - differentiable)
        descriptors = run_network(seen)
        distances = jnp.sqrt(jnp.sum((descriptors - targets) ** 2, axis=1) + 1e-12)
        return -jnp.mean(distances), distances

    return jax.jit(jax.value_and_grad(loss, has_aux=True))  # type: ignore[no-any-return]


def _descriptor_gradient(
    delta: FloatImage,
    base: FloatImage,
    valid: FloatImage,
    real: FloatImage,
    kernels: FloatImage,
    transforms: FloatImage,
    targets: FloatImage,
    compile_cache: str | None = None,
) -> tuple[NDArray[np.float32], FloatImage]:
    """Distances of each sample's descriptor to its target, and the gradient of their
    mean with respect to ``delta`` (the direction that brings them closer)."""
    smooth = not np.array_equal(kernels, np.broadcast_to(gaussian_kernel(0.0), kernels.shape))
    (_, distances), gradient = _graph_function(compile_cache, smooth)(
        delta, base, valid, real, kernels, transforms, targets
    )
    return np.asarray(distances), np.asarray(gradient)


def graph_parts(
    model: Any,
) -> tuple[dict[str, Any], list[tuple[str, list[str], str, dict[str, Any]]]]:
    """An ONNX graph's constants by name, and its nodes as (op, inputs, output, attributes)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes = [
        (
            n.op_type,
            list(n.input),
            n.output[0],
            {a.name: helper.get_attribute_value(a) for a in n.attribute},
        )
        for n in graph.node
    ]
    return constants, nodes


def _interpreter(model: Any) -> Callable[[Any], Any]:
    """A JAX function computing the ONNX graph on float (N, 150, 150, 3) pixel values.

    It knows exactly the operator types onnx_convert emits; anything else is an error.
    """
    import jax.numpy as jnp
    from jax import lax

    graph = model.graph
    constants, nodes = graph_parts(model)
    input_name, output_name = graph.input[0].name, graph.output[0].name

    def run(chips: Any) -> Any:
        values: dict[str, Any] = dict(constants)
        values[input_name] = chips
        for op, inputs, output, attrs in nodes:
            args = [values[name] for name in inputs]
            values[output] = _apply(jnp, lax, op, args, attrs)
        return values[output_name]

    return run


def _apply(jnp: Any, lax: Any, op: str, args: list[Any], attrs: dict[str, Any]) -> Any:
    """One ONNX node (the 15 operator types of the converted ResNet)."""
    x = args[0]
    if op == "Cast":
        return x.astype(jnp.float32)
    if op in ("Sub", "Div", "Mul", "Add"):
        ops = {"Sub": jnp.subtract, "Div": jnp.divide, "Mul": jnp.multiply, "Add": jnp.add}
        return ops[op](x, args[1])
    if op == "Relu":
        return jnp.maximum(x, 0.0)
    if op == "Transpose":
        return jnp.transpose(x, attrs["perm"])
    if op == "Conv":
        pads, strides = attrs["pads"], attrs["strides"]
        out = lax.conv_general_dilated(
            x,
            args[1],
            strides,
            [(pads[0], pads[2]), (pads[1], pads[3])],
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
        )
        return out + args[2].reshape(1, -1, 1, 1) if len(args) > 2 else out
    if op in ("MaxPool", "AveragePool"):
        window = (1, 1, *attrs["kernel_shape"])
        strides = (1, 1, *attrs["strides"])
        if op == "MaxPool":
            return lax.reduce_window(x, -jnp.inf, lax.max, window, strides, "VALID")
        total = lax.reduce_window(x, 0.0, lax.add, window, strides, "VALID")
        return total / math.prod(attrs["kernel_shape"])
    if op == "GlobalAveragePool":
        return x.mean(axis=(2, 3), keepdims=True)
    if op == "Pad":
        pads = [int(p) for p in np.asarray(args[1])]
        half = len(pads) // 2
        return jnp.pad(x, [(pads[d], pads[d + half]) for d in range(half)])
    if op == "Flatten":
        return x.reshape(x.shape[0], -1)
    if op == "MatMul":
        return x @ args[1]
    if op == "Identity":
        return x
    raise ValueError(f"the cloak's ONNX interpreter has no operator {op}")


def network_function() -> Callable[[NDArray[np.float32]], NDArray[np.float32]]:
    """Descriptors of float chips through the JAX interpreter (to check it against ONNX Runtime)."""
    jax = _load_jax()

    from facematch.models import dlib_files as models
    from facematch.models.resnet_onnx import build_model

    run = jax.jit(_interpreter(build_model(models.model_path("recognition"))))
    return lambda chips: np.asarray(run(chips))


# --------------------------------------------------------------------------------------
# Alignment: dlib's chip extraction as a differentiable bilinear sampling


def chip_transform(shape: Any) -> NDArray[np.float64]:
    """(a, b, tx, ty) mapping chip pixel (c, r) to image (a c - b r + tx, b c + a r + ty).

    It is the inverse of dlib's ``get_mapping_to_chip`` for the chip that
    ``dlib.get_face_chip`` cuts for this landmark shape (150 px, padding 0.25).
    """
    import dlib

    details = dlib.get_face_chip_details(shape, CHIP_SIZE, CHIP_PADDING)
    rect = details.rect
    cx, cy = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2
    cos, sin = math.cos(details.angle), math.sin(details.angle)

    def rotated(x: float, y: float) -> tuple[float, float]:
        dx, dy = x - cx, y - cy
        return cx + cos * dx - sin * dy, cy + sin * dx + cos * dy

    image_points = [
        rotated(rect.left(), rect.top()),
        rotated(rect.right(), rect.top()),
        rotated(rect.right(), rect.bottom()),
    ]
    last_col, last_row = details.cols - 1, details.rows - 1
    chip_points = [(0.0, 0.0), (last_col, 0.0), (last_col, last_row)]
    rows, values = [], []
    for (x, y), (c, r) in zip(image_points, chip_points, strict=True):
        rows += [[c, -r, 1.0, 0.0], [r, c, 0.0, 1.0]]
        values += [x, y]
    solution = np.linalg.lstsq(np.array(rows), np.array(values), rcond=None)[0]
    return np.asarray(solution, dtype=np.float64)


def bilinear_chips(xp: Any, images: Any, transforms: Any) -> Any:
    """(N, 150, 150, 3) chips sampled bilinearly from (N, H, W, 3) images, as dlib samples.

    One (H, W, 3) image serves every transform.
    ``transforms`` (N, 2, 3) map chip (c, r, 1) to image (x, y); outside the image
    is black. ``xp`` is numpy or jax.numpy: the same code serves both.
    """
    grid = xp.arange(CHIP_SIZE, dtype=xp.float32)
    cols, rows = xp.meshgrid(grid, grid)
    ones = xp.ones_like(cols)
    points = xp.stack([cols, rows, ones])  # (3, 150, 150)
    mapped = xp.einsum("nij,jhw->nihw", transforms, points)
    x, y = mapped[:, 0], mapped[:, 1]
    x0, y0 = xp.floor(x), xp.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    shared = images.ndim == 3
    height, width = images.shape[-3], images.shape[-2]
    index = xp.arange(transforms.shape[0]).reshape(-1, 1, 1)

    def pixel(yy: Any, xx: Any) -> Any:
        inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
        yi = xp.clip(yy, 0, height - 1).astype(xp.int32)
        xi = xp.clip(xx, 0, width - 1).astype(xp.int32)
        values = images[yi, xi] if shared else images[index, yi, xi]
        return values * inside[..., None]

    top = (1 - fx) * pixel(y0, x0) + fx * pixel(y0, x0 + 1)
    bottom = (1 - fx) * pixel(y0 + 1, x0) + fx * pixel(y0 + 1, x0 + 1)
    return (1 - fy) * top + fy * bottom


def as_matrix(transform: NDArray[np.float64]) -> NDArray[np.float64]:
    a, b, tx, ty = transform
    return np.array([[a, -b, tx], [b, a, ty]])


# --------------------------------------------------------------------------------------
# One face on its canvas


@dataclass(frozen=True)
class Canvas:
    """A face's square working area: canvas (u, v) is photo (left + u / scale, top + v / scale)."""

    left: float
    top: float
    scale: float

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


def gaussian_kernel(sigma: float) -> NDArray[np.float32]:
    """A normalised KERNEL_TAPS-long Gaussian; sigma 0 is the identity."""
    taps = np.arange(KERNEL_TAPS) - KERNEL_TAPS // 2
    kernel: NDArray[np.float32] = (taps == 0).astype(np.float32)
    if sigma > 0:
        weights = np.exp(-(taps**2) / (2 * sigma**2))
        kernel = (weights / weights.sum()).astype(np.float32)
    return kernel


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
    compile_cache: str | None = None,
) -> FloatImage:
    """Projected sign-gradient steps on the canvas: the perturbation (canvas, float)."""
    delta = np.zeros_like(base)
    step = 2.5 * epsilon / level.steps
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
        distances, gradient = _descriptor_gradient(
            delta, base, valid, real, kernels, transforms, wanted, compile_cache
        )
        # The loss is minus the mean distance: step against its gradient.
        moved = np.clip(delta - step * np.sign(gradient), -epsilon, epsilon) * valid
        delta = moved.astype(np.float32)
        far_enough = far_enough + 1 if float(distances.mean()) >= level.stop else 0
        if far_enough == 2:  # protected with a margin: more steps only add visible noise
            break
    return delta


# --------------------------------------------------------------------------------------
# Whole photos


def seed_for(image: RGBImage, seed: int, face: int) -> int:
    """A face's random seed from the pixels, the run's seed and its index: reproducible."""
    digest = hashlib.sha256(image.tobytes())
    digest.update(f"{seed}:{face}".encode())
    return int.from_bytes(digest.digest()[:8], "little")


@dataclass
class Encoders:
    """The adversary's descriptor engines, one per alignment setting (built lazily)."""

    engine: Any  # an engines.EngineChoice
    _built: dict[str, Encoder] = field(default_factory=dict)

    def get(self, name: str) -> Encoder:
        if name not in self._built:
            from facematch.encode import engines

            _, mirror = ALIGNMENTS[name]
            self._built[name] = engines.encoder(self.engine, 1, 1, mirror)
        return self._built[name]


def describe_faces(
    image: RGBImage, boxes: Sequence[FaceBox], encoders: Encoders
) -> dict[str, NDArray[np.float64]]:
    """Descriptors of the faces at ``boxes`` under each alignment setting: name -> (n, 128)."""
    out = {}
    for name, (points, _) in ALIGNMENTS.items():
        shapes = align(image, boxes, points)
        out[name] = encoders.get(name).encode(face_chips(image, shapes))
    return out


def cloak_photo(
    photo: RGBImage,
    boxes: Sequence[FaceBox],
    encoders: Encoders,
    level: Level,
    seed: int,
    multipliers: Sequence[float],
    compile_cache: str | None = None,
) -> RGBImage:
    """The photo with face ``i`` cloaked at ``multipliers[i]`` times the level's budget."""
    height, width = photo.shape[:2]
    pasted = []
    for index, box in enumerate(boxes):
        epsilon = level.epsilon * multipliers[index]
        shapes = {p: align(photo, [box], p)[0] for p in (5, 68)}
        photo_maps = {p: as_matrix(chip_transform(s)) for p, s in shapes.items()}
        canvas = place_canvas(list(photo_maps.values()))
        base, valid = cut_canvas(photo, canvas)
        matrices = {p: canvas.to_canvas(m) for p, m in photo_maps.items()}
        transforms = np.stack([matrices[5], matrices[68]]).astype(np.float32)
        chips = np.floor(bilinear_chips(np, base, transforms)).astype(np.uint8)
        plain = encoders.get("face_recognition").encode(chips)  # no mirror: as the samples
        targets = {5: plain[0], 68: plain[1]}
        rng = np.random.default_rng(seed_for(photo, seed, index))
        delta = cloak_canvas(
            base, valid, matrices, targets, level, epsilon, canvas.scale, rng, compile_cache
        )
        pasted.append(paste_delta(delta, canvas, height, width))
    out = photo.copy()
    if not pasted:
        return out
    # Only the region the canvases cover changes: a 12 MP photo is not worked as floats.
    top, bottom = min(p[0][0] for p in pasted), max(p[0][1] for p in pasted)
    left, right = min(p[0][2] for p in pasted), max(p[0][3] for p in pasted)
    total = np.zeros((bottom - top, right - left, 3), np.float32)
    for (y0, y1, x0, x1), values in pasted:
        total[y0 - top : y1 - top, x0 - left : x1 - left] += values
    limit = level.epsilon * max(multipliers, default=1.0)
    total = np.clip(total, -limit, limit)
    region = photo[top:bottom, left:right]
    out[top:bottom, left:right] = np.clip(region + total, 0, 255).round().astype(np.uint8)
    return out


# --------------------------------------------------------------------------------------
# Verification, as an adversary would try


def variant_image(image: RGBImage, name: str) -> tuple[RGBImage, float]:
    """A variant of the copy and its scale relative to the copy."""
    picture = Image.fromarray(image)
    if name.startswith("jpeg"):
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=int(name[4:]))
        return np.asarray(Image.open(buffer).convert("RGB")), 1.0
    if name == "half":
        width, height = picture.size
        small = picture.resize((max(1, width // 2), max(1, height // 2)), Image.Resampling.LANCZOS)
        return np.asarray(small), small.size[0] / width
    if name == "blur":
        return np.asarray(picture.filter(ImageFilter.GaussianBlur(1))), 1.0
    return image, 1.0


def adversary_boxes(found: Sequence[FaceBox], originals: Sequence[FaceBox]) -> list[FaceBox]:
    """For each original face, the box found again (best overlap), or the original box.

    Falling back to the original box is the conservative choice: an adversary can
    always crop the face by hand.
    """
    chosen = []
    for box in originals:
        best = max(found, key=lambda f: iou(f, box), default=None)
        chosen.append(best if best is not None and iou(best, box) >= SAME_FACE_IOU else box)
    return chosen


def verify(
    boxes: Sequence[FaceBox],
    reference: dict[str, NDArray[np.float64]],
    copy: RGBImage,
    level: Level,
    encoders: Encoders,
    variants: Sequence[str] | None = None,
) -> list[dict[str, float]]:
    """For each face, the smallest distance to the original per variant of the copy."""
    results: list[dict[str, float]] = [{} for _ in boxes]
    for name in variants or level.checks:
        image, factor = variant_image(copy, name)
        found = [scale_box(b, 1 / factor) for b in detect_as_matcher(image)]
        chosen = [scale_box(b, factor) for b in adversary_boxes(found, boxes)]
        described = describe_faces(image, chosen, encoders)
        for i in range(len(boxes)):
            results[i][name] = min(
                float(np.linalg.norm(described[k][i] - reference[k][i])) for k in ALIGNMENTS
            )
    return results


def detect_as_matcher(image: RGBImage) -> list[FaceBox]:
    """Face boxes in these pixels as facematch's matcher finds them in a photo: on its
    working copy (``encode.photo.working_pixels``), boxes in full pixels."""
    from facematch.encode.photo import boxes_in_pixels

    return boxes_in_pixels(image, FaceSettings())


def psnr(a: RGBImage, b: RGBImage, rows: int = 64) -> float:
    """Peak signal-to-noise ratio in dB; the squared error summed exactly, a band of rows
    at a time (a 12 MP photo as one float64 array would cost about a CPU-second)."""
    total = 0
    for y in range(0, a.shape[0], rows):
        difference = np.subtract(a[y : y + rows], b[y : y + rows], dtype=np.int64).ravel()
        total += int(difference @ difference)
    return math.inf if total == 0 else 10 * math.log10(255.0**2 * a.size / total)


def ssim(a: RGBImage, b: RGBImage, window: int = 7) -> float:
    """Mean structural similarity (Wang et al. 2004) of the luma, uniform 7x7 windows."""
    weights = np.array([0.299, 0.587, 0.114])
    x, y = (np.asarray(im, np.float64) @ weights for im in (a, b))
    if min(x.shape) < window:
        return 1.0 if np.array_equal(x, y) else 0.0

    def mean(z: NDArray[np.float64]) -> NDArray[np.float64]:
        s = np.pad(z.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        w = window
        total = s[w:, w:] - s[:-w, w:] - s[w:, :-w] + s[:-w, :-w]
        return total / (w * w)  # type: ignore[no-any-return]

    n = window * window
    correction = n / (n - 1)
    mx, my = mean(x), mean(y)
    vx = (mean(x * x) - mx * mx) * correction
    vy = (mean(y * y) - my * my) * correction
    cxy = (mean(x * y) - mx * my) * correction
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    index = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(index.mean())


def box_ssim(a: RGBImage, b: RGBImage, box: FaceBox) -> float:
    box = trim_box(box, a.shape[0], a.shape[1])
    return ssim(
        a[box.top : box.bottom, box.left : box.right], b[box.top : box.bottom, box.left : box.right]
    )


# --------------------------------------------------------------------------------------
# Files: the unit of work for the runner


@dataclass(frozen=True)
class CloakTask:
    """One photo to cloak into ``out`` (or, with ``check``, a copy to verify against it)."""

    path: str
    out: str
    level: LevelName
    seed: int
    engine: Any  # engines.EngineChoice
    check: bool = False
    compile_cache: str | None = None
    boxes: tuple[FaceBox, ...] | None = None  # the photo's faces, if already found


def save_copy(image: RGBImage, out: Path) -> None:
    """Write the copy upright, with no metadata at all (no EXIF, GPS or thumbnail), as
    every picture is written (``output.pictures.save_copy``): never half a file; a
    failure is an OutputError naming its cause."""
    subsampling = 0  # 4:4:4: the perturbation is in the colours too
    pictures.save_copy(Image.fromarray(image), out, JPEG_QUALITY_OUT, subsampling)


def output_name(relative: Path) -> Path:
    """The copy's path under --out: JPEG and PNG keep their names, others become PNG."""
    if relative.suffix.lower() in (".jpg", ".jpeg", ".png"):
        return relative
    return relative.with_name(relative.name + ".png")


def find_original_faces(image: RGBImage) -> list[FaceBox]:
    """The faces of a photo in memory, as ``faces_in_file`` finds them in its file."""
    return [trim_box(b, *image.shape[:2]) for b in detect_as_matcher(image)]


def faces_in_file(path: str) -> list[FaceBox]:
    """The faces of a photo file, found as facematch's matcher finds them: on the working
    copy it decodes (a large JPEG at reduced size, as luminance), boxes in full pixels."""
    from facematch.encode.photo import boxes_in_file

    return boxes_in_file(path, FaceSettings())


def with_faces(task: CloakTask) -> CloakTask:
    """The task with its photo's faces found (the progress bar counts them, and
    ``cloak_file`` need not find them again); as it was if the photo cannot be read,
    for ``cloak_file`` to report."""
    try:
        return replace(task, boxes=tuple(faces_in_file(task.path)))
    except Exception:  # reported by cloak_file, which meets the same problem
        return task


def count_failed(task: CloakTask, reason: str) -> CloakTask:
    """A task whose worker process died finding its faces: ``cloak_file`` tries again."""
    return task


def cloak_file(task: CloakTask) -> CloakResult:
    """Cloak one photo, write the copy, read it back and verify it.

    A problem of the photo is its result; only a copy that cannot be written
    (OutputError: a full disk, no permission) is raised, and ends the run.
    """
    from facematch.run.tasks import failure_message
    from facematch.sources.images import load_rgb

    try:
        boxes = list(task.boxes) if task.boxes is not None else faces_in_file(task.path)
        original = load_rgb(task.path)
        if task.check:
            return check_copy(task, original, boxes)
        if not boxes:
            return CloakResult(task.path, "no_faces", error="no face found; no copy written")
        level = LEVELS[task.level]
        encoders = Encoders(task.engine)
        reference = describe_faces(original, boxes, encoders)
        attempts = [0] * len(boxes)
        while True:
            multipliers = [level.harder[a] for a in attempts]
            copy = cloak_photo(
                original, boxes, encoders, level, task.seed, multipliers, task.compile_cache
            )
            save_copy(copy, Path(task.out))
            written = load_rgb(task.out)
            checked = verify(boxes, reference, written, level, encoders)
            failing = [i for i, c in enumerate(checked) if min(c.values()) <= MATCH_THRESHOLD]
            harder = [i for i in failing if attempts[i] + 1 < len(level.harder)]
            if not harder:
                break
            for i in harder:
                attempts[i] += 1
        return report(task, original, written, boxes, checked, level, multipliers)
    except OutputError:  # the copy cannot be written (a full disk): the run stops
        raise
    except Exception as exc:  # a per-image failure must never stop the run
        return CloakResult(task.path, "error", error=failure_message(exc))


def check_copy(task: CloakTask, original: RGBImage, boxes: list[FaceBox]) -> CloakResult:
    """``--check ORIGINAL CLOAKED``: verify a pair the user already has."""
    from facematch.sources.images import load_rgb

    if not boxes:
        return CloakResult(
            task.path, "no_faces", out=task.out, error="no face found in the original"
        )
    copy = load_rgb(task.out)
    if copy.shape != original.shape:
        raise UsageError(
            f"the copy is {copy.shape[1]}x{copy.shape[0]}, the original "
            f"{original.shape[1]}x{original.shape[0]}: not a copy of it"
        )
    level = LEVELS[task.level]
    encoders = Encoders(task.engine)
    reference = describe_faces(original, boxes, encoders)
    checked = verify(boxes, reference, copy, level, encoders)
    return report(task, original, copy, boxes, checked, level, [math.nan] * len(boxes))


def report(
    task: CloakTask,
    original: RGBImage,
    copy: RGBImage,
    boxes: Sequence[FaceBox],
    checked: Sequence[dict[str, float]],
    level: Level,
    multipliers: Sequence[float],
) -> CloakResult:
    faces = tuple(
        FaceReport(
            box=box,
            level=level.name,
            distance=min(c.values()),
            passed=min(c.values()) > MATCH_THRESHOLD,
            ssim=box_ssim(original, copy, box),
            epsilon=level.epsilon * m,
            variants=dict(c),
        )
        for box, c, m in zip(boxes, checked, multipliers, strict=True)
    )
    status = "protected" if all(f.passed for f in faces) else "not_protected"
    return CloakResult(task.path, status, task.out, None, psnr(original, copy), faces)


def cloak_failed(task: CloakTask, reason: str) -> CloakResult:
    """The result of a photo whose worker process died cloaking it."""
    return CloakResult(task.path, "error", error=reason)
