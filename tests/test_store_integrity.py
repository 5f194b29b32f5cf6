"""What the user told the library stays with the faces it was about, across prune and re-index.

Real photos of TV characters (tests/data/people/tbbt): the library's face ids are never
given again, so a name, a move or a merge made for a face that is gone cannot land on
a new face.
"""

from __future__ import annotations

import csv
import io
import shutil
import stat
from pathlib import Path

import pytest
from helpers import run

DATA = Path(__file__).parent / "data"
TBBT = DATA / "people" / "tbbt"


def photos_folder(folder: Path, *names: str) -> Path:
    """A folder holding copies of these photos of tests/data."""
    folder.mkdir()
    for name in names:
        shutil.copy(DATA / name, folder / name)
    return folder


def people(photos: Path, library: Path) -> dict[str, tuple[str, str]]:
    """File name -> (person, name) of each face, from ``cluster --format csv``."""
    result = run("cluster", photos, "--library", library, "--format", "csv", "-q", "--jobs", "1")
    assert result.exit_code == 0, result.output
    rows = csv.DictReader(io.StringIO(result.stdout))
    return {Path(row["path"]).name: (row["person"], row["name"]) for row in rows}


@pytest.fixture
def clustered(tmp_path: Path) -> tuple[Path, Path, str]:
    """Two photos of Amy and two of Raj, clustered; returns (folder, library, Raj's person)."""
    photos = tmp_path / "p"
    photos.mkdir()
    for source, target in [
        ("amy/amy1.png", "a1.png"),
        ("amy/amy2.png", "a2.png"),
        ("raj/raj1.png", "b1.png"),
        ("raj/raj2.png", "b2.png"),
    ]:
        shutil.copy(TBBT / source, photos / target)
    library = tmp_path / "l.sqlite3"
    found = people(photos, library)
    raj = found["b1.png"][0]
    assert raj and found["b2.png"][0] == raj and found["a1.png"][0] != raj
    return photos, library, raj


def prune_raj_and_add_penny(photos: Path, library: Path) -> dict[str, tuple[str, str]]:
    (photos / "b2.png").unlink()
    assert run("index", photos, "--library", library, "-q", "--jobs", "1").exit_code == 0
    shutil.copy(TBBT / "penny" / "penny1.png", photos / "c1.png")
    assert run("index", photos, "--library", library, "-q", "--jobs", "1").exit_code == 0
    return people(photos, library)


def test_a_name_never_passes_to_a_new_face(clustered: tuple[Path, Path, str]) -> None:
    photos, library, raj = clustered
    assert run("cluster", "name", raj, "Raj", "--library", library).exit_code == 0
    found = prune_raj_and_add_penny(photos, library)
    assert found["b1.png"] == (raj, "Raj")
    assert found["c1.png"][1] != "Raj"
    assert found["c1.png"][0] != raj


def test_a_move_never_passes_to_a_new_face(clustered: tuple[Path, Path, str]) -> None:
    photos, library, _ = clustered
    amy = people(photos, library)["a1.png"][0]
    moved = run("cluster", "move", photos / "b2.png", "--to", amy, "--library", library)
    assert moved.exit_code == 0, moved.output
    assert people(photos, library)["b2.png"][0] == amy
    found = prune_raj_and_add_penny(photos, library)
    assert found["c1.png"][0] != amy  # the moved face is gone; its move went with it


def test_a_merge_never_takes_in_a_new_face(clustered: tuple[Path, Path, str]) -> None:
    photos, library, raj = clustered
    amy = people(photos, library)["a1.png"][0]
    assert run("cluster", "merge", raj, amy, "--library", library).exit_code == 0
    assert run("cluster", "name", amy, "Amy and Raj", "--library", library).exit_code == 0
    found = prune_raj_and_add_penny(photos, library)
    assert found["b1.png"][1] == "Amy and Raj"
    assert found["c1.png"][1] != "Amy and Raj"


def test_a_library_in_a_read_only_folder_can_be_read(tmp_path: Path) -> None:
    from tests.test_cache import facematch_run, permissions_bind

    prefix = permissions_bind()
    data = DATA
    photos = photos_folder(tmp_path / "photos", "obama.jpg", "biden.jpg", "two_people.jpg")
    shelf = tmp_path / "dvd"
    shelf.mkdir()
    library = shelf / "library.sqlite3"
    assert run("index", photos, "--library", library, "-q", "--jobs", "1").exit_code == 0
    known = tmp_path / "known"
    known.mkdir()
    shutil.copy(data / "obama2.jpg", known / "Barack Obama.jpg")
    library.chmod(0o444)
    shelf.chmod(0o555)
    try:
        searched = facematch_run(prefix, "search", data / "obama3.jpg", "--library", library)
        info = facematch_run(prefix, "library", "info", "--library", library)
        exported = facematch_run(prefix, "library", "export", "--library", library)
        matched = facematch_run(prefix, known, "--library", library, "--format", "csv")
    finally:
        shelf.chmod(0o755)
    for done in (searched, info, exported, matched):
        assert done.returncode == 0, done.stderr
        assert "readonly" not in done.stderr and "unable to open" not in done.stderr
    assert sorted(Path(line.split(",")[0]).name for line in searched.stdout.splitlines()) == [
        "obama.jpg",
        "two_people.jpg",
    ]
    assert "faces: 4" in info.stdout
    assert len(exported.stdout.splitlines()) == 4
    assert "Barack Obama" in matched.stdout
    assert sorted(p.name for p in shelf.iterdir()) == ["library.sqlite3"]  # nothing written


def test_a_library_made_through_a_link_to_nothing_is_private(tmp_path: Path) -> None:
    photos = photos_folder(tmp_path / "photos", "obama.jpg")
    target = tmp_path / "elsewhere" / "library.sqlite3"
    target.parent.mkdir()
    link = tmp_path / "library.sqlite3"
    link.symlink_to(target)
    assert run("index", photos, "--library", link, "-q", "--jobs", "1").exit_code == 0
    assert target.is_file()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_what_holds_faces_is_private_to_the_user(tmp_path: Path) -> None:
    """Reports, their crops, cluster crops and exports hold faces or embeddings: 0600 files
    in 0700 folders, like the library; annotated copies are the user's pictures."""
    data = DATA
    photos = photos_folder(tmp_path / "photos", "obama.jpg", "obama2.jpg", "two_people.jpg")
    known = tmp_path / "known"
    known.mkdir()
    shutil.copy(data / "biden.jpg", known / "Joe Biden.jpg")
    out = tmp_path / "out"
    library = tmp_path / "l.sqlite3"
    report = out / "report" / "r.html"
    assets = out / "assets"
    matched = run(known, photos, "--report", report, "--report-assets", assets, "-q", "-j", "1")
    assert matched.exit_code == 0, matched.stderr
    clustered = run(
        "cluster", photos, "--library", library, "--out", out / "people", "-q", "-j", "1"
    )
    assert clustered.exit_code == 0, clustered.stderr
    exported = run("library", "export", "--library", library, "-o", out / "faces.jsonl")
    assert exported.exit_code == 0, exported.stderr
    npy = run("library", "export", "--library", library, "--format", "npy", "-o", out / "np" / "f")
    assert npy.exit_code == 0, npy.stderr
    files = [report, *assets.iterdir(), *(out / "people").rglob("*.jpg"), out / "faces.jsonl"]
    files += [out / "np" / "f.npy", out / "np" / "f.csv"]
    assert len(files) > 6
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for folder in (report.parent, assets, out / "people", out / "np"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
