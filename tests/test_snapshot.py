"""The library's snapshot of its faces: used only when it is of the library as it is now.

Plumbing: random embeddings stored through ``add_many`` (no faces need finding here);
the search answers are checked against a float64 brute force.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest

from facematch.errors import LibraryError
from facematch.records import Face, FaceBox
from facematch.store import library as library_module
from facematch.store.library import Library
from facematch.store.people import SCHEMA as PEOPLE_SCHEMA
from facematch.store.snapshot import snapshot_generation, snapshot_path

COUNT = 400


@pytest.fixture(autouse=True)
def small_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(library_module, "SNAPSHOT_MIN_FACES", 50)


def random_faces(seed: int, count: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(0, 0.09, (count, 128)).astype(np.float32)
    return rows


def fill(path: Path, rows: np.ndarray, start: int = 0) -> None:
    with Library.open(path) as library:
        library.add_many(
            (
                (
                    f"/photos/{i:05d}.jpg",
                    [Face(FaceBox(i % 97, 100 + i, 100 + i % 89, i % 13), (), rows[i - start])],
                    f"{i:064x}",
                )
                for i in range(start, start + len(rows))
            ),
            settings="test",
            engine="test",
        )


def brute(rows: np.ndarray, query: np.ndarray, radius: float) -> list[tuple[str, float]]:
    d = np.sqrt(((rows.astype(np.float64) - query.astype(np.float64)) ** 2).sum(axis=1))
    hits = [(f"/photos/{i:05d}.jpg", float(d[i])) for i in np.flatnonzero(d <= radius)]
    return sorted(hits, key=lambda hit: (hit[1], hit[0]))


def same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> bool:
    """The same faces in the same order, distances equal to float64 rounding."""
    return [p for p, _ in got] == [p for p, _ in want] and np.allclose(
        [d for _, d in got], [d for _, d in want], rtol=0, atol=1e-9
    )


def answers(path: Path, query: np.ndarray, radius: float) -> list[tuple[str, float]]:
    with Library.open(path, read_only=True) as library:
        return [(hit.path, hit.distance) for hit in library.search(query, radius)]


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "library.sqlite3"
    rows = random_faces(1, COUNT)
    fill(path, rows)
    return path, rows


def test_bulk_adding_writes_a_private_snapshot_with_the_same_answers(
    built: tuple[Path, np.ndarray],
) -> None:
    path, rows = built
    snapshot = snapshot_path(path)
    assert snapshot.exists()
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    query = rows[7] + 0.01
    nearest = np.sort(np.linalg.norm(rows.astype(np.float64) - query, axis=1))
    radius = float(nearest[19:21].mean())  # 20 within
    from_snapshot = answers(path, query, radius)
    with Library.open(path, read_only=True) as library:
        faces_snapshot = library.faces()
    snapshot.unlink()
    assert answers(path, query, radius) == from_snapshot
    assert same(from_snapshot, brute(rows, query, radius))
    assert len(from_snapshot) == 20
    with Library.open(path, read_only=True) as library:
        faces_sqlite = library.faces()
    assert snapshot.exists()  # the reader wrote it again
    assert faces_snapshot.paths == faces_sqlite.paths
    for field in ("ids", "boxes", "embeddings"):
        assert np.array_equal(getattr(faces_snapshot, field), getattr(faces_sqlite, field))


def test_a_change_by_any_writer_makes_the_snapshot_stale(
    built: tuple[Path, np.ndarray],
) -> None:
    path, rows = built
    query = rows[3]
    before = answers(path, query, 0.3)
    assert before[0] == ("/photos/00003.jpg", 0.0)
    generation = snapshot_generation(snapshot_path(path))
    with sqlite3.connect(path) as db:  # not facematch: another program, by hand
        db.execute("DELETE FROM files WHERE path = '/photos/00003.jpg'")
    after = answers(path, query, 0.3)
    assert after == before[1:]
    assert snapshot_generation(snapshot_path(path)) != generation
    # and faces added through facematch are found at once
    fill(path, np.stack([query]), start=COUNT)
    assert answers(path, query, 0.3)[0] == (f"/photos/{COUNT:05d}.jpg", 0.0)


@pytest.mark.parametrize("damage", ["flipped", "truncated", "garbage", "empty"])
def test_a_damaged_snapshot_is_never_an_answer(
    built: tuple[Path, np.ndarray], damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path, rows = built
    query = rows[11]
    snapshot = snapshot_path(path)
    data = bytearray(snapshot.read_bytes())
    if damage == "flipped":
        data[-2000] ^= 0x10  # a bit in a box or an id
        data[300] ^= 0x01  # and one in an embedding
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(np.random.default_rng(0).bytes(len(data)))
    else:
        data = bytearray()
    snapshot.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="facematch"):
        got = answers(path, query, 0.45)
    assert same(got, brute(rows, query, 0.45))
    assert "snapshot" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="facematch"):
        assert answers(path, query, 0.45) == got
    assert caplog.text == ""  # written again, whole


def test_a_library_of_schema_1_is_upgraded_when_opened_for_writing(
    built: tuple[Path, np.ndarray],
) -> None:
    path, rows = built
    with sqlite3.connect(path) as db:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            db.execute(f"DROP TRIGGER {name}")
        db.execute("DELETE FROM meta WHERE key = 'generation'")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    with pytest.raises(LibraryError, match="open it once for writing"):
        Library.open(path, read_only=True)
    Library.open(path).close()
    query = rows[5]
    assert same(answers(path, query, 0.3), brute(rows, query, 0.3))
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM files WHERE path = '/photos/00005.jpg'")
    assert same(answers(path, query, 0.3), brute(rows, query, 0.3)[1:])


def test_a_small_library_keeps_no_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "library.sqlite3"
    fill(path, random_faces(2, 60))
    assert snapshot_path(path).exists()
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM files WHERE path >= '/photos/00020.jpg'")
    with Library.open(path) as library:
        library.refresh_snapshot()
    assert not snapshot_path(path).exists()


def test_a_snapshot_that_does_not_fit_its_library_is_not_used(
    built: tuple[Path, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    """Whole and of the right generation, but naming files the library lacks (made
    by hand, say): the faces come from SQLite."""
    from facematch.store.snapshot import FaceMatrix, read_snapshot, write_snapshot

    path, rows = built
    snapshot = snapshot_path(path)
    generation = snapshot_generation(snapshot)
    assert generation is not None
    good = read_snapshot(snapshot, generation)
    assert good is not None
    forged = FaceMatrix(good.ids, good.files + 10_000, good.boxes, good.embeddings + 1)
    write_snapshot(snapshot, forged, generation)
    with caplog.at_level(logging.WARNING, logger="facematch"), Library.open(path) as library:
        faces = library.faces()
    assert "does not have" in caplog.text
    assert faces.paths == [f"/photos/{i:05d}.jpg" for i in range(COUNT)]
    assert np.array_equal(faces.embeddings, rows)


def embeddings_of(path: Path) -> np.ndarray:
    with Library.open(path, read_only=True) as library:
        return library.faces().embeddings.copy()


def test_a_snapshot_from_before_a_restored_backup_is_never_used(
    built: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    path, _ = built
    backup = tmp_path / "backup.sqlite3"
    shutil.copy(path, backup)
    fill(path, random_faces(2, 1), start=COUNT)  # a change after the backup: a new snapshot
    assert len(embeddings_of(path)) == COUNT + 1
    shutil.copy(backup, path)  # restored; the newer snapshot stays beside it
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    changed = random_faces(3, 1)
    fill(path, changed, start=COUNT)  # the same writes again, with other faces
    got = embeddings_of(path)
    assert np.array_equal(got[-1], changed[0])  # this library's face, not the snapshot's


def test_another_librarys_snapshot_is_never_used(tmp_path: Path) -> None:
    first, second = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    fill(first, random_faces(1, COUNT))
    own = random_faces(4, COUNT)
    fill(second, own)  # the same number of writes: the same change count as the first
    shutil.copy(snapshot_path(first), snapshot_path(second))
    assert np.array_equal(embeddings_of(second), own)


def test_a_schema_2_library_upgrades_and_never_reuses_a_face_id(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    fill(path, random_faces(5, 3))
    # Make it as schema 2 had it: plain INTEGER PRIMARY KEY ids and a change counter.
    db = sqlite3.connect(path)
    with db:
        for table in ("entries", "faces", "files"):
            sql = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
            db.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
            db.execute(sql.replace(" AUTOINCREMENT", "").replace(f"{table} (", f"{table} (", 1))
            db.execute(f"INSERT INTO {table} SELECT * FROM {table}_old")
            db.execute(f"DROP TABLE {table}_old")
        db.execute("DELETE FROM sqlite_sequence")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
        db.execute("UPDATE meta SET value = '7' WHERE key = 'generation'")
        db.execute("DELETE FROM meta WHERE key = 'library_id'")
        highest = db.execute("SELECT MAX(id) FROM faces").fetchone()[0]
        db.execute("DELETE FROM faces WHERE id = ?", (highest,))  # pruned before the upgrade
        for statement in PEOPLE_SCHEMA:  # ... while a person still named it (in a people
            db.execute(statement.replace("'xmp', ", ""))  # table of before schema 4)
        db.execute("INSERT INTO people (number, name, named_by) VALUES (1, 'Raj', 'user')")
        db.execute("INSERT INTO assignments (face, person, fixed) VALUES (?, 1, 1)", (highest,))
    db.close()
    fill(path, random_faces(6, 1), start=10)
    with Library.open(path, read_only=True) as library:
        ids = library.faces().ids.tolist()
    assert max(ids) > highest  # the pruned face's id was not given again
    db = sqlite3.connect(path)
    schema = dict(db.execute("SELECT key, value FROM meta").fetchall())
    assert schema["schema"] == "4" and len(schema["library_id"]) == 32
    with db:  # schema 4: people may be named by their photos' XMP; Raj is still there
        db.execute("INSERT INTO people (number, name, named_by) VALUES (2, 'Amy', 'xmp')")
        assert db.execute("SELECT * FROM people").fetchall() == [
            (1, "Raj", "user", None),
            (2, "Amy", "xmp", None),
        ]
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("INSERT INTO people (number, named_by) VALUES (3, 'somebody')")
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    db.close()
    with Library.open(path, read_only=True) as library:  # schema 3 is read as it is
        assert library.info()["schema"] == 3 and len(library.faces().ids) == len(ids)
