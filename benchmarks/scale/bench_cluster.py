"""Clustering at scale: synthetic faces with the spread of real ones, from scratch and updated.

    python -m benchmarks.scale.bench_cluster [--embeddings lfw-dev-default.npz]
        [--sizes 10000,100000] [--generator isotropic|covariance]

With ``--embeddings`` (the lfw-dev embeddings; ``--npz`` still works) the within-person and
between-person distance distributions are measured first and printed; the synthetic
people are then drawn to match their means: centres ``N(0, sb^2 I)``, faces ``centre +
N(0, sw^2 I)`` in 128-d, sizes drawn like lfw-dev's (1 to 6 photos, a quarter strangers).
``--generator covariance`` (needs ``--embeddings``) draws them as bench_library does
instead: centres and faces with the covariances of real centres and real within-person
deviations, so they lie, as real embeddings do, in about 78 of the 128 dimensions
(where exact search screens; isotropic faces fill all 128, and it cannot).

Each size runs in a child process so that its peak memory (max RSS) is its own. For each:
clustering from scratch (time, RSS, BCubed/pairwise F against the synthetic truth), then
10% new faces added (new photos of existing people and new people) and clustered as an
update as `facematch cluster` runs it (earlier groups as seeds, only the new faces
searched; time; share of the earlier clustered faces keeping their person; F of the
update and of clustering everything from scratch). ``--graph exact,approximate`` runs
each size with the exact neighbour graph and with the one the inverted-file index
builds, side by side (``auto``, the default, chooses by size as ``cluster`` does).
One run per size on a shared machine: wall-clock timings are noisy, CPU seconds less so.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import harness
from benchmarks.synthetic import Generator, isotropic
from facematch.evaluate.metrics import clustering_scores
from facematch.matching.cluster import FaceClusterer


def measure_spread(npz: Path) -> tuple[float, float, float, float]:
    """Mean and sd of same-person and different-person distances in lfw-dev/people."""
    data = harness.load_embeddings(npz)
    people = np.array([harness.person_of(p) if p.startswith("people/") else "" for p in data.paths])
    image = data.image
    first = np.r_[True, image[1:] != image[:-1]]  # one face per photo (the first found)
    rows = np.flatnonzero(first & (people[image] != ""))
    emb = data.embeddings[rows].astype(np.float64)
    who = people[image[rows]]
    return distance_spread(emb, who)


def distance_spread(emb: np.ndarray, who: np.ndarray) -> tuple[float, float, float, float]:
    """Mean and sd of the distances within a person and between people (all pairs)."""
    sq = (emb * emb).sum(1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * emb @ emb.T, 0))
    i, j = np.triu_indices(len(emb), 1)
    same = who[i] == who[j]
    d = dist[i, j]
    return (
        float(d[same].mean()),
        float(d[same].std()),
        float(d[~same].mean()),
        float(d[~same].std()),
    )


def spread_of(faces: np.ndarray, truth: np.ndarray) -> tuple[float, float, float, float]:
    emb = faces[:3000].astype(np.float64)
    who = truth[:3000]
    return distance_spread(emb, who)


def covariance_faces(
    npz: Path, n: int, seed: int, cache: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` faces from bench_library's generator (real covariances), and their people
    (kept in ``cache`` when given: a million take the generator about ten minutes)."""
    stem = None if cache is None else cache / f"covariance-{n}-{seed}"
    if stem is not None and stem.with_suffix(".faces.npy").exists():
        return np.load(stem.with_suffix(".faces.npy")), np.load(stem.with_suffix(".people.npy"))
    generator = Generator(*harness.real_faces(npz))
    rows, owners = generator.people(np.random.default_rng(seed), n)
    rows = rows.astype(np.float32)
    if stem is not None:
        stem.parent.mkdir(parents=True, exist_ok=True)
        np.save(stem.with_suffix(".faces.npy"), rows)
        np.save(stem.with_suffix(".people.npy"), owners)
    return rows, owners


def one_size(
    n: int,
    same_mean: float,
    diff_mean: float,
    npz: Path | None = None,
    compare: bool = True,
    approximate: bool | None = None,
    cache: Path | None = None,
    stored_cells: bool = False,
) -> dict[str, float]:
    new = n // 10
    if npz is None:
        faces, truth = isotropic(n + new, same_mean, diff_mean, seed=n)
    else:
        faces, truth = covariance_faces(npz, n + new, seed=n, cache=cache)
    rng = np.random.default_rng(1)
    order = rng.permutation(n + new)
    old, added = order[:n], order[n:]
    keys = [f"{i:08d}" for i in range(n + new)]

    with harness.timed() as scratch:
        before = FaceClusterer(approximate=approximate).fit_predict(
            faces[old], photos=[keys[i] for i in old], keys=[keys[i] for i in old]
        )
    rss_scratch = harness.peak_rss_mb()
    quality = clustering_scores(truth[old], before)

    everything = np.concatenate([old, added])
    seeds = np.concatenate([before, np.full(new, -1)])
    # As `facematch cluster` does: the earlier faces were searched by the first run
    # (grouped or not); only the new ones look for neighbours.
    searched = np.r_[np.ones(n, dtype=bool), np.zeros(new, dtype=bool)]
    index = None
    cells_update = None
    if stored_cells:
        # As a library keeps them: cells trained when the first faces were indexed
        # (not timed: index did it then), the new faces added by the index run that
        # brought them (timed), then searched by the update instead of training.
        from facematch.neighbours.faiss_index import FaissIndex, fill_cells, trained_cells

        rows = np.ascontiguousarray(faces[everything], dtype=np.float32)
        cells = trained_cells(rows[:n])
        fill_cells(cells, rows[:n], everything[:n].astype(np.int64))
        with harness.timed() as cells_update:
            fill_cells(cells, rows[n:], everything[n:].astype(np.int64))
        index = FaissIndex.keyed(rows, cells, everything.astype(np.int64))
    with harness.timed() as update:
        updated = FaceClusterer(approximate=approximate).fit_predict(
            faces[everything],
            photos=[keys[i] for i in everything],
            keys=[keys[i] for i in everything],
            seeds=seeds,
            searched=searched,
            index=index,
        )
    kept = before >= 0
    # Seeds come back as labels numbered by size (the library keeps the person numbers):
    # an earlier face keeps its person when its old group maps to one new label that
    # no other old group maps to.
    pairs = np.unique(np.c_[before[kept], updated[:n][kept]], axis=0)
    one_label = np.bincount(pairs[:, 0]) == 1
    one_group = np.bincount(pairs[:, 1]) == 1
    unique_pairs = pairs[one_label[pairs[:, 0]] & one_group[pairs[:, 1]]]
    stable = len(unique_pairs) / max(len(np.unique(pairs[:, 0])), 1)
    faces_kept = float(np.isin(before[kept], unique_pairs[:, 0]).mean()) if kept.any() else 1.0
    f_update = clustering_scores(truth[everything], updated).bcubed_f
    f_scratch = math.nan
    if compare:
        scratch_all = FaceClusterer(approximate=approximate).fit_predict(
            faces[everything],
            photos=[keys[i] for i in everything],
            keys=[keys[i] for i in everything],
        )
        f_scratch = clustering_scores(truth[everything], scratch_all).bcubed_f
    return {
        "faces": n,
        "scratch_s": scratch.wall,
        "scratch_cpu_s": scratch.cpu,
        "peak_rss_mb": rss_scratch,
        "bcubed_f": quality.bcubed_f,
        "pairwise_f": quality.pairwise_f,
        "update_faces": new,
        "update_s": update.wall,
        "update_cpu_s": update.cpu,
        "cells_update_s": math.nan if cells_update is None else cells_update.wall,
        "groups_kept": stable,
        "faces_kept": faces_kept,
        "bcubed_f_update": f_update,
        "bcubed_f_scratch_after": f_scratch,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_embeddings(parser, "--npz")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--generator", choices=["isotropic", "covariance"], default="isotropic")
    parser.add_argument(
        "--no-compare",
        action="store_true",
        help="skip clustering everything again from scratch (the update's reference F)",
    )
    parser.add_argument(
        "--no-screen", action="store_true", help="exact search without its screen, to compare"
    )
    parser.add_argument(
        "--graph",
        default="auto",
        help="how the neighbour graph is searched: exact, approximate (the inverted-file "
        "index), auto (by size), or several, comma-separated, side by side",
    )
    parser.add_argument("--cache", type=Path, default=None, help="keep generated faces here")
    parser.add_argument(
        "--stored-cells",
        action="store_true",
        help="the update searches cells kept as a library keeps them (trained on the first "
        "faces, the new ones added, timed apart) instead of training an index",
    )
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--spread", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        same_mean, diff_mean = (float(v) for v in args.spread.split(","))
        npz = args.embeddings if args.generator == "covariance" else None
        if args.no_screen:
            from facematch.neighbours import exact as neighbours

            neighbours.SCREEN_MIN_ROWS = sys.maxsize
        way = {"exact": False, "approximate": True, "auto": None}[args.graph]
        result = one_size(
            args.child,
            same_mean,
            diff_mean,
            npz,
            not args.no_compare,
            way,
            args.cache,
            args.stored_cells,
        )
        print(json.dumps(result))
        return
    if args.generator == "covariance" and not args.embeddings:
        parser.error("--generator covariance needs --embeddings")
    same_mean, diff_mean = 0.42, 0.8566  # lfw-dev defaults if no --embeddings
    if args.embeddings:
        same_mean, same_sd, diff_mean, diff_sd = measure_spread(args.embeddings)
        print(
            f"lfw-dev distances: same person {same_mean:.4f} +- {same_sd:.4f}, "
            f"different {diff_mean:.4f} +- {diff_sd:.4f}",
            flush=True,
        )
    if args.generator == "covariance":
        sample = spread_of(*covariance_faces(args.embeddings, 3000, seed=0))
    else:
        sample = spread_of(*isotropic(3000, same_mean, diff_mean, seed=0))
    print(
        "synthetic distances: same person {:.4f} +- {:.4f}, different {:.4f} +- {:.4f}".format(
            *sample
        ),
        flush=True,
    )
    harness.table_header(
        "faces",
        "graph",
        "from scratch s (CPU s)",
        "peak RSS MB",
        "BCubed F",
        "pairwise F",
        "+10% update s (CPU s)",
        "earlier faces keeping their person",
        "BCubed F update / scratch",
    )
    sizes = [int(v) for v in args.sizes.split(",")]
    for n, graph in ((n, g) for n in sizes for g in args.graph.split(",")):
        out = subprocess.run(
            harness.python_module(
                __spec__.name,
                "--child",
                str(n),
                "--spread",
                f"{same_mean},{diff_mean}",
                "--generator",
                args.generator,
                *(["--embeddings", str(args.embeddings)] if args.embeddings else []),
                *(["--no-screen"] if args.no_screen else []),
                *(["--no-compare"] if args.no_compare else []),
                "--graph",
                graph,
                *(["--cache", str(args.cache)] if args.cache else []),
                *(["--stored-cells"] if args.stored_cells else []),
            ),
            capture_output=True,
            text=True,
            check=True,
            env=harness.child_env(),
        )
        r = json.loads(out.stdout)
        harness.table_row(
            f"{n:,}",
            graph,
            f"{r['scratch_s']:.1f} ({r['scratch_cpu_s']:.1f})",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['bcubed_f']:.4f}",
            f"{r['pairwise_f']:.4f}",
            f"{r['update_s']:.2f} ({r['update_cpu_s']:.2f})"
            + ("" if math.isnan(r["cells_update_s"]) else f" + cells {r['cells_update_s']:.1f}"),
            f"{r['faces_kept']:.4f}",
            f"{r['bcubed_f_update']:.4f} / {r['bcubed_f_scratch_after']:.4f}",
        )


if __name__ == "__main__":
    main()
