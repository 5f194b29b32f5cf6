"""facematch cloak on real faces: copies no longer matched, verified, and never over an input.

Cloaking costs seconds per face, so the command runs once (module fixture) on
three small photos: one face with GPS and a rotation in its EXIF, two faces,
and no face at all; the other tests read that run's copies.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import Result
from helpers import run
from PIL import Image

from facematch.cli import EXIT_FATAL, EXIT_PARTIAL, EXIT_USAGE

pytest.importorskip("jax")

DATA = Path(__file__).parent / "data"
GPS_IFD = 0x8825
ORIENTATION = 0x0112


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cloaked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Result, dict[str, str]]:
    """One run of ``facematch cloak --level strong`` over a folder of three photos."""
    inputs = tmp_path_factory.mktemp("photos")
    # obama_small.jpg stored sideways with EXIF orientation 8 and a GPS position, as phones do.
    with Image.open(DATA / "obama_small.jpg") as image:
        exif = Image.Exif()
        exif[ORIENTATION] = 8
        exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)})
        image.rotate(-90, expand=True).save(inputs / "phone.jpg", exif=exif, quality=95)
    (inputs / "group").mkdir()
    shutil.copy(DATA / "two_people.jpg", inputs / "group" / "two.jpg")
    shutil.copy(DATA / "tiny-blank.png", inputs / "blank.png")
    with Image.open(DATA / "obama2.jpg") as image:  # lossless: every unchanged pixel stays
        image.save(inputs / "portrait.png")
    before = {p.name: digest(p) for p in inputs.rglob("*") if p.is_file()}
    out = tmp_path_factory.mktemp("cloaked")
    result = run("cloak", inputs, "-r", "--out", out, "--format", "json", "--jobs", "1")
    return inputs, out, result, before


def rows(result: Result) -> dict[str, dict]:  # type: ignore[type-arg]
    return {Path(r["path"]).name: r for r in json.loads(result.stdout)}


@pytest.mark.slow
def test_every_face_is_cloaked_and_verified(
    cloaked: tuple[Path, Path, Result, dict[str, str]],
) -> None:
    _, out, result, _ = cloaked
    found = rows(result)
    assert found["phone.jpg"]["status"] == "protected", result.stderr
    assert found["two.jpg"]["status"] == "protected", result.stderr
    assert len(found["two.jpg"]["faces"]) == 2
    for face in found["phone.jpg"]["faces"] + found["two.jpg"]["faces"]:
        assert face["passed"] and face["distance"] > 0.6
        assert set(face["variants"]) == {"written", "jpeg75", "half", "blur"}
        assert set(face["sface_variants"]) == set(face["variants"])  # checked, whatever it says
        # Within strong's budget on the face, as written (JPEG included), at full size.
        assert 0 < face["dssim"] <= 0.0075
    assert found["phone.jpg"]["psnr"] > 33
    assert 0 < found["phone.jpg"]["dssim_1080"] < found["phone.jpg"]["faces"][0]["dssim"]
    assert (out / "phone.jpg").is_file() and (out / "group" / "two.jpg").is_file()


@pytest.mark.slow
def test_nothing_changes_beyond_the_face(
    cloaked: tuple[Path, Path, Result, dict[str, str]],
) -> None:
    """No pattern on the wall or the clothes: a lossless copy differs from its
    original only around the face, and there within the level's DSSIM."""
    from facematch.detect.boxes import grow_box
    from facematch.privacy.cloak import dssim, face_region
    from facematch.records import FaceBox

    inputs, out, result, _ = cloaked
    row = rows(result)["portrait.png"]
    assert row["status"] == "protected", result.stderr
    original = np.asarray(Image.open(inputs / "portrait.png").convert("RGB"))
    copy = np.asarray(Image.open(out / "portrait.png").convert("RGB"))
    (face,) = row["faces"]
    box = FaceBox(
        face["box"]["top"], face["box"]["right"], face["box"]["bottom"], face["box"]["left"]
    )
    height, width = original.shape[:2]
    near = grow_box(box, 0.6, width, height)  # the brows lifted to the hair line, feathered
    changed = np.any(original != copy, axis=-1)
    changed[near.top : near.bottom, near.left : near.right] = False
    assert not changed.any()
    region = face_region(box, height, width)
    cut = (slice(region.top, region.bottom), slice(region.left, region.right))
    measured = dssim(original[cut], copy[cut])
    assert abs(measured - face["dssim"]) < 1e-4 and 0.001 < measured <= 0.0075
    # The whole photo, as a phone shows it, changes less than its face.
    assert 0 < row["dssim_1080"] < measured


@pytest.mark.slow
def test_a_photo_without_faces_is_reported_and_not_copied(
    cloaked: tuple[Path, Path, Result, dict[str, str]],
) -> None:
    _, out, result, _ = cloaked
    blank = rows(result)["blank.png"]
    assert blank["status"] == "no_faces" and blank["faces"] == [] and blank["out"] is None
    assert not (out / "blank.png").exists()
    assert result.exit_code == EXIT_PARTIAL  # not every photo is protected
    assert "blank.png: not protected" in result.stderr


@pytest.mark.slow
def test_cloaked_obama_is_no_longer_matched_to_his_other_photos(
    cloaked: tuple[Path, Path, Result, dict[str, str]],
) -> None:
    import facematch

    inputs, out, _, _ = cloaked
    others = [
        facematch.load_image_file(DATA / n) for n in ("obama.jpg", "obama2.jpg", "obama3.jpg")
    ]
    known = [facematch.face_encodings(i, model="large")[0] for i in others]

    def distances(path: Path) -> np.ndarray:
        image = facematch.load_image_file(path)
        return facematch.face_distance(known, facematch.face_encodings(image, model="large")[0])

    assert (distances(inputs / "phone.jpg") <= 0.6).all()  # the original is matched...
    assert (distances(out / "phone.jpg") > 0.6).all()  # ...the cloaked copy is not


@pytest.mark.slow
def test_copies_are_upright_without_gps_and_inputs_untouched(
    cloaked: tuple[Path, Path, Result, dict[str, str]],
) -> None:
    inputs, out, _, before = cloaked
    assert {p.name: digest(p) for p in inputs.rglob("*") if p.is_file()} == before
    with Image.open(out / "phone.jpg") as copy, Image.open(DATA / "obama_small.jpg") as upright:
        assert copy.size == upright.size
        exif = copy.getexif()
        assert GPS_IFD not in exif and ORIENTATION not in exif
        assert "exif" not in copy.info


@pytest.mark.slow
def test_check_passes_a_cloaked_copy_and_fails_one_with_the_cloak_removed(
    cloaked: tuple[Path, Path, Result, dict[str, str]], tmp_path: Path
) -> None:
    inputs, out, _, _ = cloaked
    original, copy = inputs / "group" / "two.jpg", out / "group" / "two.jpg"
    result = run("cloak", "--check", original, copy, "--format", "csv")
    assert result.exit_code == 0, result.stderr
    assert [row["passed"] for row in csv.DictReader(io.StringIO(result.stdout))] == ["true"] * 2
    # The perturbation removed: the copy's pixels replaced by the original's.
    removed = tmp_path / "removed.png"
    with Image.open(original) as image:
        image.save(removed)
    result = run("cloak", "--check", original, removed)
    assert result.exit_code == EXIT_PARTIAL
    assert result.stdout.splitlines() == [
        f"{original},not_protected,0.0,sface_matched,0.0",  # SFace sees the same pixels too
        f"{original},not_protected,0.0,sface_matched,0.0",
    ]


def test_never_writes_over_an_input(tmp_path: Path) -> None:
    shutil.copy(DATA / "obama_small.jpg", tmp_path / "a.jpg")
    before = digest(tmp_path / "a.jpg")
    args = ("--out", tmp_path, "--format", "jsonl", "--jobs", "1")
    result = run("cloak", tmp_path / "a.jpg", *args)
    assert result.exit_code == EXIT_PARTIAL
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["status"] == "error" and "would overwrite an input" in row["error"]
    assert digest(tmp_path / "a.jpg") == before
    result = run("cloak", tmp_path, *args)  # a folder given: refused before any work
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        f"facematch: error: --out {tmp_path} is the input folder {tmp_path}; "
        "choose a folder outside the inputs\n"
    )
    assert digest(tmp_path / "a.jpg") == before


def test_missing_extra_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from facematch.privacy import cloak
    from facematch.privacy.cloak import gradients

    monkeypatch.setattr(gradients, "jax_available", lambda: False)
    result = run("cloak", DATA / "obama_small.jpg", "--out", tmp_path)
    assert result.exit_code == EXIT_FATAL
    assert result.stderr == "facematch: error: " + cloak.EXTRA_MESSAGE + "\n"
    assert list(tmp_path.iterdir()) == []


def test_out_is_required_and_check_takes_two_paths() -> None:
    assert run("cloak", DATA / "obama_small.jpg").exit_code == 2
    assert run("cloak", "--check", DATA / "obama_small.jpg").exit_code == 2


def test_differentiable_chips_equal_dlibs_within_one_grey_level() -> None:
    from facematch.encode.faces import align, face_chips
    from facematch.privacy import cloak
    from facematch.sources.images import load_rgb

    image = load_rgb(DATA / "two_people.jpg")
    boxes = cloak.find_original_faces(image)
    assert len(boxes) == 2
    for points in (5, 68):
        shapes = align(image, boxes, points)
        dlib_chips = face_chips(image, shapes).astype(np.float64)
        transforms = np.stack([cloak.as_matrix(cloak.chip_transform(s)) for s in shapes])
        ours = np.stack(
            [cloak.bilinear_chips(np, image.astype(np.float64), t[None])[0] for t in transforms]
        )
        assert np.abs(ours - dlib_chips).max() <= 1.0
        assert np.array_equal(np.floor(ours), dlib_chips)  # dlib truncates


def test_jax_interpreter_equals_onnx_runtime_on_faces() -> None:
    from facematch.encode import engines
    from facematch.encode.faces import align, face_chips
    from facematch.privacy import cloak
    from facematch.sources.images import load_rgb

    image = load_rgb(DATA / "two_people.jpg")
    chips = face_chips(image, align(image, cloak.find_original_faces(image), 68))
    onnx = engines.encoder(engines.prepare("onnx", None)).encode(chips)
    ours = cloak.network_function()(chips.astype(np.float32))
    assert np.abs(ours - onnx).max() < 1e-4


@pytest.mark.slow
def test_same_seed_same_perturbation() -> None:
    from dataclasses import replace

    from facematch.privacy import cloak
    from facematch.sources.images import load_rgb

    image = load_rgb(DATA / "obama_small.jpg").astype(np.float32)
    canvas = cloak.Canvas(0.0, 0.0, 1.0)
    base, valid = cloak.cut_canvas(image.astype(np.uint8), canvas)
    matrix = np.array([[0.6, 0.0, 100.0], [0.0, 0.6, 60.0]])
    level = replace(cloak.LEVELS["strong"], steps=2)
    targets = {5: np.zeros(128), 68: np.zeros(128)}

    region = (slice(40, 200), slice(80, 240))

    def once(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return cloak.cloak_canvas(
            base,
            valid,
            {5: matrix, 68: matrix},
            targets,
            level,
            8.0,
            1.0,
            rng,
            np.ones_like(valid),
            1.0,
            region,
        )

    first = once(1)
    assert np.array_equal(first, once(1))
    assert np.abs(first).max() <= 8.0  # never beyond epsilon
    assert not np.array_equal(first, once(2))


def test_steps_stop_once_the_views_are_far_enough_two_steps_in_a_row() -> None:
    from dataclasses import replace

    from facematch.privacy import cloak
    from facematch.sources.images import load_rgb

    image = load_rgb(DATA / "obama_small.jpg")
    base, valid = cloak.cut_canvas(image, cloak.Canvas(0.0, 0.0, 1.0))
    matrix = np.array([[0.6, 0.0, 100.0], [0.0, 0.6, 60.0]])
    targets = {5: np.zeros(128), 68: np.zeros(128)}  # every descriptor is farther than 0

    region = (slice(40, 200), slice(80, 240))

    def change(stop: float) -> float:
        """The root mean square change of the face region (each step moves it by 1)."""
        level = replace(cloak.LEVELS["strong"], steps=10, stop=stop)
        rng = np.random.default_rng(0)
        delta = cloak.cloak_canvas(
            base,
            valid,
            {5: matrix, 68: matrix},
            targets,
            level,
            99.0,
            1.0,
            rng,
            np.ones_like(valid),
            1.0,
            region,
        )
        return float(np.sqrt(np.mean(delta[region] ** 2)))

    assert 1.0 < change(0.0) <= 2.0  # stopped after two steps
    assert 3.0 < change(99.0) <= 10.0  # never far enough: all ten steps


def test_check_refuses_a_copy_of_another_size_as_a_usage_error() -> None:
    original, other = DATA / "obama.jpg", DATA / "obama2.jpg"
    result = run("cloak", "--check", original, other, "-q")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        "facematch: error: the copy is 626x1200, the original 910x1137: not a copy of it\n"
    )
    assert result.stdout == ""
