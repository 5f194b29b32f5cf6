"""Search for one person over many faces, and the known gallery, against a float64 brute force."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facematch.matching.gallery import Gallery
from facematch.neighbours.exact import nearest_to_any
from facematch.neighbours.index import make_index
from facematch.records import Face, FaceBox
from facematch.store.library import Library

DIM = 128


def gallery_with_ties(n: int, seed: int) -> np.ndarray:
    """Random unit-scale rows with exact duplicates (ties), in float32 as stored."""
    rng = np.random.default_rng(seed)
    rows = (rng.normal(size=(n, DIM)) * 0.06).astype(np.float32)
    rows[n // 2 : n // 2 + 5] = rows[3]  # five copies of row 3 further on
    return rows


def brute(rows: np.ndarray, queries: np.ndarray, radius: float, k: int | None) -> list[int]:
    """Rows within radius of any query, nearest first by their nearest query, ties by row."""
    wide = rows.astype(np.float64)
    dist = np.min(
        [np.sqrt(((wide - q.astype(np.float64)) ** 2).sum(axis=1)) for q in queries], axis=0
    )
    order = [i for i in np.lexsort((np.arange(len(rows)), dist)) if dist[i] <= radius]
    return order[:k] if k is not None else order


@pytest.mark.parametrize("k", [None, 1, 7, 100])
def test_nearest_to_any_equals_brute_force(k: int | None) -> None:
    rows = gallery_with_ties(3000, seed=5)
    queries = np.stack([rows[3].astype(np.float64) + 1e-4, rows[10] + 0.01, rows[2000] - 0.02])
    index = make_index(rows)
    for radius in (0.0, 0.2, 0.7, 0.9):
        distances, found = nearest_to_any(index, queries, radius, k)
        want = brute(rows, queries, radius, k)
        assert found.tolist() == want
        wide = rows[found].astype(np.float64)
        exact = np.min([np.linalg.norm(wide - q, axis=1) for q in queries], axis=0)
        np.testing.assert_allclose(distances, exact if len(found) else [], rtol=0, atol=1e-9)


def test_a_face_exactly_at_the_tolerance_is_a_hit() -> None:
    rows = np.zeros((4, DIM), dtype=np.float32)
    rows[1, 0] = 0.5  # exactly 0.5 away from the origin, in binary
    rows[2, 0] = np.nextafter(np.float32(0.5), np.float32(1))  # just beyond
    rows[3, 1] = -0.5  # a tie with row 1
    _, found = nearest_to_any(make_index(rows), np.zeros((1, DIM)), 0.5)
    assert found.tolist() == [0, 1, 3]


def test_the_gallery_names_as_a_float64_ranking_does() -> None:
    rng = np.random.default_rng(9)
    names = [f"person {i % 40:02d}" for i in range(300)]
    embeddings = rng.normal(size=(300, DIM)) * 0.05
    embeddings[250] = embeddings[10]  # the same face under two names: a tie
    names[250] = "person 99"
    gallery = Gallery.from_faces(list(zip(names, embeddings, strict=True)))
    queries = np.concatenate([rng.normal(size=(30, DIM)) * 0.05, embeddings[[10, 11]] + 1e-3])
    for tolerance in (0.0, 0.5, 0.75):
        for all_matches in (False, True):
            nearest = gallery.nearest(queries, tolerance, all_matches)
            for query, near in zip(queries, nearest, strict=True):
                ranked = gallery.ranked(query)
                within = [m for m in ranked if m.distance <= tolerance]
                assert [m.name for m in near.within] == [
                    m.name for m in (within if all_matches else within[:1])
                ]
                assert near.best is not None and near.runner_up is not None
                assert (near.best.name, near.runner_up.name) == (ranked[0].name, ranked[1].name)
                assert near.best.distance == pytest.approx(ranked[0].distance, abs=1e-6)


def test_library_search_reports_paths_boxes_and_ids(tmp_path: Path) -> None:
    rows = gallery_with_ties(500, seed=11).astype(np.float64)
    with Library.open(tmp_path / "library.sqlite3") as library:
        for start in range(0, len(rows), 2):  # two faces per photo
            faces = [
                Face(FaceBox(i, i + 10, i + 20, i), (), rows[i])
                for i in range(start, min(start + 2, len(rows)))
            ]
            library.add(
                f"{tmp_path}/p{start:04d}.jpg",
                faces,
                digest=f"{start:064x}",
                settings="synthetic",
                engine="test",
            )
        queries = rows[[3, 77]] + [[0.001], [0.002]]
        hits = library.search(queries, tolerance=0.6, top=20)
        faces = library.faces()
    want = brute(faces.embeddings, queries, 0.6, 20)
    assert [(h.path, h.box.top) for h in hits] == [
        (faces.paths[i], int(faces.boxes[i][0])) for i in want
    ]
    assert [h.face_id for h in hits] == [int(faces.ids[i]) for i in want]
    assert hits[0].box.top in (3, 250, 251, 252, 253, 254)  # row 3 or one of its copies


def people_like_faces(people: int, each: int, seed: int) -> np.ndarray:
    """Rows in clusters spread like face embeddings (a person's rows about 0.4 apart,
    people about 0.8 apart, in a 40-d subspace of 128), float32 as stored."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(DIM, 40)))[0]
    centres = rng.normal(scale=0.09, size=(people, 40))
    faces = centres[:, None, :] + rng.normal(scale=0.045, size=(people, each, 40))
    return (faces.reshape(-1, 40) @ basis.T).astype(np.float32)


def test_the_ann_index_answers_like_the_exact_one() -> None:
    pytest.importorskip("faiss")
    from facematch.neighbours.exact import ExactIndex
    from facematch.neighbours.faiss_index import FaissIndex

    rows = people_like_faces(1000, 20, seed=21)
    queries = rows[::400].astype(np.float64) + 0.003
    approximate, exact = FaissIndex(DIM), ExactIndex(DIM)
    approximate.add(rows)
    exact.add(rows)
    assert approximate.trained_on == len(rows) == len(approximate)
    got_d, got_i = approximate.search(queries, 10)
    _, want_i = exact.search(queries, 10)
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got_i, want_i, strict=True)])
    assert recall >= 0.95
    assert np.array_equal(got_i[:, 0], want_i[:, 0])  # each query's own row, found
    # Whatever it finds, its distances are exact and nearest first.
    for d, i, q in zip(got_d, got_i, queries, strict=True):
        np.testing.assert_allclose(d, np.linalg.norm(rows[i].astype(np.float64) - q, axis=1))
        assert np.all(np.diff(d) >= 0)
    found = 0
    for (d, i), (_, wi) in zip(
        approximate.range_search(queries, 0.5), exact.range_search(queries, 0.5), strict=True
    ):
        assert set(i.tolist()) <= set(wi.tolist()) and np.all(d <= 0.5)
        found += len(i)
    assert found >= 0.95 * sum(len(wi) for _, wi in exact.range_search(queries, 0.5))


def test_a_small_ann_index_is_exact_then_trains_as_it_grows() -> None:
    pytest.importorskip("faiss")
    from facematch.neighbours.exact import ExactIndex
    from facematch.neighbours.faiss_index import FaissIndex

    rows = people_like_faces(600, 20, seed=3)
    queries = rows[::300].astype(np.float64) - 0.002
    approximate = FaissIndex(DIM, train_min=1_500)
    assert approximate.add(rows[:1000]).tolist() == list(range(1000))
    exact = ExactIndex(DIM)
    exact.add(rows[:1000])
    assert approximate.trained_on == 0  # too few rows to train on: exact answers
    for got, want in zip(approximate.search(queries, 5), exact.search(queries, 5), strict=True):
        assert np.array_equal(got, want)
    assert approximate.add(rows[1000:1500]).tolist() == list(range(1000, 1500))
    assert approximate.trained_on == 1500
    # Asked for every row, it returns those its cells hold, then -1 at infinity.
    every_d, every_i = approximate.search(queries[:2], 1500)
    assert every_i.shape == (2, 1500)
    for d, i, q in zip(every_d, every_i, queries[:2], strict=True):
        missing = i == -1
        found = int((~missing).sum())
        assert 0 < found < 1500 and np.all(np.isinf(d[missing]))
        assert not missing[:found].any()  # the rows found come first
        assert len(set(i[:found].tolist())) == found
        np.testing.assert_allclose(d[:found], np.linalg.norm(rows[i[:found]] - q, axis=1))
    approximate.add(rows[1500:6000])  # into the cells trained on 1,500 rows
    assert approximate.trained_on == 1500
    _, own = approximate.search(rows[1500:6000:500].astype(np.float64) + 1e-3, 1)
    assert own.ravel().tolist() == list(range(1500, 6000, 500))
    approximate.add(rows[6000:])  # 12,000 rows: eight times as many, trained again
    assert approximate.trained_on == 12_000
    exact.add(rows[1000:])
    _, got_i = approximate.search(queries, 10)
    _, want_i = exact.search(queries, 10)
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got_i, want_i, strict=True)])
    assert recall >= 0.95 and np.array_equal(got_i[:, 0], want_i[:, 0])
    with pytest.raises(ValueError, match="finite"):
        approximate.add(np.full((1, DIM), np.nan))
    with pytest.raises(ValueError, match="train_min"):
        FaissIndex(DIM, train_min=100)
    assert len(approximate) == len(rows)


def test_make_index_takes_faiss_only_for_many_rows_and_many_queries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("faiss")
    from facematch.neighbours import index as neighbours

    rows = people_like_faces(600, 20, seed=8)
    monkeypatch.setattr(neighbours, "ANN_MIN_ROWS", len(rows))
    few_queries = make_index(rows, expected_queries=neighbours.ANN_MIN_QUERIES - 1)
    assert isinstance(few_queries, neighbours.ExactIndex)
    few_rows = make_index(rows[:-1], expected_queries=neighbours.ANN_MIN_QUERIES)
    assert isinstance(few_rows, neighbours.ExactIndex)
    both = make_index(rows, expected_queries=neighbours.ANN_MIN_QUERIES)
    assert isinstance(both, neighbours.FaissIndex) and both.trained_on == len(rows)


def test_without_the_ann_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from facematch.errors import UsageError
    from facematch.neighbours.exact import ExactIndex
    from facematch.neighbours.faiss_index import FaissIndex

    assert isinstance(make_index(np.zeros((10, DIM)), expected_queries=10**9), ExactIndex)
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(UsageError, match=r"pip install 'facematch\[ann\]'"):
        FaissIndex(DIM)
