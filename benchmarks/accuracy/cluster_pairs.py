"""How often ``cluster`` invents a person, by group size: lfw-dev split by person.

    python -m benchmarks.accuracy.cluster_pairs --lfw PATH/TO/shared/faces/lfw-dev [--cache-dir DIR]
        [--draws 30]

The halves are those of ``benchmarks.accuracy.sureness`` (a seeded shuffle of
people; no person in both). From each half, photo collections like a user's:
``--draws`` random draws of 40 people with all their photos (2-6 each) and 100
one-photo strangers (strangers/ and single photos of the half's other people),
about 250 photos; and the whole half at once (about 2,300 photos).

Each collection is clustered with the defaults (largest face per photo), and
every group is scored: false (an invented person) when no one person holds
more than half of its faces, impure when it holds anyone else's. Printed per
group size (2, 3, 4-6, 7+): groups formed, the share false and impure; then
for each pair rule (a two-face group stays a group only when its faces are
within the rule's distance): the false share of pairs and of all groups, and
how many true pairs the rule breaks up. The rule is chosen on the tuning
half (at most 2% of formed groups false) and reported on the checking half.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from benchmarks import harness
from benchmarks.accuracy.openset import load
from benchmarks.accuracy.sureness import SEED, Half, split
from facematch.matching.cluster import FaceClusterer

Array = NDArray[np.float64]
RULES: tuple[float | None, ...] = (None, 0.50, 0.48, 0.46, 0.44, 0.42, 0.40)
BINS = ((2, 2), (3, 3), (4, 6), (7, 10_000))


def collections(half: Half, draws: int) -> list[tuple[Array, NDArray[np.intp]]]:
    """(embeddings, person of each) for each drawn collection, then the whole half."""
    rng = np.random.default_rng(SEED + 2)
    made = []
    for _ in range(draws):
        order = rng.permutation(len(half.people))
        chosen, others = order[:40], order[40:]
        faces = [(int(j), e) for j in chosen for e in half.people[j]]
        lone = [(int(j), half.people[j][0]) for j in others[:50]]
        picked = rng.choice(len(half.strangers), 50, replace=False)
        lone += [(len(half.people) + int(s), half.strangers[s]) for s in picked]
        rows = faces + lone
        made.append((np.array([e for _, e in rows]), np.array([p for p, _ in rows])))
    everyone = [(j, e) for j, p in enumerate(half.people) for e in p]
    everyone += [(len(half.people) + s, e) for s, e in enumerate(half.strangers)]
    made.append((np.array([e for _, e in everyone]), np.array([p for p, _ in everyone])))
    return made


def groups(embeddings: Array, who: NDArray[np.intp]) -> list[tuple[int, bool, bool, float]]:
    """(size, false, impure, how far apart a pair's two faces are) for each group formed
    without a pair rule; a rule then dissolves the pairs farther apart than it (as
    ``FaceClusterer`` does after merging), so one clustering serves every rule."""
    labels = FaceClusterer(pair_threshold=1.0).fit_predict(embeddings)
    stored = embeddings.astype(np.float32).astype(np.float64)  # what the clusterer measures
    found = []
    for label in range(labels.max(initial=-1) + 1):
        members = np.flatnonzero(labels == label)
        counts = np.unique(who[members], return_counts=True)[1]
        false, impure = bool(counts.max() * 2 <= len(members)), len(counts) > 1
        apart = float(np.linalg.norm(np.subtract(*stored[members]))) if len(members) == 2 else 0.0
        found.append((len(members), false, impure, apart))
    return found


def report(half: Half, draws: int) -> None:
    made = collections(half, draws)
    for label, chosen in (("250-photo collections", made[:-1]), ("the whole half", made[-1:])):
        print(f"\n## {half.name} half, {label}\n")
        plain = [g for e, w in chosen for g in groups(e, w)]
        harness.table_header("group size", "groups", "false", "impure")
        for low, high in BINS:
            sized = [g for g in plain if low <= g[0] <= high]
            false = sum(g[1] for g in sized) / max(len(sized), 1)
            impure = sum(g[2] for g in sized) / max(len(sized), 1)
            name = str(low) if low == high else f"{low}-{high}" if high < 10_000 else f"{low}+"
            harness.table_row(name, len(sized), f"{100 * false:.1f}%", f"{100 * impure:.1f}%")
        print()
        harness.table_header(
            "pair rule", "pairs kept", "false pairs", "false groups", "true pairs broken up"
        )
        for rule in RULES:
            dissolved = [rule is not None and g[0] == 2 and g[3] > rule for g in plain]
            kept = [g for g, gone in zip(plain, dissolved, strict=True) if not gone]
            pairs = [g for g in kept if g[0] == 2]
            broken = sum(gone and not g[1] for g, gone in zip(plain, dissolved, strict=True))
            harness.table_row(
                "none" if rule is None else f"{rule:.2f}",
                len(pairs),
                f"{100 * sum(g[1] for g in pairs) / max(len(pairs), 1):.1f}%",
                f"{100 * sum(g[1] for g in kept) / max(len(kept), 1):.2f}%",
                broken,
            )


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_lfw(parser)
    harness.add_cache_dir(parser)
    parser.add_argument("--draws", type=int, default=30, help="collections drawn per half")
    args = parser.parse_args(argv)
    people, strangers = load(args.lfw, args.cache_dir)
    for half in split(people, strangers):
        report(half, args.draws)


if __name__ == "__main__":
    main()
