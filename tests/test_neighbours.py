"""ExactIndex and nearest_people against a float64 brute force (pure numpy, seeded)."""

from __future__ import annotations

import numpy as np
import pytest

from facematch.neighbours.exact import ExactIndex, nearest_people

DIM = 16


def _data(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, dim)) / np.sqrt(dim)).astype(np.float32)


def _brute(gallery: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All rows, nearest first, ties by index, distances in float64."""
    dist = np.linalg.norm(gallery.astype(np.float64) - np.asarray(query, np.float64), axis=1)
    order = np.lexsort((np.arange(len(dist)), dist))
    return dist[order], order


def _index(gallery: np.ndarray, block_rows: int, query_batch: int = 7) -> ExactIndex:
    index = ExactIndex(gallery.shape[1], block_rows=block_rows, query_batch=query_batch)
    for part in np.array_split(gallery, 5):  # several adds, through the growth path
        index.add(part)
    return index


@pytest.mark.parametrize("query_batch", [7, 256])  # 256: batches that fold the norms in
@pytest.mark.parametrize("block_rows", [1, 37, 500, 65_536])
def test_search_equals_brute_force(block_rows: int, query_batch: int) -> None:
    gallery = _data(3000 if block_rows > 1 else 300)
    queries = np.concatenate([_data(20, seed=1), gallery[:3].astype(np.float64) + 1e-3])
    index = _index(gallery, block_rows, query_batch)
    assert len(index) == len(gallery)
    for k in (1, 5, 40):
        distances, ids = index.search(queries, k)
        assert distances.shape == ids.shape == (len(queries), k)
        for q, query in enumerate(queries):
            want_d, want_i = _brute(gallery, query)
            np.testing.assert_array_equal(ids[q], want_i[:k])
            np.testing.assert_allclose(distances[q], want_d[:k], rtol=0, atol=1e-6)


@pytest.mark.parametrize("block_rows", [1, 64, 65_536])
def test_range_search_equals_brute_force(block_rows: int) -> None:
    gallery = _data(2000 if block_rows > 1 else 300, seed=2)
    queries = _data(15, seed=3)
    index = _index(gallery, block_rows)
    for radius in (0.0, 0.8, 1.1):
        found = index.range_search(queries, radius)
        assert len(found) == len(queries)
        for (distances, ids), query in zip(found, queries, strict=True):
            want_d, want_i = _brute(gallery, query)
            inside = want_d <= radius
            np.testing.assert_array_equal(ids, want_i[inside])
            np.testing.assert_allclose(distances, want_d[inside], rtol=0, atol=1e-6)


@pytest.mark.parametrize("block_rows", [4, 64, 65_536])
def test_range_pairs_with_a_limit_are_the_nearest_within_the_radius(block_rows: int) -> None:
    base = _data(400, seed=6)
    # exact ties: copies of rows, some far more than the limit
    gallery = np.concatenate([base, base[:30], np.repeat(base[:1], 12, axis=0), base[:5]])
    queries = np.concatenate([_data(9, seed=7), base[:3].astype(np.float64)])
    index = _index(gallery, block_rows)
    for radius, limit in ((0.9, 5), (1.2, 1), (0.0, 3), (0.9, None), (1.0, 0)):
        rows, ids, distances = index.range_pairs(queries, radius, limit=limit)
        assert rows.shape == ids.shape == distances.shape
        for q, query in enumerate(queries):
            want_d, want_i = _brute(gallery, query)
            inside = want_d <= radius
            want_d, want_i = want_d[inside][:limit], want_i[inside][:limit]
            np.testing.assert_array_equal(ids[rows == q], want_i)
            np.testing.assert_allclose(distances[rows == q], want_d, rtol=0, atol=1e-6)
        assert (np.diff(rows) >= 0).all()  # grouped by query, in order
    with pytest.raises(ValueError, match="limit"):
        index.range_pairs(queries, 1.0, limit=-1)


def test_duplicates_are_ordered_by_index() -> None:
    base = _data(50, seed=4)
    gallery = np.concatenate([base, base, base[:10], base])  # many exact ties
    index = _index(gallery, block_rows=33)
    query = base[5].astype(np.float64) + 0.01
    distances, ids = index.search(query, 4)
    np.testing.assert_array_equal(ids[0], [5, 55, 105, 115])
    assert len(set(distances[0].tolist())) == 1
    # 20 copies of one vector: more ties than the candidates first kept
    many = np.concatenate([_data(30, seed=5), np.repeat(base[:1], 20, axis=0)])
    distances, ids = _index(many, block_rows=8).search(base[0], 25)
    np.testing.assert_array_equal(ids[0, :20], np.arange(30, 50))
    np.testing.assert_array_equal(distances[0, :20], 0.0)
    _want_d, want_i = _brute(many, base[0])
    np.testing.assert_array_equal(ids[0], want_i[:25])
    # the same in a batch large enough to fold the norms into the product
    distances, ids = _index(many, block_rows=8, query_batch=64).search(
        np.repeat(base[:1], 20, axis=0), 25
    )
    assert (ids == want_i[:25]).all() and (distances[:, :20] == 0.0).all()
    _found_d, found_i = _index(many, block_rows=8).range_search(base[0], 0.0)[0]
    np.testing.assert_array_equal(found_i, np.arange(30, 50))


def test_points_exactly_at_the_radius_are_included() -> None:
    radius = 0.625  # float32-exact, and so is query + radius on one coordinate
    query = np.round(_data(1, seed=6)[0] * 1024) / 1024
    on_circle = np.repeat(query[None, :], DIM, axis=0).astype(np.float32)
    on_circle[np.arange(DIM), np.arange(DIM)] += radius
    outside = on_circle.copy()
    outside[:, 0] += 1 / 1024
    gallery = np.concatenate([_data(200, seed=7), on_circle, outside])
    index = _index(gallery, block_rows=50)
    distances, ids = index.range_search(query, radius)[0]
    assert set(range(200, 200 + DIM)) <= set(ids.tolist())
    assert not set(range(200 + DIM, 200 + 2 * DIM)) & set(ids.tolist())
    want_d, want_i = _brute(gallery, query)
    np.testing.assert_array_equal(ids, want_i[want_d <= radius])
    assert (distances[np.isin(ids, np.arange(200, 200 + DIM))] == radius).all()


def test_k_larger_than_n_and_zero() -> None:
    gallery = _data(10, seed=8)
    index = _index(gallery, block_rows=3)
    distances, ids = index.search(_data(4, seed=9), 25)
    assert distances.shape == ids.shape == (4, 10)
    assert sorted(ids[0].tolist()) == list(range(10))
    assert (np.diff(distances, axis=1) >= 0).all()
    distances, ids = index.search(_data(4, seed=9), 0)
    assert distances.shape == ids.shape == (4, 0)


def test_empty_index_and_no_queries() -> None:
    index = ExactIndex(DIM)
    assert len(index) == 0
    distances, ids = index.search(_data(3, seed=10), 5)
    assert distances.shape == ids.shape == (3, 0)
    assert [len(d) for d, _ in index.range_search(_data(3, seed=10), 1.0)] == [0, 0, 0]
    index.add(_data(5, seed=11))
    distances, ids = index.search(np.empty((0, DIM)), 3)
    assert distances.shape == ids.shape == (0, 3)
    assert index.range_search(np.empty((0, DIM)), 1.0) == []


def test_single_query_as_a_vector_and_bad_input() -> None:
    gallery = _data(100, seed=12)
    index = _index(gallery, block_rows=16)
    query = _data(1, seed=13)[0]
    _distances, ids = index.search(query, 3)
    assert ids.shape == (1, 3)
    np.testing.assert_array_equal(ids[0], _brute(gallery, query)[1][:3])
    assert len(index.range_search(query, 0.9)) == 1
    np.testing.assert_array_equal(index.add(query), [100])
    with pytest.raises(ValueError, match="16-d"):
        index.search(np.zeros(3), 1)
    with pytest.raises(ValueError, match="finite"):
        index.add(np.full(DIM, np.nan))
    with pytest.raises(ValueError):
        index.search(query, -1)


def _brute_people(
    gallery: np.ndarray, owners: np.ndarray, query: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    dist = np.linalg.norm(gallery.astype(np.float64) - query, axis=1)
    people = np.unique(owners)
    best = np.array([dist[owners == p].min() for p in people])
    order = np.lexsort((people, best))
    return best[order], people[order]


@pytest.mark.parametrize("k", [1, 2, 5])
def test_nearest_people_equals_brute_force(k: int) -> None:
    rng = np.random.default_rng(14)
    centres = _data(60, seed=15)
    # uneven photos per person: one person has 80 photos, near everybody's centre
    owners = np.concatenate([rng.integers(0, 60, size=600), np.full(80, 7)])
    gallery = (centres[owners] + rng.normal(scale=0.05, size=(len(owners), DIM))).astype(np.float32)
    gallery[600:] = centres[rng.integers(0, 60, size=80)]  # person 7 looks like the others
    gallery = np.concatenate([gallery, gallery[:5]])  # duplicated photos: exact ties
    owners = np.concatenate([owners, (owners[:5] + 1) % 60])
    index = _index(gallery, block_rows=100)
    queries = np.concatenate([centres[:10].astype(np.float64), _data(10, seed=16)])
    distances, people = nearest_people(index, owners, queries, k)
    assert distances.shape == people.shape == (len(queries), k)
    for q, query in enumerate(queries):
        want_d, want_p = _brute_people(gallery, owners, query)
        np.testing.assert_array_equal(people[q], want_p[:k])
        np.testing.assert_allclose(distances[q], want_d[:k], rtol=0, atol=1e-6)


def test_nearest_people_with_few_people() -> None:
    gallery = _data(9, seed=17)
    owners = np.array([2, 2, 2, 0, 0, 0, 0, 2, 2])  # person 1 has no photos
    index = _index(gallery, block_rows=2)
    distances, people = nearest_people(index, owners, _data(3, seed=18), k=5)
    assert people.shape == distances.shape == (3, 2)
    assert sorted(people[0].tolist()) == [0, 2]
    _distances, people = nearest_people(ExactIndex(DIM), np.empty(0, np.intp), np.zeros(DIM))
    assert people.shape == (1, 0)
    with pytest.raises(ValueError, match="one person per row"):
        nearest_people(index, owners[:3], np.zeros(DIM))


# --- the screen: large indexes of vectors that fill only part of their space ----------


def _low_rank(n: int, seed: int, dim: int = 64, rank: int = 20) -> np.ndarray:
    """Vectors near a ``rank``-d subspace, as face embeddings are, plus a few far off it
    (so that some bounds are loose: the search must still measure what matters)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(np.random.default_rng(99).normal(size=(dim, dim)))[0][:, :rank]
    rows = rng.normal(size=(n, rank)) @ basis.T / np.sqrt(rank) + 0.3
    rows += rng.normal(scale=1e-6, size=rows.shape)
    rows[::97] += rng.normal(scale=0.3, size=rows[::97].shape)  # off the subspace
    return rows.astype(np.float32)


def _screened(gallery: np.ndarray, block_rows: int = 256, query_batch: int = 7) -> ExactIndex:
    index = ExactIndex(
        gallery.shape[1],
        block_rows=block_rows,
        query_batch=query_batch,
        screen_min_rows=500,
        screen_after_queries=0,
    )
    for part in np.array_split(gallery, 4):  # screened from the first part; adds extend it
        index.add(part)
        index.search(part[:1], 1)
    return index


def _queries(gallery: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    near = gallery[:6].astype(np.float64) + rng.normal(scale=0.02, size=(6, gallery.shape[1]))
    off = _low_rank(6, seed + 1).astype(np.float64) + rng.normal(scale=0.2, size=(6, 64))
    return np.concatenate([near, off, gallery[96:99].astype(np.float64)])


@pytest.mark.parametrize("query_batch", [7, 256])
def test_a_screened_index_answers_as_brute_force(query_batch: int) -> None:
    gallery = _low_rank(3000, seed=1)
    gallery = np.concatenate([gallery, gallery[:40]])  # exact ties
    index = _screened(gallery, query_batch=query_batch)
    assert index.subspace is not None
    # 20 dimensions, and a little for the rows off the subspace, in multiples of 8
    assert index.subspace.basis.shape in ((64, 24), (64, 32))
    queries = _queries(gallery, seed=2)
    for k in (1, 5, 40):
        distances, ids = index.search(queries, k)
        for q, query in enumerate(queries):
            want_d, want_i = _brute(gallery, query)
            np.testing.assert_array_equal(ids[q], want_i[:k])
            np.testing.assert_allclose(distances[q], want_d[:k], rtol=0, atol=1e-6)
    for radius, limit in ((0.5, None), (0.8, 3), (1.0, 1), (0.0, None)):
        rows, ids, distances = index.range_pairs(queries, radius, limit=limit)
        for q, query in enumerate(queries):
            want_d, want_i = _brute(gallery, query)
            inside = want_d <= radius
            np.testing.assert_array_equal(ids[rows == q], want_i[inside][:limit])
            np.testing.assert_allclose(
                distances[rows == q], want_d[inside][:limit], rtol=0, atol=1e-6
            )


def test_a_screened_index_includes_points_exactly_at_the_radius() -> None:
    radius = 0.625
    gallery = np.round(_low_rank(1000, seed=3) * 1024) / 1024
    query = gallery[10].astype(np.float64)
    on_circle = np.repeat(query[None, :], 64, axis=0).astype(np.float32)
    on_circle[np.arange(64), np.arange(64)] += radius  # off the subspace: loose bounds
    outside = on_circle.copy()
    outside[:, 0] += 1 / 1024
    gallery = np.concatenate([gallery, on_circle, outside]).astype(np.float32)
    index = _screened(gallery)
    assert index.subspace is not None
    _distances, ids = index.range_search(query, radius)[0]
    assert set(range(1000, 1064)) <= set(ids.tolist())
    assert not set(range(1064, 1128)) & set(ids.tolist())
    want_d, want_i = _brute(gallery, query)
    np.testing.assert_array_equal(ids, want_i[want_d <= radius])


def test_data_that_fills_its_space_is_not_screened() -> None:
    index = ExactIndex(DIM, screen_min_rows=100, screen_after_queries=0)
    index.add(_data(1000, seed=8))
    index.search(_data(2, seed=9), 3)
    assert index.subspace is None and index.fit_screen() is None


def test_loose_bounds_never_hide_a_nearer_row() -> None:
    """Rows whose bounds are lowest but whose distances are not: a search with a limit
    must measure before it cuts, and top-k must look further than its first candidates."""
    rng = np.random.default_rng(10)
    bulk = np.zeros((40_000, 64))
    bulk[:, :8] = rng.normal(size=(40_000, 8)) + 3.0  # far from the query, in 8 dimensions
    query = np.zeros(64)
    query[8] = 0.5  # off the subspace
    loose = np.zeros((6, 64))
    loose[np.arange(6), 9 + np.arange(6)] = 0.5  # bound about 0, distance 0.707
    tight = np.zeros((10, 64))
    tight[np.arange(10), np.arange(10) % 8] = 0.3  # bound = distance = 0.583
    gallery = np.concatenate([bulk, loose, tight]).astype(np.float32)
    index = ExactIndex(64, screen_min_rows=1000, screen_after_queries=0)
    index.add(gallery)
    subspace = index.fit_screen()
    assert subspace is not None and subspace.basis.shape == (64, 8)
    want_d, want_i = _brute(gallery, query)
    _rows, ids, _distances = index.range_pairs(query, 1.0, limit=3)
    np.testing.assert_array_equal(ids, want_i[:3])
    assert set(ids.tolist()) <= set(range(40_006, 40_016))
    distances, ids = index.search(query, 12)
    np.testing.assert_array_equal(ids[0], want_i[:12])
    np.testing.assert_allclose(distances[0], want_d[:12], rtol=0, atol=1e-6)


def test_an_index_screens_only_once_it_pays() -> None:
    gallery = _low_rank(1000, seed=11)
    index = ExactIndex(64, screen_min_rows=500, screen_after_queries=30)
    index.add(gallery)
    index.search(gallery[:20], 1)  # 20 queries: not yet
    assert index.subspace is None
    index.range_search(gallery[:10], 0.1)  # 30
    assert index.subspace is not None
    small = ExactIndex(64, screen_min_rows=5000, screen_after_queries=0)
    small.add(gallery)
    small.search(gallery, 1)
    assert small.subspace is None and small.fit_screen() is None
