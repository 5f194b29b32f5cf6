"""What a smaller store of the rows would cost in recall: float32 against float16, 8-bit and PQ.

    python -m benchmarks.scale.row_store --embeddings lfw-dev-default.npz [--size 1000000]

``FaissIndex`` keeps every face's 128 float32 numbers (512 bytes) to re-rank the
candidates its 4-bit codes propose: at 10 million faces 5.1 GB, at 100 million 51
GB. This measures what storing the rows smaller would lose, on ann_1m's gallery and
queries (real lfw-dev faces plus synthetic people; 256 real queries and 1,744 noisy
gallery faces). The candidates are the shipped index's own (its cells and codes, the
default 3/16 of the cells scanned and 32 candidates per neighbour asked); each store
then re-ranks them from its own rows, decoded, and keeps the 10 nearest:

- ``float32``: what ships (the candidates' distances are exact);
- ``float16``: 256 bytes a face;
- ``sq8``: faiss's 8-bit scalar quantizer, each dimension's range in 256 steps (128 bytes);
- ``pq64x8`` / ``pq32x8``: product quantization, 64 or 32 sub-vectors of 8 bits each
  (64 or 32 bytes), trained on 65,536 faces.

For each: bytes a face and at 10 million faces, recall@10 and the other measures of
ann_1m against exact search, and how far the reported nearest distance is from the
true one (what a printed score or a tolerance decision would see). One run; the
numbers are deterministic but for faiss's threads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

import numpy as np

from benchmarks import harness
from benchmarks.scale.ann_1m import K, gallery, measures


def stores(faiss: object, faces: np.ndarray) -> dict[str, tuple[int, Callable[[], np.ndarray]]]:
    """Name -> (bytes a face, a function giving every row as that store gives it back)."""
    f: object = faiss
    sample = faces[np.random.default_rng(2).choice(len(faces), 65_536, replace=False)]

    def coded(factory: str) -> Callable[[], np.ndarray]:
        def decoded() -> np.ndarray:
            index = f.index_factory(faces.shape[1], factory)  # type: ignore[attr-defined]
            index.train(sample)
            out = np.empty_like(faces)
            for start in range(0, len(faces), 1 << 18):
                part = faces[start : start + (1 << 18)]
                out[start : start + len(part)] = index.sa_decode(index.sa_encode(part))
            return out

        return decoded

    return {
        "float32": (4 * faces.shape[1], lambda: faces),
        "float16": (2 * faces.shape[1], lambda: faces.astype(np.float16).astype(np.float32)),
        "sq8": (faces.shape[1], coded("SQ8")),
        "pq64x8": (64, coded("PQ64x8")),
        "pq32x8": (32, coded("PQ32x8")),
    }


def reranked(
    rows: np.ndarray, queries: np.ndarray, proposed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The K nearest of each query's proposed rows, by these rows (squared distances)."""
    safe = np.where(proposed >= 0, proposed, 0)
    diff = rows[safe].astype(np.float64) - queries[:, None, :].astype(np.float64)
    dist = np.einsum("ijk,ijk->ij", diff, diff)
    dist[proposed < 0] = np.inf
    order = np.lexsort((safe, dist), axis=-1)[:, :K]
    return np.take_along_axis(dist, order, 1), np.take_along_axis(safe, order, 1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_embeddings(parser, required=True)
    parser.add_argument("--size", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    import faiss

    from facematch.neighbours.faiss_index import FaissIndex

    faces, queries = gallery(args.embeddings, args.size)
    flat = faiss.IndexFlatL2(faces.shape[1])
    flat.add(faces)
    want_d, want_i = flat.search(queries, K)
    del flat
    index = FaissIndex(faces.shape[1])
    index.add(faces, copy=False)
    ivf = index._ivf
    ivf.nprobe = max(1, math.ceil(index.probe_share * ivf.nlist))
    _, proposed = ivf.search(queries, index.candidates * K)
    true_nearest = np.sqrt(want_d[:, 0])
    for name, (size, rows_of) in stores(faiss, faces).items():
        got_d, got_i = reranked(rows_of(), queries, proposed)
        error = np.abs(np.sqrt(got_d[:, 0]) - true_nearest)
        line = {
            "store": name,
            "bytes_a_face": size,
            "gb_at_10m": round(size * 10_000_000 / 1e9, 2),
            **measures(got_d, got_i, want_d, want_i),
            "nearest_distance_error_median": round(float(np.median(error)), 5),
            "nearest_distance_error_max": round(float(error.max()), 5),
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
