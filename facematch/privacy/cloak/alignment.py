"""Alignment: dlib's chip extraction as a differentiable bilinear sampling."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facematch.encode.faces import (
    CHIP_PADDING,
    CHIP_SIZE,
)
from facematch.privacy.cloak.levels import KERNEL_TAPS


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


def gaussian_kernel(sigma: float, length: int = KERNEL_TAPS) -> NDArray[np.float32]:
    """A normalised Gaussian of ``length`` taps; sigma 0 is the identity."""
    taps = np.arange(length) - length // 2
    kernel: NDArray[np.float32] = (taps == 0).astype(np.float32)
    if sigma > 0:
        weights = np.exp(-(taps**2) / (2 * sigma**2))
        kernel = (weights / weights.sum()).astype(np.float32)
    return kernel
