"""Would faiss (HNSW, or facematch's FaissIndex) build the clustering graph faster? Side by side.

    pip install 'facematch[ann]'
    python -m benchmarks.scale.cluster_graph_ann [--faces 110000] [--queries 2000]

Synthetic faces as in bench_cluster (lfw-dev's spread). For a sample of faces it
compares what the clustering graph needs, each face's (at most 64) nearest within the
radius, found by ``ExactIndex.range_pairs``, by a faiss HNSW graph and by ``FaissIndex``
(IVF-PQ fast scan re-ranked exactly, for each of ``--probe-shares``; both: k nearest,
then those within the radius): recall of the exact pairs within 0.5 and within 0.6, and
CPU seconds (building and searching) scaled to every face searching once, on one thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmarks import harness
from benchmarks.synthetic import isotropic
from facematch.neighbours.exact import ExactIndex
from facematch.neighbours.faiss_index import FaissIndex

RADIUS = 0.6
NEIGHBOURS = 64


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--faces", type=int, default=110_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--links", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=40)
    parser.add_argument("--ef-search", default="64,128,256", help="HNSW efSearch values ('': none)")
    parser.add_argument(
        "--probe-shares", default="0.1875,0.25", help="FaissIndex probe_share values ('': none)"
    )
    args = parser.parse_args(argv)
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(1)
    faces, truth = isotropic(args.faces, 0.419, 0.8125, seed=args.faces)
    queries = faces[: args.queries]
    scale = args.faces / args.queries
    with threadpool_limits(1):
        exact = ExactIndex(128)
        exact.add(faces)
        cpu, (rows, ids, dist) = harness.measure(
            lambda: exact.range_pairs(queries, RADIUS, limit=NEIGHBOURS)
        )
        exact_cpu = cpu * scale
    print(f"{args.faces:,} faces, {args.queries:,} sampled; CPU s for every face, one thread")
    print(f"exact range_pairs: search {exact_cpu:.1f} s (no build)")
    exact_pairs = list(zip(rows.tolist(), ids.tolist(), dist.tolist(), strict=True))
    wanted = (
        lambda q, i, d: d <= 0.5,
        lambda q, i, d: d <= RADIUS,
        lambda q, i, d: q != i and truth[q] == truth[i],
    )
    wants = [{(q, i) for q, i, d in exact_pairs if keep(q, i, d)} for keep in wanted]

    def row(
        setting: str, build_cpu: float, search_cpu: float, found_d: np.ndarray, found: np.ndarray
    ) -> None:
        """One table row: the pairs found within the radius against the exact ones."""
        found_pairs = {
            (int(q), int(i))
            for q, i, d in zip(
                np.repeat(np.arange(len(queries)), found.shape[1]),
                found.ravel(),
                found_d.ravel(),
                strict=True,
            )
            if i >= 0 and d <= RADIUS + 1e-4
        }
        recall = [len(want & found_pairs) / max(len(want), 1) for want in wants]
        harness.table_row(
            setting, f"{build_cpu:.1f}", f"{search_cpu:.1f}", *(f"{r:.3f}" for r in recall)
        )

    harness.table_header(
        "index",
        "build s",
        "search s",
        "recall within 0.5",
        "recall within 0.6",
        "recall, same person",
    )
    if args.probe_shares:
        index = FaissIndex(128)
        build_cpu, _ = harness.measure(lambda: index.add(faces))
        for share in (float(s) for s in args.probe_shares.split(",")):
            index.probe_share = share
            cpu, (found_d, found) = harness.measure(lambda: index.search(queries, NEIGHBOURS))
            row(f"FaissIndex, probe_share {share}", build_cpu, cpu * scale, found_d, found)
    if not args.ef_search:
        return
    with harness.timed() as building:
        hnsw = faiss.IndexHNSWFlat(128, args.links)
        hnsw.hnsw.efConstruction = args.ef_construction
        hnsw.add(np.ascontiguousarray(faces, dtype=np.float32))
    build_cpu = building.cpu
    asked = np.ascontiguousarray(queries, dtype=np.float32)
    for ef in (int(e) for e in args.ef_search.split(",")):
        hnsw.hnsw.efSearch = ef
        cpu, (found_d, found) = harness.measure(lambda: hnsw.search(asked, NEIGHBOURS))
        search_cpu = cpu * scale
        row(
            f"HNSW{args.links}, efSearch {ef}",
            build_cpu,
            search_cpu,
            np.sqrt(np.maximum(found_d, 0)),
            found,
        )


if __name__ == "__main__":
    main()
