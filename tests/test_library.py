"""The face library on real photos: index, incremental updates, search, match, export, damage."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import run

from facematch.cli import EXIT_FATAL, EXIT_PARTIAL, EXIT_USAGE
from facematch.errors import LibraryError
from facematch.records import Encoded
from facematch.run import tasks as tasks_module
from facematch.run.pipeline import Pipeline
from facematch.store.library import ENV_VAR, Library, default_library_path

PHOTOS = {
    "obama/a.jpg": "obama.jpg",
    "obama/b.jpg": "obama2.jpg",
    "obama/small.jpg": "obama_small.jpg",
    "biden.jpg": "biden.jpg",
    "stranger.png": "alex-lacamoire.png",
    "both.jpg": "two_people.jpg",
}
OBAMA = {"obama/a.jpg", "obama/b.jpg", "obama/small.jpg", "both.jpg"}


def make_photos(folder: Path, data: Path) -> Path:
    for name, source in PHOTOS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data / source, folder / name)
    (folder / "bad.jpg").write_bytes(b"not an image at all")
    return folder


@pytest.fixture
def photos(tmp_path: Path, data: Path) -> Path:
    return make_photos(tmp_path / "photos", data)


@pytest.fixture
def encodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the pipeline encodes (decodes and runs the models on), in order."""
    calls: list[str] = []
    real = tasks_module.encode_image

    def counting(task: tasks_module.EncodeTask) -> Encoded:
        calls.append(Path(task.path).name)
        return real(task)

    monkeypatch.setattr(tasks_module, "encode_image", counting)
    return calls


def index(library: Path, *paths: Path, prune: bool = True) -> dict[str, tuple[str, str]]:
    """Index in this process; {path relative to the first root: (action, status)}."""
    with Library.open(library) as opened, Pipeline(jobs=1) as pipeline:
        rows = list(opened.index([str(p) for p in paths], pipeline, prune=prune))
    root = paths[0]
    return {
        os.path.relpath(r.path, root): (r.action, r.status) for r in rows if r.action != "unchanged"
    }


def stored(library: Path, root: Path) -> dict[str, Any]:
    """What a library holds under ``root``, by relative path: status, and its faces' boxes."""
    prefix = os.path.join(root, "")
    with Library.open(library, read_only=True) as opened:
        files = {
            os.path.relpath(f.path, root): f.status
            for f in opened.files()
            if f.path.startswith(prefix)
        }
        faces = opened.faces()
    boxes: dict[str, list[tuple[int, ...]]] = {}
    rows = [i for i, path in enumerate(faces.paths) if path.startswith(prefix)]
    for i in rows:
        path = os.path.relpath(faces.paths[i], root)
        boxes.setdefault(path, []).append(tuple(int(v) for v in faces.boxes[i]))
    return {"files": files, "boxes": boxes, "embeddings": faces.embeddings[rows]}


@pytest.fixture(scope="session")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One library of the test photos, indexed once for every test that only reads it."""
    folder = tmp_path_factory.mktemp("indexed")
    photos = make_photos(folder / "photos", Path(__file__).parent / "data")
    library = folder / "library.sqlite3"
    index(library, photos)
    return library, photos


def copy_of(indexed: tuple[Path, Path], tmp_path: Path) -> Path:
    library = tmp_path / "copy.sqlite3"
    with sqlite3.connect(indexed[0]) as source, sqlite3.connect(library) as target:
        source.backup(target)
    return library


# --- index ---------------------------------------------------------------------------


def test_index_stores_every_file_with_its_status_and_faces(indexed: tuple[Path, Path]) -> None:
    library, photos = indexed
    held = stored(library, photos)
    assert held["files"] == {
        "bad.jpg": "error",
        "biden.jpg": "ok",
        "both.jpg": "ok",
        "obama/a.jpg": "ok",
        "obama/b.jpg": "ok",
        "obama/small.jpg": "ok",
        "stranger.png": "ok",
    }
    assert [len(held["boxes"][p]) for p in sorted(held["boxes"])] == [1, 2, 1, 1, 1, 1]
    assert held["embeddings"].dtype == np.float32 and held["embeddings"].shape == (7, 128)
    assert os.stat(library).st_mode & 0o777 == 0o600


def test_a_rerun_reads_nothing(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    library = copy_of(indexed, tmp_path)
    photos = indexed[1]
    # Same size and mtime, content that would fail to decode and hash differently:
    # a run that opened it would notice.
    target = photos / "biden.jpg"
    info = target.stat()
    original = target.read_bytes()
    try:
        target.write_bytes(b"\0" * info.st_size)
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
        result = run("index", photos, "--library", library, "-j", "1")
    finally:
        target.write_bytes(original)
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert result.exit_code == EXIT_PARTIAL, result.stderr  # bad.jpg is still unreadable
    assert "7 files (0 new, 0 changed, 7 unchanged; 1 unreadable)" in result.stderr
    assert "1 unreadable files unchanged since the last run" in result.stderr
    assert stored(library, photos)["files"]["biden.jpg"] == "ok"


@pytest.mark.usefixtures("fake_faces")
def test_add_change_rename_delete(
    photos: Path, tmp_path: Path, data: Path, encodes: list[str]
) -> None:
    library = tmp_path / "library.sqlite3"
    index(library, photos)
    assert sorted(encodes) == sorted(Path(p).name for p in [*PHOTOS, "bad.jpg"])
    first = stored(library, photos)
    encodes.clear()

    shutil.copy(data / "obama_exif_rotated.jpg", photos / "new.jpg")  # added
    shutil.copy(data / "obama_partial_face.jpg", photos / "biden.jpg")  # changed
    (photos / "stranger.png").rename(photos / "renamed.png")  # renamed
    (photos / "obama" / "small.jpg").unlink()  # deleted
    assert index(library, photos) == {
        "new.jpg": ("new", "ok"),
        "biden.jpg": ("changed", "ok"),
        "renamed.png": ("new", "ok"),
        "stranger.png": ("pruned", "ok"),
        "obama/small.jpg": ("pruned", "ok"),
    }
    assert sorted(encodes) == ["biden.jpg", "new.jpg"]  # the renamed photo is not encoded
    second = stored(library, photos)
    assert set(second["files"]) == {*first["files"], "new.jpg", "renamed.png"} - {
        "stranger.png",
        "obama/small.jpg",
    }
    assert second["boxes"]["renamed.png"] == first["boxes"]["stranger.png"]
    assert second["boxes"]["biden.jpg"] != first["boxes"]["biden.jpg"]


def test_keep_missing_and_prune_only_under_the_paths_given(
    indexed: tuple[Path, Path], tmp_path: Path
) -> None:
    library = copy_of(indexed, tmp_path)
    photos = tmp_path / "photos"
    shutil.copytree(indexed[1], photos)
    index(library, photos)
    (photos / "biden.jpg").unlink()
    assert run("index", photos / "obama", "--library", library, "-j", "1").exit_code == 0
    assert "biden.jpg" in stored(library, photos)["files"]  # not under photos/obama
    result = run("index", photos, "--library", library, "-j", "1", "--keep-missing")
    assert "0 missing files removed" in result.stderr
    assert "biden.jpg" in stored(library, photos)["files"]
    result = run("index", photos, "--library", library, "-j", "1")
    assert "1 missing files removed" in result.stderr
    assert "biden.jpg" not in stored(library, photos)["files"]


def test_a_bad_file_is_retried_only_when_it_changes(
    indexed: tuple[Path, Path], tmp_path: Path, data: Path, encodes: list[str]
) -> None:
    library = copy_of(indexed, tmp_path)
    photos = tmp_path / "photos"
    shutil.copytree(indexed[1], photos)
    index(library, photos)
    assert encodes == ["bad.jpg"]  # the others' content is known; a failure is not
    encodes.clear()
    os.utime(photos / "bad.jpg", ns=(0, 10**18))  # touched, same bytes
    assert index(library, photos) == {}
    assert encodes == []
    shutil.copy(data / "biden.jpg", photos / "bad.jpg")  # now it is a photo
    assert index(library, photos) == {"bad.jpg": ("changed", "ok")}
    assert encodes == []  # same content as biden.jpg: known already


def test_unchanged_files_do_not_start_the_models(
    indexed: tuple[Path, Path], tmp_path: Path
) -> None:
    library = copy_of(indexed, tmp_path)
    code = (
        "import sys; from facematch.cli import run\n"
        "try:\n    run(sys.argv[1:])\n"
        "finally:\n    print(sorted(m for m in sys.modules if m in ('dlib', 'onnxruntime')))"
    )
    args = ["index", str(indexed[1]), "--library", str(library), "-j", "1"]
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    assert "7 unchanged" in done.stderr
    assert done.stdout.strip() == "[]"


# --- search --------------------------------------------------------------------------


def test_search_finds_obama_first_and_nobody_else(indexed: tuple[Path, Path], data: Path) -> None:
    library, photos = indexed
    result = run(
        "search",
        data / "obama_exif_rotated.jpg",
        "--library",
        library,
        "--format",
        "json",
        "-j",
        "1",
    )
    assert result.exit_code == 0, result.stderr
    hits = json.loads(result.stdout)
    found = [os.path.relpath(h["path"], photos) for h in hits]
    assert set(found) == OBAMA
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    distances = [h["distance"] for h in hits]
    assert distances == sorted(distances) and distances[-1] <= 0.6
    # Obama's face in the two-person photo, not Biden's.
    both = next(h for h in hits if h["path"].endswith("both.jpg"))
    held = stored(library, photos)["boxes"]["both.jpg"]
    assert tuple(both["box"].values()) in held
    top = run(
        "search", data / "obama_exif_rotated.jpg", "--library", library, "--top", "2", "-j", "1"
    )
    assert top.stdout.splitlines() == result_lines(hits[:2])


def result_lines(hits: list[dict[str, Any]]) -> list[str]:
    return [
        f"{h['path']},{','.join(str(v) for v in h['box'].values())},{h['distance']}" for h in hits
    ]


def test_several_query_photos_are_one_person(indexed: tuple[Path, Path], data: Path) -> None:
    library, _ = indexed
    one = run("search", data / "obama.jpg", "--library", library, "--format", "jsonl", "-j", "1")
    two = run(
        "search", data / "obama.jpg", data / "biden.jpg", "--library", library, "--format", "jsonl"
    )
    paths_one = {json.loads(line)["path"] for line in one.stdout.splitlines()}
    paths_two = {json.loads(line)["path"] for line in two.stdout.splitlines()}
    assert paths_two == paths_one | {str(indexed[1] / "biden.jpg")}
    assert sum(p.endswith("both.jpg") for p in paths_two) == 1
    group = run("search", data / "two_people.jpg", "--library", library, "-j", "1")
    assert "2 faces in" in group.stderr and "searching for the largest" in group.stderr


def test_search_csv_and_a_query_without_a_face(
    indexed: tuple[Path, Path], data: Path, tmp_path: Path
) -> None:
    library, _ = indexed
    result = run("search", data / "biden.jpg", "--library", library, "--format", "csv", "-j", "1")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [Path(r["path"]).name for r in rows] == ["biden.jpg", "both.jpg"]
    assert list(rows[0]) == [
        "rank",
        "path",
        "top",
        "right",
        "bottom",
        "left",
        "distance",
        "face_id",
        "name",
    ]
    assert [r["name"] for r in rows] == ["", ""]  # nobody named in this library
    faceless = run("search", data / "tiny-blank.png", "--library", library, "-j", "1")
    assert faceless.exit_code == EXIT_FATAL
    assert "no face found in any of the FACE photos" in faceless.stderr


# --- match against a library ---------------------------------------------------------


def test_match_from_a_library_equals_matching_the_folder(
    indexed: tuple[Path, Path], known_files: Path
) -> None:
    library, photos = indexed
    direct = run(known_files, photos, "-r", "--format", "json", "-j", "1")
    stored_run = run(known_files, photos, "--library", library, "--format", "json", "-j", "1")
    assert direct.exit_code == stored_run.exit_code == EXIT_PARTIAL
    assert json.loads(stored_run.stdout) == json.loads(direct.stdout)
    whole = run(known_files, "--library", library, "--format", "json", "-j", "1")
    assert json.loads(whole.stdout) == json.loads(direct.stdout)
    missing = run(known_files, "--format", "json")
    assert missing.exit_code == EXIT_USAGE


def test_match_from_a_library_refuses_stale_files(
    indexed: tuple[Path, Path], known_files: Path, tmp_path: Path, data: Path
) -> None:
    library = copy_of(indexed, tmp_path)
    extra = tmp_path / "extra.jpg"
    shutil.copy(data / "obama.jpg", extra)
    result = run(known_files, extra, "--library", library, "--format", "csv")
    assert result.exit_code == EXIT_PARTIAL
    assert "not in the library" in result.stderr


# --- info and export -----------------------------------------------------------------


def test_info_and_export(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    library, _ = indexed
    info = json.loads(run("library", "info", "--library", library, "--json").stdout)
    assert (info["files"], info["ok"], info["error"], info["faces"]) == (7, 6, 1, 7)
    text = run("library", "info", "--library", library).stdout
    assert "faces: 7" in text and "unreadable" in text
    lines = run("library", "export", "--library", library).stdout.splitlines()
    assert len(lines) == 7
    first = json.loads(lines[0])
    assert set(first) == {"face_id", "path", "box", "embedding"}
    result = run("library", "export", "--library", library, "--format", "npy", "-o", tmp_path / "f")
    assert result.exit_code == 0, result.stderr
    matrix = np.load(tmp_path / "f.npy")
    with Library.open(library, read_only=True) as opened:
        faces = opened.faces()
    assert np.array_equal(matrix, faces.embeddings)
    with open(tmp_path / "f.csv", encoding="utf-8") as table_file:
        table = list(csv.DictReader(table_file))
    assert [r["path"] for r in table] == faces.paths
    assert np.allclose(first["embedding"], faces.embeddings[0], atol=0)
    no_prefix = run("library", "export", "--library", library, "--format", "npy")
    assert no_prefix.exit_code == EXIT_USAGE


def test_the_default_library_is_in_the_user_data_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_library_path() == tmp_path / "data" / "facematch" / "library.sqlite3"
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "mine.sqlite3"))
    assert default_library_path() == tmp_path / "mine.sqlite3"


# --- damage --------------------------------------------------------------------------


def foreign_files(folder: Path, indexed: tuple[Path, Path]) -> Iterator[tuple[str, Path]]:
    garbage = folder / "garbage.sqlite3"
    garbage.write_bytes(os.urandom(4096))
    yield "not a database", garbage
    other = folder / "other.sqlite3"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE things (x)")
    yield "another program's database", other
    newer = copy_of(indexed, folder / "n")
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    yield "a newer schema", newer
    flipped = copy_of(indexed, folder / "f")
    with sqlite3.connect(flipped) as db:
        blob = bytearray(db.execute("SELECT embedding FROM faces WHERE id = 3").fetchone()[0])
        blob[17] ^= 0x01
        db.execute("UPDATE faces SET embedding = ? WHERE id = 3", (bytes(blob),))
    yield "a flipped bit in an embedding", flipped
    truncated = copy_of(indexed, folder / "t")
    size = truncated.stat().st_size
    with open(truncated, "r+b") as f:
        f.truncate(size // 2)
    yield "a truncated file", truncated


def test_a_damaged_or_foreign_library_is_one_line_never_an_answer(
    indexed: tuple[Path, Path], tmp_path: Path, data: Path
) -> None:
    for folder in ("n", "f", "t"):
        (tmp_path / folder).mkdir()
    for what, path in foreign_files(tmp_path, indexed):
        before = path.read_bytes()
        result = run("search", data / "obama.jpg", "--library", path, "-j", "1")
        assert result.exit_code == EXIT_FATAL, what
        assert result.stdout == "", what
        message = result.stderr.strip().splitlines()
        assert len(message) == 1 and message[0].startswith("facematch: error:"), (what, message)
        assert str(path) in message[0], what
        with pytest.raises(LibraryError), Library.open(path) as opened:
            opened.faces()
        assert path.read_bytes() == before, what  # never rebuilt or "repaired"


# --- interrupted and concurrent runs -------------------------------------------------


def facematch(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "facematch", *(str(a) for a in args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def file_rows(library: Path) -> int:
    try:
        with sqlite3.connect(f"file:{library}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT COUNT(*) FROM files").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_a_killed_index_run_resumes_to_the_same_library(
    indexed: tuple[Path, Path], tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(indexed[1] / "obama", photos)
    library = tmp_path / "library.sqlite3"
    first = facematch("index", photos, "--library", library, "-j", "1")
    deadline = time.monotonic() + 120
    while file_rows(library) < 1 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    first.kill()
    first.communicate()
    assert 0 < file_rows(library) < 3, "killed too late to test anything"
    second = facematch("index", photos, "--library", library, "-j", "1")
    _, err = second.communicate(timeout=240)
    assert second.returncode == 0, err
    assert "0 changed" in err and "unchanged" in err
    resumed, whole = stored(library, photos), stored(indexed[0], indexed[1] / "obama")
    assert resumed["files"] == whole["files"] and resumed["boxes"] == whole["boxes"]
    assert np.allclose(resumed["embeddings"], whole["embeddings"], atol=1e-6)


@pytest.mark.slow
def test_two_processes_index_into_one_library_at_once(
    indexed: tuple[Path, Path], tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(indexed[1] / "obama", photos)
    library = tmp_path / "library.sqlite3"
    runs = [facematch("index", photos, "--library", library, "-j", "1") for _ in range(2)]
    for process in runs:
        _, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
        assert "Traceback" not in err
    together, whole = stored(library, photos), stored(indexed[0], indexed[1] / "obama")
    assert together["files"] == whole["files"] and together["boxes"] == whole["boxes"]
    with Library.open(library, read_only=True) as opened:
        assert opened.info()["faces"] == 3


def test_an_emptied_folder_is_pruned_and_a_missing_one_is_an_error(
    indexed: tuple[Path, Path], tmp_path: Path
) -> None:
    library = copy_of(indexed, tmp_path)
    photos = tmp_path / "photos"
    shutil.copytree(indexed[1] / "obama", photos)
    index(library, photos)
    missing = run("index", tmp_path / "gone", "--library", library)
    assert missing.exit_code == EXIT_USAGE and "no such file or directory" in missing.stderr
    for photo in photos.iterdir():
        photo.unlink()
    emptied = run("index", photos, "--library", library, "-j", "1")
    assert emptied.exit_code == 0 and "3 missing files removed" in emptied.stderr
    assert stored(library, photos)["files"] == {}


@pytest.mark.usefixtures("fake_faces")
def test_copies_of_a_new_photo_are_encoded_once(
    tmp_path: Path, data: Path, encodes: list[str]
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        shutil.copy(data / "obama_small.jpg", photos / name)
    for name in ("x.jpg", "y.jpg"):
        (photos / name).write_bytes(b"the same broken bytes")
    library = tmp_path / "library.sqlite3"
    assert index(library, photos) == {
        "a.jpg": ("new", "ok"),
        "b.jpg": ("new", "ok"),
        "c.jpg": ("new", "ok"),
        "x.jpg": ("new", "error"),
        "y.jpg": ("new", "error"),
    }
    assert encodes == ["a.jpg", "x.jpg"]
    assert len(stored(library, photos)["boxes"]) == 3


# --- names from photos' XMP (the store's rules; index reading XMP is in test_xmp.py) ------


def test_names_from_xmp_go_to_the_person_of_that_name(tmp_path: Path) -> None:
    """A tagged face joins the person of its name (any case, yours first), else its own
    unnamed person takes the name, else a new person is made; a face you moved stays; a
    tag gone since takes the face out of that person; search shows the person's name."""
    from facematch.records import Face, FaceBox
    from facematch.store.people import People

    rng = np.random.default_rng(5)
    with Library.open(tmp_path / "library.sqlite3") as library:
        for name, count in {"a.jpg": 2, "b.jpg": 1, "c.jpg": 1, "d.jpg": 2}.items():
            faces = [
                Face(FaceBox(0, 10 * i + 9, 9, 10 * i), (), rng.standard_normal(128))
                for i in range(count)
            ]
            library.add(f"/p/{name}", faces, digest=name, settings="s", engine="test")
        stored_faces = library.faces()
        ids = {
            (Path(path).name, int(box[3]) // 10): int(face_id)
            for face_id, path, box in zip(*stored_faces[:3], strict=True)
        }
        people = People(library)
        with library.write() as db:  # as clustering and corrections left them
            db.execute("INSERT INTO people (number) VALUES (1)")
            db.execute("INSERT INTO people VALUES (2, 'alice', 'user', NULL)")
            for face, person, fixed in [(("a.jpg", 0), 1, 0), (("b.jpg", 0), 1, 0)]:
                db.execute("INSERT INTO assignments VALUES (?, ?, ?)", (ids[face], person, fixed))
            db.execute("INSERT INTO assignments VALUES (?, 2, 0)", (ids["c.jpg", 0],))
            db.execute("INSERT INTO assignments VALUES (?, NULL, 1)", (ids["d.jpg", 0],))

        def who() -> dict[tuple[str, int], tuple[int | None, str | None, str]]:
            return {
                (Path(r.path).name, r.face): (r.person, r.name, r.named_by)
                for r in people.rows(library.faces())
            }

        a0, a1, d0, d1 = ids["a.jpg", 0], ids["a.jpg", 1], ids["d.jpg", 0], ids["d.jpg", 1]
        assert people.take_xmp_names("/p/a.jpg", "read 1", {a0: "Bob", a1: "Alice"}) == []
        assert people.take_xmp_names("/p/d.jpg", "read 1", {d0: "Bob", d1: "BOB"}) == [d0]
        bob, alice = (1, "Bob", "xmp"), (2, "alice", "user")
        assert who() == {
            ("a.jpg", 0): bob,  # its unnamed person took the name, with b.jpg's face
            ("a.jpg", 1): alice,  # your person of that name, your spelling
            ("b.jpg", 0): bob,
            ("c.jpg", 0): alice,
            ("d.jpg", 0): (None, None, "none"),  # you moved it out: it stays out
            ("d.jpg", 1): bob,
        }
        assert people.xmp_read() == {"/p/a.jpg": "read 1", "/p/d.jpg": "read 1"}
        # Retagged: Bob's tag is gone, the other face is Carol now.
        assert people.take_xmp_names("/p/a.jpg", "read 2", {a1: "Carol"}) == []
        assert who()["a.jpg", 0] == (None, None, "none")  # for the next clustering to place
        assert who()["a.jpg", 1] == (3, "Carol", "xmp")
        # A name from XMP carries over in a merge, as yours does; search shows it.
        with library.write() as db:
            db.execute("INSERT INTO people (number) VALUES (4)")
        people.merge("Carol", "person_4")
        assert who()["a.jpg", 1] == (4, "Carol", "xmp")
        [hit] = library.search(stored_faces.embeddings[[1]], tolerance=0.01)
        assert (hit.face_id, hit.name) == (a1, "Carol")
        with library.write() as db:  # a photo gone from the library: its XMP rows go too
            db.execute("DELETE FROM files WHERE path = '/p/d.jpg'")
        assert people.xmp_read() == {"/p/a.jpg": "read 2"}
