"""How sure a name is, and when ``redact`` may keep a face clear: lfw-dev split by person.

    python -m benchmarks.accuracy.sureness --lfw PATH/TO/shared/faces/lfw-dev [--cache-dir DIR]
        [--draws 40] [--fit]

lfw-dev's people (people/ and strangers/) are shuffled with a fixed seed and
split in two: a tuning half and a checking half, no person in both. Each
measurement below is printed for both halves; rules are chosen on the tuning
half, and the checking half says whether they hold for people nobody tuned on.

1. The stranger chance (``calibration.stranger_chance``, in every named row):
   galleries of 1 to 300 people (one photo each, a person's first); probes are
   every photo of the half's other people and its one-photo strangers. For each
   distance ``t``, the measured share of probes within ``t`` of somebody beside
   the model's estimate, and their ratio where the measured share is between 1%
   and 50%; then the same for the whole of lfw-dev. ``--fit`` also fits the
   model's three constants on the tuning half (how the stored ones were made).
2. Redaction's keep rule: galleries of 1, 2, 3, 6, 10 and 30 people (one photo
   each, then up to three), the other people's photos (several per stranger)
   as strangers and the known people's other photos as themselves. For the
   rule without a stranger-chance limit and for ``calibration.KEEP_CHANCE``
   and its neighbours: the share of stranger faces kept clear, the share of
   known faces kept clear, and those kept as the wrong person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from benchmarks import harness
from benchmarks.accuracy.openset import halves, load
from facematch.matching import calibration
from facematch.output.pictures import AMBIGUITY_MARGIN

Array = NDArray[np.float64]
CHANCE_SIZES = (1, 2, 3, 6, 10, 30, 100, 300)
KEEP_SIZES = (1, 2, 3, 6, 10, 30, 100, 300)
THRESHOLDS = np.round(np.arange(0.40, 0.621, 0.01), 2)
SEED = 20261207  # the draws (the halves have their own: openset.HALF_SEED)


@dataclass(frozen=True)
class Half:
    """One half of lfw-dev: people with several photos, and one-photo strangers."""

    name: str
    people: list[list[Array]]
    strangers: Array


def split(people: dict[str, list[Array]], strangers: list[Array]) -> tuple[Half, Half]:
    """The tuning and checking halves of ``openset.halves``."""
    made = [
        Half(label, list(folk.values()), np.array(lone))
        for label, (folk, lone) in zip(
            ("tuning", "checking"), halves(people, strangers), strict=True
        )
    ]
    return made[0], made[1]


def nearest(probes: Array, gallery: Array) -> Array:
    """(probes, gallery faces) distances."""
    d2 = (probes**2).sum(1)[:, None] - 2 * probes @ gallery.T + (gallery**2).sum(1)[None, :]
    return np.sqrt(np.maximum(d2, 0.0))


def chance_table(half: Half, draws: int) -> Array:
    """(sizes, thresholds): measured share of strangers within t of a gallery's nearest face."""
    rng = np.random.default_rng(SEED + 1)
    shares = []
    for n in CHANCE_SIZES:
        rounds = []
        for _ in range(max(draws * 10 // n, 3)):
            order = rng.permutation(len(half.people))
            gallery = np.array([half.people[j][0] for j in order[:n]])
            others = [e for j in order[n:] for e in half.people[j]]
            probes = np.concatenate([np.array(others), half.strangers])
            best = nearest(probes, gallery).min(1)
            rounds.append([(best <= t).mean() for t in THRESHOLDS])
        shares.append(np.mean(rounds, axis=0))
    return np.array(shares)


def model_table(mean: float, sd: float, exponent: float) -> Array:
    from statistics import NormalDist

    per_face = np.array([NormalDist(mean, sd).cdf(float(t)) for t in THRESHOLDS])
    return np.array([1 - (1 - per_face) ** (n**exponent) for n in CHANCE_SIZES])


def fit(shares: Array) -> tuple[float, float, float]:
    """The model's constants by least squares on log shares between 0.3% and 50%."""
    used = (shares > 0.003) & (shares < 0.5)

    def loss(p: tuple[float, float, float]) -> float:
        return float(((np.log(model_table(*p)[used]) - np.log(shares[used])) ** 2).sum())

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


def report_chance(half: Half, shares: Array) -> None:
    model = model_table(
        calibration.STRANGER_MEAN, calibration.STRANGER_SD, calibration.STRANGER_EXPONENT
    )
    print(f"\n## stranger chance, {half.name} half: measured share / model estimate\n")
    harness.table_header("people", *(f"{t:.2f}" for t in THRESHOLDS[::2]))
    for i, n in enumerate(CHANCE_SIZES):
        cells = [
            f"{100 * shares[i, j]:.2g}% / {100 * model[i, j]:.2g}%"
            for j in range(0, len(THRESHOLDS), 2)
        ]
        harness.table_row(str(n), *cells)
    band = (shares >= 0.01) & (shares <= 0.5)
    ratio = model[band] / shares[band]
    worst = np.abs(ratio - 1).max()
    close = int((np.abs(ratio - 1) <= 0.25).sum())
    print(
        f"\n{half.name}: where the measured share is 1%-50% ({band.sum()} points), the model is "
        f"within 25% of it at {close}, within {100 * worst:.0f}% everywhere "
        f"(ratio {ratio.min():.2f}-{ratio.max():.2f}, median {np.median(ratio):.2f})"
    )


@dataclass
class Kept:
    strangers: int = 0
    stranger_kept: int = 0
    known: int = 0
    known_kept: int = 0
    wrong_kept: int = 0


def keep_counts(
    half: Half, n: int, photos: int, limits: Sequence[float | None], draws: int
) -> list[Kept]:
    """Redaction's keep decision for each limit on the stranger chance (None: no limit)."""
    rng = np.random.default_rng(SEED + 10 * n + photos)
    counts = [Kept() for _ in limits]
    eligible = [j for j, p in enumerate(half.people) if len(p) > photos]
    for _ in range(max(draws * 10 // n, draws)):
        order = rng.permutation(len(eligible))
        chosen = [eligible[j] for j in order[:n]]
        gallery_rows = [(k, e) for k, j in enumerate(chosen) for e in half.people[j][:photos]]
        gallery = np.array([e for _, e in gallery_rows])
        owners = np.array([k for k, _ in gallery_rows])
        taken = set(chosen)
        strangers = [e for j in range(len(half.people)) if j not in taken for e in half.people[j]]
        probes = np.concatenate([np.array(strangers), half.strangers])
        known = [(k, e) for k, j in enumerate(chosen) for e in half.people[j][photos:]]
        everyone = np.concatenate([probes, np.array([e for _, e in known])])
        truth = np.concatenate([np.full(len(probes), -1), [k for k, _ in known]])
        per_face = nearest(everyone, gallery)
        per_person = np.full((len(everyone), n), np.inf)
        for k in range(n):
            per_person[:, k] = per_face[:, owners == k].min(1)
        ranked = np.sort(per_person, axis=1)
        best, who = ranked[:, 0], per_person.argmin(1)
        second = ranked[:, 1] if n > 1 else np.full(len(best), np.inf)
        tolerance = calibration.auto_tolerance(len(gallery))
        named = (best <= tolerance) & (second > best + AMBIGUITY_MARGIN)
        chance = np.array([calibration.stranger_chance(b, len(gallery)) for b in best])
        for count, limit in zip(counts, limits, strict=True):
            kept = named if limit is None else named & (chance <= limit)
            stranger = truth < 0
            count.strangers += int(stranger.sum())
            count.stranger_kept += int((kept & stranger).sum())
            count.known += int((~stranger).sum())
            count.known_kept += int((kept & ~stranger & (who == truth)).sum())
            count.wrong_kept += int((kept & ~stranger & (who != truth)).sum())
    return counts


def report_keep(half: Half, draws: int) -> None:
    limits: list[float | None] = [None, 0.01, calibration.UNCERTAIN_CHANCE, 0.003]
    limits += [calibration.KEEP_CHANCE, 0.0003]
    names = ["none", "1%", f"{100 * calibration.UNCERTAIN_CHANCE:g}% (sure name)", "0.3%"]
    names += [f"{100 * calibration.KEEP_CHANCE:g}% (kept clear)", "0.03%"]
    for photos in (1, 3):
        print(f"\n## redaction keep rule, {half.name} half, {photos} photo(s) per known person\n")
        print("strangers kept clear / known faces kept clear (kept as someone else)\n")
        harness.table_header("people", *(f"limit {n}" for n in names))
        for n in KEEP_SIZES:
            if n > sum(len(p) > photos for p in half.people) // 2:
                continue  # too few people with that many photos to draw from
            counts = keep_counts(half, n, photos, limits, draws)
            cells = [
                f"{100 * c.stranger_kept / c.strangers:.3f}% / "
                f"{100 * c.known_kept / max(c.known, 1):.1f}% ({c.wrong_kept})"
                for c in counts
            ]
            harness.table_row(str(n), *cells)


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_lfw(parser)
    harness.add_cache_dir(parser)
    parser.add_argument("--draws", type=int, default=40, help="random galleries per size")
    parser.add_argument("--fit", action="store_true", help="fit the model on the tuning half")
    parser.add_argument("--part", choices=("chance", "keep", "both"), default="both")
    args = parser.parse_args(argv)
    people, strangers = load(args.lfw, args.cache_dir)
    halves = split(people, strangers)
    whole = Half("whole", [people[n] for n in sorted(people) if people[n]], np.array(strangers))
    for half in halves:
        print(
            f"{half.name} half: {len(half.people)} people, {sum(map(len, half.people))} photos, "
            f"{len(half.strangers)} strangers"
        )
    if args.part in ("chance", "both"):
        tables = [chance_table(half, args.draws) for half in (*halves, whole)]
        if args.fit:
            mean, sd, exponent = fit(tables[0])
            print(f"\nfitted on the tuning half: mean {mean:.4f} sd {sd:.4f} exp {exponent:.3f}")
        for half, table in zip((*halves, whole), tables, strict=True):
            report_chance(half, table)
    if args.part in ("keep", "both"):
        for half in halves:
            report_keep(half, args.draws)


if __name__ == "__main__":
    main()
