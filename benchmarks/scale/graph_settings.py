"""The clustering graph from the inverted-file index: which share of cells and candidates.

    python -m benchmarks.scale.graph_settings --embeddings lfw-dev-default.npz
        [--faces 100000] [--settings 0.25:32,0.25:8,0.125:8,0.125:16] [--cache DIR]

Covariance faces as in bench_cluster. Builds the exact graph
(``neighbour_graph(..., approximate=False)``), then the index's graph with each
``share:candidates`` setting, and prints each one's wall seconds, the share of the
exact graph's pairs it holds, and the share of its same-person pairs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import harness
from benchmarks.scale.bench_cluster import covariance_faces
from facematch.matching import cluster


def pair_keys(graph: cluster.NeighbourGraph, n: int) -> set[int]:
    return set((graph.first.astype(np.int64) * n + graph.second).tolist())


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_embeddings(parser, required=True)
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--settings", default="0.25:32,0.25:8,0.125:8,0.125:16")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args(argv)
    n = args.faces
    faces, truth = covariance_faces(args.embeddings, n, seed=n, cache=args.cache)
    data = np.ascontiguousarray(faces, dtype=np.float32)
    start = time.perf_counter()
    exact = cluster.neighbour_graph(data, 0.6, 64, approximate=False)
    print(f"exact graph: {time.perf_counter() - start:.1f} s, {len(exact):,} pairs", flush=True)
    everything = pair_keys(exact, n)
    same = truth[exact.first] == truth[exact.second]
    own = set((exact.first[same].astype(np.int64) * n + exact.second[same]).tolist())
    harness.table_header(
        "cells scanned", "candidates", "graph s", "exact pairs found", "same-person pairs found"
    )
    saved = cluster.APPROXIMATE_PROBE_SHARE, cluster.APPROXIMATE_CANDIDATES
    try:
        for setting in args.settings.split(","):
            share, candidates = setting.split(":")
            cluster.APPROXIMATE_PROBE_SHARE = float(share)
            cluster.APPROXIMATE_CANDIDATES = int(candidates)
            start = time.perf_counter()
            built = pair_keys(cluster.neighbour_graph(data, 0.6, 64, approximate=True), n)
            seconds = time.perf_counter() - start
            harness.table_row(
                share,
                candidates,
                f"{seconds:.1f}",
                f"{100 * len(built & everything) / len(everything):.1f}%",
                f"{100 * len(built & own) / len(own):.2f}%",
            )
    finally:
        cluster.APPROXIMATE_PROBE_SHARE, cluster.APPROXIMATE_CANDIDATES = saved


if __name__ == "__main__":
    main()
