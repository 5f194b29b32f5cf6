"""Different-person distances on lfw-dev: the tail behind ``--tolerance auto``, measured.

    python -m benchmarks.accuracy.calibrate_lfw --lfw PATH/TO/shared/faces/lfw-dev [--cache-dir DIR]

Encodes people/ and strangers/ (largest face per photo, default settings),
takes every different-person pair (about ten million), and prints the
measured false-accept rate next to two normal fits: one to all the distances
(what ``facematch.matching.calibration`` stores, fitted on the shared sets), and one to
the lower tail only (quantiles 1e-2 to 1e-4), which is the part that decides
how often a stranger is named.

Then the model ``facematch.matching.calibration`` uses for a stranger's chance of being
named in a gallery: galleries of 10 to 1,000 people (one photo each: a
person's first), every other person's first photo and the strangers as
probes, the measured share of probes within ``t`` of somebody, and the fit of
``1 - (1 - F(t)) ** (n ** a)`` (normal ``F``) to those shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist

import numpy as np

from benchmarks import harness
from facematch.encode.faces import FaceSettings
from facematch.evaluate.evaluation import embed
from facematch.matching import calibration
from facematch.run.pipeline import Pipeline

TAIL = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4)
SIZES = (10, 30, 100, 300, 1000)
THRESHOLDS = np.round(np.arange(0.40, 0.62, 0.01), 2)


def stranger_shares(firsts: np.ndarray, strangers: np.ndarray, seed: int = 7) -> np.ndarray:
    """(sizes, thresholds): share of probes within each threshold of a random gallery."""
    rng = np.random.default_rng(seed)
    shares = []
    for n in SIZES:
        rounds = []
        for _ in range(30 if n < 300 else 10):
            order = rng.permutation(len(firsts))
            gallery, probes = firsts[order[:n]], np.concatenate([firsts[order[n:]], strangers])
            d2 = (probes**2).sum(1)[:, None] - 2 * probes @ gallery.T + (gallery**2).sum(1)
            nearest = np.sqrt(np.maximum(d2, 0)).min(1)
            rounds.append([(nearest <= t).mean() for t in THRESHOLDS])
        shares.append(np.mean(rounds, axis=0))
    return np.array(shares)


def predicted(mean: float, sd: float, exponent: float) -> np.ndarray:
    per_face = np.array([NormalDist(mean, sd).cdf(t) for t in THRESHOLDS])
    return np.array([1 - (1 - per_face) ** (n**exponent) for n in SIZES])


def fit_gallery_model(shares: np.ndarray) -> tuple[float, float, float]:
    """Least squares on log shares (those between 0.3% and 50%), by a shrinking grid."""
    used = (shares > 0.003) & (shares < 0.5)

    def loss(params: tuple[float, float, float]) -> float:
        return float(((np.log(predicted(*params)[used]) - np.log(shares[used])) ** 2).sum())

    best, step = (0.85, 0.10, 0.8), np.array([0.02, 0.02, 0.1])
    for _ in range(12):
        grid = [
            (best[0] + i * step[0], best[1] + j * step[1], best[2] + k * step[2])
            for i in (-2, -1, 0, 1, 2)
            for j in (-2, -1, 0, 1, 2)
            for k in (-2, -1, 0, 1, 2)
            if best[1] + j * step[1] > 0.01
        ]
        best = min(grid, key=loss)
        step = step / 2
    return best


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_lfw(parser)
    harness.add_cache_dir(parser)
    args = parser.parse_args(argv)
    files = [str(f) for f in harness.photos(args.lfw / "people")]
    files += [str(f) for f in harness.photos(args.lfw / "strangers")]
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
    stored = NormalDist(calibration.CURVE_MEAN, calibration.CURVE_SD)
    print(f"photos {len(vectors)}, same-person pairs {len(gen)}, different-person {len(imp)}")
    print(f"different-person distances: mean {whole.mean:.4f} sd {whole.stdev:.4f}")
    print(f"normal fitted to the tail: mean {tail.mean:.4f} sd {tail.stdev:.4f}")
    harness.table_header(
        "threshold", "FAR measured", "stored fit", "whole fit", "tail fit", "FRR measured"
    )
    for t in (0.45, 0.5, 0.55, 0.6):
        harness.table_row(
            f"{t:.2f}",
            f"{(imp <= t).mean():.2e}",
            f"{stored.cdf(t):.2e}",
            f"{whole.cdf(t):.2e}",
            f"{tail.cdf(t):.2e}",
            f"{(gen > t).mean():.4f}",
        )
    harness.table_header("FAR", "threshold measured", "whole fit", "tail fit")
    for q, t in zip(TAIL, quantiles, strict=True):
        harness.table_row(f"{q:g}", f"{t:.4f}", f"{whole.inv_cdf(q):.4f}", f"{tail.inv_cdf(q):.4f}")
    people = sorted({w for w in who if "/" not in w})
    first = {w: i for i, w in reversed(list(enumerate(who)))}
    firsts = vectors[[first[w] for w in people]]
    strangers = vectors[[i for i, w in enumerate(who) if "/" in w]]
    shares = stranger_shares(firsts, strangers)
    mean, sd, exponent = fit_gallery_model(shares)
    model = predicted(mean, sd, exponent)
    print(f"\na stranger within t of one of n people: 1 - (1 - F(t)) ** (n ** {exponent:.3f}),")
    print(f"F normal with mean {mean:.4f} sd {sd:.4f} (calibration.py stores the fit)")
    shown = [i for i, t in enumerate(THRESHOLDS) if round(t * 100) % 3 == 1]
    harness.table_header("people", *(f"{THRESHOLDS[i]:.2f}" for i in shown))
    for row, n in enumerate(SIZES):
        harness.table_row(n, *(f"{shares[row, i]:.3f} / {model[row, i]:.3f}" for i in shown))
    print("(measured / model)")


if __name__ == "__main__":
    main()
