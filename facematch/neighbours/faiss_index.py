"""``FaissIndex``: approximate search for many queries over very large galleries (the ann extra).

Faces as 4-bit product-quantization codes in k-means cells (faiss's IVF-PQ fast scan);
each answer re-measured exactly against the stored rows, so every distance it reports
is exact and only a missed neighbour can differ from ``ExactIndex``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from facematch.neighbours.exact import (
    EXTRA_CANDIDATES,
    PAIR_CHUNK,
    QUERY_BATCH,
    ExactIndex,
    as_rows,
)

Float64s = NDArray[np.float64]
Ids = NDArray[np.intp]


class FaissIndex:
    """Approximate k-nearest and radius search through faiss (the ann extra).

    The same calls and answers' shape as ``ExactIndex``. An inverted file of
    ``lists`` k-means cells holds every row as a 4-bit product-quantization code
    (faiss's IVF-PQ "fast scan": 32 bytes of codes per 128-d face, scanned with SIMD
    lookups); a query scans the ``probe_share`` of cells nearest to it and keeps its
    ``candidates`` x k best codes. Those candidates are then measured against the
    stored float32 rows (faiss's ``knn_L2sqr_by_idx``), the best k + 8 again in
    float64 from the rows and the float64 query, and ranked (ties by lower id): every
    distance reported is exact, only a true neighbour the cells and codes missed can
    be absent (recall: benchmarks/scale/ann_1m.py).

    The rows themselves are kept by an ``ExactIndex`` (``add(..., copy=False)``
    keeps the caller's float32 matrix, no second copy), which also answers while
    the index holds fewer than ``train_min`` rows (too few to train on; exact
    search is fast there anyway). The cells and codes are trained on the rows
    present when ``train_min`` is first reached (a sample of at most 64 per cell),
    and trained again from scratch whenever the rows have grown eightfold since, so
    cells never serve more than eight times the rows they were trained on.

    The defaults (3/16 of the cells, 32 candidates per neighbour asked) give recall@10
    0.994 at about 1,750 queries per CPU second on one thread at a million faces
    (docs/measurements/library.md); ``probe_share`` and ``candidates`` trade
    speed for recall and may be changed between searches. It is meant for embeddings
    of dozens of dimensions or more: in a handful, 4-bit codes tie too many rows
    (and exact search is cheap there).
    """

    def __init__(
        self,
        dim: int = 128,
        *,
        probe_share: float = 0.1875,
        candidates: int = 32,
        train_min: int = 10_000,
        lists: int | None = None,
    ) -> None:
        if not 0 < probe_share <= 1 or candidates < 1 or train_min < 1_000:
            raise ValueError(
                "probe_share must be in (0, 1], candidates positive and train_min at least "
                "1,000 (the 4-bit codes' k-means needs 624 rows to train on)"
            )
        self._faiss = _faiss()
        self.dim = dim
        self.probe_share = probe_share
        self.candidates = candidates
        self.train_min = train_min
        self.lists = lists  # None: about 4 sqrt(n), a power of two (4,096 at a million)
        self._exact = ExactIndex(dim)
        self._ivf: Any = None
        self._trained_at = 0
        self._keys: NDArray[np.int64] | None = None  # see ``keyed``
        self._keyed_rows = np.empty((0, dim), dtype=np.float32)
        self._key_rows: NDArray[np.intp] | None = None

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def _rows(self) -> NDArray[np.float32]:
        """The rows candidates are measured against: the ExactIndex's, or a keyed
        index's own (see ``keyed``)."""
        return self._exact.vectors if self._keys is None else self._keyed_rows

    @property
    def trained_on(self) -> int:
        """How many rows the cells and codes were last trained on (0: not yet trained,
        searches are exact)."""
        return self._trained_at

    def add(self, vectors: ArrayLike, *, copy: bool = True) -> Ids:
        """Append rows; returns their ids (``copy`` as for ``ExactIndex.add``)."""
        if self._keys is not None:
            raise TypeError("an index over a library's stored cells takes no more rows")
        start = len(self)
        ids = self._exact.add(vectors, copy=copy)
        size = len(self)
        if size >= self.train_min and (self._ivf is None or size >= 8 * self._trained_at):
            self._train()
        elif self._ivf is not None and size > start:
            self._ivf.add(self._exact.vectors[start:])
        return ids

    @classmethod
    def keyed(
        cls, rows: NDArray[np.float32], cells: Any, keys: NDArray[np.int64], **settings: Any
    ) -> FaissIndex:
        """An index over ``rows`` (contiguous float32, kept, not copied) whose cells and
        codes ``cells`` (from ``trained_cells``, filled by ``fill_cells``) hold each row
        under its key, ``keys[i]`` for row ``i`` (distinct), rather than its
        position: cells kept beside a library (``facematch.store.face_index``), where
        a row's position changes as photos come and go but its key does not. A key
        the cells hold that ``keys`` does not (a face since removed) is never an
        answer. Searches answer row positions as always; ``add`` is refused."""
        index = cls(rows.shape[1], **settings)
        # The rows as they are, without an ExactIndex (its norms, a second or more at ten
        # million faces, are never used: cells are always there to search).
        index._keyed_rows = np.ascontiguousarray(rows, dtype=np.float32)
        index._ivf, index._trained_at = cells, len(rows)
        ordered = np.asarray(keys, dtype=np.int64)
        if len(ordered) != len(rows):
            raise ValueError(f"{len(ordered)} keys for {len(rows)} rows")
        if len(ordered) > 1 and not bool(np.all(ordered[1:] > ordered[:-1])):
            index._key_rows = np.argsort(ordered, kind="stable")
            ordered = ordered[index._key_rows]
        index._keys = ordered
        return index

    def _rows_of(self, keys: NDArray[np.int64]) -> NDArray[np.int64]:
        """Each query's candidate keys (one row each) as rows, the keys no row has
        (and -1) as -1 at the end of the row: faiss stops reading candidates at one."""
        assert self._keys is not None
        if len(self._keys) == 0:
            return np.full_like(keys, -1)
        place = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        rows = place if self._key_rows is None else self._key_rows[place]
        rows = np.where(self._keys[place] == keys, rows, -1).astype(np.int64)
        last = np.argsort(rows < 0, axis=1, kind="stable")
        return np.ascontiguousarray(np.take_along_axis(rows, last, axis=1))

    def _train(self) -> None:
        rows = self._exact.vectors
        ivf = trained_cells(rows, self.lists)
        fill_cells(ivf, rows)
        self._ivf, self._trained_at = ivf, len(rows)

    def search(self, queries: ArrayLike, k: int) -> tuple[Float64s, Ids]:
        if k < 0:
            raise ValueError(f"k must be at least 0, not {k}")
        if self._ivf is None:
            return self._exact.search(queries, k)
        wide = as_rows(queries, self.dim, "queries")
        width = min(k, len(self))
        if width == 0 or len(wide) == 0:
            return np.empty((len(wide), width)), np.empty((len(wide), width), dtype=np.intp)
        lists = self._ivf.nlist
        self._ivf.nprobe = max(1, min(lists, math.ceil(self.probe_share * lists)))
        fetch = min(len(self), self.candidates * width)
        keep = min(fetch, width + EXTRA_CANDIDATES)
        # Queries a step at a time, so that the candidates' ids (and the float64 rows
        # gathered for the last ranking, see ``_ranked``) stay within about 8 MB.
        step = max(1, min(QUERY_BATCH, (1 << 20) // fetch))
        distances = np.empty((len(wide), width))
        ids = np.empty((len(wide), width), dtype=np.intp)
        for part in range(0, len(wide), step):
            chosen = slice(part, part + step)
            distances[chosen], ids[chosen] = self._ranked(wide[chosen], fetch, keep, width)
        return distances, ids

    def _ranked(self, wide: Float64s, fetch: int, keep: int, width: int) -> tuple[Float64s, Ids]:
        """The ``width`` nearest of each query's ``fetch`` candidates, measured exactly."""
        faiss = self._faiss
        narrow = np.ascontiguousarray(wide, dtype=np.float32)
        _, proposed = self._ivf.search(narrow, fetch)  # int64, -1 after the last found
        rows = self._rows
        if self._keys is not None:
            proposed = self._rows_of(proposed)
        near = np.empty((len(wide), keep), dtype=np.float32)
        found = np.empty((len(wide), keep), dtype=np.int64)
        faiss.knn_L2sqr_by_idx(
            faiss.swig_ptr(narrow),
            faiss.swig_ptr(rows),
            faiss.swig_ptr(proposed),
            self.dim,
            len(wide),
            len(rows),
            fetch,
            keep,
            faiss.swig_ptr(near),
            faiss.swig_ptr(found),
            fetch,
        )
        valid = found >= 0
        safe = np.where(valid, found, 0).astype(np.intp)
        exact = np.empty(safe.shape)
        columns = max(1, PAIR_CHUNK // (len(wide) * self.dim))  # float64 gathered at once
        for part in range(0, keep, columns):
            diff = rows[safe[:, part : part + columns]].astype(np.float64) - wide[:, None, :]
            exact[:, part : part + columns] = np.einsum("ijk,ijk->ij", diff, diff)
        exact[~valid] = np.inf
        order = np.lexsort((safe, exact), axis=-1)[:, :width]
        distances = np.sqrt(np.take_along_axis(exact, order, axis=1))
        return distances, np.where(np.isinf(distances), -1, np.take_along_axis(safe, order, 1))

    def range_search(self, queries: ArrayLike, radius: float) -> list[tuple[Float64s, Ids]]:
        if self._ivf is None:
            return self._exact.range_search(queries, radius)
        if math.isnan(radius):
            raise ValueError("radius must be a number")
        wide = as_rows(queries, self.dim, "queries")
        found: list[tuple[Float64s, Ids]] = [
            (np.empty(0), np.empty(0, dtype=np.intp)) for _ in range(len(wide))
        ]
        todo = np.arange(len(wide))
        k = 64
        while len(todo) and len(self):
            distances, ids = self.search(wide[todo], k)
            for row, query in enumerate(todo):
                inside = distances[row] <= radius
                found[query] = (distances[row][inside], ids[row][inside])
            # Look further only where all k found were inside (more may be).
            more = distances[:, -1] <= radius if k < len(self) else np.zeros(len(todo), bool)
            todo = todo[more]
            k *= 4
        return found


def trained_cells(rows: NDArray[np.float32], lists: int | None = None) -> Any:
    """An empty faiss IVF-PQ fast-scan index trained on ``rows`` (float32): ``lists``
    k-means cells (default about 4 sqrt(n), see ``_cells``), trained on a sample of
    at most 64 rows per cell, and 4-bit codes of two dimensions each."""
    faiss = _faiss()
    size, dim = rows.shape
    lists = max(1, min(lists or _cells(size), size // 39))  # faiss's k-means: 39 rows a cell
    sample = rows
    if size > 64 * lists:
        picked = np.random.default_rng(0).choice(size, 64 * lists, replace=False)
        sample = rows[np.sort(picked)]
    codes = dim // 2 if dim % 2 == 0 else dim  # 2 dims per 4-bit code
    ivf = faiss.index_factory(dim, f"IVF{lists},PQ{codes}x4fs")
    ivf.train(np.ascontiguousarray(sample, dtype=np.float32))
    return ivf


def fill_cells(
    cells: Any, rows: NDArray[np.float32], keys: NDArray[np.int64] | None = None
) -> None:
    """Add ``rows`` to trained cells, under ``keys`` (else under their positions
    after the rows the cells already hold), a bounded part at a time."""
    step = 1 << 18  # bounded temporary memory while encoding
    for part in range(0, len(rows), step):
        chunk = np.ascontiguousarray(rows[part : part + step], dtype=np.float32)
        if keys is None:
            cells.add(chunk)
        else:
            cells.add_with_ids(chunk, np.ascontiguousarray(keys[part : part + step], np.int64))


def cells_to_bytes(cells: Any) -> NDArray[np.uint8]:
    """Trained cells and their codes as bytes (faiss's own serialization)."""
    data: NDArray[np.uint8] = _faiss().serialize_index(cells)
    return data


def cells_from_buffer(data: NDArray[np.uint8]) -> Any:
    """Cells from ``cells_to_bytes``'s bytes (any buffer, a mapped file's too),
    read by faiss a part at a time: no second copy of the whole."""
    faiss = _faiss()
    view = np.ascontiguousarray(data, dtype=np.uint8).data.cast("B")
    done = 0

    def read(size: int) -> bytes:
        nonlocal done
        part = view[done : done + size].tobytes()
        done += len(part)
        return part

    return faiss.read_index(faiss.PyCallbackIOReader(read))


def remove_keys(cells: Any, keys: NDArray[np.int64]) -> int:
    """Remove the codes held under ``keys``; returns how many were removed."""
    if len(keys) == 0:
        return 0
    chosen = _faiss().IDSelectorBatch(np.ascontiguousarray(keys, dtype=np.int64))
    return int(cells.remove_ids(chosen))


def _cells(rows: int) -> int:
    """Inverted-file cells for ``rows`` rows: the power of two nearest 4 sqrt(rows)."""
    return 1 << max(0, round(math.log2(4 * math.sqrt(max(rows, 1)))))


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        from facematch.errors import UsageError

        raise UsageError("approximate search needs faiss: pip install 'facematch[ann]'") from None
    return faiss


def faiss_available() -> bool:
    """Whether the ann extra (faiss-cpu) is installed."""
    import importlib.util

    return importlib.util.find_spec("faiss") is not None
