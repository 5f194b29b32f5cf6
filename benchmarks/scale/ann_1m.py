"""Approximate search (facematch's FaissIndex, faiss HNSW and IVF) on a million faces vs exact.

    python -m benchmarks.scale.ann_1m --embeddings lfw-dev-default.npz \
        [--size 1000000] [--kinds facematch,hnsw32,hnsw32s,ivf4096] [--rounds 3]

The gallery is bench_library's: every real lfw-dev face but the queries, plus
synthetic people with the real spread. Queries: the 256 real ones (one photo each
of 256 people whose other photos stay in the gallery) plus 1,744 gallery faces
with a little noise (N(0, 0.03) per coordinate). Ground truth: faiss's exact flat
index. For each index kind: build CPU time (training and adding), then for each
search setting (efSearch for HNSW, nprobe for IVF) queries per CPU second on one
thread (median of ``--rounds``), and against exact search:

- ``recall_at_10``: the share of the true 10 nearest among the 10 returned (all
  queries, and the real ones alone), the strict measure (ann-benchmarks' "recall");
- ``r_at_10``: how often the true nearest is among the 10 returned (faiss's "R@10",
  1-recall@10, the measure in faiss's own benchmarks);
- ``within_0.6_found``: the share of the true neighbours within 0.6 (among the true
  10 nearest) that are returned: what "where else does this person appear?" needs;
- ``anyone_within_0.6_agrees``: how often "is anyone within 0.6" agrees.

Kind ``facematch`` is ``FaissIndex`` as the package ships it (IVF cells with 4-bit PQ
fast-scan codes, candidates re-ranked against the float32 rows and then in float64),
timed through its own ``search`` (float64 queries in, exact distances out), for each
``--settings`` pair of ``probe_share`` and ``candidates`` (the first pair is the
default), with the process's RSS after the build and its peak while searching (psutil).
Kind ``hnsw32s`` builds the graph over the rows' screen rows (``Subspace``: the
~80 dimensions dlib's embeddings lie in, plus the residual's length), in which the
distance is exact search's lower bound, equal to the distance up to rounding for
these embeddings. For the other kinds faiss is called directly (no re-ranking).
Needs ``pip install 'facematch[ann]' threadpoolctl psutil``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness
from benchmarks.synthetic import Generator

K = 10
TOLERANCE = 0.6
SETTINGS = {"hnsw": [16, 32, 64, 128, 256], "ivf": [4, 8, 16, 32, 48]}


def held_out(npz: Path, count: int) -> tuple[Generator, np.ndarray, np.ndarray]:
    """The covariance generator of ``npz``'s people; the first face of each of the
    first ``count`` people with two or more (real queries); and the other real faces
    (the gallery's start), both float32."""
    embeddings, owners = harness.real_faces(npz)
    counts = np.bincount(owners)
    rows = [int(np.flatnonzero(owners == p)[0]) for p in np.flatnonzero(counts >= 2)[:count]]
    real = embeddings[rows].astype(np.float32)
    base = np.delete(embeddings, rows, axis=0).astype(np.float32)
    return Generator(embeddings, owners), real, base


def gallery(npz: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    generator, real, base = held_out(npz, 256)
    faces = np.concatenate([base, generator.faces(rng, size - len(base))]).astype(np.float32)
    rng.shuffle(faces)
    picked = faces[rng.choice(len(faces), 1744, replace=False)]
    noisy = picked + rng.normal(0, 0.03, picked.shape).astype(np.float32)
    return faces, np.concatenate([real, noisy]).astype(np.float32)


def screen_space(faces: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and queries in the screen's space: [P(x - c), e], where L2 is the bound."""
    from facematch.neighbours.exact import Subspace

    subspace = Subspace.fit(faces)
    assert subspace is not None
    rows = np.ascontiguousarray(subspace.screen_rows(faces)[:, :-2])
    ask, _ = subspace.query_rows(queries.astype(np.float64))
    return rows, np.ascontiguousarray(ask[:, :-2] / -2.0)


class Peak:
    """The process's largest RSS (MB) since ``reset``, sampled every 5 ms by a thread."""

    def __init__(self) -> None:
        import threading

        import psutil

        self.process = psutil.Process()
        self.peak = 0
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def now(self) -> int:
        return round(self.process.memory_info().rss / 2**20)

    def reset(self) -> None:
        self.peak = self.process.memory_info().rss

    def mb(self) -> int:
        time.sleep(0.02)
        return round(self.peak / 2**20)


def shipped(
    faces: np.ndarray, queries: np.ndarray, want_d: np.ndarray, want_i: np.ndarray, args: Any
) -> None:
    """``FaissIndex`` itself: build, then each setting; prints one line per setting."""
    from facematch.neighbours.faiss_index import FaissIndex

    peak = Peak()
    index = FaissIndex(128)
    built, _ = harness.measure(lambda: index.add(faces, copy=False))
    after_build = peak.now()
    wide = queries.astype(np.float64)
    for setting in args.settings.split(","):
        share, candidates = setting.split(":")
        index.probe_share, index.candidates = float(share), int(candidates)
        peak.reset()
        speed, (got_d, got_i) = timed(index.search, wide, args.rounds)
        line = {
            "kind": "facematch",
            "setting": setting,
            "build_cpu_s": round(built, 1),
            "queries_per_cpu_s": speed,
            **measures(got_d**2, got_i, want_d, want_i),
            "rss_after_build_mb": after_build,
            "peak_rss_searching_mb": peak.mb(),
        }
        print(json.dumps(line), flush=True)


def timed(
    search: Callable[[np.ndarray, int], Any], queries: np.ndarray, rounds: int
) -> tuple[int, Any]:
    """Queries per CPU second of ``search(queries, K)`` (median of ``rounds``), and its answer."""
    times, answer = harness.rounds(lambda: search(queries, K), rounds)
    return round(len(queries) / float(np.median(times))), answer


def measures(
    got_d: np.ndarray, got_i: np.ndarray, want_d: np.ndarray, want_i: np.ndarray
) -> dict[str, float]:
    """Recall and agreement against exact search (squared distances throughout)."""
    hits = [len(set(g) & set(w)) / K for g, w in zip(got_i, want_i, strict=True)]
    first = [w[0] in g for g, w in zip(got_i, want_i, strict=True)]
    near = want_d <= TOLERANCE**2
    found = sum(len(set(g) & set(w[m])) for g, w, m in zip(got_i, want_i, near, strict=True))
    anyone = (got_d[:, 0] <= TOLERANCE**2) == (want_d[:, 0] <= TOLERANCE**2)
    return {
        "recall_at_10": round(float(np.mean(hits)), 4),
        "recall_at_10_real": round(float(np.mean(hits[:256])), 4),
        "r_at_10": round(float(np.mean(first)), 4),
        "within_0.6_found": round(found / max(1, int(near.sum())), 4),
        "anyone_within_0.6_agrees": round(float(np.mean(anyone)), 4),
    }


def build(faiss: object, kind: str, faces: np.ndarray) -> object:
    f: object = faiss
    if kind.startswith("hnsw"):
        links = int(kind[4:].rstrip("s"))
        index = f.IndexHNSWFlat(faces.shape[1], links)  # type: ignore[attr-defined]
        index.hnsw.efConstruction = 40
    else:
        lists = int(kind[3:])
        index = f.IndexIVFFlat(f.IndexFlatL2(128), 128, lists)  # type: ignore[attr-defined]
        sample = np.random.default_rng(1).choice(len(faces), min(len(faces), 64 * lists), False)
        index.train(faces[sample])
    index.add(faces)
    return index


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_embeddings(parser, required=True)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--kinds", default="facematch,hnsw32")
    parser.add_argument(
        "--settings",
        default="0.1875:32,0.1875:24,0.15625:24,0.125:24,0.25:24",
        help="FaissIndex probe_share:candidates pairs (kind facematch)",
    )
    harness.add_rounds(parser, 3)
    args = parser.parse_args(argv)
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(1)
    faces, queries = gallery(args.embeddings, args.size)
    with threadpool_limits(1):
        flat = faiss.IndexFlatL2(128)
        flat.add(faces)
        with harness.timed() as searching:
            want_d, want_i = flat.search(queries, K)
        exact_speed = len(queries) / searching.cpu
        print(json.dumps({"kind": "flat", "queries_per_cpu_s": round(exact_speed)}), flush=True)
        del flat
        for kind in args.kinds.split(","):
            if kind == "facematch":
                shipped(faces, queries, want_d, want_i, args)
                continue
            with harness.timed() as building:
                rows, asked = (
                    screen_space(faces, queries) if kind.endswith("s") else (faces, queries)
                )
                index = build(faiss, kind, rows)
            built = building.cpu
            family = "hnsw" if kind.startswith("hnsw") else "ivf"
            for setting in SETTINGS[family]:
                if family == "hnsw":
                    index.hnsw.efSearch = setting  # type: ignore[attr-defined]
                else:
                    index.nprobe = setting  # type: ignore[attr-defined]
                speed, (got_d, got_i) = timed(index.search, asked, args.rounds)  # type: ignore[attr-defined]
                line = {
                    "kind": kind,
                    "setting": setting,
                    "build_cpu_s": round(built, 1),
                    "queries_per_cpu_s": speed,
                    **measures(got_d, got_i, want_d, want_i),  # faiss: squared distances
                }
                print(json.dumps(line), flush=True)
            del index


if __name__ == "__main__":
    main()
