"""Open-set naming on lfw-dev: how often is an unknown photo named right?

    python -m benchmarks.accuracy.openset --lfw PATH/TO/shared/faces/lfw-dev [--cache-dir DIR]
        [--model hog|cnn|centerface] [--jobs N] [--draws N] [--first-draw SEED]

The split the README and the decision rule are measured on. For each scenario
(30, 300 or 1,000 known people; 1 or 2-3 known photos each) and each of
``--draws`` random draws of the people:

- known: the first photo(s) of each chosen person (people/NAME/, sorted);
- unknown: the chosen people's other photos, plus as many strangers as there
  are known people: one-photo people from strangers/ and the first photo of
  people who were not chosen.

A photo is right when a known person's photo is named as that person, and when
a stranger's photo is named as nobody. Every decision rule is applied to the
same distances, so the rules are compared on identical draws. Encoding uses
facematch's default settings (the detector chosen by ``--model``) and its cache
(``--cache-dir``), so a second run encodes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from benchmarks import harness
from facematch.encode.faces import FaceSettings
from facematch.evaluate.evaluation import Descriptor, embed
from facematch.matching import calibration
from facematch.matching.gallery import Gallery
from facematch.run.pipeline import Pipeline

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Scores:
    """What a decision rule sees for each unknown photo."""

    best: Array  # distance to the nearest person
    second: Array  # distance to the second-nearest person
    named: NDArray[np.intp]  # index of the nearest person
    gallery_mean: Array  # mean distance to every known face (score normalisation)
    gallery_sd: Array
    known_faces: int
    local_tolerance: Array  # the default: auto, adapted to each face's neighbourhood


Rule = Callable[[Scores], NDArray[np.bool_]]


def load(
    lfw: Path,
    cache_dir: Path | None,
    settings: FaceSettings | None = None,
    jobs: int | None = None,
    descriptor: Descriptor = "dlib",
) -> tuple[dict[str, list[Array]], list[Array]]:
    """Largest-face embeddings (dlib's, or SFace's of the same faces): per person (in file
    order), and the strangers."""
    people_dirs = sorted(p for p in (lfw / "people").iterdir() if p.is_dir())
    people_files = [sorted(str(f) for f in d.iterdir()) for d in people_dirs]
    stranger_files = [str(f) for f in harness.photos(lfw / "strangers")]
    flat = [f for files in people_files for f in files] + stranger_files
    with Pipeline(settings or FaceSettings(), jobs=jobs, cache_dir=cache_dir) as run:
        embeddings, _ = embed(run, flat, descriptor)
    by_path = dict(zip(flat, embeddings, strict=True))
    people = {
        d.name: [e for f in files if (e := by_path[f]) is not None]
        for d, files in zip(people_dirs, people_files, strict=True)
    }
    strangers = [e for f in stranger_files if (e := by_path[f]) is not None]
    no_face = sum(e is None for e in embeddings)
    print(f"photos {len(flat)}, no face found in {no_face}")
    return people, strangers


HALF_SEED = 20261207


def halves(
    people: dict[str, list[Array]], strangers: list[Array]
) -> list[tuple[dict[str, list[Array]], list[Array]]]:
    """lfw-dev split by person into a tuning and a checking half (a seeded shuffle):
    each half's people (2+ photos) and one-photo strangers; no person in both."""
    rng = np.random.default_rng(HALF_SEED)
    names = [n for n in sorted(people) if people[n]]
    order = rng.permutation(len(names))
    lone = rng.permutation(len(strangers))
    return [
        ({names[j]: people[names[j]] for j in order[i::2]}, [strangers[j] for j in lone[i::2]])
        for i in (0, 1)
    ]


def scores(known: Array, owners: NDArray[np.intp], people: int, probes: Array) -> Scores:
    photo = np.sqrt(
        np.maximum(
            (probes**2).sum(1)[:, None] - 2 * probes @ known.T + (known**2).sum(1)[None, :], 0
        )
    )
    person = np.full((len(probes), people), np.inf)
    for p in range(people):
        person[:, p] = photo[:, owners == p].min(axis=1)
    order = np.argsort(person, axis=1)
    rows = np.arange(len(probes))
    second = person[rows, order[:, 1]] if people > 1 else np.full(len(probes), np.inf)
    # The tolerance facematch itself uses (names sort as the person numbers do).
    gallery = Gallery.from_faces([(f"{p:06d}", e) for p, e in zip(owners, known, strict=True)])
    auto = calibration.auto_tolerance(len(known))
    local = np.array([n.tolerance for n in gallery.nearest(probes, auto, local=True)])
    return Scores(
        person[rows, order[:, 0]],
        second,
        order[:, 0],
        photo.mean(axis=1),
        photo.std(axis=1),
        len(known),
        local,
    )


def draw(
    people: dict[str, list[Array]],
    strangers: list[Array],
    n_known: int,
    photos: int,
    rng: np.random.Generator,
) -> tuple[Scores, NDArray[np.intp]]:
    """Scores of one draw, and the true person index of each probe (-1: stranger)."""
    names = sorted(people)
    eligible = [n for n in names if len(people[n]) > photos]
    chosen = sorted(rng.choice(len(eligible), size=min(n_known, len(eligible)), replace=False))
    chosen_names = [eligible[i] for i in chosen]
    known, owners, probes, truth = [], [], [], []
    for p, name in enumerate(chosen_names):
        faces = people[name]
        per_person = photos if photos == 1 else int(rng.integers(2, photos + 1))
        per_person = min(per_person, len(faces) - 1)
        known += faces[:per_person]
        owners += [p] * per_person
        probes += faces[per_person:]
        truth += [p] * (len(faces) - per_person)
    others = [people[n][0] for n in names if n not in set(chosen_names)] + strangers
    picked = rng.choice(len(others), size=min(len(chosen_names), len(others)), replace=False)
    probes += [others[i] for i in sorted(picked)]
    truth += [-1] * len(picked)
    result = scores(np.array(known), np.array(owners), len(chosen_names), np.array(probes))
    return result, np.array(truth)


def accuracy(accept: NDArray[np.bool_], s: Scores, truth: NDArray[np.intp]) -> float:
    right = np.where(truth >= 0, accept & (s.named == truth), ~accept)
    return float(right.mean())


def rules() -> dict[str, Rule]:
    auto = calibration.auto_tolerance

    def tolerance(t: float) -> Rule:
        return lambda s: s.best <= t

    def margin(m: float) -> Rule:
        return lambda s: (s.best <= auto(s.known_faces)) & (s.second - s.best >= m)

    def znorm(z: float, cap: float) -> Rule:
        return lambda s: (s.best <= cap) & ((s.gallery_mean - s.best) / s.gallery_sd >= z)

    def znorm_auto(z: float) -> Rule:
        return lambda s: (
            (s.best <= auto(s.known_faces)) & ((s.gallery_mean - s.best) / s.gallery_sd >= z)
        )

    table: dict[str, Rule] = {"fixed 0.6": tolerance(0.6), "fixed 0.5": tolerance(0.5)}
    table["auto (calibrated tolerance)"] = lambda s: s.best <= auto(s.known_faces)
    table["auto, adapted to the neighbourhood (default)"] = lambda s: s.best <= s.local_tolerance
    table["the default, names not marked uncertain"] = lambda s: (
        (s.best <= s.local_tolerance)
        & (
            np.array([calibration.stranger_chance(b, s.known_faces) for b in s.best])
            <= calibration.UNCERTAIN_CHANCE
        )
    )
    for m in (0.02, 0.04, 0.06):
        table[f"auto + margin {m}"] = margin(m)
    for z in (3.0, 4.0):
        table[f"z-norm >= {z}, d <= 0.6"] = znorm(z, 0.6)
        table[f"z-norm >= {z}, d <= auto"] = znorm_auto(z)
    return table


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_lfw(parser)
    harness.add_cache_dir(parser)
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--first-draw", type=int, default=0, help="seed of the first draw")
    parser.add_argument("--model", choices=("hog", "cnn", "centerface"), default="hog")
    parser.add_argument(
        "--half",
        choices=("tuning", "checking"),
        default=None,
        help="only one half of lfw-dev split by person (no 1,000-people scenarios)",
    )
    harness.add_jobs(parser, None, "encoding processes")
    args = parser.parse_args(argv)
    settings = FaceSettings(model=args.model)
    people, strangers = load(args.lfw, args.cache_dir, settings, args.jobs)
    scenarios = [(30, 1), (300, 1), (1000, 1), (30, 3), (300, 3), (1000, 3)]
    if args.half is not None:
        people, strangers = halves(people, strangers)[args.half == "checking"]
        scenarios = [(n, k) for n, k in scenarios if n < 1000]
        print(f"{args.half} half: {len(people)} people, {len(strangers)} strangers")
    table = rules()
    results: dict[str, list[float]] = {name: [] for name in table}
    strangers_named: dict[str, list[float]] = {name: [] for name in table}
    header = ["rule"] + [f"{n} known x {'1' if k == 1 else '2-3'}" for n, k in scenarios]
    for n_known, photos in scenarios:
        per_rule: dict[str, list[float]] = {name: [] for name in table}
        named: dict[str, list[float]] = {name: [] for name in table}
        for seed in range(args.first_draw, args.first_draw + args.draws):
            s, truth = draw(people, strangers, n_known, photos, np.random.default_rng(seed))
            for name, rule in table.items():
                accept = rule(s)
                per_rule[name].append(accuracy(accept, s, truth))
                named[name].append(float(accept[truth < 0].mean()))
        for name in table:
            results[name].append(float(np.mean(per_rule[name])))
            strangers_named[name].append(float(np.mean(named[name])))
    print(f"share of unknown photos named right, mean of {args.draws} draws")
    harness.table_header(*header, "mean")
    for name, row in results.items():
        harness.table_row(name, *(f"{v:.4f}" for v in row), f"{math.fsum(row) / len(row):.4f}")
    print("\nshare of strangers named as somebody")
    harness.table_header(*header)
    for name, row in strangers_named.items():
        harness.table_row(name, *(f"{v:.3f}" for v in row))


if __name__ == "__main__":
    main()
