"""A large library's search cells, kept beside it: used only when of the library as it is now.

Plumbing: random embeddings stored through ``add_many`` (no faces need finding here),
with the sizes from which a library keeps cells lowered so that a few thousand faces
are enough; search answers are checked against a float64 brute force.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from facematch.neighbours.exact import ExactIndex
from facematch.neighbours.faiss_index import FaissIndex, fill_cells, trained_cells
from facematch.records import Face, FaceBox
from facematch.store import face_index
from facematch.store import library as library_module
from facematch.store.face_index import index_path, read_cells
from facematch.store.library import Library

pytest.importorskip("faiss")

COUNT = 3_000


@pytest.fixture(autouse=True)
def small_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(library_module, "SNAPSHOT_MIN_FACES", 50)
    monkeypatch.setattr(library_module, "ANN_MIN_ROWS", 2_000)


def random_faces(seed: int, count: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.09, (count, 128)).astype(np.float32)


def fill(path: Path, rows: np.ndarray, prefix: str = "p", digests: list[str] | None = None) -> None:
    with Library.open(path) as library:
        library.add_many(
            (
                (
                    f"/{prefix}/{i:05d}.jpg",
                    [Face(FaceBox(0, 100, 100, 0), (), rows[i])],
                    digests[i] if digests else f"{prefix}{i:063x}",
                )
                for i in range(len(rows))
            ),
            settings="test",
            engine="test",
        )


def nearest(path: Path, query: np.ndarray, top: int = 3) -> tuple[list[tuple[str, float]], str]:
    """A new reader's hits (path, distance) and the kind of index it searched with."""
    with Library.open(path, read_only=True) as library:
        hits = library.search(query[None], 0.6, top)
        assert library._searchable is not None
        kind = type(library._searchable[1]).__name__
    return [(hit.path, round(hit.distance, 6)) for hit in hits], kind


def brute(rows: dict[str, np.ndarray], query: np.ndarray, top: int = 3) -> list[tuple[str, float]]:
    d = {p: float(np.sqrt(((r.astype(np.float64) - query) ** 2).sum())) for p, r in rows.items()}
    near = sorted((dist, p) for p, dist in d.items() if dist <= 0.6)[:top]
    return [(p, round(dist, 6)) for dist, p in near]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """One library of COUNT faces with its snapshot and cells, made once (training is
    the slow part); each test gets a copy."""
    rows = random_faces(0, COUNT)
    path = tmp_path_factory.mktemp("template") / "library.sqlite3"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(library_module, "SNAPSHOT_MIN_FACES", 50)
        patch.setattr(library_module, "ANN_MIN_ROWS", 2_000)
        fill(path, rows)
    return path, rows


@pytest.fixture
def library(template: tuple[Path, np.ndarray], tmp_path: Path) -> tuple[Path, np.ndarray]:
    source, rows = template
    for made in source.parent.iterdir():
        shutil.copy2(made, tmp_path / made.name)
    return tmp_path / source.name, rows


def test_an_index_run_leaves_cells_that_the_next_search_uses(
    library: tuple[Path, np.ndarray],
) -> None:
    path, rows = library
    assert index_path(path).is_file()
    assert index_path(path).stat().st_mode & 0o777 == 0o600  # embeddings' codes: private
    by_path = {f"/p/{i:05d}.jpg": rows[i] for i in range(COUNT)}
    rng = np.random.default_rng(1)
    for i in rng.choice(COUNT, 25, replace=False):
        query = rows[i].astype(np.float64) + rng.normal(0, 0.002, 128)
        got, kind = nearest(path, query)
        assert kind == "FaissIndex"
        assert got == brute(by_path, query)
        assert got[0][0] == f"/p/{i:05d}.jpg"


def test_cells_follow_the_library_incrementally(
    library: tuple[Path, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    path, rows = library
    trained = read_cells(index_path(path), "", any_state=True)
    assert trained is None  # another library's id: never used
    with Library.open(path) as opened:
        generation = opened._generation()
    before = read_cells(index_path(path), generation)
    assert before is not None and before.trained_on == COUNT and len(before.keys) == COUNT
    # Five new photos, one of them next to face 7; face 11's photo removed.
    more = random_faces(2, 5)
    more[0] = rows[7] + 0.01
    caplog.set_level(logging.INFO, logger="facematch")
    fill(path, more, prefix="q")
    with Library.open(path) as opened:
        with opened.write() as db:
            db.execute("DELETE FROM files WHERE path = ?", ("/p/00011.jpg",))
        opened.refresh_snapshot()
        generation = opened._generation()
    assert "5 faces added, 0 removed" in caplog.text
    assert "0 faces added, 1 removed" in caplog.text
    after = read_cells(index_path(path), generation)
    assert after is not None
    assert after.trained_on == COUNT  # not trained again
    assert len(after.keys) == after.cells.ntotal == COUNT + 5 - 1
    got, kind = nearest(path, rows[7].astype(np.float64), top=2)
    assert kind == "FaissIndex"
    assert [p for p, _ in got] == ["/p/00007.jpg", "/q/00000.jpg"]
    got, _ = nearest(path, rows[11].astype(np.float64), top=2)
    assert "/p/00011.jpg" not in [p for p, _ in got]


def test_cells_are_trained_again_when_the_library_grew_eightfold(
    library: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = library
    monkeypatch.setattr(face_index, "REGROW", 2)  # twofold here: fewer faces to make
    fill(path, random_faces(3, COUNT - 1), prefix="q")
    with Library.open(path) as opened:
        kept = read_cells(index_path(path), opened._generation())
    assert kept is not None and kept.trained_on == COUNT  # 1.999 times: added to
    fill(path, random_faces(4, 1), prefix="r")
    with Library.open(path) as opened:
        again = read_cells(index_path(path), opened._generation())
    assert again is not None and again.trained_on == len(again.keys) == 2 * COUNT


def test_cells_of_another_state_are_not_used(
    library: tuple[Path, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    path, rows = library
    # Another program adds a photo and does not bring the cells up to date.
    with Library.open(path) as opened:
        opened.put("n" * 64, "test", [Face(FaceBox(0, 9, 9, 0), (), rows[3] + 0.001)], "test")
        with opened.write() as db:
            settings = db.execute("SELECT id FROM settings").fetchone()[0]
            db.execute(
                "INSERT INTO files (path, digest, settings, status, indexed)"
                " VALUES ('/new.jpg', ?, ?, 'ok', 0)",
                ("n" * 64, settings),
            )
    caplog.set_level(logging.INFO, logger="facematch")
    got, kind = nearest(path, rows[3].astype(np.float64), top=2)
    assert kind == "ExactIndex"
    assert "search cells are missing or out of date" in caplog.text
    assert [p for p, _ in got] == ["/p/00003.jpg", "/new.jpg"]


def test_damaged_cells_are_not_used(
    library: tuple[Path, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    path, rows = library
    data = bytearray(index_path(path).read_bytes())
    data[-100] ^= 0xFF
    index_path(path).write_bytes(bytes(data))
    got, kind = nearest(path, rows[5].astype(np.float64), top=1)
    assert kind == "ExactIndex"
    assert "are damaged; searching exactly" in caplog.text
    assert got == [("/p/00005.jpg", 0.0)]
    index_path(path).write_bytes(b"FMCELLS1" + b"\xff" * 8)
    caplog.clear()
    assert nearest(path, rows[5].astype(np.float64), top=1) == (got, "ExactIndex")
    assert "are unusable (header too long)" in caplog.text


def test_two_files_with_the_same_bytes_are_both_found(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    rows = random_faces(4, COUNT)
    digests = [f"{i:064x}" for i in range(COUNT)]
    digests[1] = digests[0]  # /p/00001.jpg is a copy of /p/00000.jpg: they share a face
    rows[1] = rows[0]
    fill(path, rows, digests=digests)
    got, kind = nearest(path, rows[0].astype(np.float64), top=5)
    assert kind == "FaissIndex"
    assert [p for p, _ in got] == ["/p/00000.jpg", "/p/00001.jpg"]


def test_a_library_that_shrinks_below_the_size_loses_its_cells(
    library: tuple[Path, np.ndarray],
) -> None:
    path, _ = library
    with Library.open(path) as opened:
        with opened.write() as db:
            db.execute("DELETE FROM files WHERE path >= '/p/01500.jpg'")
        opened.refresh_snapshot()
    assert not index_path(path).exists()


def test_keyed_index_answers_rows_never_unknown_keys() -> None:
    rows = random_faces(5, 2_000)
    keys = np.arange(2_000, dtype=np.int64)[::-1] * 7 + 3  # not in row order
    cells = trained_cells(rows, 32)
    fill_cells(cells, rows, keys)
    fill_cells(cells, rows[:1] + 0.0001, np.array([10**9]))  # a key no row has
    index = FaissIndex.keyed(rows, cells, keys, probe_share=1.0)
    exact = ExactIndex(128)
    exact.add(rows)
    queries = rows[:50].astype(np.float64) + 0.001
    got_d, got_i = index.search(queries, 3)
    want_d, want_i = exact.search(queries, 3)
    assert np.array_equal(got_i, want_i)
    np.testing.assert_allclose(got_d, want_d, rtol=1e-9)
    with pytest.raises(TypeError, match="takes no more rows"):
        index.add(rows[:1])
    with pytest.raises(ValueError, match="3 keys for 2000 rows"):
        FaissIndex.keyed(rows, cells, keys[:3])


def test_cluster_searches_the_library_cells_and_finds_the_exact_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facematch.matching import cluster
    from facematch.store.people import People

    monkeypatch.setattr(cluster, "APPROXIMATE_FROM", 2_000)
    rng = np.random.default_rng(6)
    sizes = rng.integers(1, 8, 900)
    centres = rng.normal(size=(len(sizes), 128))
    centres *= 0.75 / np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat(np.arange(len(sizes)), sizes)[:COUNT]
    rows = (centres[truth] + rng.normal(scale=0.3 / np.sqrt(128), size=(COUNT, 128))).astype(
        np.float32
    )
    path = tmp_path / "library.sqlite3"
    fill(path, rows)
    given: list[object] = []
    stored_index = Library.stored_index

    def spy(self: Library, *args: object) -> object:
        given.append(stored_index(self, *args))  # type: ignore[arg-type]
        return given[-1]

    monkeypatch.setattr(Library, "stored_index", spy)
    groups = {}
    for approximate in (True, False):
        copy = tmp_path / f"{approximate}.sqlite3"
        shutil.copy2(path, copy)
        shutil.copy2(index_path(path), index_path(copy))
        with Library.open(copy) as opened:
            faces = opened.faces()
            clusterer = cluster.FaceClusterer(approximate=approximate)
            rows_out, _ = People(opened).update(faces, clusterer)
        groups[approximate] = [(r.path, r.person) for r in rows_out]
    assert isinstance(given[0], FaissIndex)  # the library's cells, not one trained
    assert groups[True] == groups[False]
    assert len({person for _, person in groups[True] if person}) > 300
