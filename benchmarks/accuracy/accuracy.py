"""Accuracy of facematch configurations on the shared labelled sets, side by side.

    python -m benchmarks.accuracy.accuracy --faces PATH/TO/shared/faces [--jobs 2]
    python -m benchmarks.accuracy.accuracy --lfw PATH/TO/shared/faces/lfw-dev [--cache-dir DIR]
        [--configs 0,4]

For each configuration (detection fallback, landmark model, mirror averaging,
jitters) it runs the same code as ``facematch evaluate`` (cache off) on the
pairs file and the folder-per-person sets, and prints one markdown table:
accuracy at 0.6, 10-fold accuracy, EER, no-face images, the separation d' of
same-person and different-person distances pooled over every set, and the
encoding time relative to the first configuration (measured in one run).

With ``--lfw``, the set is lfw-dev's 2,200 pairs instead (3,443 photos; use
``--cache-dir`` so that a second run encodes nothing, and ``--configs`` to run
some configurations only, by their number in the table, from 0), and the
table gives accuracy at 0.6, 10-fold accuracy, EER and TAR at FAR 0.1%.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from benchmarks import harness
from facematch.encode.faces import FaceSettings
from facematch.evaluate.evaluation import evaluate, load_folder, load_pairs
from facematch.run.pipeline import Pipeline

# face_recognition's own configuration, spelled out: the defaults have moved on.
BASE = FaceSettings(landmarks=5, mirror=False, fallback=False)
CONFIGS = {
    "face_recognition defaults (hog, 5-pt, 1 jitter)": BASE,
    "+ detection fallback": replace(BASE, fallback=True),
    "+ fallback, 68-pt landmarks": replace(BASE, fallback=True, landmarks=68),
    "+ fallback, mirror": replace(BASE, fallback=True, mirror=True),
    "+ fallback, mirror, 68-pt": replace(BASE, fallback=True, mirror=True, landmarks=68),
    "+ fallback, 5 jitters": replace(BASE, fallback=True, jitters=5),
    "+ fallback, 10 jitters, mirror": replace(BASE, fallback=True, jitters=10, mirror=True),
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_faces(parser, required=False, default=None)
    harness.add_lfw(parser, required=False)
    harness.add_cache_dir(parser)
    parser.add_argument("--configs", default=None, help="numbers of the configurations to run")
    harness.add_jobs(parser)
    parser.add_argument("--tolerance", type=float, default=0.6)
    args = parser.parse_args(argv)
    if args.lfw is not None:
        lfw_table(args)
        return
    if args.faces is None:
        parser.error("give --faces or --lfw")
    sets = {
        "pairs": load_pairs(str(args.faces / "pairs" / "master.csv")),
        "tbbt": load_folder(str(args.faces / "people" / "tbbt")),
        "knn": load_folder(str(args.faces / "people" / "knn" / "train")),
    }
    harness.table_header(
        "configuration",
        "pairs acc@0.6",
        "pairs 10-fold",
        "pairs EER",
        "tbbt acc@0.6",
        "tbbt EER",
        "knn acc@0.6",
        "no face",
        "d'",
        "same mean",
        "diff mean",
        "time",
    )
    base_time = None
    for label, settings in CONFIGS.items():
        reports = {}
        genuine: list[float] = []
        impostor: list[float] = []
        with harness.timed() as timing, Pipeline(settings, jobs=args.jobs, cache_dir=None) as run:
            for name, labelled in sets.items():
                report = reports[name] = evaluate(run, labelled, args.tolerance)
                found = ~np.isnan(report.distances)
                genuine += report.distances[report.same & found].tolist()
                impostor += report.distances[~report.same & found].tolist()
        elapsed = timing.wall
        base_time = base_time or elapsed
        spread = np.sqrt((np.var(genuine) + np.var(impostor)) / 2)
        d_prime = (statistics.mean(impostor) - statistics.mean(genuine)) / spread
        no_face = sum(len(r.no_face) for r in reports.values())
        v = {k: r.verification for k, r in reports.items()}
        harness.table_row(
            label,
            f"{v['pairs']['accuracy']:.4f}",
            f"{v['pairs']['kfold_accuracy']:.4f}",
            f"{v['pairs']['eer']:.4f}",
            f"{v['tbbt']['accuracy']:.4f}",
            f"{v['tbbt']['eer']:.4f}",
            f"{v['knn']['accuracy']:.4f}",
            no_face,
            f"{d_prime:.3f}",
            f"{statistics.mean(genuine):.4f}",
            f"{statistics.mean(impostor):.4f}",
            f"{elapsed / base_time:.2f}x",
        )


def lfw_table(args: argparse.Namespace) -> None:
    pairs = load_pairs(str(args.lfw / "pairs.csv"))
    chosen = list(CONFIGS.items())
    if args.configs:
        chosen = [chosen[int(i)] for i in args.configs.split(",")]
    harness.table_header(
        "configuration", "acc@0.6", "10-fold", "EER", "TAR at FAR 0.1%", "no face", "time"
    )
    base_time = None
    for label, settings in chosen:
        with (
            harness.timed() as timing,
            Pipeline(settings, jobs=args.jobs, cache_dir=args.cache_dir) as run,
        ):
            report = evaluate(run, pairs, args.tolerance)
        elapsed = timing.wall
        base_time = base_time or elapsed
        v = report.verification
        tar = v.get("tar_at_far_0.001")
        harness.table_row(
            label,
            f"{v['accuracy']:.4f}",
            f"{v['kfold_accuracy']:.4f}",
            f"{v['eer']:.4f}",
            tar if tar is None else format(tar, ".4f"),
            len(report.no_face),
            f"{elapsed / base_time:.2f}x",
        )


if __name__ == "__main__":
    main()
