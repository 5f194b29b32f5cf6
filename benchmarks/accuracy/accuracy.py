"""Accuracy of facematch configurations on the shared labelled sets, side by side.

    python benchmarks/accuracy.py --faces PATH/TO/shared/faces [--jobs 2]
    python benchmarks/accuracy.py --lfw PATH/TO/shared/faces/lfw-dev [--cache-dir DIR]
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
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from facematch.evaluate import evaluate, load_folder, load_pairs
from facematch.faces import FaceSettings
from facematch.pipeline import Pipeline

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=Path, help="the shared face photos")
    parser.add_argument("--lfw", type=Path, help="the lfw-dev folder: its pairs instead")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--configs", default=None, help="numbers of the configurations to run")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--tolerance", type=float, default=0.6)
    args = parser.parse_args()
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
    header = (
        "| configuration | pairs acc@0.6 | pairs 10-fold | pairs EER | tbbt acc@0.6 | tbbt EER "
        "| knn acc@0.6 | no face | d' | same mean | diff mean | time |"
    )
    print(header)
    print("|" + " --- |" * 12)
    base_time = None
    for label, settings in CONFIGS.items():
        started = time.perf_counter()
        reports = {}
        genuine: list[float] = []
        impostor: list[float] = []
        with Pipeline(settings, jobs=args.jobs, cache_dir=None) as run:
            for name, labelled in sets.items():
                report = reports[name] = evaluate(run, labelled, args.tolerance)
                found = ~np.isnan(report.distances)
                genuine += report.distances[report.same & found].tolist()
                impostor += report.distances[~report.same & found].tolist()
        elapsed = time.perf_counter() - started
        base_time = base_time or elapsed
        spread = np.sqrt((np.var(genuine) + np.var(impostor)) / 2)
        d_prime = (statistics.mean(impostor) - statistics.mean(genuine)) / spread
        no_face = sum(len(r.no_face) for r in reports.values())
        v = {k: r.verification for k, r in reports.items()}
        print(
            f"| {label} | {v['pairs']['accuracy']:.4f} | {v['pairs']['kfold_accuracy']:.4f} "
            f"| {v['pairs']['eer']:.4f} | {v['tbbt']['accuracy']:.4f} | {v['tbbt']['eer']:.4f} "
            f"| {v['knn']['accuracy']:.4f} | {no_face} | {d_prime:.3f} "
            f"| {statistics.mean(genuine):.4f} | {statistics.mean(impostor):.4f} "
            f"| {elapsed / base_time:.2f}x |"
        )


def lfw_table(args: argparse.Namespace) -> None:
    pairs = load_pairs(str(args.lfw / "pairs.csv"))
    chosen = list(CONFIGS.items())
    if args.configs:
        chosen = [chosen[int(i)] for i in args.configs.split(",")]
    print("| configuration | acc@0.6 | 10-fold | EER | TAR at FAR 0.1% | no face | time |")
    print("|" + " --- |" * 7)
    base_time = None
    for label, settings in chosen:
        started = time.perf_counter()
        with Pipeline(settings, jobs=args.jobs, cache_dir=args.cache_dir) as run:
            report = evaluate(run, pairs, args.tolerance)
        elapsed = time.perf_counter() - started
        base_time = base_time or elapsed
        v = report.verification
        tar = v.get("tar_at_far_0.001")
        print(
            f"| {label} | {v['accuracy']:.4f} | {v['kfold_accuracy']:.4f} | {v['eer']:.4f} "
            f"| {tar if tar is None else format(tar, '.4f')} | {len(report.no_face)} "
            f"| {elapsed / base_time:.2f}x |"
        )


if __name__ == "__main__":
    main()
