"""Face regions in XMP (``facematch tag``), checked against ExifTool, the reference reader
and writer: what facematch writes, exiftool reads back with the same names and boxes
(within a pixel, for all eight EXIF orientations); what other tools wrote survives;
hostile or broken XMP is a row with an error, never a traceback.

The geometry is checked against Pillow's own transposes, not against facematch's
formulas: a photo is stored turned with the matching Orientation tag, and the box
expected in the stored image is found by turning a mask with Pillow.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import run
from PIL import Image

from facematch.cli import EXIT_PARTIAL, EXIT_USAGE

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed")

# Pillow's turn for each EXIF orientation (as ImageOps.exif_transpose makes it), and the
# turn that undoes it: stored = UNDO[o](upright), upright = TURN[o](stored).
T = Image.Transpose
TURN = {
    2: T.FLIP_LEFT_RIGHT,
    3: T.ROTATE_180,
    4: T.FLIP_TOP_BOTTOM,
    5: T.TRANSPOSE,
    6: T.ROTATE_270,
    7: T.TRANSVERSE,
    8: T.ROTATE_90,
}
UNDO = {**TURN, 6: T.ROTATE_90, 8: T.ROTATE_270}
ORIENTATIONS = range(1, 9)
RED = (220, 20, 30)


def stored_copy(upright: Image.Image, orientation: int) -> Image.Image:
    """The picture a camera would store to show ``upright`` under ``orientation``."""
    return upright if orientation == 1 else upright.transpose(UNDO[orientation])


def save_turned(upright: Image.Image, orientation: int, path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored_copy(upright, orientation).save(path, exif=exif, quality=95)


def stored_box(upright_size: tuple[int, int], box: Sequence[int], orientation: int) -> list[int]:
    """An upright (top, right, bottom, left) box as (left, top, right, bottom) in the stored
    image, found by turning a mask of it with Pillow."""
    top, right, bottom, left = box
    mask = np.zeros(upright_size[::-1], dtype=np.uint8)
    mask[top:bottom, left:right] = 255
    turned = np.asarray(stored_copy(Image.fromarray(mask), orientation))
    rows, cols = np.nonzero(turned)
    return [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1]


def exiftool(*args: object) -> list[dict[str, Any]]:
    assert EXIFTOOL is not None
    done = subprocess.run(
        [EXIFTOOL, "-j", "-struct", *map(str, args)], capture_output=True, text=True, check=False
    )
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else []


TAGS = (
    "-XMP:RegionInfo",
    "-XMP:RegionInfoMP",
    "-XMP:PersonInImage",
    "-XMP:Subject",
    "-XMP:TagsList",
    "-XMP:HierarchicalSubject",
)


def read_tags(*paths: Path) -> dict[str, dict[str, Any]]:
    """What exiftool reads of facematch's tags in each file, by file name."""
    return {Path(item["SourceFile"]).name: item for item in exiftool(*TAGS, *paths)}


def pixel_boxes(tags: dict[str, Any]) -> dict[str, list[float]]:
    """MWG regions by name as (left, top, right, bottom) in pixels of AppliedToDimensions."""
    info = tags["RegionInfo"]
    width, height = info["AppliedToDimensions"]["W"], info["AppliedToDimensions"]["H"]
    boxes = {}
    for region in info["RegionList"]:
        a = region["Area"]
        x, y, w, h = (float(a[k]) for k in "XYWH")
        boxes[region["Name"]] = [
            (x - w / 2) * width,
            (y - h / 2) * height,
            (x + w / 2) * width,
            (y + h / 2) * height,
        ]
    return boxes


def mp_boxes(tags: dict[str, Any], width: int, height: int) -> dict[str, list[float]]:
    """Microsoft regions by name as (left, top, right, bottom) in stored pixels."""
    boxes = {}
    for region in tags["RegionInfoMP"]["Regions"]:
        x, y, w, h = (float(v) for v in region["Rectangle"].split(","))
        boxes[region["PersonDisplayName"]] = [
            x * width,
            y * height,
            (x + w) * width,
            (y + h) * height,
        ]
    return boxes


def close(found: Sequence[float], expected: Sequence[float], within: float = 1.0) -> bool:
    return all(abs(a - b) <= within for a, b in zip(found, expected, strict=True))


def answers(*photos: tuple[Path, list[tuple[str, Sequence[int], bool]]]) -> str:
    """A ``facematch --format json`` document: per photo, (name, upright box, uncertain)."""
    return json.dumps(
        [
            {
                "path": str(path),
                "status": "ok" if faces else "no_faces",
                "error": None,
                "faces": [
                    {
                        "box": dict(zip(("top", "right", "bottom", "left"), box, strict=True)),
                        "name": name,
                        "uncertain": uncertain,
                    }
                    for name, box, uncertain in faces
                ],
            }
            for path, faces in photos
        ]
    )


def tag_json(tmp_path: Path, document: str, *options: object) -> Any:
    """``facematch tag --from-json`` of a document; returns the click result."""
    source = tmp_path / "answers.json"
    source.write_text(document, encoding="utf-8")
    return run("tag", "--from-json", source, "--format", "csv", *options)


def rows(result: Any) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(result.stdout)))


# A synthetic photo: a red block where the "face" is, in upright pixels.
UPRIGHT_SIZE = (300, 200)
FACE = (30, 100, 110, 40)  # top, right, bottom, left


def red_photo() -> Image.Image:
    picture = Image.new("RGB", UPRIGHT_SIZE, (90, 90, 90))
    top, right, bottom, left = FACE
    picture.paste(RED, (left, top, right, bottom))
    return picture


@needs_exiftool
def test_every_orientation_reads_back_in_exiftool_on_the_stored_pixels(tmp_path: Path) -> None:
    """The red block's place in the stored pixels is where exiftool puts the region, within
    a pixel, for all eight orientations, in MWG and Microsoft regions alike."""
    photos = []
    for o in ORIENTATIONS:
        path = tmp_path / f"o{o}.jpg"
        save_turned(red_photo(), o, path)
        photos.append((path, [(f"Person {o}", FACE, False)]))
    result = tag_json(tmp_path, answers(*photos))
    assert result.exit_code == 0, result.stderr
    assert [r["status"] for r in rows(result)] == ["written"] * 8
    tags = read_tags(*(tmp_path / f"o{o}.jpg.xmp" for o in ORIENTATIONS))
    for o in ORIENTATIONS:
        found = tags[f"o{o}.jpg.xmp"]
        with Image.open(tmp_path / f"o{o}.jpg") as image:
            stored = np.asarray(image.convert("RGB"), dtype=np.int16)
            width, height = image.size
        dimensions = found["RegionInfo"]["AppliedToDimensions"]
        assert dimensions == {"H": height, "Unit": "pixel", "W": width}
        red = (stored[..., 0] > 160) & (stored[..., 1] < 90) & (stored[..., 2] < 90)
        rows_, cols = np.nonzero(red)
        expected = [cols.min(), rows_.min(), cols.max() + 1, rows_.max() + 1]
        assert expected == stored_box(UPRIGHT_SIZE, FACE, o)  # the JPEG kept the block sharp
        region = pixel_boxes(found)[f"Person {o}"]
        assert close(region, expected), (o, region, expected)
        assert close(mp_boxes(found, width, height)[f"Person {o}"], expected), o
        assert found["RegionInfo"]["RegionList"][0]["Type"] == "Face"
        assert found["PersonInImage"] == [f"Person {o}"]
        assert found["TagsList"] == [f"People/Person {o}"]
        assert found["HierarchicalSubject"] == [f"People|Person {o}"]
        assert found["Subject"] == [f"Person {o}"]


@needs_exiftool
@pytest.mark.slow
def test_matched_faces_of_real_photos_in_all_orientations(tmp_path: Path, data: Path) -> None:
    """Real matching: Obama is named in each of the eight stored turns of one photo, and
    exiftool reads his region on his face in the stored pixels."""
    known = tmp_path / "known"
    known.mkdir()
    shutil.copy(data / "obama2.jpg", known / "Barack Obama.jpg")
    shutil.copy(data / "biden.jpg", known / "Joe Biden.jpg")
    photos = tmp_path / "photos"
    photos.mkdir()
    with Image.open(data / "obama.jpg") as original:
        upright = original.convert("RGB").resize((320, 400))
    for o in ORIENTATIONS:
        save_turned(upright, o, photos / f"o{o}.jpg")
    result = run("tag", known, photos, "--format", "json", "-j", "1")
    assert result.exit_code == 0, result.stderr
    written = {Path(r["path"]).name: r for r in json.loads(result.stdout)}
    tags = read_tags(*sorted(photos.glob("*.xmp")))
    for o in ORIENTATIONS:
        row = written[f"o{o}.jpg"]
        assert row["status"] == "written"
        assert [r["name"] for r in row["regions"]] == ["Barack Obama"]
        box = row["regions"][0]["box"]
        upright_box = [box[k] for k in ("top", "right", "bottom", "left")]
        expected = stored_box(upright.size, upright_box, o)
        assert close(pixel_boxes(tags[f"o{o}.jpg.xmp"])["Barack Obama"], expected), o


# --- merging with what other tools wrote --------------------------------------------------

OBAMA_BOX = (150, 620, 420, 350)  # a box on obama.jpg (910 x 1137), top right bottom left


def region_names(tags: dict[str, Any]) -> list[str]:
    return [r["Name"] for r in tags.get("RegionInfo", {}).get("RegionList", [])]


@needs_exiftool
def test_other_tools_tags_survive_and_a_rerun_replaces_only_facematchs(
    tmp_path: Path, data: Path
) -> None:
    photo = tmp_path / "obama.jpg"
    shutil.copy(data / "obama.jpg", photo)
    sidecar = tmp_path / "obama.jpg.xmp"
    # What a photo manager wrote: a region of its own, a rating, keywords (one of them
    # the name facematch will add), made with exiftool's own tags.
    exiftool(
        "-q",
        "-XMP-mwg-rs:RegionInfo={AppliedToDimensions={W=910,H=1137,Unit=pixel},"
        "RegionList=[{Area={X=0.1,Y=0.9,W=0.1,H=0.1,Unit=normalized},Name=Someone Else,"
        "Type=Face}]}",
        "-XMP-xmp:Rating=4",
        "-XMP-dc:Subject=Holiday",
        "-XMP-dc:Subject+=Barack Obama",
        "-XMP-digiKam:TagsList=Places/Oval Office",
        sidecar,
    )
    first = tag_json(tmp_path, answers((photo, [("Barack Obama", OBAMA_BOX, False)])))
    assert first.exit_code == 0, first.stderr
    row = rows(first)[0]
    assert (row["status"], row["names"], row["kept"]) == ("written", "Barack Obama", "1")
    tags = exiftool("-XMP:all", *TAGS, sidecar)[0]
    assert region_names(tags) == ["Someone Else", "Barack Obama"]
    assert tags["Rating"] == 4
    assert tags["Subject"] == ["Holiday", "Barack Obama"]
    assert tags["TagsList"] == ["Places/Oval Office", "People/Barack Obama"]
    assert tags["PersonInImage"] == ["Barack Obama"]

    # Named differently now: facematch's region and the keywords it added go; the
    # other region, the rating and the keyword that was there before facematch stay.
    second = tag_json(tmp_path, answers((photo, [("Joe Biden", OBAMA_BOX, False)])))
    row = rows(second)[0]
    assert (row["status"], row["names"], row["removed"]) == ("written", "Joe Biden", "Barack Obama")
    tags = exiftool("-XMP:all", *TAGS, sidecar)[0]
    assert region_names(tags) == ["Someone Else", "Joe Biden"]
    assert [r["PersonDisplayName"] for r in tags["RegionInfoMP"]["Regions"]] == ["Joe Biden"]
    assert tags["Rating"] == 4
    assert tags["Subject"] == ["Holiday", "Barack Obama", "Joe Biden"]
    assert tags["TagsList"] == ["Places/Oval Office", "People/Joe Biden"]
    assert tags["PersonInImage"] == ["Joe Biden"]

    before = sidecar.read_bytes()
    third = tag_json(tmp_path, answers((photo, [("Joe Biden", OBAMA_BOX, False)])))
    assert rows(third)[0]["status"] == "unchanged"
    assert sidecar.read_bytes() == before

    # A face that another tool's region covers already is left to that region.
    theirs = (1137 * 0.85, 910 * 0.15, 1137 * 0.95, 910 * 0.05)
    fourth = tag_json(
        tmp_path,
        answers(
            (photo, [("Joe Biden", OBAMA_BOX, False), ("Jill", tuple(map(round, theirs)), False)])
        ),
    )
    row = rows(fourth)[0]
    assert (row["status"], row["names"], row["covered"]) == ("unchanged", "Joe Biden", "1")

    # A camera's focus area, or a face region nobody named, keeps no face from its name.
    photo_two = tmp_path / "two.jpg"
    red_photo().save(photo_two)
    area = exiftool_region(stored_box(UPRIGHT_SIZE, FACE, 1), UPRIGHT_SIZE, "AF", "Focus")
    nameless = area.replace(",Name=AF,Type=Focus", ",Type=Face")
    exiftool("-q", region_info(UPRIGHT_SIZE, area, nameless), tmp_path / "two.jpg.xmp")
    fifth = tag_json(tmp_path, answers((photo_two, [("Ann", FACE, False)])))
    row = rows(fifth)[0]
    assert (row["status"], row["names"], row["kept"], row["covered"]) == (
        "written",
        "Ann",
        "2",
        "0",
    )


@needs_exiftool
def test_a_new_sidecar_starts_from_the_photos_own_xmp(tmp_path: Path, data: Path) -> None:
    """Tools read the sidecar instead of the photo's XMP: nothing of it may go missing."""
    photo = tmp_path / "obama.jpg"
    shutil.copy(data / "obama.jpg", photo)
    result = tag_json(tmp_path, answers((photo, [("Barack Obama", OBAMA_BOX, False)])))
    assert rows(result)[0]["status"] == "written"
    inside = exiftool("-a", "-G1", "-XMP:all", photo)[0]
    beside = exiftool("-a", "-G1", "-XMP:all", tmp_path / "obama.jpg.xmp")[0]
    del inside["SourceFile"], beside["SourceFile"]
    assert inside.items() <= beside.items()
    assert beside["XMP-dc:Creator"] == ["Pete Souza"]
    assert beside["XMP-mwg-rs:RegionInfo"]["RegionList"][0]["Name"] == "Barack Obama"


def test_dry_run_says_what_would_change_and_writes_nothing(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    red_photo().save(photo)
    lines = "\n".join(
        json.dumps(item) for item in json.loads(answers((photo, [("Ann", FACE, False)])))
    )
    result = tag_json(tmp_path, lines, "--dry-run")  # JSON lines (--format jsonl) too
    assert result.exit_code == 0, result.stderr
    assert rows(result)[0]["status"] == "would_write"
    assert rows(result)[0]["names"] == "Ann"
    assert not (tmp_path / "photo.jpg.xmp").exists()


def test_only_sure_names_are_written(tmp_path: Path) -> None:
    sure, unsure = tmp_path / "sure.jpg", tmp_path / "unsure.jpg"
    red_photo().save(sure)
    red_photo().save(unsure)
    document = json.loads(
        answers(
            (sure, [("Ann", FACE, False), ("Bob", (0, 20, 20, 0), True)]),
            (unsure, [("Cid", FACE, True)]),
        )
    )
    del document[1]["faces"][0]["uncertain"]  # not judged (an older facematch): not sure
    result = tag_json(tmp_path, json.dumps(document))
    assert result.exit_code == 0, result.stderr
    found = {Path(r["path"]).name: r for r in rows(result)}
    assert (found["sure.jpg"]["status"], found["sure.jpg"]["names"]) == ("written", "Ann")
    assert found["sure.jpg"]["uncertain"] == "1"
    assert found["unsure.jpg"]["status"] == "skipped"
    assert not (tmp_path / "unsure.jpg.xmp").exists()
    assert "2 names are uncertain" in result.stderr
    assert "(left out: only sure names are written)" in result.stderr


def test_sidecar_name_and_two_photos_sharing_one(tmp_path: Path) -> None:
    jpeg, png = tmp_path / "photo.jpg", tmp_path / "photo.png"
    red_photo().save(jpeg)
    red_photo().save(png)
    document = answers((jpeg, [("Ann", FACE, False)]), (png, [("Ann", FACE, False)]))
    result = tag_json(tmp_path, document, "--sidecar-name", "photo.xmp")
    assert result.exit_code == EXIT_PARTIAL
    first, second = rows(result)
    assert (first["status"], Path(first["target"]).name) == ("written", "photo.xmp")
    assert second["status"] == "error"
    assert "is the sidecar of" in second["error"] and "photo.jpg too" in second["error"]
    assert "facematch: error:" in result.stderr
    assert not (tmp_path / "photo.jpg.xmp").exists()


@needs_exiftool
def test_a_sidecar_named_the_other_way_is_merged_into_the_one_written(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    red_photo().save(photo)
    exiftool("-q", "-XMP-xmp:Rating=5", "-XMP-dc:Subject=Lightroom", tmp_path / "photo.xmp")
    result = tag_json(tmp_path, answers((photo, [("Ann", FACE, False)])))
    assert rows(result)[0]["status"] == "written"
    assert "1 photo had a sidecar named the other way, which was merged" in result.stderr
    tags = exiftool("-XMP:Rating", "-XMP:Subject", tmp_path / "photo.jpg.xmp")[0]
    assert (tags["Rating"], tags["Subject"]) == (5, ["Lightroom", "Ann"])


def test_from_json_refuses_what_is_not_match_output(tmp_path: Path) -> None:
    bad = tag_json(tmp_path, '{"not": "a list"}')
    assert bad.exit_code == EXIT_USAGE
    assert "is not the output of facematch --format json or jsonl" in bad.stderr
    both = run("tag", "--from-json", tmp_path / "answers.json", "known", "photos")
    assert both.exit_code == EXIT_USAGE
    assert "give no KNOWN, PATH, --known-from-xmp or --library" in both.stderr
    video = tag_json(tmp_path, json.dumps([{"path": "v.mp4", "kind": "video", "status": "ok"}]))
    assert video.exit_code == EXIT_PARTIAL
    assert "a video" in rows(video)[0]["error"]


# --- inside the photo -------------------------------------------------------------------------


def after_header(data: bytes) -> bytes:
    """A JPEG's bytes from its first scan on: the compressed pixels (segments skipped by
    their lengths, since a thumbnail inside Exif has scans of its own)."""
    at = 2
    while data[at + 1] != 0xDA:
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return data[at:]


@needs_exiftool
def test_in_file_writes_jpeg_and_png_without_touching_the_pixels(
    tmp_path: Path, data: Path
) -> None:
    jpeg, png, bmp = tmp_path / "obama.jpg", tmp_path / "red.png", tmp_path / "red.bmp"
    shutil.copy(data / "obama.jpg", jpeg)
    red_photo().save(png)
    red_photo().save(bmp)
    jpeg_before, png_pixels = jpeg.read_bytes(), np.asarray(Image.open(png))
    exiftool("-q", "-XMP-xmp:Rating=2", tmp_path / "red.png.xmp")  # another tool's sidecar
    document = answers(
        (jpeg, [("Barack Obama", OBAMA_BOX, False)]),
        (png, [("Ann", FACE, False)]),
        (bmp, [("Ann", FACE, False)]),
    )
    result = tag_json(tmp_path, document, "--in-file")
    assert result.exit_code == EXIT_PARTIAL
    found = {Path(r["path"]).name: r for r in rows(result)}
    assert found["obama.jpg"]["status"] == found["red.png"]["status"] == "written"
    assert "inside JPEG and PNG files only" in found["red.bmp"]["error"]
    assert [p.name for p in tmp_path.glob("*.xmp")] == ["red.png.xmp"]
    assert "1 photo written inside also had a sidecar, left as it was" in result.stderr
    assert after_header(jpeg.read_bytes()) == after_header(jpeg_before)
    assert np.array_equal(np.asarray(Image.open(png)), png_pixels)
    tags = {Path(t["SourceFile"]).name: t for t in exiftool("-XMP:Creator", *TAGS, jpeg, png)}
    assert region_names(tags["obama.jpg"]) == ["Barack Obama"]
    assert tags["obama.jpg"]["Creator"] == ["Pete Souza"]
    assert region_names(tags["red.png"]) == ["Ann"]
    assert close(pixel_boxes(tags["red.png"])["Ann"], stored_box(UPRIGHT_SIZE, FACE, 1))
    again = tag_json(tmp_path, document, "--in-file")
    assert [r["status"] for r in rows(again)][:2] == ["unchanged", "unchanged"]
    mixed = run(
        "tag", "--from-json", tmp_path / "answers.json", "--in-file", "--sidecar-name", "photo.xmp"
    )
    assert mixed.exit_code == EXIT_USAGE
    assert "--in-file writes inside the photo" in mixed.stderr


# --- hostile and broken XMP ---------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF
 xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description
 xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="&lol3;"/></rdf:RDF></x:xmpmeta>"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF
 xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description
 xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="&secret;"/></rdf:RDF></x:xmpmeta>"""


def test_hostile_and_malformed_xmp_are_rows_with_an_error(tmp_path: Path) -> None:
    sidecars = {
        "laughs": BILLION_LAUGHS,
        "external": EXTERNAL_ENTITY,
        "broken": '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF',
        "foreign": "<html><body>not XMP</body></html>",
    }
    photos = []
    for name, content in sidecars.items():
        red_photo().save(tmp_path / f"{name}.jpg")
        (tmp_path / f"{name}.jpg.xmp").write_text(content, encoding="utf-8")
        photos.append((tmp_path / f"{name}.jpg", [("Ann", FACE, False)]))
    red_photo().save(tmp_path / "inside.jpg", xmp=b"<x:xmpmeta><broken")
    photos.append((tmp_path / "inside.jpg", [("Ann", FACE, False)]))
    result = tag_json(tmp_path, answers(*photos))
    assert result.exit_code == EXIT_PARTIAL
    assert "Traceback" not in result.stderr
    errors = {Path(r["path"]).stem: r["error"] for r in rows(result)}
    assert all(r["status"] == "error" for r in rows(result))
    assert "XML with a DTD (refused" in errors["laughs"]
    assert "XML with a DTD (refused" in errors["external"]
    assert "not well-formed XML" in errors["broken"]
    assert "not XMP: no rdf:RDF element" in errors["foreign"]
    assert errors["inside"].startswith("the XMP inside the photo: not well-formed XML")
    for name, content in sidecars.items():  # left as they were
        assert (tmp_path / f"{name}.jpg.xmp").read_text(encoding="utf-8") == content
    assert len([line for line in result.stderr.splitlines() if "facematch: error:" in line]) == 5


# --- reading: other tools' regions as known people ---------------------------------------------


def exiftool_region(
    stored: Sequence[float], size: tuple[int, int], name: str, kind: str = "Face"
) -> str:
    """An MWG RegionInfo value in exiftool's structure syntax: one region on a stored
    (left, top, right, bottom) box of an image of ``size`` (width, height)."""
    left, top, right, bottom = stored
    width, height = size
    x, y = (left + right) / 2 / width, (top + bottom) / 2 / height
    w, h = (right - left) / width, (bottom - top) / height
    return (
        f"{{Area={{X={x:.6f},Y={y:.6f},W={w:.6f},H={h:.6f},Unit=normalized}},"
        f"Name={name},Type={kind}}}"
    )


def region_info(size: tuple[int, int], *regions: str, dimensions: bool = True) -> str:
    applied = f"AppliedToDimensions={{W={size[0]},H={size[1]},Unit=pixel}}," if dimensions else ""
    return f"-XMP-mwg-rs:RegionInfo={{{applied}RegionList=[{','.join(regions)}]}}"


@needs_exiftool
def test_regions_exiftool_writes_are_read_upright_in_every_orientation(tmp_path: Path) -> None:
    from facematch.sources.xmp import photo_regions

    for o in ORIENTATIONS:
        save_turned(red_photo(), o, tmp_path / f"o{o}.jpg")
    for o in ORIENTATIONS:  # half in sidecars, half inside the photos
        stored = stored_box(UPRIGHT_SIZE, FACE, o)
        with Image.open(tmp_path / f"o{o}.jpg") as image:
            size = image.size
        region = exiftool_region(stored, size, f"Person {o}")
        target = tmp_path / (f"o{o}.jpg.xmp" if o % 2 else f"o{o}.jpg")
        exiftool("-q", "-overwrite_original", region_info(size, region), target)
    for o in ORIENTATIONS:
        found = photo_regions(str(tmp_path / f"o{o}.jpg"))
        assert found.error is None and found.skipped == ()
        assert found.xmp == (str(tmp_path / f"o{o}.jpg.xmp") if o % 2 else "embedded")
        [region] = found.regions
        assert region.name == f"Person {o}" and region.source == "mwg"
        assert close(region.box.css(), FACE), (o, region.box)


@needs_exiftool
def test_microsoft_regions_and_what_is_not_a_person(tmp_path: Path) -> None:
    from facematch.sources.xmp import photo_regions

    photo = tmp_path / "photo.jpg"
    save_turned(red_photo(), 6, photo)
    with Image.open(photo) as image:
        size = image.size
    left, top, right, bottom = stored_box(UPRIGHT_SIZE, FACE, 6)
    rectangle = f"{left / size[0]:.6f}|, {top / size[1]:.6f}|, "
    rectangle += f"{(right - left) / size[0]:.6f}|, {(bottom - top) / size[1]:.6f}"
    exiftool(
        "-q",
        "-overwrite_original",
        f"-XMP-MP:RegionInfoMP={{Regions=[{{Rectangle={rectangle},PersonDisplayName=Ann}}]}}",
        photo,
    )
    found = photo_regions(str(photo))
    assert [(r.name, r.source) for r in found.regions] == [("Ann", "mp")]
    assert close(found.regions[0].box.css(), FACE)

    # A pet, a focus point and a nameless face are not people; regions without
    # AppliedToDimensions are reported and left out, as Immich leaves them out.
    everything = region_info(
        size,
        exiftool_region((0, 0, 10, 10), size, "Rex", "Pet"),
        exiftool_region((0, 0, 10, 10), size, "Focus", "Focus"),
        "{Area={X=0.5,Y=0.5,W=0.1,H=0.1,Unit=normalized},Type=Face}",
        exiftool_region((left, top, right, bottom), size, "Bob"),
    )
    sidecar = tmp_path / "photo.jpg.xmp"
    exiftool("-q", everything, sidecar)
    found = photo_regions(str(photo))
    assert found.xmp == str(sidecar)
    assert [r.name for r in found.regions] == ["Bob"]
    sidecar.unlink()
    exiftool(
        "-q",
        region_info(size, exiftool_region((0, 0, 9, 9), size, "Bob"), dimensions=False),
        sidecar,
    )
    found = photo_regions(str(photo))
    assert found.regions == ()
    assert found.skipped == (
        "1 MWG region(s) without AppliedToDimensions (not used, as Immich does)",
    )
    sidecar.write_text(BILLION_LAUGHS, encoding="utf-8")
    broken = photo_regions(str(photo))
    assert broken.error is not None and "XML with a DTD (refused" in broken.error


# ExifTool 12.57 does not know ACDSee's region namespace by itself; the config it ships
# for it (by its maintainers) defines the tags, and so what ACDSee's regions look like.
ACDSEE_CONFIG = Path("/usr/share/doc/libimage-exiftool-perl/config_files/acdsee.config.gz")


def acdsee_region(stored: Sequence[float], size: tuple[int, int], name: str, **fields: str) -> str:
    """One ACDSee region in exiftool's structure syntax, its area in ``DLYArea`` unless
    ``fields`` says ``area="ALGArea"``."""
    left, top, right, bottom = stored
    x, y = (left + right) / 2 / size[0], (top + bottom) / 2 / size[1]
    w, h = (right - left) / size[0], (bottom - top) / size[1]
    area = fields.get("area", "DLYArea")
    kind = fields.get("kind", "Face")
    return f"{{{area}={{X={x:.6f},Y={y:.6f},W={w:.6f},H={h:.6f}}},Name={name},Type={kind}}}"


@needs_exiftool
@pytest.mark.skipif(not ACDSEE_CONFIG.is_file(), reason="ExifTool's acdsee.config is missing")
def test_acdsee_regions_exiftool_writes_are_read_upright(tmp_path: Path) -> None:
    from facematch.sources.xmp import photo_regions

    config = tmp_path / "acdsee.config"
    config.write_bytes(gzip.decompress(ACDSEE_CONFIG.read_bytes()))
    photo, sidecar = tmp_path / "photo.jpg", tmp_path / "photo.jpg.xmp"
    save_turned(red_photo(), 6, photo)
    with Image.open(photo) as image:
        size = image.size
    ann = stored_box(UPRIGHT_SIZE, FACE, 6)
    bob_upright = (120, 260, 180, 200)
    bob = stored_box(UPRIGHT_SIZE, bob_upright, 6)
    regions = ",".join(
        [
            acdsee_region(ann, size, "Ann"),
            acdsee_region(bob, size, "Bob", area="ALGArea"),  # ACDSee's detector's area only
            acdsee_region(bob, size, "Rex", kind="Pet"),
        ]
    )
    dimensions = f"AppliedToDimensions={{W={size[0]},H={size[1]},Unit=pixel}}"
    value = f"-XMP-acdsee-rs:RegionInfoACDSee={{{dimensions},RegionList=[{regions}]}}"
    written = subprocess.run(
        [EXIFTOOL or "exiftool", "-config", config, "-q", value, sidecar],
        capture_output=True,
        text=True,
        check=False,
    )
    assert written.returncode == 0, written.stderr
    assert "acdsee-rs:DLYArea" in sidecar.read_text(encoding="utf-8")
    found = photo_regions(str(photo))
    assert found.error is None and found.skipped == ()
    assert [(r.name, r.source) for r in found.regions] == [("Ann", "acdsee"), ("Bob", "acdsee")]
    assert close(found.regions[0].box.css(), FACE)
    assert close(found.regions[1].box.css(), bob_upright)
    # The same face in MWG too (as a tool writing both would): it counts once, as MWG's.
    exiftool(
        "-q", "-overwrite_original", region_info(size, exiftool_region(ann, size, "Ann")), sidecar
    )
    found = photo_regions(str(photo))
    assert [(r.name, r.source) for r in found.regions] == [("Ann", "mwg"), ("Bob", "acdsee")]


def loose(box: dict[str, int], share: float = 0.2) -> list[float]:
    """A box of detect's JSON drawn loosely by hand: ``share`` larger on every side, as
    (left, top, right, bottom)."""
    grow_x = (box["right"] - box["left"]) * share
    grow_y = (box["bottom"] - box["top"]) * share
    return [
        box["left"] - grow_x,
        box["top"] - grow_y,
        box["right"] + grow_x,
        box["bottom"] + grow_y,
    ]


@needs_exiftool
def test_exiftool_made_regions_become_known_people(tmp_path: Path, data: Path) -> None:
    """Regions drawn loosely around faces by another tool name those faces; a region with
    no face in it is reported and not used."""
    tagged = tmp_path / "tagged"
    tagged.mkdir()
    shutil.copy(data / "obama2.jpg", tagged / "a.jpg")
    shutil.copy(data / "biden.jpg", tagged / "b.jpg")
    detected = run("detect", tagged, "--format", "json", "-j", "1")
    boxes = {Path(r["path"]).name: r["faces"][0]["box"] for r in json.loads(detected.stdout)}
    sizes = {}
    for name in ("a.jpg", "b.jpg"):
        with Image.open(tagged / name) as image:
            sizes[name] = image.size
    obama = exiftool_region(loose(boxes["a.jpg"]), sizes["a.jpg"], "Barack Obama")
    nobody = exiftool_region((0, 0, 40, 40), sizes["a.jpg"], "Back Of A Head")
    exiftool("-q", region_info(sizes["a.jpg"], obama, nobody), tagged / "a.jpg.xmp")
    biden = exiftool_region(loose(boxes["b.jpg"]), sizes["b.jpg"], "Joe Biden")
    exiftool("-q", "-overwrite_original", region_info(sizes["b.jpg"], biden), tagged / "b.jpg")

    result = run("--known-from-xmp", tagged, data / "two_people.jpg", "-j", "1", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    assert sorted(r["name"] for r in rows(result)) == ["Barack Obama", "Joe Biden"]
    assert "the region of Back Of A Head has no face facematch finds inside" in result.stderr
    assert "1 of 3 named regions have no face facematch finds inside" in result.stderr

    missing = run("--known-from-xmp", tmp_path / "nowhere", data / "two_people.jpg")
    assert missing.exit_code == EXIT_USAGE
    assert "--known-from-xmp: no such file or directory" in missing.stderr


@needs_exiftool
def test_index_takes_the_names_in_xmp_and_search_and_cluster_start_from_them(
    tmp_path: Path, data: Path
) -> None:
    """Names a photo manager gave, read by index: the face inside each named region goes
    to the person of that name (a region with no face is reported), search shows the
    name, cluster keeps the named faces together and gathers the others around them.
    Only a changed photo or sidecar is read again."""
    from facematch.store.library import Library

    photos = tmp_path / "photos"
    photos.mkdir()
    for name, source in {"both.jpg": "two_people.jpg", "obama.jpg": "obama2.jpg"}.items():
        shutil.copy(data / source, photos / name)
    shutil.copy(data / "biden.jpg", photos / "biden.jpg")
    library = tmp_path / "photos.sqlite3"
    plain = run("index", photos, "--library", library, "--no-xmp-names", "-j", "1")
    assert plain.exit_code == 0, plain.stderr
    with Library.open(library, read_only=True) as opened:
        faces = opened.faces()
    boxes: dict[str, list[dict[str, int]]] = {}
    for path, box in zip(faces.paths, faces.boxes, strict=True):
        named_box = dict(zip(("top", "right", "bottom", "left"), map(int, box), strict=True))
        boxes.setdefault(Path(path).name, []).append(named_box)
    obama_box, biden_box = sorted(boxes["both.jpg"], key=lambda b: b["left"])  # left, right
    with Image.open(photos / "both.jpg") as image:
        size = image.size
    sidecar = photos / "both.jpg.xmp"

    def tag(biden: str) -> None:
        sidecar.unlink(missing_ok=True)
        regions = [
            exiftool_region(loose(biden_box), size, biden),
            exiftool_region(loose(obama_box), size, "Barack Obama"),
            exiftool_region((0, 600, 40, 640), size, "Back Of A Head"),
        ]
        exiftool("-q", region_info(size, *regions), sidecar)

    tag("Joe Biden")
    indexed = run("index", photos, "--library", library, "-j", "1")
    assert indexed.exit_code == 0, indexed.stderr
    assert "both.jpg: the region of Back Of A Head has no face facematch finds inside" in (
        indexed.stderr
    )
    summary = (
        "facematch: 2 faces named after the 3 named face regions in the XMP of 1 photos; "
        "1 regions with no face inside (not used)"
    )
    assert summary in indexed.stderr
    again = run("index", photos, "--library", library, "-j", "1")
    assert again.exit_code == 0 and "named face regions" not in again.stderr  # not read again

    found = run("search", data / "obama.jpg", "--library", library, "--format", "csv", "-j", "1")
    assert found.exit_code == 0, found.stderr
    assert {Path(r["path"]).name: r["name"] for r in rows(found)} == {
        "both.jpg": "Barack Obama",
        "obama.jpg": "",  # not tagged, and not clustered yet: in no person
    }

    def people() -> dict[tuple[str, int], tuple[str, str]]:
        clustered = run("cluster", photos, "--library", library, "--format", "csv")
        assert clustered.exit_code == 0, clustered.stderr
        return {
            (Path(r["path"]).name, int(r["left"])): (r["name"], r["named_by"])
            for r in rows(clustered)
        }

    obama, biden = ("Barack Obama", "xmp"), ("Joe Biden", "xmp")
    before = people()
    assert before == {
        ("both.jpg", obama_box["left"]): obama,
        ("both.jpg", biden_box["left"]): biden,
        ("obama.jpg", boxes["obama.jpg"][0]["left"]): obama,
        ("biden.jpg", boxes["biden.jpg"][0]["left"]): biden,
    }
    # Retagged in the photo manager: read again, the face goes to the new name.
    tag("Joseph Biden")
    retagged = run("index", photos, "--library", library, "-j", "1")
    assert summary in retagged.stderr
    assert people()[("both.jpg", biden_box["left"])] == ("Joseph Biden", "xmp")
    # facematch's own regions count as any other tool's: written back, then read.
    written = run("tag", "--library", library, "--format", "csv")
    assert {r["path"]: r["status"] for r in rows(written)} == {
        str(photos / "biden.jpg"): "written",
        str(photos / "both.jpg"): "unchanged",  # its faces are named by the other tool
        str(photos / "obama.jpg"): "written",
    }
    looped = run("index", photos, "--library", library, "-j", "1")
    assert "2 faces named after the 2 named face regions in the XMP of 2 photos" in looped.stderr
    assert people() == {**before, ("both.jpg", biden_box["left"]): ("Joseph Biden", "xmp")}


def tbbt(tmp_path: Path, data: Path) -> tuple[Path, Path]:
    """A known folder of eight people, one photo each, and a copy of three scenes of them."""
    known = tmp_path / "known"
    for person in sorted((data / "people" / "tbbt").iterdir()):
        (known / person.name).mkdir(parents=True)
        shutil.copy(person / f"{person.name}1.png", known / person.name)
    scenes = tmp_path / "scenes"
    shutil.copytree(data / "scenes", scenes)
    return known, scenes


@pytest.mark.slow
def test_match_tag_read_back_match_again_gives_the_same_names(tmp_path: Path, data: Path) -> None:
    """The round trip on real photos: the names matching gives, written as regions and
    read back as the known people, name the same faces the same way."""
    known, scenes = tbbt(tmp_path, data)

    def names(result: Any) -> dict[tuple[str, str], str]:
        assert result.exit_code in (0, EXIT_PARTIAL), result.stderr
        return {
            (Path(r["path"]).name, ",".join(r[k] for k in ("top", "right", "bottom", "left"))): r[
                "name"
            ]
            for r in rows(result)
            if r["name"] and r["uncertain"] == "no"
        }

    first = names(run(known, scenes, "--format", "csv", "-j", "2"))
    assert len(first) >= 8
    tagged = run("tag", known, scenes, "--format", "csv", "-j", "2")
    assert tagged.exit_code == 0, tagged.stderr
    assert sum(int(r["regions"]) for r in rows(tagged)) == len(first)
    again = names(run("--known-from-xmp", scenes, scenes, "--format", "csv", "-j", "2"))
    assert {face: again.get(face) for face in first} == first

    # cluster starts from the same names: its groups are named after the regions (the
    # tagged faces by their own regions, "xmp"; the rest by the known people, "known").
    library = tmp_path / "photos.sqlite3"
    clustered = run(
        "cluster", scenes, "--known-from-xmp", scenes, "--library", library, "--format", "csv"
    )
    assert clustered.exit_code == 0, clustered.stderr
    grouped = {
        (Path(r["path"]).name, ",".join(r[k] for k in ("top", "right", "bottom", "left"))): r[
            "name"
        ]
        for r in rows(clustered)
        if r["named_by"] in ("known", "xmp")
    }
    assert grouped and all(first.get(face, name) == name for face, name in grouped.items())


def test_tag_library_writes_the_names_of_a_clustered_library(tmp_path: Path, data: Path) -> None:
    """``tag --library``: the names cluster gave (by a known person, or by the user) are
    written from the stored faces, nothing encoded again; PATH limits the photos."""
    known, scenes = tbbt(tmp_path, data)
    library = tmp_path / "photos.sqlite3"
    clustered = run("cluster", scenes, "--library", library, "--known", known, "--format", "csv")
    assert clustered.exit_code == 0, clustered.stderr
    named = [r for r in rows(clustered) if r["named_by"] == "known"]
    assert named
    person = named[0]["person"]
    assert run("cluster", "name", person, "Somebody Else", "--library", library).exit_code == 0
    expected = {
        (Path(r["path"]).name, "Somebody Else" if r["person"] == person else r["name"])
        for r in rows(clustered)
        if r["named_by"] == "known"
    }
    result = run("tag", "--library", library, "--format", "csv")
    assert result.exit_code == 0, result.stderr
    written = {
        (Path(r["path"]).name, name) for r in rows(result) for name in r["names"].split(";") if name
    }
    assert written == expected
    assert {r["status"] for r in rows(result)} == {"written"}
    only = run("tag", "--library", library, scenes / "bbt3.jpg", "--format", "csv", "--dry-run")
    assert [(Path(r["path"]).name, r["status"]) for r in rows(only)] == [("bbt3.jpg", "unchanged")]
    nowhere = run("tag", "--library", tmp_path / "none.sqlite3")
    assert nowhere.exit_code == EXIT_USAGE
    assert "no library at" in nowhere.stderr


# RDF's other forms of the same regions, as Exiv2-based tools (digiKam) write them: fields
# as attributes, structs as nested rdf:Description, a Microsoft twin of the MWG region.
ATTRIBUTE_FORM = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
    xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#"
    xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#"
    xmlns:MP="http://ns.microsoft.com/photo/1.2/"
    xmlns:MPRI="http://ns.microsoft.com/photo/1.2/t/RegionInfo#"
    xmlns:MPReg="http://ns.microsoft.com/photo/1.2/t/Region#"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="3">
   <mwg-rs:Regions rdf:parseType="Resource">
    <mwg-rs:AppliedToDimensions stDim:w="300" stDim:h="200" stDim:unit="pixel"/>
    <mwg-rs:RegionList>
     <rdf:Bag>
      <rdf:li>
       <rdf:Description mwg-rs:Name="Ann" mwg-rs:Type="Face">
        <mwg-rs:Area stArea:x="0.233333" stArea:y="0.35" stArea:w="0.2" stArea:h="0.4"
          stArea:unit="normalized"/>
       </rdf:Description>
      </rdf:li>
     </rdf:Bag>
    </mwg-rs:RegionList>
   </mwg-rs:Regions>
   <MP:RegionInfo rdf:parseType="Resource">
    <MPRI:Regions>
     <rdf:Bag>
      <rdf:li MPReg:Rectangle="0.133333, 0.15, 0.2, 0.4" MPReg:PersonDisplayName="Ann"/>
     </rdf:Bag>
    </MPRI:Regions>
   </MP:RegionInfo>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


def test_regions_in_rdfs_other_forms_are_read_and_kept(tmp_path: Path) -> None:
    from facematch.sources.xmp import photo_regions

    photo = tmp_path / "photo.jpg"
    red_photo().save(photo)
    sidecar = tmp_path / "photo.jpg.xmp"
    sidecar.write_text(ATTRIBUTE_FORM, encoding="utf-8")
    found = photo_regions(str(photo))
    assert [(r.name, r.source) for r in found.regions] == [("Ann", "mwg")]  # the twin once
    assert close(found.regions[0].box.css(), FACE)
    # Tagging Bob elsewhere keeps Ann's regions and the rating, in whatever form they were.
    result = tag_json(tmp_path, answers((photo, [("Bob", (150, 250, 190, 200), False)])))
    assert rows(result)[0]["kept"] == "2"
    names = [r.name for r in photo_regions(str(photo)).regions]
    assert names == ["Ann", "Bob"]
    assert 'xmp:Rating="3"' in sidecar.read_text(encoding="utf-8")
