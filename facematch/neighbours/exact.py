"""Exact nearest-neighbour search over face embeddings: the index everything shares.

``ExactIndex`` keeps the embeddings as one contiguous float32 matrix (half the memory of
float64: a million 128-d faces are 512 MB) with their squared norms, and answers top-k
and radius queries by brute force through BLAS::

    index = ExactIndex(128)
    index.add(embeddings)                      # (n, 128), any float dtype
    distances, ids = index.search(faces, k=5)  # (m, min(k, n)) each, nearest first
    within = index.range_search(faces, 0.6)    # m pairs (distances, ids), nearest first

Answers are exact: candidates are chosen in float32 with a safety margin that bounds
float32 rounding, then their distances are recomputed in float64 (from the stored float32
rows and the float64 query) and ranked again, so the ids, their order (ties by lower id)
and the distances are those of a float64 brute force over the stored rows, and a point
exactly at the radius is included.

Large indexes screen first. Face embeddings fill only part of their space (dlib's
128-d descriptors lie within about 78 dimensions: on lfw-dev the other 50 directions
hold 4 millionths of the variance), so an index of ``SCREEN_MIN_ROWS`` rows or more,
once asked ``SCREEN_AFTER_QUERIES`` queries (when fitting starts to pay), fits that
subspace (``Subspace.fit``) and keeps each row's projection on it plus the length of
what is left. From those, one narrower matrix product gives every row a lower bound
of its distance (``Subspace``'s docstring says why it is one), which is all the
search needs to set rows aside; only the few rows it keeps are measured in full. The
answers are the same as without the screen (a bound can only keep too many rows,
never too few); on data with no such subspace the index does not screen.

``nearest_people`` turns photo-level answers into person-level ones for a gallery with
several photos per person (a person's distance is that of their nearest photo).

Threads: the matrix products use numpy's BLAS with however many threads it is set to
(``OPENBLAS_NUM_THREADS`` and the like, or threadpoolctl around the call).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

Float64s = NDArray[np.float64]
Ids = NDArray[np.intp]

BLOCK_ROWS = 16_384
"""Gallery rows per matrix product; a block's distances for a query batch are batch x this."""

QUERY_BATCH = 256
"""Queries per matrix product."""

SCREEN_MIN_ROWS = 50_000
"""Indexes of at least this many rows fit a subspace and screen with it (when one fits)."""

SCREEN_AFTER_QUERIES = 2_048
"""Queries an index answers before it screens: fitting and screening a million rows
costs about a second, what screening saves about 2,000 queries (measured)."""

SCREEN_LEFT_OUT = 1e-5
"""The share of the variance a screening subspace may leave out."""

_SCREEN_SAMPLE = 65_536  # rows the subspace is fitted on (evenly spaced through the index)
_SCREEN_STEP = 8  # subspace dimensions come in multiples of this (matrix-product friendly)
_SCREEN_MAX_SHARE = 0.75  # a subspace wider than this share of the dimensions does not pay

_UNIT = 2.0**-24  # unit roundoff of float32
PAIR_CHUNK = 1 << 21  # float64 elements gathered at once when recomputing distances
_FOLD_MIN_QUERIES = 16  # top-k batches at least this large fold the norms into the product
EXTRA_CANDIDATES = 8  # float32 candidates kept beyond k, before checking that they are enough


class Subspace:
    """Where a set of vectors lies: a centre and an orthonormal basis (dim, r).

    A vector x becomes ``[P(x - c), e, |x - c|^2, 1]`` (its screen row: projection,
    the length e of the residual left outside the subspace, squared length) and a
    query q becomes ``[-2 P(q - c), -2 e_q, 1, |q - c|^2]``; their product is
    ``|x - q|^2 - 2 (r_x . r_q - e_x e_q)`` with r the residuals, and since
    ``r_x . r_q <= e_x e_q`` (Cauchy-Schwarz) it is a lower bound of the squared
    distance, equal to it when either residual is zero or they point the same way.
    Any centre and basis give a bound; one that fits the data gives a tight one.
    """

    def __init__(self, centre: ArrayLike, basis: ArrayLike) -> None:
        self.centre = np.ascontiguousarray(centre, dtype=np.float64)
        self.basis = np.ascontiguousarray(basis, dtype=np.float64)
        if self.centre.ndim != 1 or self.basis.shape[:1] != self.centre.shape:
            raise ValueError("a subspace needs a (dim,) centre and a (dim, r) basis")
        if not (np.isfinite(self.centre).all() and np.isfinite(self.basis).all()):
            raise ValueError("a subspace must be finite")
        gram = self.basis.T @ self.basis
        if not np.allclose(gram, np.eye(len(gram)), atol=1e-9):
            raise ValueError("a subspace's basis must be orthonormal")

    @property
    def width(self) -> int:
        """Columns of a screen row: the dimensions plus 3."""
        return int(self.basis.shape[1]) + 3

    @classmethod
    def fit(cls, vectors: ArrayLike) -> Subspace | None:
        """The subspace holding all but ``SCREEN_LEFT_OUT`` of the vectors' variance.

        Fitted on at most ``_SCREEN_SAMPLE`` evenly spaced rows (deterministic); None
        when the data fills too much of its space for a screen to pay.
        """
        rows = np.asarray(vectors)
        if rows.ndim != 2 or len(rows) < 2:
            return None
        dim = rows.shape[1]
        sample = rows[:: max(1, len(rows) // _SCREEN_SAMPLE)].astype(np.float64)
        centre = sample.mean(axis=0)
        values, vectors_ = np.linalg.eigh(np.cov(sample - centre, rowvar=False))
        values, vectors_ = values[::-1].clip(0.0), vectors_[:, ::-1]
        total = float(values.sum())
        if not math.isfinite(total) or total <= 0.0:
            return None
        left = total - np.cumsum(values)
        needed = int(np.argmax(left <= SCREEN_LEFT_OUT * total)) + 1
        wanted = min(dim, -(-needed // _SCREEN_STEP) * _SCREEN_STEP)
        if wanted > _SCREEN_MAX_SHARE * dim:
            return None
        return cls(centre, vectors_[:, :wanted])

    def screen_rows(self, vectors: ArrayLike) -> NDArray[np.float32]:
        """The screen rows of stored vectors, (m, width) float32 (computed in float64)."""
        rows = np.asarray(vectors)
        out = np.empty((len(rows), self.width), dtype=np.float32)
        dims = self.basis.shape[1]
        for start in range(0, len(rows), BLOCK_ROWS):
            block = rows[start : start + BLOCK_ROWS].astype(np.float64) - self.centre
            projected = block @ self.basis
            sq = np.einsum("ij,ij->i", block, block)
            left = np.sqrt(np.maximum(sq - np.einsum("ij,ij->i", projected, projected), 0.0))
            part = out[start : start + BLOCK_ROWS]
            part[:, :dims] = projected
            part[:, dims] = left
            part[:, dims + 1] = sq
            part[:, dims + 2] = 1.0
        return out

    def query_rows(self, wide: Float64s) -> tuple[NDArray[np.float32], Float64s]:
        """Queries as screen-query rows (m, width) float32, and their centred lengths."""
        centred = wide - self.centre
        projected = centred @ self.basis
        sq = np.einsum("ij,ij->i", centred, centred)
        left = np.sqrt(np.maximum(sq - np.einsum("ij,ij->i", projected, projected), 0.0))
        dims = self.basis.shape[1]
        out = np.empty((len(wide), self.width), dtype=np.float32)
        out[:, :dims] = -2.0 * projected
        out[:, dims] = -2.0 * left
        out[:, dims + 1] = 1.0
        out[:, dims + 2] = sq
        return out, np.sqrt(sq)


class NeighbourIndex(Protocol):
    """What every nearest-neighbour index offers: ``ExactIndex``, and faiss in the ann extra."""

    def __len__(self) -> int: ...

    def add(self, vectors: ArrayLike) -> Ids: ...

    def search(self, queries: ArrayLike, k: int) -> tuple[Float64s, Ids]: ...

    def range_search(self, queries: ArrayLike, radius: float) -> list[tuple[Float64s, Ids]]: ...


def nearest_to_any(
    index: NeighbourIndex, queries: ArrayLike, radius: float, k: int | None = None
) -> tuple[Float64s, Ids]:
    """Rows within ``radius`` of any of the queries (one person's faces), nearest first.

    A row's distance is that to its nearest query; ties by lower row; ``k`` keeps
    at most that many. Returns (distances, rows), each 1-d.
    """
    wide = np.asarray(queries, dtype=np.float64).reshape(-1, np.shape(queries)[-1])
    if k is None:
        found = index.range_search(wide, radius)
        distances = np.concatenate([d for d, _ in found] or [np.empty(0)])
        rows = np.concatenate([r for _, r in found] or [np.empty(0, dtype=np.intp)])
    else:
        # The k nearest to any query are among the k nearest to each.
        top_d, top_r = index.search(wide, k)
        keep = top_d.ravel() <= radius
        distances, rows = top_d.ravel()[keep], top_r.ravel()[keep]
    order = np.lexsort((rows, distances))
    distances, rows = distances[order], rows[order]
    _, first = np.unique(rows, return_index=True)
    first.sort()
    distances, rows = distances[first], rows[first].astype(np.intp)
    if k is not None:
        distances, rows = distances[:k], rows[:k]
    return distances, rows


class ExactIndex:
    """Brute-force exact k-nearest and radius search in Euclidean distance.

    Ids are the rows in the order they were added, from 0. ``block_rows`` and
    ``query_batch`` bound the memory of one step (``query_batch * block_rows`` float32
    distances); they change nothing in the answers, and neither do
    ``screen_min_rows`` and ``screen_after_queries`` (from how many rows, and after
    how many queries, the index screens; see the module's docstring).
    """

    def __init__(
        self,
        dim: int = 128,
        *,
        block_rows: int = BLOCK_ROWS,
        query_batch: int = QUERY_BATCH,
        screen_min_rows: int | None = None,
        screen_after_queries: int | None = None,
    ) -> None:
        if dim < 1 or block_rows < 1 or query_batch < 1:
            raise ValueError("dim, block_rows and query_batch must be positive")
        self.dim = dim
        self.block_rows = block_rows
        self.query_batch = query_batch
        # None: the module's constants as they are now (a benchmark may change them)
        self.screen_min_rows = SCREEN_MIN_ROWS if screen_min_rows is None else screen_min_rows
        self.screen_after_queries = (
            SCREEN_AFTER_QUERIES if screen_after_queries is None else screen_after_queries
        )
        # Radius searches return few hits per distance computed, so they take wider query
        # batches against narrower blocks (same memory per step): a better-shaped matrix
        # product (measured 4.4 -> 2.9 ns per pair on one thread).
        self.range_batch = 4 * query_batch
        self.range_block_rows = max(1, block_rows // 4)
        self._data = np.empty((0, dim), dtype=np.float32)
        self._sqnorms = np.empty(0, dtype=np.float32)
        self._size = 0
        self._max_norm = 0.0
        # The screen (once there is one): the subspace, each row's screen row, and the
        # largest centred length. Without one, ``_sqnorms`` and ``_max_norm`` serve.
        self._subspace: Subspace | None = None
        self._screen = np.empty((0, 0), dtype=np.float32)
        self._screen_norm = 0.0
        self._screen_fitted_at = 0  # rows when a fit last found no subspace
        self._asked = 0  # queries answered so far

    def __len__(self) -> int:
        return self._size

    @property
    def vectors(self) -> NDArray[np.float32]:
        """The stored rows, (n, dim) float32 (a read-only view)."""
        view = self._data[: self._size]
        view.flags.writeable = False
        return view

    @property
    def subspace(self) -> Subspace | None:
        """The subspace the index screens with, if it screens."""
        return self._subspace

    def fit_screen(self) -> Subspace | None:
        """Screen now, however few queries the index has answered, if it is large
        enough and its rows lie in a subspace; the subspace, or None."""
        self._prepare(asked=self.screen_after_queries)
        return self._subspace

    def add(self, vectors: ArrayLike, *, copy: bool = True) -> Ids:
        """Append rows (one vector or an (m, dim) array); returns their ids.

        ``copy=False`` lets a first add of a contiguous float32 matrix keep that very
        array (no second copy of a million faces); the caller must not change it then.
        """
        rows = np.asarray(vectors)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(f"vectors must be {self.dim}-d vectors, not shape {rows.shape}")
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        count = len(rows)
        start = self._size
        if self._subspace is not None:
            fresh = self._subspace.screen_rows(rows)
            sq = fresh[:, -2].astype(np.float64)
        else:
            sq = np.empty(count, dtype=np.float64)
            for part in range(0, count, BLOCK_ROWS):  # in float64, a block at a time
                block = rows[part : part + BLOCK_ROWS]
                sq[part : part + BLOCK_ROWS] = np.einsum("ij,ij->i", block, block, dtype=np.float64)
        # A row holds a NaN or an infinity exactly when its float64 sum of squares does
        # (float32 values squared cannot overflow float64).
        if not np.isfinite(sq).all():
            raise ValueError("vectors must be finite (no NaN or infinity)")
        if start == 0 and not copy:
            self._data = rows
        else:
            self._data = _grown(self._data, start, count)
            self._data[start : start + count] = rows
        if self._subspace is not None:
            self._screen = _grown(self._screen, start, count)
            self._screen[start : start + count] = fresh
            if count:
                self._screen_norm = max(self._screen_norm, math.sqrt(float(sq.max())))
        else:
            self._sqnorms = _grown(self._sqnorms, start, count)
            self._sqnorms[start : start + count] = sq
            if count:
                self._max_norm = max(self._max_norm, math.sqrt(float(sq.max())))
        self._size = start + count
        return np.arange(start, start + count, dtype=np.intp)

    def search(self, queries: ArrayLike, k: int) -> tuple[Float64s, Ids]:
        """The k nearest rows to each query: distances and ids, each (m, min(k, n)).

        Nearest first, ties by lower id. A single 1-d query counts as one row (m = 1).
        """
        if k < 0:
            raise ValueError(f"k must be at least 0, not {k}")
        wide = self._rows(queries, "queries")
        width = min(k, self._size)
        distances = np.empty((len(wide), width), dtype=np.float64)
        ids = np.empty((len(wide), width), dtype=np.intp)
        if width:
            self._prepare(asked=len(wide))
            for start in range(0, len(wide), self.query_batch):
                part = slice(start, start + self.query_batch)
                _, found, near = self._range_nearest(wide[part], None, width, 0)
                distances[part], ids[part] = near.reshape(-1, width), found.reshape(-1, width)
        return distances, ids

    def range_search(self, queries: ArrayLike, radius: float) -> list[tuple[Float64s, Ids]]:
        """Every row within ``radius`` (inclusive) of each query, nearest first, ties by id.

        One (distances, ids) pair per query; a single 1-d query counts as one row.
        """
        rows, ids, distances = self.range_pairs(queries, radius)
        bounds = np.searchsorted(rows, np.arange(len(self._rows(queries, "queries")) + 1))
        return [
            (distances[bounds[i] : bounds[i + 1]], ids[bounds[i] : bounds[i + 1]])
            for i in range(len(bounds) - 1)
        ]

    def range_pairs(
        self, queries: ArrayLike, radius: float, *, limit: int | None = None
    ) -> tuple[Ids, Ids, Float64s]:
        """Every (query, row) pair within ``radius`` (inclusive), as three flat arrays.

        Returns the query's position, the row's id and their distance, sorted by query,
        then distance, then id: ``range_search`` without an array pair per query, for
        callers that want millions of pairs (a clustering neighbour graph). ``limit``
        keeps only each query's ``limit`` nearest (ties by lower id), and checks in float64
        only the candidates that can be among them, so a dense collection costs no more
        than a sparse one.
        """
        if math.isnan(radius):
            raise ValueError("radius must be a number")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be at least 0, not {limit}")
        wide = self._rows(queries, "queries")
        self._prepare(asked=len(wide))
        parts = [
            self._range_batch(wide[start : start + self.range_batch], radius, limit, start)
            for start in range(0, len(wide), self.range_batch)
        ]
        if not parts:
            return _no_pairs()
        rows, ids, distances = (np.concatenate(column) for column in zip(*parts, strict=True))
        return rows, ids, distances

    def as_queries(self, queries: ArrayLike) -> Float64s:
        """Queries as a contiguous (m, dim) float64 array (a 1-d vector is one row)."""
        return self._rows(queries, "queries")

    # --- internals -------------------------------------------------------------------

    def _prepare(self, asked: int) -> None:
        """Fit a subspace and screen the rows once it pays: for an index of at least
        ``screen_min_rows`` that has been asked ``screen_after_queries`` queries,
        counting the ``asked`` about to be answered.

        A fit that finds none is tried again only after the index has doubled.
        """
        self._asked += asked
        if self._subspace is not None or self._size < self.screen_min_rows:
            return
        if self._asked < self.screen_after_queries:
            return
        if self._screen_fitted_at and self._size < 2 * self._screen_fitted_at:
            return
        subspace = Subspace.fit(self._data[: self._size])
        if subspace is None:
            self._screen_fitted_at = self._size
            return
        screen = subspace.screen_rows(self._data[: self._size])
        self._subspace, self._screen = subspace, screen
        self._screen_norm = math.sqrt(float(screen[:, -2].max()))
        self._sqnorms = np.empty(0, dtype=np.float32)  # the screen serves from now on

    def _rows(self, vectors: ArrayLike, what: str) -> Float64s:
        rows = np.asarray(vectors, dtype=np.float64)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(f"{what} must be {self.dim}-d vectors, not shape {rows.shape}")
        if not np.isfinite(rows).all():
            raise ValueError(f"{what} must be finite (no NaN or infinity)")
        return np.ascontiguousarray(rows)

    def _margin(self, norms: Float64s) -> Float64s:
        """Per query, a bound on |float32 squared distance - float64 squared distance|.

        ``norms``: the queries' lengths (centred ones when screening). The float32
        expansion |q|^2 - 2 q.g + |g|^2 errs by at most about (dim + 4) units of
        roundoff times (|q| + |g|)^2; the query's own rounding to float32 adds less
        than 4 units times |q| (|q| + |g|). Doubled for safety; still ~1e-4 for unit
        norms. A screen row is narrower than dim + 4 and rounded once from float64,
        so the same bound holds for its value (then a lower bound, not an estimate).
        """
        largest = self._screen_norm if self._subspace is not None else self._max_norm
        spread = (norms + largest) ** 2
        margin: Float64s = 2.0 * _UNIT * ((self.dim + 4) * spread + 4 * norms * spread)
        return margin + 1e-30

    def _distances(
        self, wide: Float64s
    ) -> tuple[Iterator[tuple[int, NDArray[np.float32]]], Float64s]:
        """Blocks of float32 squared distances (or their lower bounds, when screening)
        from the queries to the rows, and the margin that bounds their rounding."""
        if self._subspace is not None:
            queries, norms = self._subspace.query_rows(wide)
            return self._screen_blocks(queries), self._margin(norms)
        norms = np.sqrt(np.einsum("ij,ij->i", wide, wide))
        narrow = wide.astype(np.float32)
        # Folding the norms into the product pays for batches; for a few queries
        # the product is a pass over the matrix, and widening each block a second one.
        if len(wide) >= _FOLD_MIN_QUERIES:
            return self._folded_blocks(narrow), self._margin(norms)
        return self._blocks(narrow), self._margin(norms)

    def _blocks(self, narrow: NDArray[np.float32]) -> Iterator[tuple[int, NDArray[np.float32]]]:
        """Yield (first id, float32 squared distances of the batch to that block).

        Values may be a little below zero for a row equal to a query (rounding); the
        margin bounds that like any other rounding. Scaling the queries by -2 (exact
        in binary) saves a pass over each block.
        """
        q_sq = np.einsum("ij,ij->i", narrow, narrow)[:, None]
        scaled: NDArray[np.float32] = narrow * np.float32(-2.0)
        for start in range(0, self._size, self.block_rows):
            stop = min(start + self.block_rows, self._size)
            block: NDArray[np.float32] = scaled @ self._data[start:stop].T
            block += q_sq
            block += self._sqnorms[start:stop]
            yield start, block

    def _folded_blocks(
        self, narrow: NDArray[np.float32]
    ) -> Iterator[tuple[int, NDArray[np.float32]]]:
        """What ``_blocks`` yields, with both squared norms inside the matrix product.

        Rows ``[g, |g|^2, 1]`` times queries ``[-2q, 1, |q|^2]`` give the squared distance
        in one product (the two additions over each block cost a fifth of the time
        otherwise). Each block of rows is widened into one reused buffer (a copy that
        costs a few hundredths of the product), so the index keeps no second matrix.
        """
        width = self.dim + 2
        scaled = np.empty((len(narrow), width), dtype=np.float32)
        np.multiply(narrow, np.float32(-2.0), out=scaled[:, : self.dim])
        scaled[:, self.dim] = 1.0
        scaled[:, self.dim + 1] = np.einsum("ij,ij->i", narrow, narrow)
        step = min(self.range_block_rows, self._size)
        folded = np.empty((step, width), dtype=np.float32)
        folded[:, self.dim + 1] = 1.0
        for start, block in self._products(len(narrow), step):
            stop = start + block.shape[1]
            rows = folded[: stop - start]
            rows[:, : self.dim] = self._data[start:stop]
            rows[:, self.dim] = self._sqnorms[start:stop]
            np.matmul(scaled, rows.T, out=block)
            yield start, block

    def _screen_blocks(
        self, queries: NDArray[np.float32]
    ) -> Iterator[tuple[int, NDArray[np.float32]]]:
        """Lower bounds of the squared distances, a block of screen rows at a time."""
        step = min(self.range_block_rows, self._size)
        for start, block in self._products(len(queries), step):
            np.matmul(queries, self._screen[start : start + block.shape[1]].T, out=block)
            yield start, block

    def _products(self, count: int, step: int) -> Iterator[tuple[int, NDArray[np.float32]]]:
        """(first id, an empty count x block buffer) for each block of ``step`` rows.

        One buffer serves every full block: a fresh 16 MB array per block costs page
        faults (measured: about a tenth of the search).
        """
        buffer = np.empty((count, step), dtype=np.float32)
        for start in range(0, self._size, step):
            stop = min(start + step, self._size)
            if stop - start < step:
                yield start, np.empty((count, stop - start), dtype=np.float32)
            else:
                yield start, buffer

    def _exact_sq(self, wide: Float64s, rows: Ids, cols: Ids) -> Float64s:
        """Float64 squared distances between queries ``wide[rows]`` and stored ``cols``."""
        out = np.empty(len(rows), dtype=np.float64)
        step = max(1, PAIR_CHUNK // self.dim)
        for start in range(0, len(rows), step):
            part = slice(start, start + step)
            diff = self._data[cols[part]].astype(np.float64)
            diff -= wide[rows[part]]
            out[part] = np.einsum("ij,ij->i", diff, diff)
        return out

    def _float32_top(
        self, wide: Float64s, keep: int, radius: float | None = None
    ) -> tuple[Float64s, Ids, Float64s]:
        """The ``keep`` smallest float32 squared distances (or bounds) per query
        (unordered), their ids, and the queries' margins.

        Once every query holds ``keep`` candidates, a block only contributes the
        entries at or below a query's current worst candidate: one comparison pass
        and a scan for the few hits, instead of a partition of the whole block.
        With a ``radius``, only rows that can be within it are candidates; a query
        with fewer than ``keep`` has the rest as inf (id 0).
        """
        count = len(wide)
        best_sq = np.empty((count, 0), dtype=np.float32)
        best_ids = np.empty((count, 0), dtype=np.intp)
        blocks, margin = self._distances(wide)
        cap = None if radius is None else self._threshold(radius, margin)[:, None]
        limit: NDArray[np.float32] | None = cap
        for start, block in blocks:
            if limit is None:
                block_ids = np.arange(start, start + block.shape[1], dtype=np.intp)
                if block.shape[1] > keep:
                    part = np.argpartition(block, keep - 1, axis=1)[:, :keep]
                    block = np.take_along_axis(block, part, axis=1)
                    block_ids = block_ids[part]
                else:
                    block_ids = np.broadcast_to(block_ids, block.shape)
            else:
                rows, cols = _hits(block <= limit)
                if not len(rows):
                    continue
                per_row = np.bincount(rows, minlength=count)
                place = np.arange(len(rows)) - (np.cumsum(per_row) - per_row)[rows]
                found = np.full((count, int(per_row.max())), np.inf, dtype=np.float32)
                block_ids = np.zeros(found.shape, dtype=np.intp)
                found[rows, place] = block[rows, cols]
                block_ids[rows, place] = cols + start
                block = found
            best_sq = np.concatenate([best_sq, block], axis=1)
            best_ids = np.concatenate([best_ids, block_ids], axis=1)
            # Cut back to ``keep`` only once twice as many have gathered: a partition per
            # block cost more than the hits a tighter limit would have saved.
            if best_sq.shape[1] >= 2 * keep or (limit is None and best_sq.shape[1] > keep):
                best_sq, best_ids = _smallest(best_sq, best_ids, keep)
            if best_sq.shape[1] == keep:
                limit = best_sq.max(axis=1, keepdims=True)
                if cap is not None:
                    limit = np.minimum(limit, cap)
        if best_sq.shape[1] > keep:
            best_sq, best_ids = _smallest(best_sq, best_ids, keep)
        return np.maximum(best_sq, 0.0).astype(np.float64), best_ids, margin

    def _threshold(self, radius: float, margin: Float64s) -> NDArray[np.float32]:
        """Per query, the float32 value beyond which a row cannot be within ``radius``."""
        threshold = radius * radius + margin + 4 * _UNIT * radius * radius
        return threshold.astype(np.float32)

    def _range_nearest(
        self, wide: Float64s, radius: float | None, limit: int, offset: int
    ) -> tuple[Ids, Ids, Float64s]:
        """``_range_batch`` with a limit: each query's ``limit`` nearest within ``radius``
        (``search``'s top k when the radius is None), as ``_range_batch`` returns them.

        A top-k search whose candidates are capped at the radius: rows beyond a query's
        current worst candidate are passed over as the blocks go by, so a dense
        collection (hundreds of rows within the radius) costs little more than a
        sparse one. A query whose kept candidates were all used and might hide a
        nearer row is searched again with twice as many, as in ``search``.
        """
        count = len(wide)
        keep = min(self._size, limit + max(EXTRA_CANDIDATES, limit // 4))
        found_rows: list[Ids] = []
        found_ids: list[Ids] = []
        found_dist: list[Float64s] = []
        todo = np.arange(count)
        while len(todo):
            cand_sq, cand_ids, margin = self._float32_top(wide[todo], keep, radius)
            real = np.isfinite(cand_sq)
            rows, slots = np.nonzero(real)
            cols = cand_ids[rows, slots]
            dist = np.sqrt(self._exact_sq(wide[todo], rows, cols))
            if radius is not None:
                inside = dist <= radius
                rows, cols, dist = rows[inside], cols[inside], dist[inside]
            order = np.lexsort((cols, dist, rows))
            rows, cols, dist = rows[order], cols[order], dist[order]
            rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
            kept = rank < limit
            rows, cols, dist = rows[kept], cols[kept], dist[kept]
            # A query is answered when its candidates were not all used (every row that
            # can be within the radius was kept), or when its limit-th is nearer than
            # any row left out can be: a left-out row's float32 value (or bound) is >=
            # the largest kept, so its exact value is at least that minus the margin.
            full = real.sum(axis=1) == keep
            within = np.bincount(rows, minlength=len(todo))
            last = np.full(len(todo), np.inf)
            has_limit = within >= limit
            ends = np.searchsorted(rows, np.arange(len(todo)), side="right")
            last[has_limit] = dist[ends[has_limit] - 1] ** 2
            sure = ~full | (last < cand_sq.max(axis=1) - margin) | (keep == self._size)
            done = sure[rows]
            found_rows.append(todo[rows[done]])
            found_ids.append(cols[done])
            found_dist.append(dist[done])
            todo = todo[~sure]
            keep = min(self._size, 2 * keep)
        rows = np.concatenate(found_rows)
        cols = np.concatenate(found_ids)
        dist = np.concatenate(found_dist)
        order = np.lexsort((cols, dist, rows))
        return rows[order] + offset, cols[order], dist[order]

    def _range_batch(
        self, wide: Float64s, radius: float, limit: int | None, offset: int
    ) -> tuple[Ids, Ids, Float64s]:
        count = len(wide)
        if radius < 0 or self._size == 0 or count == 0 or limit == 0:
            return _no_pairs()
        if limit is not None:
            return self._range_nearest(wide, radius, limit, offset)
        blocks, margin = self._distances(wide)
        threshold32 = self._threshold(radius, margin)[:, None]
        row_parts: list[Ids] = []
        col_parts: list[Ids] = []
        within: NDArray[np.bool_] | None = None
        for start, block in blocks:
            if within is None or within.shape != block.shape:
                within = np.empty(block.shape, dtype=bool)
            np.less_equal(block, threshold32, out=within)
            rows, cols = _hits(within)
            row_parts.append(rows)
            col_parts.append(cols + start)
        rows = np.concatenate(row_parts)
        cols = np.concatenate(col_parts)
        dist = np.sqrt(self._exact_sq(wide, rows, cols))
        inside = dist <= radius
        rows, cols, dist = rows[inside], cols[inside], dist[inside]
        order = np.lexsort((cols, dist, rows))
        return rows[order] + offset, cols[order], dist[order]


def _smallest(values: NDArray[np.float32], ids: Ids, keep: int) -> tuple[NDArray[np.float32], Ids]:
    """Each row's ``keep`` smallest values (unordered) and their ids."""
    part = np.argpartition(values, keep - 1, axis=1)[:, :keep]
    return np.take_along_axis(values, part, axis=1), np.take_along_axis(ids, part, axis=1)


def _grown(array: NDArray[Any], used: int, more: int) -> NDArray[Any]:
    """``array`` (rows in use: ``used``) with room for ``more`` rows: itself or a copy."""
    if used + more <= len(array):
        return array
    capacity = max(used + more, 2 * len(array), 1024)
    grown = np.empty((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[:used] = array[:used]
    return grown


def _no_pairs() -> tuple[Ids, Ids, Float64s]:
    return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float64)


def _hits(mask: NDArray[np.bool_]) -> tuple[Ids, Ids]:
    """``np.nonzero`` of a 2-d mask that is nearly all False, several times faster.

    Finds the 8-byte words holding a True first, then the Trues in those words only.
    """
    if mask.size % 8 or not mask.flags.c_contiguous:
        rows, cols = np.nonzero(mask)
        return rows.astype(np.intp), cols.astype(np.intp)
    flat = mask.reshape(-1)
    words = np.flatnonzero(flat.view(np.uint64))
    word, bit = np.nonzero(flat.reshape(-1, 8)[words])
    rows, cols = np.divmod(words[word] * 8 + bit, mask.shape[1])
    return rows.astype(np.intp), cols.astype(np.intp)


def nearest_people(
    index: ExactIndex, owners: ArrayLike, queries: ArrayLike, k: int = 2
) -> tuple[Float64s, Ids]:
    """The k nearest people to each query, where a person is the set of rows they own.

    ``owners[i]`` is the person (an int from 0) of row i of ``index``. A person's distance
    is that of their nearest row. Returns distances and people, each (m, min(k, number of
    people in ``owners``)), nearest first, ties by lower person number; so column 0 is the
    best person and column 1 the runner-up.

    Exact: it searches the nearest rows, doubling how many until the k-th person found is
    strictly nearer than the farthest row searched (then nobody left out can be nearer),
    so its cost follows the photos per person near each query, not the number of people.
    """
    owner = np.asarray(owners, dtype=np.intp)
    if owner.shape != (len(index),):
        raise ValueError(f"owners must give one person per row: {len(index)}, not {owner.shape}")
    if len(owner) and owner.min() < 0:
        raise ValueError("owners must be person numbers from 0")
    if k < 0:
        raise ValueError(f"k must be at least 0, not {k}")
    people = int(np.count_nonzero(np.bincount(owner))) if len(owner) else 0
    width = min(k, people)
    wide = index.as_queries(queries)
    distances = np.empty((len(wide), width), dtype=np.float64)
    who = np.empty((len(wide), width), dtype=np.intp)
    if width == 0:
        return distances, who
    rows_per_person = len(owner) / people
    depth = min(len(owner), max(2 * width, math.ceil(2 * width * rows_per_person)))
    todo = np.arange(len(wide))
    while len(todo):
        row_dist, row_ids = index.search(wide[todo], depth)
        person_dist, person = _first_per_person(row_dist, owner[row_ids], width)
        distances[todo], who[todo] = person_dist, person
        if depth == len(owner):
            break
        sure = person_dist[:, -1] < row_dist[:, -1]
        todo = todo[~sure]
        depth = min(len(owner), 2 * depth)
    return distances, who


def _first_per_person(row_dist: Float64s, person: Ids, width: int) -> tuple[Float64s, Ids]:
    """From rows ranked nearest first, each person's first row; the ``width`` nearest.

    Where fewer than ``width`` people appear, the rest are inf and -1 (the caller searches
    deeper for those queries).
    """
    by_person = np.argsort(person, axis=1, kind="stable")
    sorted_people = np.take_along_axis(person, by_person, axis=1)
    first_sorted = np.ones(person.shape, dtype=bool)
    first_sorted[:, 1:] = sorted_people[:, 1:] != sorted_people[:, :-1]
    first = np.empty_like(first_sorted)
    np.put_along_axis(first, by_person, first_sorted, axis=1)
    masked = np.where(first, row_dist, np.inf)
    order = np.lexsort((person, masked), axis=-1)[:, :width]
    person_dist = np.take_along_axis(masked, order, axis=1)
    chosen = np.where(np.isinf(person_dist), -1, np.take_along_axis(person, order, axis=1))
    if person_dist.shape[1] < width:  # fewer rows searched than people wanted
        pad = width - person_dist.shape[1]
        person_dist = np.pad(person_dist, ((0, 0), (0, pad)), constant_values=np.inf)
        chosen = np.pad(chosen, ((0, 0), (0, pad)), constant_values=-1)
    return person_dist, chosen


def as_rows(vectors: ArrayLike, dim: int, what: str) -> Float64s:
    rows = np.asarray(vectors, dtype=np.float64)
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    if rows.ndim != 2 or rows.shape[1] != dim:
        raise ValueError(f"{what} must be {dim}-d vectors, not shape {rows.shape}")
    if not np.isfinite(rows).all():
        raise ValueError(f"{what} must be finite (no NaN or infinity)")
    return np.ascontiguousarray(rows)
