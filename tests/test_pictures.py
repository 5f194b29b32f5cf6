"""Annotated copies (--annotate), the HTML report (--report) and their parts, on real photos."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import pytest
from helpers import run
from PIL import Image

from facematch.cli import EXIT_USAGE
from facematch.output.pictures import (
    COLOURS,
    MIN_FONT_PX,
    Annotations,
    Kind,
    classify,
    drawable_text,
    font_size,
    label,
    output_paths,
)
from facematch.records import FaceBox, FaceMatch, KnownFace, Match


def upright_size(path: Path) -> tuple[int, int]:
    from PIL import ImageOps

    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).size


def near_colour(image: Image.Image, x: int, y: int, kind: Kind) -> bool:
    """Whether the box line at (x, y) (a few px wide, JPEG-smudged) has the kind's colour."""
    want = COLOURS[kind][0]
    pixels = [image.getpixel((x + dx, y)) for dx in range(4)]
    return any(all(abs(g - w) < 50 for g, w in zip(p, want, strict=True)) for p in pixels)  # type: ignore[arg-type]


BOX = FaceBox(10, 60, 60, 10)


@pytest.mark.parametrize(
    ("face", "kind"),
    [
        (FaceMatch(BOX, "Ann", 0.40, runner_up=Match("Bob", 0.80)), "named"),
        (FaceMatch(BOX, "Ann", 0.40, runner_up=Match("Bob", 0.44)), "ambiguous"),
        (FaceMatch(BOX, None, 0.63, runner_up=Match("Bob", 0.90)), "ambiguous"),
        (FaceMatch(BOX, None, 0.70, runner_up=Match("Bob", 0.90)), "unknown"),
        (FaceMatch(BOX, None, None), "face"),
    ],
)
def test_faces_are_named_ambiguous_or_unknown(face: FaceMatch, kind: str) -> None:
    assert classify(face, tolerance=0.6, margin=0.05) == kind


def test_labels_say_who_and_how_sure() -> None:
    near = KnownFace("Ann", "known/Ann.jpg", BOX)
    assert label(FaceMatch(BOX, "Ann", 0.4), "named") == "Ann 0.40"
    close = FaceMatch(BOX, "Ann", 0.40, runner_up=Match("Bob", 0.42))
    assert label(close, "ambiguous") == "Ann? 0.40 / Bob 0.42"
    assert label(FaceMatch(BOX, None, 0.62, known_face=near), "ambiguous") == "Ann? 0.62"
    assert label(FaceMatch(BOX, None, 0.9, known_face=near), "unknown") == "unknown"


def test_font_grows_with_the_image_and_stays_readable_when_small() -> None:
    assert font_size(250, 250) == MIN_FONT_PX
    assert 80 <= font_size(4000, 3000) <= 120


@pytest.mark.parametrize("side", [250, 4000])
def test_label_fits_and_box_has_its_colour(side: int) -> None:
    image = Image.new("RGB", (side, side), (128, 128, 128))
    box = FaceBox(side // 3, 2 * side // 3, 2 * side // 3, side // 3)
    drawn = Annotations(0.6).draw(image, [FaceMatch(box, "Barack Obama", 0.3)])
    colour = COLOURS["named"][0]
    assert drawn.getpixel((box.left, (box.top + box.bottom) // 2)) == colour
    # The label sits on a band of the box colour just above the box, text inside it.
    size = font_size(side, side)
    band = drawn.crop((box.left, box.top - size, box.right, box.top - 1))
    share = sum(n for n, c in band.getcolors(side * side) or [] if c == colour) / band.width
    assert share / band.height > 0.4


def test_accents_drawn_plain_and_missing_scripts_reported() -> None:
    assert drawable_text(None, "José") == ("Jose", "é")
    shown, missing = drawable_text(None, "王 Wang")
    assert (shown, missing) == ("? Wang", "王")
    assert drawable_text(None, "Barack Obama") == ("Barack Obama", "")


def test_copies_keep_relative_paths_and_never_collide(tmp_path: Path) -> None:
    paths = ["a/x.jpg", "a/b/x.jpg", "c/x.jpg"]
    targets = output_paths(paths, tmp_path / "out")
    assert [t.relative_to(tmp_path / "out").as_posix() for t in targets.values()] == [
        "a/x.jpg",
        "a/b/x.jpg",
        "c/x.jpg",
    ]


def test_annotate_writes_upright_labelled_copies(
    known_files: Path, unknown: Path, data: Path, tmp_path: Path
) -> None:
    shutil.copy(data / "obama_exif_rotated.jpg", unknown / "4-rotated.jpg")
    (unknown / "5-broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "annotated"
    result = run(known_files, unknown, "--annotate", out, "--format", "json", "-j", "1")
    assert result.exit_code == 3, result.stderr
    rows = json.loads(result.stdout)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["1-obama.jpg", "2-both.jpg", "3-stranger.png", "4-rotated.jpg"]
    for row in rows[:4]:
        name = Path(row["path"]).name
        copy = out / name
        assert upright_size(copy) == upright_size(unknown / name)
        with Image.open(copy) as image:
            assert not image.getexif()
            pixels = image.convert("RGB")
            for face in row["faces"]:
                kind = "named" if face["name"] else "unknown"
                box = face["box"]
                assert near_colour(pixels, box["left"], (box["top"] + box["bottom"]) // 2, kind)


def test_annotate_refuses_to_write_over_an_input(known_files: Path, unknown: Path) -> None:
    before = {p.name: p.read_bytes() for p in unknown.iterdir()}
    photo = unknown / "1-obama.jpg"
    result = run(known_files, photo, "--annotate", unknown, "-j", "1")
    assert result.exit_code == EXIT_USAGE
    assert f"--annotate would write over the input {photo}; choose another" in result.stderr
    assert {p.name: p.read_bytes() for p in unknown.iterdir()} == before
    result = run(known_files, unknown, "--annotate", unknown, "-j", "1")  # a folder given
    assert result.exit_code == EXIT_USAGE
    assert f"--annotate {unknown} is the input folder {unknown};" in result.stderr
    assert {p.name: p.read_bytes() for p in unknown.iterdir()} == before


def test_report_cannot_replace_an_input(known_files: Path, unknown: Path) -> None:
    photo = unknown / "1-obama.jpg"
    result = run(known_files, photo, "--report", photo, "-j", "1")
    assert result.exit_code == EXIT_USAGE
    assert f"--report would write over the input {photo}; choose another" in result.stderr


def test_one_warning_for_names_the_font_cannot_draw(
    tmp_path: Path, data: Path, unknown: Path
) -> None:
    known = tmp_path / "k"
    known.mkdir()
    shutil.copy(data / "obama.jpg", known / "奥巴马.jpg")
    shutil.copy(data / "obama3.jpg", unknown / "4-obama3.jpg")
    result = run(known, unknown, "--annotate", tmp_path / "out", "-j", "1")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("no glyph") == 1
    assert "--font FILE" in result.stderr


def test_a_font_that_is_not_a_font_is_a_usage_error(
    known_files: Path, unknown: Path, tmp_path: Path
) -> None:
    fake = tmp_path / "font.ttf"
    fake.write_text("not a font")
    result = run(known_files, unknown, "--annotate", tmp_path / "o", "--font", fake)
    assert result.exit_code == EXIT_USAGE
    assert "cannot use the font" in result.stderr


def test_detect_annotates_boxes(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "boxes"
    result = run("detect", data / "two_people.jpg", "--annotate", out, "-j", "1")
    assert result.exit_code == 0, result.stderr
    with Image.open(out / "two_people.jpg") as image:
        assert image.size == upright_size(data / "two_people.jpg")
        first = result.stdout.splitlines()[0].split(",")
        top, _right, bottom, left = (int(v) for v in first[1:])
        assert near_colour(image.convert("RGB"), left, (top + bottom) // 2, "face")


HOSTILE = """<script>alert("x")</script> & 'quoted'"""


def test_report_escapes_names_and_paths(tmp_path: Path, data: Path) -> None:
    known = tmp_path / "known"
    (known / HOSTILE).mkdir(parents=True)
    shutil.copy(data / "obama.jpg", known / HOSTILE / "a.jpg")
    unknown = tmp_path / 'odd <b>"&'
    unknown.mkdir()
    shutil.copy(data / "obama2.jpg", unknown / "<img src=x onerror=alert(1)>.jpg")
    report = tmp_path / "report.html"
    result = run(known, unknown, "--report", report, "-j", "1")
    assert result.exit_code == 0, result.stderr
    page = report.read_text()
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert html.escape(HOSTILE) in page
    assert page.count("<script>") == 1  # the filter's own


def test_report_assets_are_files_beside_the_page(
    known_files: Path, unknown: Path, tmp_path: Path
) -> None:
    report = tmp_path / "r" / "report.html"
    assets = tmp_path / "r" / "crops"
    result = run(known_files, unknown, "--report", report, "--report-assets", assets, "-j", "1")
    assert result.exit_code == 0, result.stderr
    page = report.read_text()
    assert "data:image" not in page
    crops = sorted(assets.glob("*.jpg"))
    assert crops and all(f'src="crops/{c.name}"' in page for c in crops)
    for crop in crops:
        assert crop.stat().st_size < 8000
        with Image.open(crop) as image:
            assert max(image.size) <= 112


def test_report_assets_need_a_report(known_files: Path, unknown: Path, tmp_path: Path) -> None:
    result = run(known_files, unknown, "--report-assets", tmp_path / "a")
    assert result.exit_code == EXIT_USAGE


def test_cluster_report_escapes_names_writes_assets_and_spares_inputs(
    data: Path, tmp_path: Path
) -> None:
    photos, library = tmp_path / 'photos <i>"&', tmp_path / "people.sqlite3"
    shutil.copytree(data / "people" / "tbbt" / "amy", photos / "amy")
    shutil.copy(data / "obama.jpg", photos / "<img src=x onerror=alert(1)>.jpg")
    first = run("cluster", photos, "--library", library, "-q", "-j", "1", "--format", "json")
    assert first.exit_code == 0, first.stderr
    person = next(row["person"] for row in json.loads(first.stdout) if row["person"])
    assert run("cluster", "name", person, HOSTILE, "--library", library).exit_code == 0
    report, assets = tmp_path / "r" / "people.html", tmp_path / "r" / "crops"
    args = ("cluster", photos, "--library", library, "-q", "--report", report)
    result = run(*args, "--report-assets", assets)
    assert result.exit_code == 0, result.stderr
    page = report.read_text()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert html.escape(HOSTILE) in page and page.count("<script>") == 1
    assert "data:image" not in page
    crops = sorted(assets.glob("*.jpg"))
    assert len(crops) == 6 and all(f'src="crops/{c.name}"' in page for c in crops)
    # Never over a photo or the library: a usage error before any work.
    for target in (photos / "amy" / "amy1.png", library):
        refused = run("cluster", photos, "--library", library, "-q", "--report", target)
        assert refused.exit_code == EXIT_USAGE, refused.stderr
    alone = run("cluster", photos, "--library", library, "--report-assets", assets)
    assert alone.exit_code == EXIT_USAGE


def test_crops_past_the_inline_limit_go_to_files_beside_the_page(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from facematch.output import report
    from facematch.output.pictures import crop

    crops = report.Crops()
    with Image.open(data / "obama.jpg") as image:
        for box in (FaceBox(100, 300, 300, 100), FaceBox(50, 250, 250, 50)):
            crops.keep(crop(image.convert("RGB"), box, report.CROP_SIDE))
    page = tmp_path / "people.html"
    inline = crops.sources(page, None)
    assert all(s.startswith("data:image/jpeg;base64,") for s in inline)
    monkeypatch.setattr(report, "INLINE_LIMIT", sum(len(c) for c in crops.images))
    placed = crops.sources(page, None)
    assert placed == ["people_files/crop-000000.jpg", "people_files/crop-000001.jpg"]
    assert [(tmp_path / s).read_bytes() for s in placed] == crops.images
    assert "inline limit" in caplog.text
