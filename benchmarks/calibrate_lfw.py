"""Different-person distances on lfw-dev: the tail behind ``--tolerance auto``, measured.

    python benchmarks/calibrate_lfw.py --lfw PATH/TO/shared/faces/lfw-dev [--cache-dir DIR]

Encodes people/ and strangers/ (largest face per photo, default settings),
takes every different-person pair (about ten million), and prints the
measured false-accept rate next to two normal fits: one to all the distances
(what ``facematch.calibration`` stores, fitted on the shared sets), and one to
the lower tail only (quantiles 1e-2 to 1e-4), which is the part that decides
how often a stranger is named.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import NormalDist

import numpy as np

from facematch import calibration
from facematch.evaluate import embed
from facematch.faces import FaceSettings
from facematch.pipeline import Pipeline

TAIL = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", required=True, type=Path, help="the lfw-dev folder")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    files = sorted(str(f) for f in (args.lfw / "people").rglob("*.jpg"))
    files += sorted(str(f) for f in (args.lfw / "strangers").rglob("*.jpg"))
    with Pipeline(FaceSettings(), cache_dir=args.cache_dir) as run:
        embeddings, _ = embed(run, files)
    keep = [i for i, e in enumerate(embeddings) if e is not None]
    vectors = np.array([embeddings[i] for i in keep])
    who = np.array([Path(files[i]).parent.name for i in keep])
    who = np.where(np.char.startswith(who, "strangers"), [files[i] for i in keep], who)
    squares = (vectors**2).sum(1)
    different, same = [], []
    for start in range(0, len(vectors), 512):
        block = slice(start, start + 512)
        d2 = squares[block, None] - 2 * vectors[block] @ vectors.T + squares[None, :]
        distances = np.sqrt(np.maximum(d2, 0))
        upper = np.arange(start, start + len(distances))[:, None] < np.arange(len(vectors))
        label = who[block, None] == who[None, :]
        different.append(distances[upper & ~label])
        same.append(distances[upper & label])
    imp, gen = np.concatenate(different), np.concatenate(same)
    whole = NormalDist(float(imp.mean()), float(imp.std()))
    quantiles = np.quantile(imp, TAIL)
    slope, intercept = np.polyfit([NormalDist().inv_cdf(q) for q in TAIL], quantiles, 1)
    tail = NormalDist(float(intercept), float(slope))
    stored = NormalDist(calibration.DIFFERENT_MEAN, calibration.DIFFERENT_SD)
    print(f"photos {len(vectors)}, same-person pairs {len(gen)}, different-person {len(imp)}")
    print(f"different-person distances: mean {whole.mean:.4f} sd {whole.stdev:.4f}")
    print(f"normal fitted to the tail: mean {tail.mean:.4f} sd {tail.stdev:.4f}")
    print("| threshold | FAR measured | stored fit | whole fit | tail fit | FRR measured |")
    print("| --- | --- | --- | --- | --- | --- |")
    for t in (0.45, 0.5, 0.55, 0.6):
        print(
            f"| {t:.2f} | {(imp <= t).mean():.2e} | {stored.cdf(t):.2e} | {whole.cdf(t):.2e} "
            f"| {tail.cdf(t):.2e} | {(gen > t).mean():.4f} |"
        )
    print("| FAR | threshold measured | whole fit | tail fit |")
    print("| --- | --- | --- | --- |")
    for q, t in zip(TAIL, quantiles, strict=True):
        print(f"| {q:g} | {t:.4f} | {whole.inv_cdf(q):.4f} | {tail.inv_cdf(q):.4f} |")


if __name__ == "__main__":
    main()
