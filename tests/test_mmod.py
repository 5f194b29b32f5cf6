"""dlib's MMOD CNN face detector on ONNX Runtime, against dlib's own on real photos."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from facematch.detect import detectors
from facematch.errors import ModelError
from facematch.models import dlib_files as models
from facematch.models import mmod
from facematch.sources.images import load_rgb

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> mmod.MmodDetector:
    return mmod.ready_detector(tmp_path_factory.mktemp("mmod"))


@pytest.mark.parametrize(
    ("photo", "upsample", "faces"),
    [("obama_small.jpg", 1, 1), ("bbt2.jpg", 0, 2)],
)
def test_same_boxes_and_scores_as_dlib(
    converted: mmod.MmodDetector, photo: str, upsample: int, faces: int
) -> None:
    image = load_rgb(DATA / photo)
    ours = sorted(converted.detect(image, upsample))
    theirs = sorted(
        ((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), d.confidence)
        for d in models.cnn_detector()(image, upsample)
    )
    assert len(ours) == len(theirs) == faces
    for (box, score), (their_box, their_score) in zip(ours, theirs, strict=True):
        assert np.abs(np.subtract(box, their_box)).max() <= mmod.MAX_BOX_DIFFERENCE
        assert abs(score - their_score) <= mmod.MAX_SCORE_DIFFERENCE


def test_the_detector_interface_uses_the_converted_network() -> None:
    assert detectors.mmod_detector() is not None
    image = load_rgb(DATA / "obama_small.jpg")
    (found,) = detectors.detect(image, "cnn", 0)
    (theirs,) = models.cnn_detector()(image, 0)
    assert found.box.css() == (
        theirs.rect.top(),
        theirs.rect.right(),
        theirs.rect.bottom(),
        theirs.rect.left(),
    )


def test_a_verified_model_is_reused_and_a_changed_one_converted_again(tmp_path: Path) -> None:
    first = mmod.ready_detector(tmp_path)
    path = mmod.model_file(tmp_path, models.model_path("cnn_detector"))
    marker = path.with_name(path.name + ".verified")
    assert marker.read_text().split()[0] == first.sha256
    stamp = marker.stat().st_mtime_ns
    mmod.ready_detector(tmp_path)
    assert marker.stat().st_mtime_ns == stamp  # reused, not checked again
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    again = mmod.ready_detector(tmp_path)
    assert again.sha256 == first.sha256
    assert marker.stat().st_mtime_ns != stamp


def test_a_foreign_file_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "mmod_human_face_detector.dat"
    bad.write_bytes(models.model_path("recognition").read_bytes()[:5000])
    with pytest.raises(ModelError, match="not dlib's MMOD face detector"):
        mmod.load_network(bad)


def test_pyramid_layout_matches_dlib_rules() -> None:
    """Level sizes shrink by 5/6 (floored) down to 5 rows, all inside the tensor, no overlap."""
    rects, rows, cols = mmod.pyramid_rects(200, 300, 10, 11)
    sizes = [(r[2] - r[0] + 1, r[3] - r[1] + 1) for r in rects]
    assert sizes[0] == (300, 200)
    for (width, height), (next_width, next_height) in itertools.pairwise(sizes):
        assert (next_width, next_height) == (int(width * 5 / 6), int(height * 5 / 6))
    for left, top, right, bottom in rects:
        assert 0 <= left <= right < cols and 0 <= top <= bottom < rows
    assert cols == 300 + 22
