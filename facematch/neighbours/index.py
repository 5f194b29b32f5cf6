"""Choosing a nearest-neighbour index: the interface every index offers, exact or approximate."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from facematch.neighbours.exact import ExactIndex, NeighbourIndex
from facematch.neighbours.faiss_index import FaissIndex, faiss_available

Float64s = NDArray[np.float64]
Ids = NDArray[np.intp]


ANN_MIN_ROWS = 200_000
"""Below this many rows exact search is fast enough that an approximate index never pays."""


ANN_MIN_QUERIES = 20_000
"""Queries an approximate index must answer to earn back its build time (docs/guide/library.md)."""


def make_index(vectors: ArrayLike, dim: int = 128, *, expected_queries: int = 1) -> NeighbourIndex:
    """An index holding ``vectors``: exact, or ``FaissIndex`` where it pays and is installed.

    Either keeps ``vectors`` itself when it is a contiguous float32 matrix (no copy):
    do not change it afterwards.

    Training the approximate index on a million faces takes about 30 CPU seconds and
    saves about 2 ms per query against exact search (6 s and 0.3 ms at 200,000), and
    its answers miss about one true neighbour in a hundred, so it is chosen only for
    many rows and many queries (``ANN_MIN_ROWS``, ``ANN_MIN_QUERIES``), and only when
    the ann extra is installed.
    """
    rows = np.asarray(vectors)
    if len(rows) >= ANN_MIN_ROWS and expected_queries >= ANN_MIN_QUERIES and faiss_available():
        approximate = FaissIndex(dim)
        approximate.add(rows, copy=False)
        return approximate
    exact = ExactIndex(dim)
    exact.add(rows, copy=False)
    return exact
