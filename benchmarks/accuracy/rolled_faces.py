"""Tilted faces: CenterFace's faces described as found, or turned upright first.

    python -m benchmarks.accuracy.rolled_faces --lfw PATH/TO/lfw-dev [--people 150]

For each half of lfw-dev (``openset.halves``: the tuning half chose
``UPRIGHT_FROM_ROLL``, the checking half reports it), each person's first photo
is their reference (HOG, the defaults), and their second photo is turned by
0-45 degrees (alternately clockwise and anticlockwise, black corners), searched
with CenterFace, and its face (the one nearest the centre) described twice:
as found (``UPRIGHT_FROM_ROLL`` out of reach) and turned upright by
CenterFace's own eye line (the default). Prints, per angle, the median distance
to the person's own reference, the share of them within 0.5 (about what a
one-photo gallery keeps clear in ``redact``), and the share of strangers (the
next person's reference) within 0.6, both ways.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import harness
from benchmarks.accuracy.openset import halves
from facematch.encode import faces as faces_module
from facematch.encode.faces import DlibEncoder, FaceSettings, describe, detect, find_faces
from facematch.records import Face, FaceBox

ANGLES = (0, 10, 15, 20, 30, 45)
KEEP_NEAR = 0.5
NAME_NEAR = 0.6


def largest(found: Sequence[Face]) -> Face | None:
    return max(found, key=lambda f: f.box.area, default=None)


def central(boxes: Sequence[FaceBox], width: int, height: int) -> FaceBox | None:
    def off_centre(b: FaceBox) -> float:
        return abs((b.left + b.right) / 2 - width / 2) + abs((b.top + b.bottom) / 2 - height / 2)

    return min(boxes, key=off_centre, default=None)


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_lfw(parser)
    parser.add_argument("--people", type=int, default=150, help="people per half")
    args = parser.parse_args(argv)
    lfw: Path = args.lfw
    folders = {d.name: sorted(d.iterdir()) for d in (lfw / "people").iterdir() if d.is_dir()}
    # halves() splits by name; it needs only the people (a placeholder per photo).
    split = halves({n: list(files) for n, files in folders.items()}, [])  # type: ignore[arg-type]
    encoder = DlibEncoder()
    hog = FaceSettings()
    centerface = FaceSettings(model="centerface")
    for label, (people, _) in zip(("tuning", "checking"), split, strict=True):
        names = [n for n in people if len(folders[n]) >= 2][: args.people]
        references = []
        for name in names:
            image = np.asarray(Image.open(folders[name][0]).convert("RGB"))
            face = largest(find_faces(image, hog, encoder))
            references.append(None if face is None else face.embedding)
        print(f"\n## {label} half: {len(names)} people\n")
        harness.table_header(
            "turned",
            "found",
            "own median, as found / upright",
            "own within 0.5",
            "strangers within 0.6",
        )
        for angle in ANGLES:
            own: dict[str, list[float]] = {"found": [], "upright": []}
            strange: dict[str, list[float]] = {"found": [], "upright": []}
            found = 0
            for i, name in enumerate(names):
                reference, other = references[i], references[(i + 1) % len(names)]
                if reference is None or other is None:
                    continue
                turn = angle if i % 2 else -angle
                picture = Image.open(folders[name][1]).convert("RGB")
                image = np.asarray(picture.rotate(turn, resample=Image.Resampling.BILINEAR))
                box = central(detect(image, centerface), image.shape[1], image.shape[0])
                if box is None:
                    continue
                found += 1
                for way, reach in (("found", float("inf")), ("upright", None)):
                    saved = faces_module.UPRIGHT_FROM_ROLL
                    if reach is not None:
                        faces_module.UPRIGHT_FROM_ROLL = reach
                    try:
                        embedding = describe(image, [box], hog, encoder)[0].embedding
                    finally:
                        faces_module.UPRIGHT_FROM_ROLL = saved
                    own[way].append(float(np.linalg.norm(embedding - reference)))
                    strange[way].append(float(np.linalg.norm(embedding - other)))

            def share(values: list[float], limit: float) -> str:
                return f"{100 * sum(v <= limit for v in values) / max(1, len(values)):.1f}%"

            medians = [f"{statistics.median(own[way]):.3f}" for way in ("found", "upright")]
            harness.table_row(
                angle,
                found,
                " / ".join(medians),
                f"{share(own['found'], KEEP_NEAR)} / {share(own['upright'], KEEP_NEAR)}",
                f"{share(strange['found'], NAME_NEAR)} / {share(strange['upright'], NAME_NEAR)}",
            )


if __name__ == "__main__":
    main()
