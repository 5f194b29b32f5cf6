"""Time ExactIndex on a synthetic gallery shaped like dlib face embeddings.

    python -m benchmarks.scale.bench_neighbours [--size 100000] [--rounds 3] [--check 32]

Rows are a shared mean direction plus a per-person random part, scaled so norms are
about 1 and distances between different people about 0.86 +- 0.09, as with dlib. Half
the queries are new photos of gallery people (near one row), half are strangers. Prints
the median milliseconds per query over the rounds for a 256-query batch and for single
queries (top-10, radius 0.6, and nearest two people at 5 photos a person), then checks a
sample of queries against a float64 brute force: the same ids in the same order, and the
largest distance difference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from benchmarks import harness
from benchmarks.harness import WALL
from facematch.neighbours.exact import ExactIndex, nearest_people

DIM = 128


def faces(rng: np.random.Generator, count: int, mean: np.ndarray) -> np.ndarray:
    part = rng.normal(size=(count, DIM))
    part /= np.linalg.norm(part, axis=1, keepdims=True)
    scale = rng.normal(0.61, 0.06, size=(count, 1))
    return mean + scale * part


def median_ms(run: Callable[[], object], per: int, rounds: int) -> float:
    """Median wall-clock milliseconds per item over ``rounds`` runs."""
    return harness.median(harness.rounds(run, rounds, WALL)[0]) * 1000 / per


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    harness.add_rounds(parser, 3)
    parser.add_argument("--singles", type=int, default=20, help="single queries per round")
    parser.add_argument("--check", type=int, default=32, help="queries checked by brute force")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    mean = rng.normal(size=DIM)
    mean *= 0.79 / np.linalg.norm(mean)
    with harness.timed() as building:
        index = ExactIndex(DIM)
        for part in range(0, args.size, 100_000):
            index.add(faces(rng, min(100_000, args.size - part), mean))
    print(f"gallery {args.size} x {DIM} float32: built in {building.wall:.1f} s")
    owners = np.arange(args.size) // 5
    stored = index.vectors
    near = stored[rng.integers(0, args.size, size=128)] + rng.normal(0, 0.03, (128, DIM))
    queries = np.concatenate([near, faces(rng, 128, mean)])
    sample = np.linalg.norm(stored[:1000].astype(np.float64) - queries[200], axis=1)
    print(f"stranger to gallery distance: {sample.mean():.3f} +- {sample.std():.3f}")

    print(f"median ms per query over {args.rounds} rounds:")
    singles = queries[: args.singles]
    cases: list[tuple[str, Callable[[np.ndarray], object]]] = [
        ("top-10", lambda q: index.search(q, 10)),
        ("radius 0.6", lambda q: index.range_search(q, 0.6)),
        ("two nearest people", lambda q: nearest_people(index, owners, q, 2)),
    ]
    for name, call in cases:
        batch = median_ms(lambda call=call: call(queries), len(queries), args.rounds)
        single = median_ms(lambda call=call: [call(q) for q in singles], len(singles), args.rounds)
        print(f"  {name:20} batch of 256: {batch:8.3f}   single: {single:8.3f}")

    checked = queries[np.linspace(0, len(queries) - 1, args.check).astype(int)]
    distances, ids = index.search(checked, 10)
    within = index.range_search(checked, 0.6)
    same_top = same_range = 0
    worst = 0.0
    for q, query in enumerate(checked):
        exact = np.empty(args.size)
        for start in range(0, args.size, 100_000):
            rows = stored[start : start + 100_000].astype(np.float64)
            exact[start : start + 100_000] = np.linalg.norm(rows - query, axis=1)
        order = np.lexsort((np.arange(args.size), exact))
        same_top += bool(np.array_equal(ids[q], order[:10]))
        worst = max(worst, float(np.abs(distances[q] - exact[order[:10]]).max()))
        inside = order[exact[order] <= 0.6]
        same_range += bool(np.array_equal(within[q][1], inside))
        if len(inside):
            worst = max(worst, float(np.abs(within[q][0] - exact[inside]).max()))
    print(
        f"against float64 brute force on {args.check} queries: top-10 identical "
        f"{same_top}/{args.check}, radius 0.6 identical {same_range}/{args.check}, "
        f"largest distance difference {worst:.1e}"
    )


if __name__ == "__main__":
    main()
