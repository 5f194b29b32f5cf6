"""Search at ten million faces: a library that opens fast on its stored cells, recall, speed.

    python -m benchmarks.scale.search_10m --embeddings lfw-dev-default.npz \
        --folder DIR [--size 10000000] [--settings 0.1875:32,0.0625:32] [--update 100000]

The gallery and queries are ann_1m's (every real lfw-dev face but 256 query photos,
then the covariance generator's people; 2,000 queries: the 256 real photos and
1,744 gallery faces with a little noise), one face a file. Each step prints a JSON
line as it ends:

1. ``write``: the library written with ``Library.add_many``, which ends as
   ``facematch index`` does, with the snapshot and the search cells
   (``facematch.store.face_index``): wall time of each part, file sizes. Skipped
   when DIR already holds this library (a later run measures again, faster).
2. ``truth``: the exact 10 nearest of each query (faiss's flat index over the rows).
3. ``open``: a new process opens the library read-only and answers one
   ``Library.search`` (the snapshot mapped and CRC-checked, the cells read and
   CRC-checked): wall and CPU time, RSS; three times, the first after the
   system's file cache was emptied when this runs as root (else as it is).
4. ``speed``: in a new process per thread count (1 and 2), the 2,000 queries in one
   batch through the index a library search uses, for each ``--settings`` pair
   (probe share, candidates): queries per CPU second (median of ``--rounds``),
   recall@10 against exact (all, and the real queries), the true neighbours within
   0.6 found, "anyone within 0.6" agreement, peak RSS.
5. ``update``: ``--update`` more faces added and 1,000 files removed, as an index run
   would: the time to bring the snapshot and the cells up to date (the cells
   incrementally), then the speed step's numbers again at the first setting.

Needs ``pip install 'facematch[ann]' psutil threadpoolctl``; about 25 GB of disk
at ten million faces (SQLite 11.4 GB, snapshot 5.4 GB, cells 0.5 GB).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness
from benchmarks.scale.ann_1m import K, held_out, measures
from benchmarks.synthetic import Generator

QUERIES_REAL = 256
QUERIES_NOISY = 1744


def make_faces(npz: Path, size: int, folder: Path) -> tuple[Path, Path]:
    """The gallery (size, 128) float32 and the queries, saved as .npy in ``folder``."""
    faces_at, queries_at = folder / "faces.npy", folder / "queries.npy"
    if faces_at.exists() and queries_at.exists():
        return faces_at, queries_at
    rng = np.random.default_rng(0)
    generator, real, base = held_out(npz, QUERIES_REAL)
    faces = np.lib.format.open_memmap(faces_at, "w+", np.float32, (size, 128))
    faces[: len(base)] = base
    for start in range(len(base), size, 1_000_000):
        end = min(size, start + 1_000_000)
        faces[start:end] = generator.faces(rng, end - start)
    chosen = faces[np.sort(rng.choice(size, QUERIES_NOISY, replace=False))]
    noisy = chosen + rng.normal(0, 0.03, chosen.shape).astype(np.float32)
    faces.flush()
    np.save(queries_at, np.concatenate([real, noisy]).astype(np.float32))
    return faces_at, queries_at


def write(faces_at: Path, library_at: Path) -> dict[str, Any]:
    from facematch.records import Face, FaceBox
    from facematch.store.face_index import index_path
    from facematch.store.library import Library
    from facematch.store.snapshot import snapshot_path

    faces = np.load(faces_at, mmap_mode="r")
    box = FaceBox(0, 100, 100, 0)

    def files() -> Iterator[tuple[str, list[Face], str]]:
        for i in range(len(faces)):
            yield f"/photos/{i // 1000:05d}/{i:08d}.jpg", [Face(box, (), faces[i])], f"{i:064x}"

    steps: dict[str, float] = {}
    started = time.perf_counter()
    with Library.open(library_at) as library:
        library.add_many(files(), settings="benchmark", engine="benchmark")
        steps["write_and_refresh_s"] = time.perf_counter() - started
    return {
        "step": "write",
        "faces": len(faces),
        **{k: round(v, 1) for k, v in steps.items()},
        "sqlite_gb": round(library_at.stat().st_size / 1e9, 2),
        "snapshot_gb": round(snapshot_path(library_at).stat().st_size / 1e9, 2),
        "cells_gb": round(index_path(library_at).stat().st_size / 1e9, 3),
    }


def library_rows(library_at: Path) -> tuple[Any, str]:
    """The library's rows in its own order (those its search answers) and their generation."""
    from facematch.store.library import Library

    with Library.open(library_at, read_only=True) as library:
        matrix, _, generation = library._matrix()  # the rows and state a search sees
    return matrix.embeddings, generation.replace(":", "-")


def truth(library_at: Path, queries_at: Path, folder: Path) -> dict[str, Any]:
    """The exact 10 nearest of each query among the library's rows as they are now."""
    import faiss

    faces, generation = library_rows(library_at)
    at = folder / f"truth-{generation}.npz"
    if at.exists():
        return {"step": "truth", "cached": True}
    queries = np.load(queries_at)
    started = time.perf_counter()
    best_d = np.full((len(queries), K), np.inf, dtype=np.float32)
    best_i = np.full((len(queries), K), -1, dtype=np.int64)
    for start in range(0, len(faces), 1_000_000):
        flat = faiss.IndexFlatL2(128)
        flat.add(np.ascontiguousarray(faces[start : start + 1_000_000]))
        d, i = flat.search(queries, K)
        both_d = np.concatenate([best_d, d], axis=1)
        both_i = np.concatenate([best_i, i + start], axis=1)
        order = np.argsort(both_d, axis=1, kind="stable")[:, :K]
        best_d = np.take_along_axis(both_d, order, 1)
        best_i = np.take_along_axis(both_i, order, 1)
    np.savez(at, d=best_d, i=best_i)
    return {"step": "truth", "s": round(time.perf_counter() - started, 1)}


OPEN_AND_ASK = """
import sys, time, json
start = time.perf_counter()
import numpy as np
from facematch.store.library import Library
with Library.open(sys.argv[1], read_only=True) as library:
    hits = library.search(np.load(sys.argv[2])[:1], 0.6, 10)
    kind = type(library._searchable[1]).__name__
import psutil
print(json.dumps({"wall_s": round(time.perf_counter() - start, 2),
                  "cpu_s": round(time.process_time(), 2), "index": kind,
                  "hits": len(hits), "rss_mb": round(psutil.Process().memory_info().rss / 2**20)}))
"""


def open_and_ask(library_at: Path, queries_at: Path) -> dict[str, Any]:
    runs = []
    for attempt in range(3):
        cold = False
        if attempt == 0 and os.geteuid() == 0:
            try:
                os.sync()
                Path("/proc/sys/vm/drop_caches").write_text("3\n")
                cold = True
            except OSError:
                pass
        done = subprocess.run(
            [sys.executable, "-c", OPEN_AND_ASK, str(library_at), str(queries_at)],
            capture_output=True,
            text=True,
            env=harness.child_env(OMP_NUM_THREADS="1"),
            check=True,
        )
        runs.append({"cold_cache": cold, **json.loads(done.stdout)})
    return {"step": "open", "runs": runs}


def speed_child(
    library_at: Path, queries_at: Path, folder: Path, settings: str, rounds: int
) -> None:
    """In a child process: each setting's speed and recall through the library's index."""
    import faiss
    from threadpoolctl import threadpool_limits

    from benchmarks.scale.ann_1m import Peak, timed
    from facematch.store.library import Library

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    faiss.omp_set_num_threads(threads)
    queries = np.load(queries_at).astype(np.float64)
    known = np.load(folder / f"truth-{library_rows(library_at)[1]}.npz")
    peak = Peak()
    with threadpool_limits(threads), Library.open(library_at, read_only=True) as library:
        library.search(queries[:1], 0.6, K)  # loads the rows and the index a search uses
        index = library._searchable[1]  # type: ignore[index]  # the index that search uses
        for setting in settings.split(","):
            share, candidates = setting.split(":")
            index.probe_share, index.candidates = float(share), int(candidates)
            peak.reset()
            rate, (got_d, got_i) = timed(index.search, queries, rounds)
            line = {
                "step": "speed",
                "threads": threads,
                "index": type(index).__name__,
                "setting": setting,
                "queries_per_cpu_s": rate,
                **measures(got_d**2, got_i, known["d"], known["i"]),
                "peak_rss_mb": peak.mb(),
            }
            print(json.dumps(line), flush=True)


def speed(library_at: Path, queries_at: Path, folder: Path, settings: str, rounds: int) -> None:
    for threads in (1, 2):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.scale.search_10m",
                "--child-speed",
                str(library_at),
                str(queries_at),
                str(folder),
                settings,
                str(rounds),
            ],
            env=harness.child_env(OMP_NUM_THREADS=str(threads)),
            check=True,
        )


def update(library_at: Path, count: int, npz: Path) -> dict[str, Any]:
    """``count`` more synthetic faces and 1,000 files removed; the refresh timed."""
    from facematch.records import Face, FaceBox
    from facematch.store.library import Library

    embeddings, owners = harness.real_faces(npz)
    more = Generator(embeddings, owners).faces(np.random.default_rng(1), count)
    box = FaceBox(0, 100, 100, 0)
    removed = [f"/photos/{i // 1000:05d}/{i:08d}.jpg" for i in range(0, 1_000_000, 1000)]
    with Library.open(library_at) as library:
        started = time.perf_counter()
        with library.write() as db:
            db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in removed])
        deleted = time.perf_counter() - started
        library.add_many(
            (
                (f"/zz/{i // 1000:05d}/{i:08d}.jpg", [Face(box, (), more[i])], f"{i + 10**9:064x}")
                for i in range(count)
            ),
            settings="benchmark",
            engine="benchmark",
        )
        total = time.perf_counter() - started
    return {
        "step": "update",
        "added": count,
        "removed_files": len(removed),
        "delete_s": round(deleted, 1),
        "add_and_refresh_s": round(total - deleted, 1),
    }


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "--child-speed":
        library_at, queries_at, folder, settings, rounds = argv[1:]
        speed_child(Path(library_at), Path(queries_at), Path(folder), settings, int(rounds))
        return
    parser = harness.parser(__doc__)
    harness.add_embeddings(parser, required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--settings", default="0.1875:32,0.0625:32")
    parser.add_argument("--update", type=int, default=100_000)
    parser.add_argument("--steps", default="write,truth,open,speed,update")
    harness.add_rounds(parser, 3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    folder: Path = args.folder
    folder.mkdir(parents=True, exist_ok=True)
    steps = args.steps.split(",")
    faces_at, queries_at = make_faces(args.embeddings, args.size, folder)
    library_at = folder / "library.sqlite3"
    if "write" in steps and not library_at.exists():
        print(json.dumps(write(faces_at, library_at)), flush=True)
    if "truth" in steps:
        print(json.dumps(truth(library_at, queries_at, folder)), flush=True)
    if "open" in steps:
        print(json.dumps(open_and_ask(library_at, queries_at)), flush=True)
    if "speed" in steps:
        speed(library_at, queries_at, folder, args.settings, args.rounds)
    if "update" in steps:
        print(json.dumps(update(library_at, args.update, args.embeddings)), flush=True)
        print(json.dumps(truth(library_at, queries_at, folder)), flush=True)
        print(json.dumps(open_and_ask(library_at, queries_at)), flush=True)
        speed(library_at, queries_at, folder, args.settings.split(",")[0], args.rounds)


if __name__ == "__main__":
    main()
