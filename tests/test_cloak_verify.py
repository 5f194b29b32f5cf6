"""The cloak's verification looks at the part of the photo around its faces: the same
variants, the same faces found again, the same distances as the whole photo's, at a
fraction of the work (on real photos; dlib only, no JAX)."""

from __future__ import annotations

import importlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facematch.encode import engines
from facematch.encode.faces import FaceSettings
from facematch.privacy.cloak.files import faces_in_file
from facematch.privacy.cloak.levels import LEVELS, MATCH_THRESHOLD
from facematch.privacy.cloak.photo import Encoders, describe_faces
from facematch.sources.images import load_rgb

verification = importlib.import_module("facematch.privacy.cloak.verify")
DATA = Path(__file__).parent / "data"


def test_the_view_is_the_faces_surroundings_on_jpegs_grid() -> None:
    photo = load_rgb(DATA / "obama2.jpg")  # 626 x 1200, one face
    (box,) = faces_in_file(str(DATA / "obama2.jpg"))
    top, bottom, left, right = verification.view_window([box], *photo.shape[:2])
    assert top % 16 == 0 and left % 16 == 0 and (bottom - top) % 2 == 0 == (right - left) % 2
    side = max(box.bottom - box.top, box.right - box.left)
    assert top <= max(0, box.top - side // 2) and left <= max(0, box.left - side // 2)
    assert bottom >= min(1200, box.bottom + side // 2) and right >= min(626, box.right + side // 2)
    assert (bottom - top) * (right - left) < 0.6 * 626 * 1200
    # Faces filling most of a photo: the view is the whole photo.
    small = load_rgb(DATA / "selfie-many-people.jpg")
    boxes = faces_in_file(str(DATA / "selfie-many-people.jpg"))
    assert verification.view_window(boxes, *small.shape[:2]) == (0, 604, 0, 600)


@pytest.mark.parametrize("name", ["jpeg75", "half", "blur"])
def test_the_views_variants_are_the_whole_photos_inside(name: str) -> None:
    photo = load_rgb(DATA / "obama2.jpg")  # even sides: halved exactly two pixels into one
    (box,) = faces_in_file(str(DATA / "obama2.jpg"))
    top, bottom, left, right = verification.view_window([box], *photo.shape[:2])
    whole, factor = verification.variant_image(photo, name)
    part, part_factor = verification.variant_image(photo[top:bottom, left:right], name)
    assert factor == part_factor
    k = round(1 / factor)
    expected = whole[top // k : top // k + part.shape[0], left // k : left // k + part.shape[1]]
    inside = (slice(16 // k, -16 // k), slice(16 // k, -16 // k))  # edges: a filter's reach
    assert expected.shape == part.shape
    assert np.array_equal(expected[inside], part[inside])


def test_large_faces_are_searched_for_on_a_smaller_copy() -> None:
    photo = load_rgb(DATA / "obama3.jpg")  # 1434 x 2333, a face of about 270 pixels
    boxes = faces_in_file(str(DATA / "obama3.jpg"))
    height, width = photo.shape[:2]
    scale = verification.search_scale(boxes, height, width)
    assert scale < FaceSettings().working_scale(height, width)
    # Still four times the smallest face the detector finds (40 pixels at upsample 1).
    assert min(b.bottom - b.top for b in boxes) * scale >= 4 * 40 - 1
    # A small photo's faces: its working scale, as the matcher searches it.
    small = faces_in_file(str(DATA / "obama_small.jpg"))
    assert verification.search_scale(small, 300, 240) == 1.0


def resaved(photo: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def test_checking_the_view_gives_the_whole_photos_distances(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An uncloaked copy (the photo re-saved) checked both ways: the same faces found
    again, the same distances within what another box costs, and both not protected."""
    path = DATA / "obama2.jpg"
    photo = load_rgb(path)
    boxes = faces_in_file(str(path))
    encoders = Encoders(engines.EngineChoice("dlib"))
    reference = describe_faces(photo, boxes, encoders)
    copy = resaved(photo, 85)
    level = LEVELS["strong"]
    on_view = verification.verify(boxes, reference, copy, level, encoders)
    monkeypatch.setattr(verification, "view_window", lambda b, h, w: (0, h, 0, w))
    monkeypatch.setattr(
        verification, "search_scale", lambda b, h, w: FaceSettings().working_scale(h, w)
    )
    on_whole = verification.verify(boxes, reference, copy, level, encoders)
    for view, whole in zip(on_view, on_whole, strict=True):
        assert view.dlib.keys() == whole.dlib.keys() == set(level.checks)
        for name in level.checks:
            assert abs(view.dlib[name] - whole.dlib[name]) < 0.02
            assert view.dlib[name] < MATCH_THRESHOLD / 2 and whole.dlib[name] < MATCH_THRESHOLD / 2


def test_an_unchanged_copy_is_at_distance_zero_as_written() -> None:
    """The face is described in its original box too: the same pixels are the same face
    for both models, although the box found again on the view is a few pixels off."""
    path = DATA / "two_people.jpg"
    photo = load_rgb(path)
    boxes = faces_in_file(str(path))
    encoders = Encoders(engines.EngineChoice("dlib"))
    reference = describe_faces(photo, boxes, encoders)
    checked = verification.verify(boxes, reference, photo, LEVELS["strong"], encoders, ["written"])
    assert [c.dlib["written"] for c in checked] == [0.0, 0.0]
    if checked[0].sface is not None:
        assert [c.sface["written"] for c in checked if c.sface] == [0.0, 0.0]
