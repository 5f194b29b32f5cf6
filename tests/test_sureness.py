"""How sure a name is (issue 31, defects 2, 4 and 5), on real photos.

tests/data/lfw/ holds three LFW photos: two of Bernardo Segura, and one of a
stranger (Aaron Pena) 0.56 from him, within the 0.6 tolerance of small
galleries: a name that looks surer than it is, and a face that redaction
must not keep clear.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from helpers import run
from PIL import Image

from facematch.matching import calibration
from facematch.matching.appearances import appearances
from facematch.output.pictures import COLOURS
from facematch.records import FaceBox, FaceMatch, Match

STRANGER = "Aaron_Pena_0001.jpg"
GENUINE = "Bernardo_Segura_0002.jpg"


@pytest.fixture
def lfw(data: Path) -> Path:
    return data / "lfw"


@pytest.fixture
def photos(lfw: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in (STRANGER, GENUINE):
        shutil.copy(lfw / name, folder / name)
    return folder


def known_folder(tmp_path: Path, lfw: Path, data: Path, others: bool) -> Path:
    """Bernardo Segura's first photo, and with ``others`` two more people."""
    known = tmp_path / "known"
    known.mkdir()
    shutil.copy(lfw / "Bernardo_Segura_0001.jpg", known / "Bernardo Segura.jpg")
    if others:
        shutil.copy(data / "obama.jpg", known / "Barack Obama.jpg")
        shutil.copy(data / "biden.jpg", known / "Joe Biden.jpg")
    return known


def by_file(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {Path(row["path"]).name: row for row in rows}


def test_the_stranger_chance_grows_with_distance_and_gallery() -> None:
    chance = calibration.stranger_chance
    assert chance(0.40, 3) < chance(0.50, 3) < chance(0.60, 3)
    assert chance(0.55, 1) < chance(0.55, 10) < chance(0.55, 1000)
    assert not calibration.uncertain(calibration.UNCERTAIN_CHANCE)
    assert calibration.uncertain(calibration.UNCERTAIN_CHANCE * 1.5)
    assert calibration.KEEP_CHANCE < calibration.UNCERTAIN_CHANCE


def test_a_borderline_name_is_marked_uncertain_in_every_format(
    tmp_path: Path, lfw: Path, data: Path, photos: Path
) -> None:
    known = known_folder(tmp_path, lfw, data, others=True)
    result = run(known, photos, "--format", "csv", "-j", "1")
    assert result.exit_code == 0, result.stderr
    rows = by_file(list(csv.DictReader(io.StringIO(result.stdout))))
    stranger, genuine = rows[STRANGER], rows[GENUINE]
    assert stranger["name"] == "Bernardo Segura" and stranger["uncertain"] == "yes"
    assert float(stranger["stranger_chance"]) > calibration.UNCERTAIN_CHANCE
    assert genuine["name"] == "Bernardo Segura" and genuine["uncertain"] == "no"
    assert float(genuine["stranger_chance"]) < float(stranger["stranger_chance"]) / 10

    documents = json.loads(run(known, photos, "--format", "json", "-j", "1").stdout)
    faces = {Path(d["path"]).name: d["faces"][0] for d in documents}
    assert faces[STRANGER]["uncertain"] is True
    assert faces[GENUINE]["uncertain"] is False

    compat = run(known, photos, "-j", "1")
    assert f"{photos / STRANGER},Bernardo Segura" in compat.stdout.splitlines()
    assert "1 name is uncertain: a stranger would come as close" in compat.stderr


def test_an_unnamed_face_says_who_was_nearest_and_its_tolerance(
    tmp_path: Path, lfw: Path, data: Path, photos: Path
) -> None:
    known = known_folder(tmp_path, lfw, data, others=True)
    result = run(known, photos, "--format", "csv", "--tolerance", "0.5", "-j", "1")
    row = by_file(list(csv.DictReader(io.StringIO(result.stdout))))[STRANGER]
    assert row["name"] == "" and row["uncertain"] == ""
    assert row["nearest"] == "Bernardo Segura"
    assert 0.5 < float(row["nearest_distance"]) < 0.6
    assert row["nearest_distance"] == row["distance"]
    assert row["tolerance"] == "0.5"
    assert row["runner_up"] != "Bernardo Segura"
    document = json.loads(
        run(known, photos / STRANGER, "--format", "json", "--tolerance", "0.5").stdout
    )[0]
    assert document["faces"][0]["nearest"]["name"] == "Bernardo Segura"
    assert document["faces"][0]["uncertain"] is None


def test_an_uncertain_name_is_amber_in_pictures_and_counted_in_the_report(
    tmp_path: Path, lfw: Path, data: Path, photos: Path
) -> None:
    known = known_folder(tmp_path, lfw, data, others=True)
    out, report = tmp_path / "annotated", tmp_path / "report.html"
    args = ("--annotate", out, "--report", report, "--format", "json", "-j", "1")
    result = run(known, photos, *args)
    assert result.exit_code == 0, result.stderr
    faces = {Path(d["path"]).name: d["faces"][0] for d in json.loads(result.stdout)}
    for name, kind in ((STRANGER, "ambiguous"), (GENUINE, "named")):
        box = faces[name]["box"]
        with Image.open(out / name) as image:
            pixel = image.convert("RGB").getpixel((box["left"] + 1, box["top"] + 30))
        assert all(abs(g - w) < 60 for g, w in zip(pixel, COLOURS[kind][0], strict=True)), (
            name,
            pixel,
        )
    page = report.read_text()
    assert "<dt>uncertain names</dt><dd>1</dd>" in page
    assert "Bernardo Segura (uncertain)" in page


def test_redact_covers_a_stranger_that_matching_would_name(
    tmp_path: Path, lfw: Path, data: Path, photos: Path
) -> None:
    known = known_folder(tmp_path, lfw, data, others=False)
    named = run(known, photos / STRANGER)
    assert named.stdout.strip().endswith(",Bernardo Segura")  # within the 0.6 tolerance

    out = tmp_path / "out"
    result = run("redact", "--known", known, photos, "--out", out, "--format", "csv", "-j", "1")
    assert result.exit_code == 0, result.stderr
    rows = by_file(list(csv.DictReader(io.StringIO(result.stdout))))
    assert (rows[STRANGER]["action"], rows[STRANGER]["reason"]) == ("covered", "uncertain")
    assert rows[STRANGER]["name"] == ""
    assert (rows[GENUINE]["action"], rows[GENUINE]["name"]) == ("kept", "Bernardo Segura")
    for name, covered in ((STRANGER, True), (GENUINE, False)):
        row = rows[name]
        centre = (
            (int(row["left"]) + int(row["right"])) // 2,
            (int(row["top"]) + int(row["bottom"])) // 2,
        )
        with Image.open(out / name) as image:
            pixel = image.convert("RGB").getpixel(centre)
        assert (max(pixel) < 20) == covered, (name, pixel)  # type: ignore[arg-type]


def test_a_video_range_keeps_its_best_sample_s_sureness() -> None:
    box = FaceBox(10, 60, 60, 10)
    sure = FaceMatch(box, "Ann", 0.40, stranger_chance=0.0001, nearest=Match("Ann", 0.40))
    unsure = FaceMatch(
        box, "Bob", 0.59, stranger_chance=0.02, uncertain=True, nearest=Match("Bob", 0.59)
    )
    ranges = appearances([(0.0, [sure, unsure]), (1.0, [sure])], 1.0)
    found = {a.name: a for a in ranges}
    assert found["Ann"].uncertain is False and found["Ann"].stranger_chance == 0.0001
    assert found["Bob"].uncertain is True and found["Bob"].stranger_chance == 0.02


def test_a_person_named_twice_in_one_photo_is_uncertain_both_times(
    tmp_path: Path, lfw: Path, data: Path
) -> None:
    """Anyone is in a photo once: Bernardo Segura and the stranger side by side are
    both within 0.6 of his known photo, so neither name is sure, nor kept clear."""
    side_by_side = Image.new("RGB", (500, 250))
    for x, name in ((0, GENUINE), (250, STRANGER)):
        with Image.open(lfw / name) as photo:
            side_by_side.paste(photo.convert("RGB"), (x, 0))
    photos = tmp_path / "photos"
    photos.mkdir()
    side_by_side.save(photos / "both.png")
    known = known_folder(tmp_path, lfw, data, others=False)
    result = run(known, photos, "--format", "csv", "-j", "1")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["name"] for r in rows] == ["Bernardo Segura", "Bernardo Segura"]
    assert [r["uncertain"] for r in rows] == ["yes", "yes"]
    assert "2 names are uncertain" in result.stderr

    out = tmp_path / "out"
    redacted = run("redact", "--known", known, photos, "--out", out, "--format", "csv")
    actions = [(r["action"], r["reason"]) for r in csv.DictReader(io.StringIO(redacted.stdout))]
    assert actions and all(action == ("covered", "uncertain") for action in actions), actions
