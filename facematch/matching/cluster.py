"""Faces -> people: average-linkage clustering on a nearest-neighbour graph (numpy only).

``FaceClusterer`` groups face embeddings the way scikit-learn's estimators do::

    clusterer = FaceClusterer(threshold=0.53, min_faces=2)
    labels = clusterer.fit_predict(embeddings, photos=photo_of_each_face, keys=keys)
    # labels[i]: 0 is the largest group, 1 the next...; -1 is "in no group"

The method is average-linkage agglomerative clustering, with three changes that make it
fit a photo collection:

* **A sparse graph, not an n-by-n matrix.** Every face's neighbours within ``radius``
  (at most ``max_neighbours`` of them) come from the shared exact search
  (:class:`facematch.neighbours.exact.ExactIndex`). A pair that is not in the graph counts as
  ``radius`` apart, so the linkage of two groups is the mean over all their pairs of
  ``min(distance, radius)``: exactly average linkage on clipped distances while the graph
  holds every pair within the radius.
* **Merges by reciprocal nearest neighbours, in rounds.** Each round every group finds
  its nearest group (lowest linkage, ties by the lower group id); every pair that chose
  each other merges at once. Average linkage is reducible, so this gives the same tree as
  merging one pair at a time, in a few vectorised rounds instead of a Python loop per
  merge. Merging stops at ``threshold``.
* **Hubs held back.** Some faces (blurred, small, turned away) lie close to many
  people. A first pass (at ``first_threshold``) finds provisional groups; then each face's
  distance to its ``hub_neighbours``-th nearest face *outside* its provisional group is
  compared with what is typical for a stranger (``hub_distance``, measured on lfw-dev):
  the shortfall, if strangers come nearer than that, lengthens the face's distances: each
  pair by the mean of its two faces' shortfalls, before the real pass.
  Leaving the face's own group out keeps a person with many photos from looking like a
  hub. On lfw-dev this lifts BCubed F from 0.943 (the best threshold without it) to
  0.958 (docs/measurements/cluster.md).
* **Constraints.** Two faces of one photo are two people: groups holding faces of the same
  photo never merge (``photos``). Groups given in ``seeds`` (an earlier clustering, or a
  user's corrections) keep their faces and never merge with each other; new faces can
  still join them. Groups smaller than ``min_faces`` are not groups: their faces are
  labelled -1, never forced into the nearest group.

Determinism: faces are first put in the order of ``keys`` (say content digest + face
index), and every tie is broken by that order, so the same faces give the same labels
whatever order they come in.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from facematch.neighbours.exact import ExactIndex
from facematch.neighbours.faiss_index import FaissIndex, faiss_available
from facematch.records import UNCLUSTERED

if TYPE_CHECKING:
    from facematch.matching.gallery import Gallery

__all__ = ["FaceClusterer", "NeighbourGraph", "known_names", "neighbour_graph"]

Ints = NDArray[np.intp]
Floats = NDArray[np.float64]
Ends = NDArray[np.signedinteger[Any]]
"""Face or group ids: int32 where they fit (``_id_type``), else intp."""

"""The label of a face that is in no group of at least ``min_faces``."""

_BLOCK = 4096  # faces searched at once while building the graph

PAIR_THRESHOLD = 0.46
"""A two-face group's faces must be within this (lfw-dev: at most 2% of pairs false)."""


@dataclass(frozen=True)
class NeighbourGraph:
    """Undirected edges ``first < second`` with their distances, one row per pair."""

    first: Ends
    second: Ends
    distance: Floats

    def __len__(self) -> int:
        return len(self.first)


APPROXIMATE_FROM = 300_000
"""From this many faces (with the ann extra installed) the graph comes from the
inverted-file index, ``FaissIndex``: exact search grows with the square of the faces
(about an hour of CPU at a million); the index scans a share of its cells with 4-bit
codes and re-ranks exactly. Measured side by side at 100,000 and 200,000 faces
(benchmarks/scale/bench_cluster.py --graph; docs/measurements/cluster.md)."""

APPROXIMATE_PROBE_SHARE = 0.25
"""The share of the index's cells each face's search scans for the graph. At 100,000
faces the graph it builds holds 80% of the exact graph's pairs but 99.84% of its
same-person pairs (0.125 of the cells: 99.73%): what it misses are strangers, who
then count as ``radius`` apart, and the groups' BCubed F moves by about 0.001
(docs/measurements/cluster.md)."""

APPROXIMATE_CANDIDATES = 8
"""Candidates re-ranked exactly per neighbour asked, for the graph (search: 32). At
100,000 faces 8 find the same pairs as 32 (99.84% of the same-person pairs of the
exact graph) in 0.64 of the time; 0.125 of the cells would find 99.73%."""


def neighbour_graph(
    embeddings: ArrayLike,
    radius: float,
    max_neighbours: int,
    *,
    queries: ArrayLike | None = None,
    approximate: bool | None = None,
    index: Searcher | None = None,
) -> NeighbourGraph:
    """Pairs of faces within ``radius``; each face keeps its ``max_neighbours`` nearest.

    A pair is kept when it is among the nearest ``max_neighbours`` of either face (ties
    by the lower id), so the graph has at most ``n * max_neighbours`` edges. (Each
    face's search keeps its ``2 * max_neighbours`` nearest finds, so memory stays
    bounded where a face has more neighbours than that.) Every pair is
    searched once: face ``i`` looks only among faces ``0..i`` (a lower triangle, in
    blocks), half the work of searching every face against all.

    ``queries``: only these faces look for neighbours (among all faces, not only the
    lower ones); pairs between two faces not in ``queries`` are left out. This is what an
    incremental update needs: the new faces' edges, without searching the old ones again.

    ``approximate``: each face's ``max_neighbours`` nearest come from ``FaissIndex``
    instead (True), or exact search (False); None chooses by size (``APPROXIMATE_FROM``,
    and only with faiss installed). Every distance in the graph is exact either way; the
    index may miss a pair, which then counts as ``radius`` apart. ``index``: an
    approximate index already holding ``embeddings`` (ids their positions), used
    instead of training one (a library's stored search cells).
    """
    data = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
    n = len(data)
    if data.ndim != 2:
        raise ValueError(f"embeddings must be an (n, dim) array, not shape {data.shape}")
    if approximate is None:
        approximate = n >= APPROXIMATE_FROM and faiss_available()
    if approximate and max_neighbours > 0:
        return _approximate_graph(data, radius, max_neighbours, queries, index)
    index = ExactIndex(data.shape[1] if n else 128)
    # Each search keeps the nearest ``candidates`` besides the face itself: twice the
    # final number bounds memory on dense collections (millions of pairs within the
    # radius) without changing the choice below except where a face has that many.
    candidates = 2 * max_neighbours if max_neighbours > 0 else None
    limit = None if candidates is None else candidates + 1
    firsts: list[Ints] = []
    seconds: list[Ints] = []
    distances: list[Floats] = []

    def search(rows: Ints) -> None:
        found, ids, dist = index.range_pairs(data[rows], radius, limit=limit)
        face = rows[found]
        others = ids != face
        face, ids, dist, found = face[others], ids[others], dist[others], found[others]
        if candidates is not None:  # sorted by query then distance: rank within the query
            near = np.arange(len(found)) - np.searchsorted(found, found) < candidates
            face, ids, dist = face[near], ids[near], dist[near]
        firsts.append(face)
        seconds.append(ids)
        distances.append(dist)

    if queries is None:
        for start in range(0, n, _BLOCK):
            index.add(data[start : start + _BLOCK])
            search(np.arange(start, min(start + _BLOCK, n), dtype=np.intp))
    else:
        index.add(data, copy=False)
        rows = np.unique(np.asarray(queries, dtype=np.intp))
        for start in range(0, len(rows), _BLOCK):
            search(rows[start : start + _BLOCK])
    return _one_row_per_pair(firsts, seconds, distances, n, max_neighbours)


def _one_row_per_pair(
    firsts: list[NDArray[Any]],
    seconds: list[NDArray[Any]],
    distances: list[Floats],
    n: int,
    k: int,
    *,
    exact_ties: bool = True,
) -> NeighbourGraph:
    """The graph of the pairs found (in blocks, either way round, maybe twice): one row
    per pair, ``first < second``, each face's ``k`` nearest kept (0: all)."""
    if not firsts:
        empty = np.empty(0, dtype=np.intp)
        return NeighbourGraph(empty, empty.copy(), np.empty(0, dtype=np.float64))
    small = _id_type(n)
    # One list at a time, each emptied as it is joined: a million faces' finds are
    # gigabytes, and two copies of them were the graph's peak.
    a = _joined(firsts, small)
    b = _joined(seconds, small)
    d = _joined(distances, np.float64)
    low = np.minimum(a, b)
    np.maximum(a, b, out=b)
    high = b
    del a
    # One row per pair (an incremental search can find a pair from both ends).
    pair_key = low.astype(np.int64)
    pair_key *= max(n, 1)
    pair_key += high
    _, unique_rows = np.unique(pair_key, return_index=True)
    del pair_key
    low, high, d = low[unique_rows], high[unique_rows], d[unique_rows]
    del unique_rows
    if k > 0:
        chosen = _nearest_per_face(low, high, d, n, k, exact_ties=exact_ties)
        low, high, d = low[chosen], high[chosen], d[chosen]
    return NeighbourGraph(low, high, d)


def _id_type(n: int) -> type[np.signedinteger[Any]]:
    """The integer type for face and group ids: int32 below 2**31 faces (a million
    faces' graph holds tens of millions of edges, each with two ends)."""
    return np.int32 if n < 2**31 else np.intp


def _joined(parts: list[NDArray[Any]], dtype: Any) -> NDArray[Any]:
    """The parts as one array of ``dtype``; the list is emptied."""
    joined = np.concatenate(parts).astype(dtype, copy=False)
    parts.clear()
    return joined


class Searcher(Protocol):
    """What the graph needs of an index: the k nearest, ids the rows' positions."""

    def search(self, queries: ArrayLike, k: int) -> tuple[Floats, Ints]: ...


class _Reordered:
    """``index``, over rows in their given order, answering in the order ``order``
    puts them in (the clusterer sorts the faces by key)."""

    def __init__(self, index: Searcher, order: Ints) -> None:
        self.index = index
        self.rank = np.empty(len(order), dtype=np.intp)
        self.rank[order] = np.arange(len(order))

    def search(self, queries: ArrayLike, k: int) -> tuple[Floats, Ints]:
        distances, ids = self.index.search(queries, k)
        return distances, np.where(ids >= 0, self.rank[np.maximum(ids, 0)], -1)


def _approximate_graph(
    data: NDArray[np.float32],
    radius: float,
    k: int,
    queries: ArrayLike | None,
    given: Searcher | None = None,
) -> NeighbourGraph:
    """``neighbour_graph`` with each face's ``k`` nearest found by ``FaissIndex``
    (``given``, or one trained here)."""
    n = len(data)
    index = given
    if index is None:
        made = FaissIndex(
            data.shape[1], probe_share=APPROXIMATE_PROBE_SHARE, candidates=APPROXIMATE_CANDIDATES
        )
        made.add(data, copy=False)
        index = made
    rows = np.arange(n) if queries is None else np.unique(np.asarray(queries, dtype=np.intp))
    small = _id_type(n)
    firsts: list[NDArray[Any]] = []
    seconds: list[NDArray[Any]] = []
    distances: list[Floats] = []

    def search(start: int) -> tuple[NDArray[Any], NDArray[Any], Floats]:
        block = rows[start : start + _BLOCK]
        dist, ids = index.search(data[block], k + 1)  # the face itself is among them
        face = np.broadcast_to(block[:, None], ids.shape)
        inside = (ids >= 0) & (ids != face) & (dist <= radius)
        # float64 distances: in float32 a million faces' distances tie often.
        return face[inside].astype(small), ids[inside].astype(small), dist[inside]

    # faiss and numpy let go of the GIL in the searches: a thread per core.
    with ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, 8))) as pool:
        for first, second, near in pool.map(search, range(0, len(rows), _BLOCK)):
            firsts.append(first)
            seconds.append(second)
            distances.append(near)
    return _one_row_per_pair(firsts, seconds, distances, n, k, exact_ties=False)


_KEY_LIMIT = 2**62  # sort keys stay below this (int64)


def _nearest_per_face(
    low: NDArray[Any],
    high: NDArray[Any],
    d: NDArray[Any],
    n: int,
    k: int,
    *,
    exact_ties: bool = True,
) -> NDArray[np.bool_]:
    """Edges among the ``k`` nearest of either endpoint (ties by the other face's id).

    Any integer dtype (the graphs pass int32 ends to save memory).
    ``exact_ties=False`` (the index's graph): where the three-part sort key would not
    fit in int64 (about a million faces), equal distances keep the edges' order
    instead, and the choice is made in a third of the memory (``_nearest_by_rank``).
    """
    m = len(low)
    faces = max(n, 1)
    if not exact_ties and faces * faces * m >= _KEY_LIMIT and faces * m < _KEY_LIMIT:
        return _nearest_by_rank(low, high, d, n, k)
    ends = np.concatenate([low, high])
    small = np.int32 if m < 2**31 else np.intp
    edge = np.concatenate([np.arange(m, dtype=small), np.arange(m, dtype=small)])
    # By face, then distance, then the other face: one sort of one integer key (the
    # distance as its rank among the distinct distances) where the key fits in int64,
    # else a three-key lexsort (the same order, about 1.5 times the time). The key is
    # built in place.
    distinct, rank = np.unique(d, return_inverse=True)
    width = len(distinct)
    if faces * width * faces < _KEY_LIMIT:
        key = np.empty(2 * m, dtype=np.int64)
        for half, this, other in ((slice(0, m), low, high), (slice(m, None), high, low)):
            key[half] = this  # int64 before multiplying: the ends may be int32
            key[half] *= width
            key[half] += rank
            key[half] *= faces
            key[half] += other
        del rank
        order = np.argsort(key, kind="stable")
        del key
    else:
        others = np.concatenate([high, low])
        order = np.lexsort((others, np.concatenate([d, d]), ends))
    ends = ends[order]
    edge = edge[order]
    del order
    starts = np.searchsorted(ends, np.arange(n))
    place = np.arange(len(ends)) - starts[ends]
    del ends
    chosen = np.zeros(m, dtype=bool)
    chosen[edge[place < k]] = True
    return chosen


def _sorted_ends(
    low: NDArray[Any], high: NDArray[Any], d: NDArray[Any], n: int
) -> tuple[NDArray[np.int64], NDArray[np.intp], NDArray[np.int64]]:
    """Both ends of every edge, sorted by face then distance (equal distances in the
    edges' order), as keys ``face * m + r``: ``r`` is the edge's place among the
    distances, ``by_distance[r]`` the edge. Also where each face's ends start.

    One int64 key per end, sorted in place: no second copy of the ends, no argsort
    of them (a million faces' graph: over a hundred million ends).
    """
    m = len(low)
    by_distance = np.argsort(d, kind="stable")
    rank = np.empty(m, dtype=np.int64)
    rank[by_distance] = np.arange(m, dtype=np.int64)
    key = np.empty(2 * m, dtype=np.int64)
    for half, this in ((slice(0, m), low), (slice(m, None), high)):
        key[half] = this  # int64 before multiplying: the ends may be int32
        key[half] *= m
        key[half] += rank
    del rank
    key.sort()
    starts = np.searchsorted(key, np.arange(n + 1, dtype=np.int64) * m)
    return key, by_distance, starts


def _nearest_by_rank(
    low: NDArray[Any], high: NDArray[Any], d: NDArray[Any], n: int, k: int
) -> NDArray[np.bool_]:
    """``_nearest_per_face`` with equal distances in the edges' order."""
    m = len(low)
    key, by_distance, starts = _sorted_ends(low, high, d, n)
    chosen = np.zeros(m, dtype=bool)
    for place in range(k):  # each face's first k ends, one rank at a time
        at = starts[:-1] + place
        at = at[at < starts[1:]]
        if not len(at):
            break
        chosen[by_distance[key[at] % max(m, 1)]] = True
    return chosen


class FaceClusterer:
    """Average-linkage clustering of face embeddings with photo and seed constraints.

    Parameters
    ----------
    threshold:
        Groups merge while their average linkage (mean clipped distance over all their
        pairs of faces) is at most this.
    min_faces:
        Groups with fewer faces are dissolved: their faces get the label -1.
    pair_threshold:
        A group of two faces (not seeded) stays a group only when they are within
        this: two photos are weaker evidence of a person than five, and most
        invented people are pairs of strangers (docs/measurements/cluster.md).
    radius:
        Pairs farther apart than this are not searched; they count as ``radius`` apart.
        Must be at least ``threshold``.
    max_neighbours:
        At most this many neighbours per face in the graph (0: no limit), which bounds
        memory on dense collections.
    first_threshold, hub_neighbours, hub_distance:
        The hub correction (module docstring); ``hub_neighbours=0`` turns it off.
    approximate:
        Build the graph with the inverted-file index (True), exactly (False), or
        by size (None: ``APPROXIMATE_FROM`` faces, with faiss installed).

    After :meth:`fit`, ``labels_`` holds a group per face (0 the largest, ties by the
    first face in key order; -1 unclustered) and ``n_clusters_`` the number of groups.
    """

    def __init__(
        self,
        threshold: float = 0.53,
        min_faces: int = 2,
        *,
        pair_threshold: float = PAIR_THRESHOLD,
        radius: float = 0.6,
        max_neighbours: int = 64,
        first_threshold: float = 0.45,
        hub_neighbours: int = 10,
        hub_distance: float = 0.57,
        approximate: bool | None = None,
    ) -> None:
        self.threshold = threshold
        self.min_faces = min_faces
        self.pair_threshold = pair_threshold
        self.radius = radius
        self.max_neighbours = max_neighbours
        self.first_threshold = first_threshold
        self.hub_neighbours = hub_neighbours
        self.hub_distance = hub_distance
        self.approximate = approximate

    def get_params(self) -> dict[str, float]:
        """The parameters that decide the groups, as scikit-learn's estimators give them
        (``approximate``, how the graph is searched, is left out: a library clustered
        either way keeps its groups)."""
        return {
            "threshold": self.threshold,
            "min_faces": self.min_faces,
            "pair_threshold": self.pair_threshold,
            "radius": self.radius,
            "max_neighbours": self.max_neighbours,
            "first_threshold": self.first_threshold,
            "hub_neighbours": self.hub_neighbours,
            "hub_distance": self.hub_distance,
        }

    def fit(
        self,
        embeddings: ArrayLike,
        photos: Sequence[Hashable] | None = None,
        keys: Sequence[Any] | None = None,
        seeds: ArrayLike | None = None,
        searched: ArrayLike | None = None,
        index: Searcher | None = None,
    ) -> FaceClusterer:
        """Cluster ``embeddings`` (n, dim).

        ``photos``: the photo of each face; faces of one photo never share a group.
        ``keys``: a sortable key per face fixing the order (and so every tie-break).
        ``seeds``: an earlier group per face (any int; -1 for none); faces with a seed
        stay together, and two seeded groups never merge.
        ``searched``: True for each face whose neighbours an earlier run already searched
        (by default, the seeded ones). Only pairs with at least one face not searched are
        looked for, so an update costs in proportion to what is new: faces an earlier
        run left in no group join a group only through a new face.
        ``index``: an index holding ``embeddings`` in the order given (ids their
        positions), searched for the graph when it is built approximately instead of
        training one (a library's stored search cells, ``Library.stored_index``; a
        ``FaissIndex`` is set to the graph's probe share and candidates).
        """
        if self.radius < self.threshold:
            raise ValueError("radius must be at least threshold")
        if self.min_faces < 1:
            raise ValueError("min_faces must be at least 1")
        data = np.asarray(embeddings, dtype=np.float32)  # what the graph is built from
        n = len(data)
        if data.ndim != 2:
            raise ValueError(f"embeddings must be an (n, dim) array, not shape {data.shape}")
        if keys is not None and len(keys) != n:
            raise ValueError("keys must give one key per face")
        if seeds is not None and len(np.asarray(seeds)) != n:
            raise ValueError("seeds must give one group per face")
        if searched is not None and len(np.asarray(searched)) != n:
            raise ValueError("searched must give one flag per face")
        order = (
            np.array(sorted(range(n), key=keys.__getitem__), dtype=np.intp)
            if keys is not None
            else np.arange(n, dtype=np.intp)
        )
        sorted_photos = _codes(photos, n, "photos")[order] if photos is not None else None
        seed = (
            np.asarray(seeds, dtype=np.int64)[order]
            if seeds is not None
            else np.full(n, UNCLUSTERED, dtype=np.int64)
        )
        if searched is not None:
            old = np.asarray(searched, dtype=bool)[order] | (seed != UNCLUSTERED)
        else:
            old = seed != UNCLUSTERED
        if isinstance(index, FaissIndex):
            index.probe_share, index.candidates = APPROXIMATE_PROBE_SHARE, APPROXIMATE_CANDIDATES
        graph = neighbour_graph(
            data[order],
            self.radius,
            self.max_neighbours,
            queries=np.flatnonzero(~old) if old.any() else None,
            approximate=self.approximate,
            index=None if index is None else _Reordered(index, order),
        )
        if self.hub_neighbours > 0:
            first = _agglomerate(graph, n, self.first_threshold, self.radius, sorted_photos, seed)
            graph = _hold_back_hubs(
                graph, first, self.hub_neighbours, self.hub_distance, self.radius
            )
        groups = _agglomerate(graph, n, self.threshold, self.radius, sorted_photos, seed)
        seeded = seed != UNCLUSTERED
        groups = _loose_pairs_apart(groups, data[order], seeded, self.pair_threshold)
        labels = _number_by_size(groups, self.min_faces, seeded)
        self.labels_ = np.empty(n, dtype=np.intp)
        self.labels_[order] = labels
        self.n_clusters_ = int(labels.max(initial=-1)) + 1
        return self

    def fit_predict(
        self,
        embeddings: ArrayLike,
        photos: Sequence[Hashable] | None = None,
        keys: Sequence[Any] | None = None,
        seeds: ArrayLike | None = None,
        searched: ArrayLike | None = None,
        index: Searcher | None = None,
    ) -> Ints:
        """:meth:`fit`, then the labels."""
        return self.fit(embeddings, photos, keys, seeds, searched, index).labels_


def _hold_back_hubs(
    graph: NeighbourGraph, first: Ints, k: int, typical: float, radius: float
) -> NeighbourGraph:
    """The graph with each pair lengthened by the mean shortfall of its two faces.

    A face's shortfall: how much nearer than ``typical`` its ``k``-th nearest face outside
    its provisional group (``first``) is; 0 if farther or if fewer than ``k`` such faces
    are in the graph. Pairs that end up beyond ``radius`` leave the graph.
    """
    n = len(first)
    a, b, d = graph.first, graph.second, graph.distance
    outside = first[a] != first[b]
    out_d = d[outside]
    key, by_distance, starts = _sorted_ends(a[outside], b[outside], out_d, n)
    del outside
    enough = np.diff(starts) >= k
    kth = np.full(n, typical)
    kth[enough] = out_d[by_distance[key[starts[:-1][enough] + k - 1] % max(len(out_d), 1)]]
    del key, by_distance, out_d
    shortfall = np.maximum(typical - kth, 0.0)
    longer = d + 0.5 * (shortfall[a] + shortfall[b])
    keep = longer <= radius
    return NeighbourGraph(a[keep], b[keep], longer[keep])


def _codes(values: Sequence[Hashable], n: int, what: str) -> Ints:
    if len(values) != n:
        raise ValueError(f"{what} must give one value per face")
    seen: dict[Hashable, int] = {}
    return np.array([seen.setdefault(v, len(seen)) for v in values], dtype=np.intp)


Edges = list[Any]
"""Edges between groups as ``[low, high, total, count]``: the groups' ids, and the sum
and number of the face pairs between them that the graph holds. Passed as a list that
the receiver empties, so that only one copy of a million faces' edges is alive."""


def _agglomerate(
    graph: NeighbourGraph,
    n: int,
    threshold: float,
    cap: float,
    photos: Ints | None,
    seed: NDArray[np.int64],
) -> Ints:
    """The group of each face (a group is named by its first face), by merge rounds."""
    group = np.arange(n, dtype=_id_type(n))
    seeded = seed != UNCLUSTERED
    if seeded.any():  # a seeded group starts whole, named by its first face
        seed_values, first_face = np.unique(seed[seeded], return_index=True)
        group[seeded] = np.flatnonzero(seeded)[first_face][
            np.searchsorted(seed_values, seed[seeded])
        ]
    size = np.bincount(group, minlength=n).astype(np.float64)
    edges = _relabel(
        [group[graph.first], group[graph.second], graph.distance, np.ones(len(graph))], n
    )
    banned = _photo_conflicts(photos, group) if photos is not None else _empty_keys()
    while len(edges[0]):
        a, b, total, count = edges
        del edges  # one copy of the edges at a time: a million faces' graph is gigabytes
        if len(banned) or seeded.any():
            allowed = ~(seeded[a] & seeded[b])
            if len(banned):
                allowed &= ~np.isin(a.astype(np.int64) * n + b, banned)
            if not allowed.all():
                a, b, total, count = a[allowed], b[allowed], total[allowed], count[allowed]
            del allowed
        linkage = size[a]
        linkage *= size[b]  # the face pairs between the two groups
        linkage -= count
        linkage *= cap
        linkage += total
        linkage /= size[a] * size[b]  # (total + (pairs - count) * cap) / pairs
        near = np.flatnonzero(linkage <= threshold)
        if not len(near):
            break
        best = _best_partner(a[near], b[near], linkage[near], n)
        del linkage, near
        mutual = np.flatnonzero((best >= 0) & (best[np.maximum(best, 0)] == np.arange(n)))
        keep_id = mutual[mutual < best[mutual]]
        gone = best[keep_id]
        target = np.arange(n, dtype=group.dtype)
        target[gone] = keep_id
        group = target[group]
        size[keep_id] += size[gone]
        size[gone] = 0
        seeded[keep_id] |= seeded[gone]
        edges = [target[a], target[b], total, count]
        del a, b, total, count
        edges = _relabel(edges, n)
        banned = _relabel_keys(banned, target, n)
    return group.astype(np.intp)


def _best_partner(a: Ends, b: Ends, linkage: Floats, n: int) -> Ints:
    """Each group's nearest group among these edges (ties by lower id); -1 if none.

    Each end's side in turn (one sort of the edges each, not of both ends at once),
    then the nearer of the two."""
    best = np.full(n, -1, dtype=np.intp)
    best_linkage = np.full(n, np.inf)
    for src, dst in ((a, b), (b, a)):
        order = np.lexsort((dst, linkage, src))
        ends = src[order]
        first = np.ones(len(ends), dtype=bool)
        first[1:] = ends[1:] != ends[:-1]
        rows = order[first]
        del order, ends, first
        group, partner, near = src[rows], dst[rows], linkage[rows]
        now = best_linkage[group]
        better = (near < now) | ((near == now) & (partner < best[group]))
        best[group[better]] = partner[better]
        best_linkage[group[better]] = near[better]
    return best


def _relabel(edges: Edges, n: int) -> Edges:
    """Edges between groups: one row per pair of groups, sums and counts added up.

    ``edges`` (``[a, b, total, count]``, any order and repeats) is emptied."""
    a, b, total, count = edges
    edges.clear()
    low = np.minimum(a, b)
    np.maximum(a, b, out=b)
    high = b
    del a
    between = low != high
    if not between.all():
        low, high, total, count = low[between], high[between], total[between], count[between]
    del between
    if not len(low):
        return [low, high, total, count]
    key = low.astype(np.int64)
    del low
    key *= n
    key += high
    del high
    # Sorted stably, so that each pair's sums add up in the edges' order as before.
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.ones(len(key), dtype=bool)
    starts[1:] = key[1:] != key[:-1]
    where = np.cumsum(starts) - 1
    pairs = key[starts]
    del key, starts
    sums = np.bincount(where, weights=total[order], minlength=len(pairs))
    del total
    counts = np.bincount(where, weights=count[order], minlength=len(pairs))
    del count, order, where
    small = _id_type(n)
    return [(pairs // n).astype(small), (pairs % n).astype(small), sums, counts]


def _empty_keys() -> NDArray[np.int64]:
    return np.empty(0, dtype=np.int64)


def _photo_conflicts(photos: Ints, group: Ints) -> NDArray[np.int64]:
    """Keys ``low * n + high`` of pairs of groups holding faces of one photo."""
    n = len(photos)
    if not n:
        return _empty_keys()
    # The distinct groups of each photo, sorted by photo then group; photos of one group
    # left out.
    members = np.unique(photos.astype(np.int64) * n + group)
    photo, member = members // n, members % n
    shared = np.r_[photo[1:] == photo[:-1], False] | np.r_[False, photo[1:] == photo[:-1]]
    photo, member = photo[shared], member[shared]
    stop = np.searchsorted(photo, photo, side="right")  # where each row's photo ends
    position = np.arange(len(photo))
    keys = [
        member[rows] * n + member[rows + step]
        for step in range(1, int((stop - position).max(initial=0)))
        for rows in [np.flatnonzero(position + step < stop)]
    ]
    return np.unique(np.concatenate(keys)) if keys else _empty_keys()


def _relabel_keys(keys: NDArray[np.int64], target: Ints, n: int) -> NDArray[np.int64]:
    if not len(keys):
        return keys
    a = target[keys // n]
    b = target[keys % n]
    low, high = np.minimum(a, b), np.maximum(a, b)
    return np.unique(low.astype(np.int64) * n + high)


def _loose_pairs_apart(
    group: Ints, data: NDArray[np.float32], seeded: NDArray[np.bool_], limit: float
) -> Ints:
    """Each two-face group without a seeded face whose faces are farther apart than
    ``limit`` made two groups of one."""
    size = np.bincount(group, minlength=len(group))
    pairs = size[group] == 2
    pairs &= ~np.isin(group, group[seeded])
    members = np.flatnonzero(pairs)
    if not len(members):
        return group
    ranked = members[np.argsort(group[members], kind="stable")]
    first, second = ranked[0::2], ranked[1::2]
    apart = np.linalg.norm(data[first].astype(np.float64) - data[second].astype(np.float64), axis=1)
    split = group.copy()
    split[second[apart > limit]] = second[apart > limit]
    return split


def _number_by_size(group: Ints, min_faces: int, seeded: NDArray[np.bool_]) -> Ints:
    """Labels 0.. by group size (largest first, ties by first face); small groups -1.

    A group holding a seeded face is kept whatever its size (it was a group before).
    """
    n = len(group)
    size = np.bincount(group, minlength=n)
    kept = size >= min_faces
    kept[group[seeded]] = True
    kept &= size > 0
    ids = np.flatnonzero(kept)
    ranked = ids[np.lexsort((ids, -size[ids]))]
    number = np.full(n, UNCLUSTERED, dtype=np.intp)
    number[ranked] = np.arange(len(ranked))
    return number[group]


def known_names(
    gallery: Gallery,
    embeddings: ArrayLike,
    labels: ArrayLike,
    tolerance: float,
    margin: float = 0.1,
) -> dict[int, str]:
    """Groups whose faces confidently match one known person: label -> that person's name.

    A face votes for its nearest known person when that person is within ``tolerance``
    and the runner-up is at least ``margin`` farther. A group takes the name when more
    than half of its faces vote for that person and none votes for anybody else; a
    stranger's group, whose faces fall near several people or near nobody, stays unnamed.
    The default margin is the smallest that kept named-group precision at 0.99 on lfw-dev
    with strangers present (``benchmarks/accuracy/cluster_known.py``).
    """
    label = np.asarray(labels, dtype=np.intp)
    grouped = np.flatnonzero(label != UNCLUSTERED)
    if not len(grouped):
        return {}
    nearest = gallery.nearest(np.asarray(embeddings, dtype=np.float64)[grouped], tolerance)
    votes: dict[int, dict[str, int]] = {}
    for row, found in zip(grouped, nearest, strict=True):
        best, second = found.best, found.runner_up
        group_votes = votes.setdefault(int(label[row]), {})
        confident = second is None or (
            best is not None and second.distance - best.distance >= margin
        )
        if best is not None and best.distance <= tolerance and confident:
            group_votes[best.name] = group_votes.get(best.name, 0) + 1
    sizes = np.bincount(label[grouped])
    return {
        group: next(iter(counts))
        for group, counts in sorted(votes.items())
        if len(counts) == 1 and 2 * next(iter(counts.values())) > sizes[group]
    }
