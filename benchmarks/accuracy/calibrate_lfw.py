"""Different-person distances on lfw-dev: the tail behind ``--tolerance auto``, measured.

    python -m benchmarks.accuracy.calibrate_lfw --lfw PATH/TO/shared/faces/lfw-dev [--cache-dir DIR]

Encodes people/ and strangers/ (largest face per photo, default settings),
takes every different-person pair (about ten million), and prints the
measured false-accept rate next to two normal fits: one to all the distances
(what ``facematch.matching.calibration`` stores, fitted on the shared sets), and one to
the lower tail only (quantiles 1e-2 to 1e-4), which is the part that decides
how often a stranger is named.

The model ``facematch.matching.calibration`` uses for a stranger's chance of
being named in a gallery of ``n`` people is measured, fitted and checked by
``benchmarks.accuracy.sureness`` (lfw-dev split by person into halves).
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
    print(
        "\nthe gallery model (a stranger near one of n people): "
        "python -m benchmarks.accuracy.sureness"
    )


if __name__ == "__main__":
    main()
