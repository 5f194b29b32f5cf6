"""Search galleries of 100k and 1M faces built from real lfw-dev embeddings plus matched synthetics.

    python -m benchmarks.scale.bench_library --embeddings lfw-dev-default.npz \
        [--sizes 100000,1000000] [--rounds 3] [--ann 100000] [--library-size 1000000] \
        [--gallery] [--reindex 10000]

``--embeddings`` is an ``.npz`` of lfw-dev encoded with the default settings (arrays
``paths``, ``image``, ``boxes``, ``embeddings``; a person is the file name without its
``_NNNN`` number). The script

1. measures the spread of the real embeddings: distances between two photos of one person
   and between different people (the largest face of each photo);
2. fits a generator with the same spread (a person's centre from the covariance of real
   centres, each face = centre + noise with the pooled within-person covariance, scaled
   per person as much as real people's spreads differ) and prints the same figures for
   synthetic people, so the match can be checked;
3. builds each gallery (every real face plus synthetic people to the size) and times exact
   search (``ExactIndex``): a 256-query batch (top 10, and radius 0.6) on one and on two
   BLAS threads, interleaved round by round, and single queries; checks a sample of
   answers against a float64 brute force; reports the RSS;
4. with ``--ann SIZES`` (needs ``pip install 'facematch[ann]'``), ``FaissIndex`` (faiss IVF
   with 4-bit PQ codes, re-ranked exactly): build time, queries per second on one thread
   for each ``--probe-shares`` value, recall@10 against exact search, and how often "is
   anyone within 0.6" agrees with exact search;
5. with ``--library-size``, writes a library of that many faces (``Library.add_many``) to a
   temporary folder and times opening it and answering a first query in a new process;
6. with ``--gallery``, the known-folder gallery (``facematch KNOWN UNKNOWN``): matching time
   per unknown face with 10 and with 10,000 known faces (one image at a time, as the command
   does), against the per-face loop it replaced (``Gallery.ranked``);
7. with ``--reindex N``, ``facematch index`` over N files twice: the second run, over the
   unchanged files, reads none of them and loads no model.

Queries are real faces (one photo of each of 256 real people; the gallery keeps their
other photos). Timings on a shared machine are noisy: compare the columns of one run.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from benchmarks import harness
from benchmarks.harness import CPU, WALL, child_env, measure, python_module
from benchmarks.synthetic import Generator
from facematch.neighbours.exact import ExactIndex

DIM = 128
K = 10
TOLERANCE = 0.6


def spread(
    embeddings: np.ndarray, owners: np.ndarray, rng: np.random.Generator
) -> dict[str, float]:
    """Distance figures: same person (all pairs) and different people (random pairs)."""
    same = []
    for person in np.unique(owners):
        rows = embeddings[owners == person]
        for i in range(len(rows)):
            same.extend(np.linalg.norm(rows[i + 1 :] - rows[i], axis=1))
    a, b = rng.integers(0, len(owners), size=(2, 200_000))
    keep = owners[a] != owners[b]
    different = np.linalg.norm(embeddings[a[keep]] - embeddings[b[keep]], axis=1)
    same_arr = np.array(same)
    return {
        "same_mean": float(same_arr.mean()),
        "same_sd": float(same_arr.std()),
        "same_within_0.6": float((same_arr <= TOLERANCE).mean()),
        "different_mean": float(different.mean()),
        "different_sd": float(different.std()),
        "different_within_0.6": float((different <= TOLERANCE).mean()),
        "norm_mean": float(np.linalg.norm(embeddings, axis=1).mean()),
    }


def wall_ms(run: Callable[[], object], per: int) -> float:
    """Wall-clock milliseconds per item of one run."""
    return measure(run, WALL)[0] * 1000 / per


def cpu_ms(run: Callable[[], object], per: int) -> float:
    """CPU milliseconds (this process, all threads) per item of one run.

    On a shared, busy machine the wall clock mostly measures the others' load; the
    CPU time of a one-thread run is what the work itself costs.
    """
    return measure(run, CPU)[0] * 1000 / per


def brute_top(rows: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 brute force over float32 rows, in blocks (ties by lower id)."""
    best_d = np.full((len(queries), 0), np.inf)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(rows), 8192):
        block = rows[start : start + 8192].astype(np.float64)
        d = np.sqrt(((block[None, :, :] - queries[:, None, :]) ** 2).sum(axis=2))
        best_d = np.concatenate([best_d, d], axis=1)
        best_i = np.concatenate(
            [best_i, np.broadcast_to(np.arange(start, start + len(block)), d.shape)], axis=1
        )
        order = np.lexsort((best_i, best_d), axis=-1)[:, :k]
        best_d = np.take_along_axis(best_d, order, axis=1)
        best_i = np.take_along_axis(best_i, order, axis=1)
    return best_d, best_i


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1e6


def exact(rows: np.ndarray, queries: np.ndarray, rounds: int, check: int) -> dict[str, object]:
    """Exact search without and with the screen (``ExactIndex`` screens by itself after
    ``SCREEN_AFTER_QUERIES`` queries; here it is asked to at once), side by side."""
    from threadpoolctl import threadpool_limits

    rows = np.ascontiguousarray(rows, dtype=np.float32)
    plain = ExactIndex(DIM, screen_min_rows=len(rows) + 1)
    built, _ = measure(lambda: plain.add(rows, copy=False), WALL)
    screened = ExactIndex(DIM)
    screened.add(rows, copy=False)
    with threadpool_limits(1):
        screen_s, subspace = measure(screened.fit_screen)
    batch = queries[:256]
    timings: dict[str, list[float]] = {}
    for _ in range(rounds):  # interleaved: each round runs every variant once
        for name, index in (("plain", plain), ("screened", screened)):
            for threads in (1, 2):
                with threadpool_limits(threads):
                    clock = cpu_ms if threads == 1 else wall_ms
                    unit = "cpu" if threads == 1 else "wall"
                    timings.setdefault(f"{name}_batch_top{K}_{threads}t_{unit}", []).append(
                        clock(lambda i=index: i.search(batch, K), len(batch))
                    )
                    timings.setdefault(f"{name}_batch_range_{threads}t_{unit}", []).append(
                        clock(lambda i=index: i.range_search(batch, TOLERANCE), len(batch))
                    )
            with threadpool_limits(1):
                singles = [cpu_ms(lambda q=q, i=index: i.search(q, K), 1) for q in queries[:10]]
                walls = [wall_ms(lambda q=q, i=index: i.search(q, K), 1) for q in queries[:10]]
            with threadpool_limits(2):
                walls2 = [wall_ms(lambda q=q, i=index: i.search(q, K), 1) for q in queries[:10]]
            timings.setdefault(f"{name}_single_top10_1t_cpu", []).append(statistics.median(singles))
            timings.setdefault(f"{name}_single_top10_1t_wall", []).append(statistics.median(walls))
            timings.setdefault(f"{name}_single_top10_2t_wall", []).append(statistics.median(walls2))
    result: dict[str, object] = {k: round(statistics.median(v), 2) for k, v in timings.items()}
    want_d, want_i = brute_top(rows, queries[:check], K)
    for name, index in (("plain", plain), ("screened", screened)):
        got_d, got_i = index.search(queries[:check], K)
        result[f"{name}_same_ids_as_float64"] = bool(np.array_equal(got_i, want_i))
        result[f"{name}_max_distance_error"] = float(np.abs(got_d - want_d).max())
    result["screen_dims"] = None if subspace is None else int(subspace.basis.shape[1])
    result["screen_cpu_s"] = round(screen_s, 2)
    result["add_s"] = round(built, 2)
    result["rss_mb"] = round(rss_mb())
    return result


def ann(
    rows: np.ndarray, queries: np.ndarray, rounds: int, shares: list[float]
) -> list[dict[str, object]]:
    from threadpoolctl import threadpool_limits

    from facematch.neighbours.faiss_index import FaissIndex

    results: list[dict[str, object]] = []
    with threadpool_limits(1):
        exact_index = ExactIndex(DIM)
        exact_index.add(rows)
        want_d, want_i = exact_index.search(queries, K)
        del exact_index
        index = FaissIndex(DIM)
        built, _ = measure(lambda: index.add(rows), WALL)
        for share in shares:
            index.probe_share = share
            times, (got_d, got_i) = harness.rounds(lambda: index.search(queries, K), rounds)
            speeds = [len(queries) / t for t in times]
            recall = np.mean([len(set(g) & set(w)) / K for g, w in zip(got_i, want_i, strict=True)])
            anyone = np.mean((got_d[:, 0] <= TOLERANCE) == (want_d[:, 0] <= TOLERANCE))
            results.append(
                {
                    "probe_share": share,
                    "build_s": round(built, 1),
                    "queries_per_cpu_s_1t": round(statistics.median(speeds)),
                    "recall_at_10": round(float(recall), 4),
                    "anyone_within_0.6_agrees": round(float(anyone), 4),
                    "rss_mb": round(rss_mb()),
                }
            )
    return results


OPEN_AND_ASK = """
import sys, time, json
start = time.perf_counter()
import numpy as np
from facematch.store.library import Library
with Library.open(sys.argv[1], read_only=True) as library:
    hits = library.search(np.load(sys.argv[2]), 0.6, 10)
import psutil
print(json.dumps({"open_and_first_query_s": round(time.perf_counter() - start, 2),
                  "cpu_s": round(time.process_time(), 2),
                  "hits": len(hits), "rss_mb": round(psutil.Process().memory_info().rss / 1e6)}))
"""


def library_open(rows: np.ndarray, queries: np.ndarray) -> dict[str, object]:
    from facematch.records import Face, FaceBox
    from facematch.store.library import Library
    from facematch.store.snapshot import snapshot_path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "library.sqlite3"
        start = time.perf_counter()
        box = FaceBox(0, 100, 100, 0)
        with Library.open(path) as library:
            library.add_many(
                (
                    (f"/photos/{i // 1000:04d}/{i:07d}.jpg", [Face(box, (), rows[i])], f"{i:064x}")
                    for i in range(len(rows))
                ),
                settings="benchmark",
                engine="benchmark",
            )
        written = time.perf_counter() - start
        np.save(Path(folder) / "q.npy", queries[:1])
        env = child_env(OMP_NUM_THREADS="1")

        def open_and_ask() -> dict[str, object]:
            done = subprocess.run(
                [sys.executable, "-c", OPEN_AND_ASK, str(path), str(Path(folder) / "q.npy")],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            answer: dict[str, object] = json.loads(done.stdout)
            return answer

        # As after an index run (which leaves the snapshot), then as after a change
        # by another program (the snapshot is stale: faces from SQLite, snapshot rewritten).
        result: dict[str, object] = {"with_snapshot": open_and_ask()}
        snapshot_path(path).unlink()
        result["from_sqlite"] = open_and_ask()
        result["with_snapshot_again"] = open_and_ask()
        result["write_s"] = round(written, 1)
        result["file_mb"] = round(path.stat().st_size / 1e6)
        result["snapshot_mb"] = round(snapshot_path(path).stat().st_size / 1e6)
    return result


def gallery_cost(rows: np.ndarray, queries: np.ndarray, rounds: int) -> dict[str, object]:
    from threadpoolctl import threadpool_limits

    from facematch.matching.gallery import Gallery
    from facematch.matching.naming import match_faces
    from facematch.records import Face, FaceBox

    unknown = [Face(FaceBox(0, 1, 1, 0), (), q) for q in queries]
    result: dict[str, object] = {}
    with threadpool_limits(1):
        for known in (10, 10_000):
            names = [f"person {i // 3}" for i in range(known)]
            gallery = Gallery.from_faces(
                list(zip(names, rows[:known].astype(np.float64), strict=True))
            )
            new, old = [], []
            for _ in range(rounds):
                new.append(
                    cpu_ms(
                        lambda g=gallery: [match_faces(g, [f], 0.6, False) for f in unknown],
                        len(unknown),
                    )
                )
                old.append(
                    cpu_ms(lambda g=gallery: [g.ranked(f.embedding) for f in unknown], len(unknown))
                )
            result[f"ms_per_unknown_face_{known}_known"] = round(statistics.median(new), 3)
            result[f"old_loop_ms_{known}_known"] = round(statistics.median(old), 3)
    return result


def reindex(count: int) -> dict[str, object]:
    from PIL import Image

    with tempfile.TemporaryDirectory() as folder:
        photos = Path(folder) / "photos"
        for i in range(count):
            sub = photos / f"{i // 1000:03d}"
            sub.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (64, 48), (i % 256, 0, 0)).save(sub / f"{i:06d}.png")
        command = python_module(
            "facematch",
            "index",
            str(photos),
            "-j",
            "1",
            "-q",
            "--library",
            str(Path(folder) / "library.sqlite3"),
        )
        env = child_env()
        times, _ = harness.rounds(
            lambda: subprocess.run(command, check=True, env=env, capture_output=True), 2, WALL
        )
    return {
        "files": count,
        "first_run_s": round(times[0], 2),
        "unchanged_rerun_s": round(times[1], 2),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_embeddings(parser, required=True)
    parser.add_argument("--sizes", default="100000,1000000")
    harness.add_rounds(parser, 3)
    parser.add_argument("--check", type=int, default=16, help="queries checked by brute force")
    parser.add_argument(
        "--ann", default="", metavar="SIZES", help="gallery sizes to time FaissIndex at (ann extra)"
    )
    parser.add_argument(
        "--probe-shares", default="0.125,0.1875,0.25", help="FaissIndex probe_share values"
    )
    parser.add_argument("--library-size", type=int, default=0)
    parser.add_argument("--no-exact", action="store_true", help="skip the exact-search timings")
    parser.add_argument("--gallery", action="store_true", help="time the known-folder gallery")
    parser.add_argument("--reindex", type=int, default=0, metavar="N", help="index N files twice")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    embeddings, owners = harness.real_faces(args.embeddings)
    print(f"real: {len(embeddings)} faces of {owners.max() + 1} people")
    real_spread = spread(embeddings, owners, rng)
    generator = Generator(embeddings, owners)
    synthetic, synthetic_owners = generator.people(rng, 20_000)
    harness.table_header("spread", "real lfw-dev", "synthetic")
    synthetic_spread = spread(synthetic, synthetic_owners, rng)
    for key, value in real_spread.items():
        harness.table_row(key, f"{value:.4f}", f"{synthetic_spread[key]:.4f}")

    # Queries: one photo of each of 256 people who have several; the rest stay in the gallery.
    counts = np.bincount(owners)
    query_rows = [int(np.flatnonzero(owners == p)[0]) for p in np.flatnonzero(counts >= 2)[:256]]
    queries = embeddings[query_rows]
    base = np.delete(embeddings, query_rows, axis=0)
    if args.gallery:
        known = np.concatenate([base, generator.faces(rng, 10_000 - len(base))])
        print(f"gallery: {json.dumps(gallery_cost(known, queries, args.rounds))}")
    if args.reindex:
        print(f"reindex: {json.dumps(reindex(args.reindex))}")
    for size in (int(s) for s in args.sizes.split(",")):
        rows = np.concatenate([base.astype(np.float32), generator.faces(rng, size - len(base))])
        rng.shuffle(rows)  # real faces anywhere in the matrix
        print(f"\n## {size:,} faces")
        if not args.no_exact:
            print(f"exact: {json.dumps(exact(rows, queries, args.rounds, args.check))}")
        if str(size) in args.ann.split(","):
            shares = [float(e) for e in args.probe_shares.split(",")]
            for line in ann(rows, queries, args.rounds, shares):
                print(f"ann: {json.dumps(line)}")
        if args.library_size == size:
            print(f"library: {json.dumps(library_open(rows, queries))}")
        del rows


if __name__ == "__main__":
    main()
