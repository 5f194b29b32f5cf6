"""Compare clustering methods on a labelled face collection (lfw-dev: people/ + strangers/).

Input: an ``.npz`` of embeddings of every face of the collection (arrays ``paths``
relative to the collection, ``image`` (face -> path index), ``face``, ``embeddings``),
such as the one ``python -m benchmarks.accuracy.lfw_faces --save-faces OUT.npz`` writes. The true
person of a photo is its folder under ``people/``; each photo under ``strangers/`` is a
person of its own; other folders are ignored. Every face of a photo is clustered; the
largest face of each photo is the labelled one and only those are scored (the others are
bystanders with no label).

    python -m benchmarks.accuracy.cluster_compare lfw-dev-default.npz [--methods ours,cw,...]

Needs scikit-learn for the hdbscan, dbscan and sklearn-average rows (skipped without it).
Prints one row per method and setting: groups vs true people, BCubed and pairwise
precision/recall/F, groups mixing people, people split, groups with two faces of one photo,
and seconds (one run, noisy on a shared machine).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from benchmarks import harness
from facematch.evaluate.metrics import clustering_scores
from facematch.matching.cluster import PAIR_THRESHOLD, FaceClusterer

Labels = NDArray[np.intp]


def min_size(labels: Labels, min_faces: int) -> Labels:
    """Groups smaller than ``min_faces`` become -1 (the same rule for every method)."""
    out = labels.copy()
    out[out < 0] = -1
    values, counts = np.unique(out[out >= 0], return_counts=True)
    small = values[counts < min_faces]
    out[np.isin(out, small)] = -1
    return out


def photo_violations(labels: Labels, photo: NDArray[np.intp]) -> int:
    """Groups holding two faces of one photo."""
    grouped = labels >= 0
    pairs = np.unique(np.stack([labels[grouped], photo[grouped]]), axis=1, return_counts=True)[1]
    bad = np.unique(np.stack([labels[grouped], photo[grouped]]), axis=1)[0][pairs > 1]
    return len(np.unique(bad))


def ours(
    threshold: float, hub_neighbours: int = 10, pair_threshold: float = PAIR_THRESHOLD
) -> Callable[[dict], Labels]:
    def run(d: dict) -> Labels:
        clusterer = FaceClusterer(
            threshold, min_faces=1, hub_neighbours=hub_neighbours, pair_threshold=pair_threshold
        )
        return clusterer.fit_predict(d["embeddings"], photos=list(d["photo"]), keys=list(d["keys"]))

    return run


def chinese_whispers(threshold: float) -> Callable[[dict], Labels]:
    def run(d: dict) -> Labels:
        import dlib

        vectors = [dlib.vector(row.tolist()) for row in d["embeddings"]]
        return np.array(dlib.chinese_whispers_clustering(vectors, threshold), dtype=np.intp)

    return run


def hdbscan(min_cluster_size: int, method: str) -> Callable[[dict], Labels]:
    def run(d: dict) -> Labels:
        from sklearn.cluster import HDBSCAN

        model = HDBSCAN(
            min_cluster_size=min_cluster_size,
            min_samples=1,
            cluster_selection_method=method,
        )
        return np.asarray(model.fit_predict(d["embeddings"]), dtype=np.intp)

    return run


def dbscan(eps: float) -> Callable[[dict], Labels]:
    def run(d: dict) -> Labels:
        from sklearn.cluster import DBSCAN

        return np.asarray(DBSCAN(eps=eps, min_samples=2).fit_predict(d["embeddings"]), np.intp)

    return run


def sklearn_average(threshold: float, k: int = 10) -> Callable[[dict], Labels]:
    def run(d: dict) -> Labels:
        from sklearn.cluster import AgglomerativeClustering
        from sklearn.neighbors import kneighbors_graph

        graph = kneighbors_graph(d["embeddings"], k, include_self=False)
        model = AgglomerativeClustering(
            n_clusters=None,
            distance_threshold=threshold,
            linkage="average",
            connectivity=graph,
        )
        return np.asarray(model.fit_predict(d["embeddings"]), dtype=np.intp)

    return run


METHODS: dict[str, list[tuple[str, Callable[[dict], Labels]]]] = {
    "cw": [(f"dlib chinese whispers {t}", chinese_whispers(t)) for t in (0.45, 0.5, 0.55)],
    "dbscan": [(f"sklearn DBSCAN eps={e}", dbscan(e)) for e in (0.4, 0.45, 0.5)],
    "hdbscan": [
        (f"sklearn HDBSCAN min_cluster_size=2 {m}", hdbscan(2, m)) for m in ("eom", "leaf")
    ],
    "sklearn-average": [
        (f"sklearn average linkage, 10-NN graph, {t}", sklearn_average(t)) for t in (0.5, 0.55, 0.6)
    ],
    "ours-without-hubs": [
        (f"facematch average linkage {t}, hubs not held back", ours(t, 0)) for t in (0.5, 0.53)
    ],
    "ours": [(f"facematch average linkage {t}", ours(t)) for t in (0.5, 0.53, 0.55)],
    "ours-without-pair-rule": [
        (f"facematch average linkage {t}, no pair rule", ours(t, pair_threshold=1.0))
        for t in (0.53,)
    ],
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_embeddings(parser, positional=True)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--min-faces", default="2", help="comma-separated values to try")
    args = parser.parse_args(argv)
    data = harness.labelled_faces(args.embeddings)
    lab = data["labelled"]
    truth = data["truth"][lab]
    people = len(np.unique(truth))
    several = int((np.unique(truth, return_counts=True)[1] > 1).sum())
    print(
        f"{args.embeddings.name}: {len(lab)} faces, {int(lab.sum())} labelled, {people} people "
        f"({several} with two or more photos)",
        file=sys.stderr,
    )
    harness.table_header(
        "method",
        "min faces",
        "groups",
        "BCubed P",
        "BCubed R",
        "BCubed F",
        "pair P",
        "pair R",
        "pair F",
        "mixed groups",
        "people split",
        "two faces of a photo",
        "s",
    )
    for name in args.methods.split(","):
        for label, run in METHODS[name]:
            try:
                seconds, raw = harness.measure(lambda run=run: run(data), harness.WALL)
            except ImportError as exc:
                print(f"skipped {label}: {exc}", file=sys.stderr)
                continue
            for min_faces in (int(v) for v in args.min_faces.split(",")):
                labels = min_size(raw, min_faces)
                s = clustering_scores(truth, labels[lab])
                harness.table_row(
                    label,
                    min_faces,
                    s.groups,
                    f"{s.bcubed_precision:.4f}",
                    f"{s.bcubed_recall:.4f}",
                    f"{s.bcubed_f:.4f}",
                    f"{s.pairwise_precision:.4f}",
                    f"{s.pairwise_recall:.4f}",
                    f"{s.pairwise_f:.4f}",
                    f"{s.mixed_share:.3f}",
                    s.split_people,
                    photo_violations(labels, data["photo"]),
                    f"{seconds:.1f}",
                )


if __name__ == "__main__":
    main()
