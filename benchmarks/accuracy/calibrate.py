"""Measure the calibration behind ``--tolerance auto`` on the shared labelled photos.

    python -m benchmarks.accuracy.calibrate --faces PATH/TO/shared/faces

Pools every photo with a known identity (people/tbbt, people/knn, portraits,
and the pairs set, whose identities follow from its same-person pairs), encodes
them with facematch's default settings, and fits a normal distribution to the
different-person distances. ``facematch.matching.calibration`` stores the mean and
standard deviation printed here; the empirical false-accept rates printed next
to the fitted ones show how well the fit holds in the tail we can see.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist

import numpy as np

from benchmarks import harness
from facematch.encode.faces import FaceSettings
from facematch.evaluate.evaluation import embed
from facematch.run.pipeline import Pipeline
from facematch.sources.images import iter_folder

SINGLE = {
    "portraits/obama2.jpg": "obama",
    "portraits/obama3.jpg": "obama",
    "portraits/biden.jpg": "biden",
    "portraits/lin-manuel-miranda.png": "lin-manuel-miranda",
    "portraits/alex-lacamoire.png": "alex_lacamoire",
    "people/knn/test/obama1.jpg": "obama",
    "people/knn/test/alex_lacamoire1.jpg": "alex_lacamoire",
    "people/knn/test/johnsnow_test1.jpg": "kit_harington",
}
MULTI_FACE = {"couple.jpg", "selfie-many-people.jpg"}


def identities(faces: Path) -> list[tuple[str, str]]:
    """(path, identity) for every single-person photo whose identity is known."""
    items: list[tuple[str, str]] = []
    for root, prefix in (
        (faces / "people" / "tbbt", "tbbt/"),
        (faces / "people" / "knn" / "train", ""),
    ):
        for person in sorted(p for p in root.iterdir() if p.is_dir()):
            items += [(f.path, prefix + person.name) for f in iter_folder(str(person))]
    items += [(str(faces / path), who) for path, who in SINGLE.items()]
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    with open(faces / "pairs" / "master.csv", newline="") as f:
        for row in list(csv.reader(f))[1:]:
            a, b, label = (cell.strip() for cell in row[:3])
            find(a), find(b)
            if label.lower() == "yes":
                parent[find(a)] = find(b)
    items += [
        (str(faces / "pairs" / image), "pairs/" + find(image))
        for image in sorted(parent)
        if image not in MULTI_FACE
    ]
    return items


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_faces(parser)
    args = parser.parse_args(argv)
    items = identities(args.faces)
    with Pipeline(FaceSettings(), cache_dir=None) as run:
        embeddings, _ = embed(run, [path for path, _ in items])
    genuine, impostor = [], []
    for (i, (_, a)), (j, (_, b)) in itertools.combinations(enumerate(items), 2):
        ei, ej = embeddings[i], embeddings[j]
        if ei is None or ej is None:
            continue
        (genuine if a == b else impostor).append(float(np.linalg.norm(ei - ej)))
    gen, imp = np.array(genuine), np.array(impostor)
    fit = NormalDist(float(imp.mean()), float(imp.std()))
    print(f"photos {len(items)}, people {len({who for _, who in items})}")
    print(f"same-person pairs {len(gen)}: mean {gen.mean():.4f} sd {gen.std():.4f}")
    print(f"different-person pairs {len(imp)}: mean {fit.mean:.4f} sd {fit.stdev:.4f}")
    print("threshold  FAR measured  FAR fitted  FRR measured")
    for t in (0.5, 0.55, 0.6, 0.65, 0.7):
        print(f"{t:9.2f}  {(imp <= t).mean():12.5f}  {fit.cdf(t):10.5f}  {(gen > t).mean():12.4f}")


if __name__ == "__main__":
    main()
