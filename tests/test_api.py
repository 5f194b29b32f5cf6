"""The face_recognition-compatible API against face_recognition 1.3.0's own figures."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import facematch as fr

# Reference figures: face_recognition 1.3.0 with dlib 20.0.1 (HOG, upsample 1, 5-point, 1 jitter).
REFERENCE_DISTANCES = [
    ("obama.jpg", "obama2.jpg", 0.3457),
    ("obama.jpg", "obama3.jpg", 0.3321),
    ("obama.jpg", "obama_partial_face.jpg", 0.2355),
    ("obama.jpg", "obama_partial_face2.jpg", 0.2841),
    ("obama2.jpg", "obama3.jpg", 0.4285),
    ("obama.jpg", "biden.jpg", 0.8402),
    ("obama2.jpg", "biden.jpg", 0.8158),
    ("obama3.jpg", "biden.jpg", 0.8698),
    ("32bit.png", "obama2.jpg", 0.0380),
]


@pytest.fixture(scope="module")
def encodings() -> dict[str, np.ndarray]:
    data = Path(__file__).parent / "data"
    names = {name for pair in REFERENCE_DISTANCES for name in pair[:2]}
    return {name: fr.face_encodings(fr.load_image_file(data / name))[0] for name in names}


@pytest.mark.parametrize(("a", "b", "expected"), REFERENCE_DISTANCES)
def test_distances_match_face_recognition(
    encodings: dict[str, np.ndarray], a: str, b: str, expected: float
) -> None:
    assert fr.face_distance([encodings[a]], encodings[b])[0] == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(
    ("name", "upsample", "boxes"),
    [
        ("obama.jpg", 1, [(142, 617, 409, 349)]),
        ("obama.jpg", 0, [(136, 624, 394, 366)]),
        ("two_people.jpg", 0, [(62, 394, 211, 244), (95, 941, 244, 792)]),
    ],
)
def test_boxes_match_face_recognition(
    data: Path, name: str, upsample: int, boxes: list[tuple[int, int, int, int]]
) -> None:
    image = fr.load_image_file(data / name)
    assert sorted(fr.face_locations(image, number_of_times_to_upsample=upsample)) == sorted(boxes)


def test_exif_rotated_photo_is_loaded_upright(data: Path) -> None:
    # face_recognition finds no face here: it ignores the EXIF orientation.
    image = fr.load_image_file(data / "obama_exif_rotated.jpg")
    assert image.shape == (1137, 910, 3)
    assert fr.face_locations(image) == [(142, 617, 409, 349)]


def test_compare_faces_and_face_distance(encodings: dict[str, np.ndarray]) -> None:
    known = [encodings["obama.jpg"], encodings["biden.jpg"]]
    assert fr.compare_faces(known, encodings["obama2.jpg"]) == [True, False]
    assert fr.compare_faces(known, encodings["obama2.jpg"], tolerance=0.3) == [False, False]
    assert fr.face_distance([], encodings["obama.jpg"]).shape == (0,)


def test_face_landmarks_large_and_small(data: Path) -> None:
    image = fr.load_image_file(data / "obama.jpg")
    large = fr.face_landmarks(image)
    assert len(large) == 1
    assert set(large[0]) == {
        "chin",
        "left_eyebrow",
        "right_eyebrow",
        "nose_bridge",
        "nose_tip",
        "left_eye",
        "right_eye",
        "top_lip",
        "bottom_lip",
    }
    assert len(large[0]["chin"]) == 17 and len(large[0]["top_lip"]) == 12
    small = fr.face_landmarks(image, model="small")
    assert set(small[0]) == {"nose_tip", "left_eye", "right_eye"}
    # The points fall inside the detected face.
    top, right, bottom, left = fr.face_locations(image)[0]
    x, y = small[0]["nose_tip"][0]
    assert left < x < right and top < y < bottom
    with pytest.raises(ValueError, match="Invalid landmarks model"):
        fr.face_landmarks(image, model="medium")


def test_face_encodings_with_known_locations(data: Path) -> None:
    image = fr.load_image_file(data / "two_people.jpg")
    boxes = fr.face_locations(image)
    encodings = fr.face_encodings(image, known_face_locations=boxes)
    assert len(encodings) == 2 and encodings[0].shape == (128,)
    assert fr.face_distance([encodings[0]], encodings[1])[0] > 0.6


def test_batch_face_locations_uses_the_cnn_detector(data: Path) -> None:
    small = fr.load_image_file(data / "obama_small.jpg")
    batches = fr.batch_face_locations([small, small], number_of_times_to_upsample=0)
    assert len(batches) == 2 and batches[0] == batches[1]
    assert len(batches[0]) == 1


def test_import_loads_no_model_and_no_dlib() -> None:
    import subprocess

    code = (
        "import sys, facematch; facematch.__version__; "
        "from facematch.cli import main; "
        "assert 'dlib' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_models_are_found_without_pkg_resources() -> None:
    # face_recognition_models' __init__ imports pkg_resources, gone from setuptools-free venvs.
    import subprocess

    code = (
        "import sys; sys.modules['pkg_resources'] = None\n"
        "from facematch.models import dlib_files as models\n"
        "assert models.model_path('recognition').stat().st_size > 20_000_000\n"
        "models.shape_predictor(5); models.dlib_face_encoder()\n"
        "assert 'face_recognition_models' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_public_name_is_what_it_was() -> None:
    # A subpackage named like a public function would shadow it once imported.
    import importlib

    import facematch

    for name in facematch.__all__:
        if name == "__version__":
            continue
        value = getattr(facematch, name)
        assert not isinstance(value, type(importlib)), f"facematch.{name} is a module"
    importlib.import_module("facematch.matching.naming")
    assert callable(facematch.match) and callable(facematch.build_gallery)
