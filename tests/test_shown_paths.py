"""One rule for printing a path, in every command and format.

A path given on the command line, or found under a folder given there, prints as
given (as matching prints it); a path only the library knows (a search hit, a file of
``match --library`` without UNKNOWN) prints relative to the current folder when it is
under it, else absolute. The library itself keeps absolute paths.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import run

from facematch.sources.images import ShownPaths
from facematch.store.library import Library

DATA = Path(__file__).parent / "data"
BAD = "not an image, or a format Pillow cannot read"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_faces: object) -> Path:
    """The current folder: photos/ (Obama twice, Biden, both, a bad file) and known/."""
    monkeypatch.chdir(tmp_path)
    photos = tmp_path / "photos"
    (photos / "obama").mkdir(parents=True)
    shutil.copy(DATA / "obama.jpg", photos / "obama" / "a.jpg")
    shutil.copy(DATA / "obama2.jpg", photos / "obama" / "b.jpg")
    shutil.copy(DATA / "biden.jpg", photos / "biden.jpg")
    shutil.copy(DATA / "two_people.jpg", photos / "both.jpg")
    (photos / "bad.jpg").write_bytes(b"not an image at all")
    (tmp_path / "known").mkdir()
    shutil.copy(DATA / "obama3.jpg", tmp_path / "known" / "Barack Obama.jpg")
    shutil.copy(DATA / "biden.jpg", tmp_path / "known" / "Joe Biden.jpg")
    return tmp_path


def csv_paths(stdout: str) -> list[str]:
    return [row["path"] for row in csv.DictReader(io.StringIO(stdout))]


ALL = ["photos/biden.jpg", "photos/both.jpg", "photos/both.jpg", "photos/obama/a.jpg"]
ALL.append("photos/obama/b.jpg")


def test_index_and_cluster_print_the_paths_as_given_like_matching(here: Path) -> None:
    index = run("index", "photos", "--library", "lib.sqlite3", "-q", "-j1")
    assert index.exit_code == 3
    assert f"facematch: error: photos/bad.jpg: {BAD}\n" in index.stderr
    absolute = str(here / "photos")
    for given, prefix in (("photos", "photos/"), ("./photos/", "./photos/"), (absolute, "")):
        expected = [prefix + p.removeprefix("photos/") if prefix else str(here / p) for p in ALL]
        matched = run("known", given, "-r", "--format", "csv", "-q", "-j1")
        clustered = run("cluster", given, "--library", "lib.sqlite3", "--format", "csv", "-q")
        assert clustered.exit_code == 3, clustered.output
        assert csv_paths(clustered.stdout) == expected
        assert [p for p in csv_paths(matched.stdout) if not p.endswith("bad.jpg")] == expected
        bad = os.path.join(given, "bad.jpg")
        assert f"facematch: error: {bad}: {BAD}\n" in clustered.stderr
    compat = run("cluster", "photos", "--library", "lib.sqlite3", "-q")
    assert compat.stdout.splitlines()[-1].startswith("photos/obama/b.jpg,person_")
    jsonl = run("cluster", "photos/obama", "--library", "lib.sqlite3", "--format", "jsonl", "-q")
    assert [json.loads(line)["path"] for line in jsonl.stdout.splitlines()] == ALL[-2:]
    # The report names the photos so too; the crops' names do not change.
    report = run(
        "cluster", "photos", "--library", "lib.sqlite3", "-q", "--report", "people.html",
        "--out", "people",
    )  # fmt: skip
    assert report.exit_code == 3, report.output
    page = (here / "people.html").read_text()
    assert str(here) not in page
    assert 'title="photos/obama/a.jpg"' in page and "<code>photos/bad.jpg</code>" in page
    assert "photos under <code>photos</code>" in page
    crops = sorted(p.name for p in (here / "people").rglob("*.jpg"))
    assert crops[0] == "biden.jpg__face0.jpg" and "obama__a.jpg__face0.jpg" in crops
    # The library keeps absolute paths, so it works from any folder.
    with Library.open(here / "lib.sqlite3", read_only=True) as library:
        assert {f.path for f in library.files()} == {
            str(here / p) for p in {*ALL, "photos/bad.jpg"}
        }


def test_library_paths_print_relative_to_here_else_absolute(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("index", "photos", "--library", "lib.sqlite3", "-q", "-j1").exit_code == 3
    search = run("search", "known/Barack Obama.jpg", "--library", "lib.sqlite3", "-q", "-j1")
    found = [line.split(",")[0] for line in search.stdout.splitlines()]
    assert sorted(found) == ["photos/both.jpg", "photos/obama/a.jpg", "photos/obama/b.jpg"]
    as_csv = run("search", "known", "--library", "lib.sqlite3", "--format", "csv", "-q")
    assert "photos/obama/a.jpg" in csv_paths(as_csv.stdout)
    as_json = run("search", "known", "--library", "lib.sqlite3", "--format", "json", "-q")
    assert "photos/biden.jpg" in [hit["path"] for hit in json.loads(as_json.stdout)]
    # --library: every indexed file relative to here; UNKNOWN as given.
    whole = run("known", "--library", "lib.sqlite3", "--format", "csv", "-q")
    assert whole.exit_code == 3
    assert csv_paths(whole.stdout) == ["photos/bad.jpg", *ALL]
    compat = run("known", "--library", "lib.sqlite3", "-q")
    assert "photos/obama/a.jpg,Barack Obama" in compat.stdout.splitlines()
    assert f"facematch: error: photos/bad.jpg: {BAD}" in compat.stderr
    given = run("known", "./photos/obama", "--library", "lib.sqlite3", "--format", "csv", "-q")
    assert csv_paths(given.stdout) == ["./photos/obama/a.jpg", "./photos/obama/b.jpg"]
    # From a folder the photos are not under: absolute.
    (here / "elsewhere").mkdir()
    monkeypatch.chdir(here / "elsewhere")
    away = run("search", "../known/Joe Biden.jpg", "--library", "../lib.sqlite3", "-q", "-j1")
    assert away.stdout.splitlines()[0].startswith(f"{here}/photos/biden.jpg,")
    away_match = run("../known", "--library", "../lib.sqlite3", "--format", "csv", "-q")
    assert csv_paths(away_match.stdout) == [str(here / p) for p in ["photos/bad.jpg", *ALL]]


def test_shown_paths_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shown = ShownPaths(["photos", "./photos/2019/", str(tmp_path / "other" / "x.jpg")])
    assert shown(str(tmp_path / "photos" / "a.jpg")) == "photos/a.jpg"
    assert shown(str(tmp_path / "photos" / "2019" / "b.jpg")) == "./photos/2019/b.jpg"
    assert shown(str(tmp_path / "other" / "x.jpg")) == str(tmp_path / "other" / "x.jpg")
    assert shown(str(tmp_path / "photos")) == "photos"
    assert shown(str(tmp_path / "photos2" / "c.jpg")) == "photos2/c.jpg"  # not under photos
    assert shown("/elsewhere/d.jpg") == "/elsewhere/d.jpg"
    assert shown("relative/e.jpg") == "relative/e.jpg"
    monkeypatch.chdir("/")
    assert ShownPaths()(str(tmp_path / "f.jpg")) == str(tmp_path / "f.jpg")
