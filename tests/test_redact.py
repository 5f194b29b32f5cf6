"""facematch redact on real photos: who is covered, who is kept, and what the copies hold."""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import run
from PIL import Image, ImageOps
from videos import Shot, write_video

from facematch.cli import EXIT_PARTIAL, EXIT_USAGE
from facematch.detect import detectors
from facematch.detect.boxes import reach, unite
from facematch.detect.detectors import CENTERFACE_SENSITIVE_THRESHOLD
from facematch.encode.faces import FaceSettings
from facematch.encode.passes import MIRROR_PAD, DetectorPass, detect_pass, redaction_passes
from facematch.privacy.redact import FILL, cover, mask_box
from facematch.records import FaceBox
from facematch.sources.images import load_rgb


def upright(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.int16)


@pytest.fixture
def only_obama(tmp_path: Path, data: Path) -> Path:
    known = tmp_path / "known"
    known.mkdir()
    shutil.copy(data / "obama.jpg", known / "Barack Obama.jpg")
    return known


@pytest.fixture
def photos(tmp_path: Path, data: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(data / "two_people.jpg", folder / "both.jpg")
    shutil.copy(data / "alex-lacamoire.png", folder / "stranger.png")
    return folder


def box_of(face: dict[str, dict[str, int]]) -> FaceBox:
    b = face["box"]
    return FaceBox(b["top"], b["right"], b["bottom"], b["left"])


def test_strangers_covered_known_people_clear(
    only_obama: Path, photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ("--out", out, "--format", "json", "--no-fallback", "--upsample", "1", "-j", "1")
    result = run("redact", photos, "--known", only_obama, *args)
    assert result.exit_code == 0, result.stderr
    rows = {Path(r["path"]).name: r for r in json.loads(result.stdout)}
    assert rows["both.jpg"]["kept"] == ["Barack Obama"]
    assert rows["both.jpg"]["covered"] == 1 and rows["stranger.png"]["covered"] == 1
    for name, row in rows.items():
        original, copy = upright(photos / name), upright(out / name)
        assert original.shape == copy.shape
        for face in row["faces"]:
            box = box_of(face)
            region = (slice(box.top, box.bottom), slice(box.left, box.right))
            if face["action"] == "covered":
                assert np.abs(copy[region] - FILL).max() <= 8  # JPEG noise on black
            else:
                assert np.abs(copy[region] - original[region]).mean() < 4

    # Matching the copies again: nobody covered is found, let alone named.
    again = run(only_obama, out, "--format", "json", "--upsample", "2", "-j", "1")
    assert again.exit_code == 0, again.stderr
    found = {Path(r["path"]).name: r["faces"] for r in json.loads(again.stdout)}
    assert found["stranger.png"] == []
    assert [f["name"] for f in found["both.jpg"]] == ["Barack Obama"]


def test_no_known_folder_covers_everyone_in_every_format(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ("redact", "--everyone", photos / "both.jpg", photos / "stranger.png", "--no-fallback")
    args += ("--upsample", "1", "-j", "1")
    lines = run(*args, "--out", out).stdout.splitlines()
    assert lines == [
        f"{photos / 'both.jpg'},covered,everyone",
        f"{photos / 'both.jpg'},covered,everyone",
        f"{photos / 'stranger.png'},covered,everyone",
    ]
    rows = list(csv.DictReader(io.StringIO(run(*args, "--out", out, "--format", "csv").stdout)))
    assert [r["action"] for r in rows] == ["covered"] * 3
    assert {r["output"] for r in rows} == {str(out / "both.jpg"), str(out / "stranger.png")}
    jsonl = run(*args, "--out", out, "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line)["covered"] for line in jsonl] == [2, 1]


def test_every_argument_is_a_path_to_redact(only_obama: Path, photos: Path, tmp_path: Path) -> None:
    """No position makes a folder the known people: without --known, every face is covered."""
    out = tmp_path / "out"
    args = ("--out", out, "--format", "csv", "--no-fallback", "--upsample", "1", "-j", "1")
    result = run("redact", only_obama, photos, *args)
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {Path(r["path"]).name for r in rows} == {"Barack Obama.jpg", "both.jpg", "stranger.png"}
    assert [r["reason"] for r in rows] == ["everyone"] * 4
    assert (out / "known" / "Barack Obama.jpg").exists()
    assert (out / "photos" / "both.jpg").exists()
    # --everyone is what redact does without --known: the same rows.
    again = run("redact", "--everyone", only_obama, photos, *args)
    assert again.exit_code == 0, again.stderr
    assert again.stdout == result.stdout


def test_everyone_and_known_together_is_a_usage_error(only_obama: Path, photos: Path) -> None:
    result = run(
        "redact", photos, "--known", only_obama, "--everyone", "--out", photos.parent / "o"
    )
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        "facematch: error: --everyone covers every face and --known keeps known people "
        "clear: give one\n"
    )
    assert not (photos.parent / "o").exists()


def test_photos_and_a_video_in_one_run_each_get_a_copy_and_a_row_in_order(
    photos: Path, tmp_path: Path, data: Path
) -> None:
    clip = tmp_path / "a-clip.mp4"
    write_video(clip, [Shot(None, data / "obama2.jpg", 0, 1)], width=320, height=180, rate=5)
    args = ("--format", "csv", "--no-fallback", "--upsample", "1", "-j", "1")
    out = tmp_path / "o"
    result = run("redact", clip, photos / "stranger.png", "--out", out, *args)
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    names = [Path(r["path"]).name for r in rows]
    assert names == sorted(names) and set(names) == {"a-clip.mp4", "stranger.png"}
    video = [r for r in rows if r["path"].endswith(".mp4")]
    assert all(r["status"] == "ok" and r["frames_covered"] for r in video)
    photo = [r for r in rows if r["path"].endswith(".png")]
    assert photo[0]["frames_covered"] == "" and photo[0]["action"] == "covered"
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["a-clip.mp4", "stranger.png"]


def test_copy_is_upright_without_exif_gps_or_thumbnail(data: Path, tmp_path: Path) -> None:
    source = tmp_path / "phone.jpg"
    with Image.open(data / "obama_exif_rotated.jpg") as image:
        exif = image.getexif()
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2] = "N", (48.0, 51.0, 24.0)
        image.save(source, exif=exif)
    out = tmp_path / "out"
    result = run("redact", source, "--out", out, "--format", "json", "--no-fallback", "-j", "1")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)[0]["covered"] == 1
    copy = out / "phone.jpg"
    raw = copy.read_bytes()
    assert b"Exif" not in raw and b"\xff\xe1" not in raw  # no APP1 segment at all
    with Image.open(copy) as image:
        assert not image.getexif()
        assert image.size == upright(source).shape[1::-1]


def test_never_writes_over_an_input(photos: Path) -> None:
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    photo = sorted(photos.iterdir())[0]
    result = run("redact", photo, "--out", photos)
    assert result.exit_code == EXIT_USAGE
    assert f"--out would write over the input {photo}; choose another" in result.stderr
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before
    result = run("redact", photos, "--out", photos)  # a folder given
    assert result.exit_code == EXIT_USAGE
    assert f"--out {photos} is the input folder {photos};" in result.stderr
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before


def test_unreadable_file_is_a_row_and_exit_3(photos: Path, tmp_path: Path) -> None:
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    args = ("--format", "csv", "--no-fallback", "--upsample", "1", "-j", "1")
    result = run("redact", photos, "--out", tmp_path / "o", *args)
    assert result.exit_code == EXIT_PARTIAL
    statuses = {
        Path(r["path"]).name: r["status"] for r in csv.DictReader(io.StringIO(result.stdout))
    }
    assert statuses["broken.jpg"] == "error"
    assert not (tmp_path / "o" / "broken.jpg").exists()


def test_default_passes_use_centerface_when_installed(data: Path, tmp_path: Path) -> None:
    passes = redaction_passes(FaceSettings(upsample=2))
    described = [(p.settings.model, p.settings.upsample, p.pad) for p in passes]
    assert described == [("centerface", 0, 0.0), ("hog", 2, 0.0), ("hog", 1, MIRROR_PAD)]
    assert passes[0].settings.threshold == CENTERFACE_SENSITIVE_THRESHOLD
    result = run("redact", data / "obama_small.jpg", "--out", tmp_path / "o", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)[0]["covered"] == 1


def test_without_centerface_the_passes_add_the_cnn_and_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(detectors, "centerface_available", lambda: False)
    warnings: list[str] = []
    monkeypatch.setattr(detectors.log, "warning", lambda *a: warnings.append(a[0] % a[1:]))
    passes = redaction_passes(FaceSettings(upsample=2))
    described = [(p.settings.model, p.settings.upsample, p.pad) for p in passes]
    assert described == [("hog", 2, 0.0), ("hog", 1, MIRROR_PAD), ("cnn", 0, MIRROR_PAD)]
    assert len(redaction_passes(FaceSettings(fallback=False))) == 2
    assert any("facematch[detector]" in w for w in warnings)


def test_mirrored_border_finds_a_face_cut_in_half_by_the_frame(data: Path) -> None:
    image = load_rgb(data / "obama.jpg")[:, 489:]  # the left half of the face is cut off
    plain = DetectorPass(FaceSettings(upsample=1))
    assert detect_pass(np.ascontiguousarray(image), plain) == []
    found = detect_pass(np.ascontiguousarray(image), replace(plain, pad=MIRROR_PAD))
    assert len(found) == 1 and found[0].left == 0 and found[0].top > 100


def test_a_face_two_passes_find_is_covered_once() -> None:
    hog, cnn, other = FaceBox(100, 200, 200, 100), FaceBox(95, 205, 210, 98), FaceBox(0, 50, 50, 0)
    assert unite([[hog], [cnn, other]]) == [hog, other]


def test_a_face_is_covered_as_far_as_any_pass_reaches() -> None:
    first, wider, other = (
        FaceBox(100, 200, 200, 100),
        FaceBox(90, 210, 260, 110),
        FaceBox(0, 9, 9, 0),
    )
    assert reach(first, [[first], [wider, other]]) == FaceBox(90, 210, 260, 100)
    assert reach(other, [[first], [wider, other]]) == other


def test_a_face_cut_by_the_frame_is_covered_to_the_edge(data: Path, tmp_path: Path) -> None:
    # The big face on the right of the selfie is cut by the frame: CenterFace's box stops
    # at its upper lip, HOG on the mirrored borders sees down to the chin.
    result = run("redact", data / "selfie-many-people.jpg", "--out", tmp_path / "o", "-j", "1")
    assert result.exit_code == 0, result.stderr
    copy = upright(tmp_path / "o" / "selfie-many-people.jpg")
    mouth = copy[575:600, 500:560]  # under the moustache, next to the bottom edge
    assert np.abs(mouth - np.array(FILL)).max() < 40  # black, up to JPEG noise
    assert np.abs(upright(data / "selfie-many-people.jpg")[575:600, 500:560]).max() > 100


@pytest.mark.parametrize("style", ["fill", "blur", "pixelate"])
@pytest.mark.parametrize("shape", ["rect", "ellipse"])
def test_styles_change_the_face_and_nothing_far_from_it(data: Path, style: str, shape: str) -> None:
    with Image.open(data / "obama.jpg") as image:
        original = image.convert("RGB")
    box = FaceBox(142, 617, 409, 349)  # face_recognition's box for this photo
    covered = cover(original.copy(), [box], style, shape)  # type: ignore[arg-type]
    before, after = np.asarray(original, np.int16), np.asarray(covered, np.int16)
    inner = (slice(box.top, box.bottom), slice(box.left, box.right))
    # Nothing of the face's detail survives: at most a few shades of variation left.
    assert np.abs(after[inner] - before[inner]).mean() > 20
    grown = mask_box(box, original.width, original.height)
    outside = after.copy()
    outside[grown.top : grown.bottom, grown.left : grown.right] = before[
        grown.top : grown.bottom, grown.left : grown.right
    ]
    assert np.array_equal(outside, before)
    if shape == "ellipse":  # the mask's corners stay clear
        assert np.array_equal(after[grown.top, grown.left], before[grown.top, grown.left])


def test_only_a_confident_known_face_is_kept() -> None:
    from facematch.privacy.redact import decide
    from facematch.records import FaceMatch, Match

    box = FaceBox(0, 10, 10, 0)
    sure = FaceMatch(box, "Ann", 0.40, runner_up=Match("Bob", 0.80), stranger_chance=0.0001)
    torn = FaceMatch(box, "Ann", 0.40, runner_up=Match("Bob", 0.43), stranger_chance=0.0001)
    near = FaceMatch(box, None, 0.62)
    # Named and sure enough to print, but a stranger comes as close too often to keep it clear.
    unsure = FaceMatch(box, "Ann", 0.55, runner_up=Match("Bob", 0.80), stranger_chance=0.003)
    assert (decide(sure, 0.6, 0.05).action, decide(sure, 0.6, 0.05).name) == ("kept", "Ann")
    assert (decide(unsure, 0.6, 0.05).action, decide(unsure, 0.6, 0.05).reason) == (
        "covered",
        "uncertain",
    )
    assert (decide(torn, 0.6, 0.05).action, decide(torn, 0.6, 0.05).reason) == (
        "covered",
        "ambiguous",
    )
    assert decide(near, 0.6, 0.05).reason == "ambiguous"
    assert decide(near, 0.6, 0.0).reason == "unknown"
    assert decide(FaceMatch(box, None, None), None, 0.05).reason == "everyone"


def test_a_person_is_kept_once_per_photo() -> None:
    from facematch.privacy.redact import once_each
    from facematch.records import RedactedFace

    box = FaceBox(0, 10, 10, 0)
    faces = [
        RedactedFace(box, "kept", "known", "Ann", 0.45),
        RedactedFace(box, "kept", "known", "Ann", 0.30),
        RedactedFace(box, "kept", "known", "Bob", 0.40),
    ]
    assert [(f.action, f.name) for f in once_each(faces)] == [
        ("covered", None),
        ("kept", "Ann"),
        ("kept", "Bob"),
    ]
