"""Would faiss HNSW build the clustering graph faster than the exact search? Side by side.

    pip install 'facematch[ann]'
    python benchmarks/cluster_graph_ann.py [--faces 110000] [--queries 2000]

Synthetic faces as in bench_cluster.py (lfw-dev's spread). For a sample of faces it
compares what the clustering graph needs, each face's (at most 64) nearest within the
radius, found by ``ExactIndex.range_pairs`` and by a faiss HNSW graph (k nearest, then
those within the radius): recall of the exact pairs within 0.5 and within 0.6, and CPU
seconds (building and searching) scaled to every face searching once, on one thread.
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np
from bench_cluster import synthetic
from threadpoolctl import threadpool_limits

from facematch.neighbours import ExactIndex

RADIUS = 0.6
NEIGHBOURS = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=110_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--links", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=40)
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    faces, truth = synthetic(args.faces, 0.419, 0.8125, seed=args.faces)
    queries = faces[: args.queries]
    scale = args.faces / args.queries
    with threadpool_limits(1):
        exact = ExactIndex(128)
        exact.add(faces)
        cpu = time.process_time()
        rows, ids, dist = exact.range_pairs(queries, RADIUS, limit=NEIGHBOURS)
        exact_cpu = (time.process_time() - cpu) * scale
    print(f"{args.faces:,} faces, {args.queries:,} sampled; CPU s for every face, one thread")
    print(f"exact range_pairs: search {exact_cpu:.1f} s (no build)")
    cpu = time.process_time()
    hnsw = faiss.IndexHNSWFlat(128, args.links)
    hnsw.hnsw.efConstruction = args.ef_construction
    hnsw.add(np.ascontiguousarray(faces, dtype=np.float32))
    build_cpu = time.process_time() - cpu
    print(
        "| HNSW efSearch | build s | search s | recall within 0.5 | recall within 0.6 "
        "| recall, same person |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for ef in (64, 128, 256):
        hnsw.hnsw.efSearch = ef
        cpu = time.process_time()
        found_d, found = hnsw.search(np.ascontiguousarray(queries, dtype=np.float32), NEIGHBOURS)
        search_cpu = (time.process_time() - cpu) * scale
        found_pairs = {
            (int(q), int(i))
            for q, i, d in zip(
                np.repeat(np.arange(len(queries)), NEIGHBOURS),
                found.ravel(),
                np.sqrt(np.maximum(found_d.ravel(), 0)),
                strict=True,
            )
            if i >= 0 and d <= RADIUS + 1e-4
        }
        recall = []
        exact_pairs = list(zip(rows.tolist(), ids.tolist(), dist.tolist(), strict=True))
        for wanted in (
            lambda q, i, d: d <= 0.5,
            lambda q, i, d: d <= RADIUS,
            lambda q, i, d: q != i and truth[q] == truth[i],
        ):
            want = {(q, i) for q, i, d in exact_pairs if wanted(q, i, d)}
            recall.append(len(want & found_pairs) / max(len(want), 1))
        print(
            f"| {ef} | {build_cpu:.1f} | {search_cpu:.1f} | "
            + " | ".join(f"{r:.3f}" for r in recall)
            + " |",
            flush=True,
        )


if __name__ == "__main__":
    main()
