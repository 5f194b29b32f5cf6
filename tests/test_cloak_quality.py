"""What a person sees of a cloak: the DSSIM measures and the shaping of the perturbation,
on real photos (no JAX: these are the numpy parts of the cloak)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facematch.privacy import cloak
from facematch.privacy.cloak.canvas import budget_map, face_mask, luminance_first
from facematch.privacy.cloak.photo import within_face_dssim
from facematch.sources.images import load_rgb

DATA = Path(__file__).parent / "data"


def test_dssim_is_zero_for_the_same_picture_and_grows_with_the_change() -> None:
    photo = load_rgb(DATA / "obama_small.jpg")
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, photo.shape)
    small, large = (np.clip(photo + k * noise, 0, 255).astype(np.uint8) for k in (2, 6))
    assert cloak.dssim(photo, photo) == 0.0
    assert 0 < cloak.dssim(photo, small) < cloak.dssim(photo, large) < 0.5


def test_photo_dssim_counts_only_the_changed_windows_but_averages_over_all() -> None:
    photo = load_rgb(DATA / "obama2.jpg")  # 626 x 1200
    copy = photo.copy()
    copy[500:560, 300:360] = 255 - copy[500:560, 300:360]
    whole, count = cloak.quality.ssim_sum(photo, copy)
    assert abs(cloak.photo_dssim(photo, copy) - (1 - whole / count) / 2) < 1e-9
    # At 1080 px on the longer side: the same as scaling both and measuring them whole.
    size = (round(626 * 1080 / 1200), 1080)
    a, b = (
        np.asarray(Image.fromarray(p).resize(size, Image.Resampling.LANCZOS)) for p in (photo, copy)
    )
    assert abs(cloak.photo_dssim(photo, copy, 1080) - cloak.dssim(a, b)) < 1e-9


def faces_on_canvas(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A photo's largest face on its cloak canvas, and its 68 landmarks there."""
    from facematch.encode.faces import align

    photo = load_rgb(DATA / name)
    box = max(cloak.find_original_faces(photo), key=lambda b: b.area)
    shapes = {p: align(photo, [box], p)[0] for p in (5, 68)}
    canvas = cloak.place_canvas([cloak.as_matrix(cloak.chip_transform(s)) for s in shapes.values()])
    base, _ = cloak.cut_canvas(photo, canvas)
    points = np.array([(p.x, p.y) for p in shapes[68].parts()], np.float64)
    return base, (points - [canvas.left, canvas.top]) * canvas.scale


def test_the_mask_covers_the_face_and_leaves_the_background() -> None:
    _, points = faces_on_canvas("obama.jpg")
    mask = face_mask(points)[..., 0]
    nose = points[30].round().astype(int)
    assert mask[nose[1], nose[0]] == 1.0
    assert mask[0, 0] == mask[0, -1] == mask[-1, 0] == mask[-1, -1] == 0.0  # the canvas's corners
    brows = points[17:27].mean(axis=0).round().astype(int)
    chin = points[8].round().astype(int)
    above = brows[1] - (chin[1] - brows[1]) // 3  # the forehead, above the brows
    assert mask[above, brows[0]] > 0.9


@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg"])
def test_the_budget_is_small_on_smooth_skin_and_large_at_brows_eyes_and_lips(name: str) -> None:
    base, points = faces_on_canvas(name)
    weight = budget_map(base, face_mask(points), (0.1, 4.0))[..., 0]

    def around(point: np.ndarray) -> float:
        x, y = np.round(point).astype(int)
        return float(weight[y - 3 : y + 4, x - 3 : x + 4].mean())

    brows = points[[21, 22]].mean(axis=0)
    smooth = [(points[41] + points[2]) / 2, brows + 0.25 * (brows - points[8])]  # cheek, forehead
    edges = [points[19], points[37], points[51]]  # a brow, an eyelid, the upper lip
    assert max(map(around, smooth)) < 1.0 < min(map(around, edges))
    assert weight.max() <= 4.0


def test_colour_changes_are_mostly_brightness() -> None:
    change = np.zeros((2, 2, 3), np.float32)
    change[..., 0] = 4.0  # red only: grey part 0.299 * 4, the rest is chroma
    shaped = luminance_first(change, 0.25)
    grey = (shaped @ cloak.canvas.LUMA)[0, 0]
    assert abs(grey - 0.299 * 4) < 1e-5  # brightness kept
    assert abs(shaped[0, 0, 0] - grey - 0.25 * (4 - 0.299 * 4)) < 1e-5  # chroma a quarter


def test_a_face_is_kept_within_its_dssim_as_the_jpeg_copy_will_be() -> None:
    photo = load_rgb(DATA / "obama2.jpg")
    box = max(cloak.find_original_faces(photo), key=lambda b: b.area)
    rng = np.random.default_rng(1)
    where = (box.top - 40, box.bottom + 40, box.left - 40, box.right + 40)
    values = rng.normal(0, 6, (where[1] - where[0], where[3] - where[2], 3)).astype(np.float32)

    def jpeg(pixels: np.ndarray) -> np.ndarray:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=100, subsampling=0)
        return np.asarray(Image.open(buffer).convert("RGB"))

    kept = within_face_dssim(photo, box, where, values, 0.004, jpeg)
    copy = photo.astype(np.float32)
    copy[where[0] : where[1], where[2] : where[3]] += kept
    written = jpeg(np.clip(copy, 0, 255).round().astype(np.uint8))
    region = cloak.face_region(box, *photo.shape[:2])
    cut = (slice(region.top, region.bottom), slice(region.left, region.right))
    assert 0.003 < cloak.dssim(photo[cut], written[cut]) <= 0.004
    assert np.abs(kept).max() < np.abs(values).max()  # it was scaled down
