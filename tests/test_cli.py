"""The facematch command end to end on real photos, through click's CliRunner."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from helpers import lines, run

from facematch.cli import EXIT_FATAL, EXIT_PARTIAL, EXIT_USAGE

REPO = Path(__file__).parent.parent


def test_examples_name_everyone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = run("examples/known", "examples/unknown", "--jobs", "1")
    assert result.exit_code == 0, result.stderr
    assert lines(result) == [
        "examples/unknown/obama.jpg,Barack Obama",
        "examples/unknown/stranger.png,unknown_person",
        "examples/unknown/two_people.jpg,Joe Biden",
        "examples/unknown/two_people.jpg,Barack Obama",
    ]


@pytest.mark.parametrize("layout", ["known_files", "known_folders"])
def test_both_known_layouts(request: pytest.FixtureRequest, unknown: Path, layout: str) -> None:
    known: Path = request.getfixturevalue(layout)
    result = run(known, unknown, "--jobs", "1", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    names = [(Path(r["path"]).name, r["name"]) for r in csv.DictReader(io.StringIO(result.stdout))]
    assert sorted(names) == [
        ("1-obama.jpg", "Barack Obama"),
        ("2-both.jpg", "Barack Obama"),
        ("2-both.jpg", "Joe Biden"),
        ("3-stranger.png", ""),
    ]


def test_mixed_layout_merges_a_file_and_a_folder_of_one_person(
    tmp_path: Path, data: Path, unknown: Path
) -> None:
    known = tmp_path / "mixed"
    (known / "Barack Obama").mkdir(parents=True)
    shutil.copy(data / "obama3.jpg", known / "Barack Obama" / "x.jpg")
    shutil.copy(data / "obama.jpg", known / "Barack Obama.jpg")
    shutil.copy(data / "biden.jpg", known / "Joe Biden.png")
    result = run(
        known,
        unknown / "1-obama.jpg",
        "-j",
        "1",
        "--format",
        "json",
        "--all-matches",
        "--landmarks",
        "5",
        "--no-mirror",
    )
    face = json.loads(result.stdout)[0]["faces"][0]
    assert [m["name"] for m in face["matches"]] == ["Barack Obama"]
    assert face["runner_up"]["name"] == "Joe Biden"
    # The person's distance is the nearest of their photos (obama.jpg, 0.3457 here).
    assert face["distance"] == pytest.approx(0.3457, abs=0.01)


def test_show_distance_and_face_recognition_value_syntax(known_files: Path, unknown: Path) -> None:
    # face_recognition's own settings give its distance (0.3457 in its reference figures).
    compat = ("--landmarks", "5", "--no-mirror")
    flag = run(known_files, unknown / "1-obama.jpg", "--show-distance", "--jobs", "1", *compat)
    old = run(
        "--show-distance", "true", known_files, unknown / "1-obama.jpg", "--cpus", "1", *compat
    )
    off = run("--show-distance", "false", known_files, unknown / "1-obama.jpg", "--cpus", "1")
    path, name, distance = lines(flag)[0].split(",")
    assert name == "Barack Obama" and float(distance) == pytest.approx(0.3457, abs=0.01)
    assert lines(old) == lines(flag)
    assert lines(off) == [f"{path},Barack Obama"]
    stranger = run(known_files, unknown / "3-stranger.png", "--show-distance", "-j", "1")
    assert lines(stranger) == [f"{unknown / '3-stranger.png'},unknown_person,None"]


def test_tolerance_and_all_matches(known_files: Path, unknown: Path) -> None:
    strict = run(known_files, unknown / "1-obama.jpg", "--tolerance", "0.3", "-j", "1")
    assert lines(strict) == [f"{unknown / '1-obama.jpg'},unknown_person"]
    loose = run(known_files, unknown / "1-obama.jpg", "-t", "0.9", "--all-matches", "-j", "1")
    assert [line.split(",")[1] for line in lines(loose)] == ["Barack Obama", "Joe Biden"]
    best = run(known_files, unknown / "1-obama.jpg", "-t", "0.9", "-j", "1")
    assert [line.split(",")[1] for line in lines(best)] == ["Barack Obama"]


def test_no_face_in_unknown(known_files: Path, tmp_path: Path) -> None:
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), "gray").save(blank)
    result = run(known_files, blank, "-j", "1")
    assert result.exit_code == 0
    assert lines(result) == [f"{blank},no_persons_found"]


def test_csv_quotes_a_comma_in_a_name(tmp_path: Path, data: Path) -> None:
    known = tmp_path / "known"
    known.mkdir()
    shutil.copy(data / "obama.jpg", known / "Obama, Barack.jpg")
    result = run(known, data / "obama2.jpg", "--format", "csv", "-j", "1")
    assert '"Obama, Barack"' in result.stdout
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["name"] == "Obama, Barack" and rows[0]["status"] == "ok"
    header = "path face top right bottom left name distance status error"
    header += " matches runner_up runner_up_distance"
    header += " nearest nearest_distance tolerance stranger_chance uncertain"
    assert list(rows[0]) == header.split()


def test_json_schema(known_files: Path, unknown: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    result = run(known_files, unknown, bad, "--format", "json", "-j", "1")
    assert result.exit_code == EXIT_PARTIAL
    images = json.loads(result.stdout)
    assert [Path(i["path"]).name for i in images] == sorted(
        ["1-obama.jpg", "2-both.jpg", "3-stranger.png", "bad.jpg"],
        key=lambda n: str(unknown / n) if n != "bad.jpg" else str(bad),
    )
    for image in images:
        assert set(image) >= {"path", "status", "error", "faces"}
        assert image["status"] in ("ok", "no_faces", "error")
        for face in image["faces"]:
            assert set(face["box"]) == {"top", "right", "bottom", "left"}
            assert isinstance(face["distance"], float)
            assert face["name"] is None or face["name"] == face["matches"][0]["name"]
    by_name = {Path(i["path"]).name: i for i in images}
    assert by_name["bad.jpg"]["status"] == "error" and by_name["bad.jpg"]["error"]
    stranger = by_name["3-stranger.png"]["faces"][0]
    assert stranger["name"] is None and stranger["matches"] == []
    assert stranger["distance"] > 0.6  # always the nearest person's distance


def test_jsonl_streams_one_object_per_line(known_files: Path, unknown: Path) -> None:
    result = run(known_files, unknown, "--format", "jsonl", "-j", "1")
    objects = [json.loads(line) for line in lines(result)]
    assert len(objects) == 3 and all(o["status"] == "ok" for o in objects)


@pytest.mark.slow
def test_output_is_identical_for_one_and_two_jobs(known_folders: Path, unknown: Path) -> None:
    one = run(known_folders, unknown, "--format", "json", "--jobs", "1", "--no-cache")
    two = run(known_folders, unknown, "--format", "json", "--jobs", "2", "--no-cache")
    assert one.exit_code == two.exit_code == 0
    assert one.stdout == two.stdout


def test_bad_inputs_are_rows_not_crashes(known_files: Path, tmp_path: Path, data: Path) -> None:
    folder = tmp_path / "mess"
    folder.mkdir()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "cut.jpg").write_bytes((data / "obama.jpg").read_bytes()[:30000])
    (folder / "text.png").write_text("hello")
    (folder / "dir.jpg").mkdir()
    shutil.copy(data / "obama2.jpg", folder / "good.jpg")
    os.symlink(folder / "missing.jpg", folder / "link.jpg")
    result = run(known_files, folder, "--format", "csv", "-j", "2")
    assert result.exit_code == EXIT_PARTIAL
    rows = {Path(r["path"]).name: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert rows["good.jpg"]["name"] == "Barack Obama"
    for name in ["empty.jpg", "cut.jpg", "text.png", "dir.jpg", "link.jpg"]:
        assert rows[name]["status"] == "error" and rows[name]["error"], name
        assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_are_one_line(tmp_path: Path, known_files: Path, data: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (tmp_path / "missing", data / "obama2.jpg", f"known folder not found: {tmp_path}/missing"),
        (
            data / "obama.jpg",
            data / "obama2.jpg",
            f"KNOWN must be a folder of photos, not a file: {data}/obama.jpg",
        ),
        (empty, data / "obama2.jpg", f"no images in the known folder: {empty}"),
        (known_files, empty, f"no images found in {empty}"),
    ]
    for known, unknown, message in cases:
        result = run(known, unknown)
        assert result.exit_code == EXIT_USAGE, (known, unknown, result.stderr)
        assert result.stderr == f"facematch: error: {message}\n"


def test_no_images_found_says_what_the_folder_holds_instead(
    tmp_path: Path, known_files: Path, data: Path
) -> None:
    nested = tmp_path / "nested"
    (nested / "2024").mkdir(parents=True)
    shutil.copy(data / "obama2.jpg", nested / "2024" / "obama.jpg")
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(data / "hamilton-4s.mp4", clips / "hamilton.mp4")
    cases = [
        (
            [known_files, nested],
            f"no images found in {nested} (it has subfolders: use -r/--recursive)",
        ),
        (
            ["detect", nested, clips],
            f"no images found in {nested}, {clips} ({nested} has subfolders: use "
            f"-r/--recursive; {clips} has videos, which only matching reads)",
        ),
        (
            ["search", nested, "--library", tmp_path / "none.db"],
            f"no images found in {nested} (it has subfolders: they are not searched)",
        ),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == EXIT_USAGE, args
        assert result.stderr == f"facematch: error: {message}\n"
    # With -r the photo in the subfolder is read.
    result = run(known_files, nested, "-r", "-j", "1")
    assert result.exit_code == 0, result.stderr
    assert lines(result) == [f"{nested}/2024/obama.jpg,Barack Obama"]


def test_known_folder_without_faces_is_fatal(tmp_path: Path, data: Path) -> None:
    from PIL import Image

    known = tmp_path / "known"
    known.mkdir()
    Image.new("RGB", (100, 100)).save(known / "Nobody.png")
    result = run(known, data / "obama2.jpg", "-j", "1")
    assert result.exit_code == EXIT_FATAL
    assert "no face found in any photo" in result.stderr
    assert "no face found in known photo" in result.stderr


def test_known_photo_with_two_faces_uses_the_largest(tmp_path: Path, data: Path) -> None:
    known = tmp_path / "known"
    known.mkdir()
    shutil.copy(data / "two_people.jpg", known / "Joe Biden.jpg")
    result = run(known, data / "biden.jpg", "-j", "1")
    assert "2 faces in known photo" in result.stderr
    assert lines(result) == [f"{data / 'biden.jpg'},Joe Biden"]


def test_quiet_hides_warnings(tmp_path: Path, data: Path) -> None:
    known = tmp_path / "known"
    known.mkdir()
    shutil.copy(data / "two_people.jpg", known / "Joe Biden.jpg")
    result = run(known, data / "biden.jpg", "-j", "1", "--quiet")
    assert result.stderr == ""


def test_detect_prints_face_detection_lines(data: Path) -> None:
    result = run("detect", data / "two_people.jpg", "-j", "1")
    assert result.exit_code == 0
    boxes = sorted(tuple(int(v) for v in line.split(",")[1:]) for line in lines(result))
    assert boxes == [(47, 390, 202, 236), (57, 964, 242, 778)]
    as_json = json.loads(
        run("detect", data / "obama.jpg", "--upsample", "1", "--format", "json").stdout
    )
    assert as_json[0]["faces"][0]["box"] == {"top": 142, "right": 617, "bottom": 409, "left": 349}


def test_detect_finds_the_faces_matching_finds(known_files: Path, data: Path) -> None:
    """detect shows what matching sees: the same detector settings, smallest face and
    fallback (upsample 0 on the whole image found 4 of bbt3's 5 faces; matching 5)."""
    photos = [
        data / "scenes" / "bbt3.jpg",
        data / "bbt2.jpg",
        data / "two_people.jpg",
        data / "selfie-many-people.jpg",
    ]

    def boxes(result: Result) -> dict[str, list[dict[str, int]]]:
        assert result.exit_code == 0, result.stderr
        rows = json.loads(result.stdout)
        return {r["path"]: sorted((f["box"] for f in r["faces"]), key=str) for r in rows}

    detected = boxes(run("detect", *photos, "--format", "json", "-j", "1"))
    matched = boxes(run(known_files, *photos, "--format", "json", "-j", "1", "--no-cache"))
    assert detected == matched
    assert [len(detected[str(p)]) for p in photos] == [5, 2, 2, 4]


def test_help_and_version_load_no_model() -> None:
    code = (
        "import sys\n"
        "from facematch.cli import run\n"
        "for args in (['--help'], ['--version'], ['detect', '--help']):\n"
        "    assert run(args) == 0\n"
        "heavy = {'dlib', 'numpy', 'onnxruntime', 'PIL', 'av'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Exit status" in done.stdout and "facematch, version" in done.stdout


def test_facematch_script_exit_status_for_missing_known(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "facematch", str(tmp_path / "nope"), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == EXIT_USAGE
    assert done.stderr.strip().startswith("facematch: error: known folder not found")


@pytest.mark.slow
def test_workers_never_import_a_facematch_folder_in_the_current_directory(
    tmp_path: Path, known_files: Path, unknown: Path
) -> None:
    script = Path(sys.executable).parent / "facematch"
    if not script.exists():
        pytest.skip("the facematch console script is not installed next to this python")
    decoy = tmp_path / "cwd" / "facematch"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise SystemExit('imported the decoy')\n")
    done = subprocess.run(
        [str(script), str(known_files), str(unknown), "-j", "2", "--no-cache"],
        cwd=decoy.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "decoy" not in done.stderr and len(done.stdout.splitlines()) == 4
