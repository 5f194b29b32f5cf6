"""Naming clustered groups from a known folder (``facematch cluster --known``), measured.

    python -m benchmarks.accuracy.cluster_known lfw-dev-default.npz

Known: the first photo of every other person of lfw-dev/people (sorted by name). The
collection: every other labelled photo, the known people's remaining photos included,
plus strangers/ (people of one photo) and the people not in the known folder. The
collection is clustered with the defaults, and groups are named by
``facematch.matching.cluster.known_names`` at the calibrated tolerance for a gallery of that size,
for several margins. Named-group precision: the share of named groups whose faces are
mostly the named person; recall: the share of groups made mostly of a known person that
got their name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from benchmarks import harness
from facematch.matching.calibration import auto_tolerance
from facematch.matching.cluster import FaceClusterer, known_names
from facematch.matching.gallery import Gallery


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_embeddings(parser, positional=True)
    args = parser.parse_args(argv)
    data = harness.labelled_faces(args.embeddings)
    lab = np.flatnonzero(data["labelled"])
    truth = data["truth"]
    people = sorted({truth[i] for i in lab if "/" not in truth[i]})
    known_people = set(people[::2])
    known_rows: list[int] = []
    seen: set[str] = set()
    for i in sorted(lab, key=lambda i: data["keys"][i]):
        if truth[i] in known_people and truth[i] not in seen:
            seen.add(truth[i])
            known_rows.append(i)
    known_photos = {int(data["photo"][i]) for i in known_rows}
    rest = np.array([i for i in range(len(truth)) if int(data["photo"][i]) not in known_photos])
    gallery = Gallery.from_faces([(str(truth[i]), data["embeddings"][i]) for i in known_rows])
    labels = FaceClusterer().fit_predict(
        data["embeddings"][rest],
        photos=list(data["photo"][rest]),
        keys=list(data["keys"][rest]),
    )
    labelled = data["labelled"][rest]
    majority: dict[int, str] = {}
    for group in np.unique(labels[labels >= 0]):
        members = [str(truth[rest[i]]) for i in np.flatnonzero((labels == group) & labelled)]
        if members:
            majority[int(group)] = Counter(members).most_common(1)[0][0]
    knowable = {g for g, who in majority.items() if who in known_people}
    tolerance = auto_tolerance(len(known_rows))
    print(
        f"{len(known_rows)} known people (one photo each), {len(rest)} faces clustered into "
        f"{len(majority)} groups, {len(knowable)} of them mostly a known person; "
        f"tolerance {tolerance}"
    )
    harness.table_header(
        "margin", "groups named", "named-group precision", "known groups named (recall)"
    )
    for margin in (0.0, 0.02, 0.05, 0.08, 0.1):
        named = known_names(gallery, data["embeddings"][rest], labels, tolerance, margin)
        right = sum(majority.get(g) == name for g, name in named.items())
        found = sum(g in knowable and majority[g] == n for g, n in named.items())
        harness.table_row(
            margin,
            len(named),
            f"{right / max(len(named), 1):.4f}",
            f"{found / max(len(knowable), 1):.4f}",
        )


if __name__ == "__main__":
    main()
