"""SFace's own accuracy, and its "still matched" distance for the cloak check, on lfw-dev.

    nice -n 10 python -m benchmarks.accuracy.sface_threshold --lfw PATH/TO/shared/faces/lfw-dev \\
        [--cache-dir DIR] [--jobs N]

lfw-dev's people (people/, 2+ photos each) and one-photo strangers (strangers/),
split by person as ``openset.halves`` splits them: a tuning half and a checking
half, no person in both. In each half, every pair of photos is a pair: same
person or not. Both models describe the same faces, the largest face
facematch finds in each photo at its defaults: dlib's descriptor (what matching
uses), and SFace's (``facematch.encode.sface``: aligned by that face's 68
landmarks) through ``facematch.evaluate.evaluation.embed``, as ``facematch
evaluate --descriptor sface`` does.

For each model and half: the ROC AUC, and the false-match rate (pairs of
different people within the distance) and true-match rate (pairs of the same
person within it) at: dlib's tolerance 0.6; OpenCV's own SFace threshold
(``encode.sface.OPENCV_DISTANCE``); the cloak check's (``encode.sface.MATCH_DISTANCE``);
and, chosen on the tuning half, the distances where SFace's false-match rate is
dlib's at 0.6, and 1 in 1,000.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from benchmarks import harness
from benchmarks.accuracy.openset import halves, load
from facematch.encode import sface
from facematch.evaluate import metrics

Array = NDArray[np.float64]
Labels = NDArray[np.bool_]
DLIB_TOLERANCE = 0.6
FALSE_MATCH_TARGET = 1e-3


def pairs(people: dict[str, list[Array]], strangers: list[Array]) -> tuple[Array, Labels]:
    """Distance and same-person label of every pair of photos in a half."""
    vectors = [v for photos in people.values() for v in photos] + list(strangers)
    owner = [i for i, photos in enumerate(people.values()) for _ in photos]
    owner += list(range(len(people), len(people) + len(strangers)))
    stack, who = np.array(vectors), np.array(owner)
    squared = (stack**2).sum(1)
    distances = np.sqrt(np.maximum(squared[:, None] - 2 * stack @ stack.T + squared[None, :], 0))
    upper = np.triu_indices(len(stack), 1)
    return distances[upper], (who[:, None] == who[None, :])[upper]


def rates(distances: Array, same: Labels, threshold: float) -> str:
    """False-match and true-match rate at ``threshold``, with the pairs counted."""
    accepted = distances <= threshold
    false, true = int(accepted[~same].sum()), int(accepted[same].sum())
    return (
        f"FMR {false / (~same).sum():.5f} ({false}/{(~same).sum()}), "
        f"TMR {true / same.sum():.4f} ({true}/{same.sum()})"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_lfw(parser)
    harness.add_cache_dir(parser)
    harness.add_jobs(parser)
    args = parser.parse_args(argv)

    halved = {}
    for model in ("dlib", "sface"):
        people, strangers = load(args.lfw, args.cache_dir, jobs=args.jobs, descriptor=model)  # type: ignore[arg-type]
        halved[model] = [pairs(folk, lone) for folk, lone in halves(people, strangers)]
    dlib_tuning_far = float(np.mean(halved["dlib"][0][0][~halved["dlib"][0][1]] <= DLIB_TOLERANCE))
    sface_tuning = halved["sface"][0]
    same_far = metrics.tolerance_for_far(*sface_tuning, dlib_tuning_far)
    one_in_1000 = metrics.tolerance_for_far(*sface_tuning, FALSE_MATCH_TARGET)
    assert same_far is not None and one_in_1000 is not None
    thresholds = {
        "dlib": {"dlib's tolerance 0.6": DLIB_TOLERANCE},
        "sface": {
            f"OpenCV's {sface.OPENCV_DISTANCE:g}": sface.OPENCV_DISTANCE,
            f"the cloak check's {sface.MATCH_DISTANCE:g}": sface.MATCH_DISTANCE,
            f"dlib's tuning FMR at 0.6 ({same_far.tolerance:.4f})": same_far.tolerance,
            f"FMR 1/1000 on tuning ({one_in_1000.tolerance:.4f})": one_in_1000.tolerance,
        },
    }
    harness.table_header("model", "half", "pairs (same)", "ROC AUC", "threshold", "rates")
    for model, by_name in thresholds.items():
        for half, (distances, same) in zip(("tuning", "checking"), halved[model], strict=True):
            auc = metrics.roc_auc(metrics.roc_curve(distances, same))
            for label, threshold in by_name.items():
                harness.table_row(
                    model,
                    half,
                    f"{len(same)} ({same.sum()})",
                    f"{auc:.5f}",
                    label,
                    rates(distances, same, threshold),
                )


if __name__ == "__main__":
    main()
