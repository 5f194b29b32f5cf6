"""Faces found in the shared group photos per detector, against the counts made by eye.

    python -m benchmarks.accuracy.group_photos --faces PATH/TO/shared/faces [--draw OUT_DIR]

The counts by eye are those of PATH/TO/shared/faces/README.md ("Faces in the group
photos, counted by eye": any face whose eyes/nose region is visible, faces cut
by the frame and profiles included; posters and pictures excluded). With
``--draw`` each photo is written with every detector's boxes (one colour per
detector) so that false boxes can be told from real faces by eye; the numbers
in the README's table were checked that way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from benchmarks import harness
from facematch.encode.faces import FaceSettings, detect, detect_with_fallback
from facematch.sources.images import load_rgb

COUNTED = {
    "scenes/bbt1.jpg": 4,
    "scenes/bbt2.jpg": 4,
    "scenes/bbt3.jpg": 5,
    "scenes/bbt4.jpg": 6,
    "scenes/bbt5.jpg": 5,
    "scenes/two_people.jpg": 2,
    "pairs/couple.jpg": 2,
    "pairs/selfie-many-people.jpg": 7,
}

SETTINGS = {
    "hog": FaceSettings(model="hog"),
    "hog up2": FaceSettings(model="hog", upsample=2),
    "centerface": FaceSettings(model="centerface"),
    "centerface 0.2": FaceSettings(model="centerface", threshold=0.2, min_face_size=14),
}
COLOURS = {"hog": "blue", "hog up2": "cyan", "centerface": "red", "centerface 0.2": "yellow"}


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_faces(parser)
    parser.add_argument("--draw", type=Path, default=None)
    parser.add_argument("--detectors", default=",".join(SETTINGS))
    args = parser.parse_args(argv)
    names = args.detectors.split(",")
    harness.table_header("photo", "by eye", *names)
    totals = dict.fromkeys(names, 0)
    for photo, counted in COUNTED.items():
        image = load_rgb(args.faces / photo)
        drawing = Image.fromarray(image)
        pen = ImageDraw.Draw(drawing)
        cells = []
        for name in names:
            settings = SETTINGS[name]
            boxes = (
                detect_with_fallback(image, settings) if name == "hog" else detect(image, settings)
            )
            totals[name] += len(boxes)
            cells.append(str(len(boxes)))
            for box in boxes:
                pen.rectangle(
                    (box.left, box.top, box.right, box.bottom), outline=COLOURS[name], width=3
                )
        harness.table_row(photo, counted, *cells)
        if args.draw is not None:
            args.draw.mkdir(parents=True, exist_ok=True)
            drawing.save(args.draw / Path(photo).name)
    harness.table_row("total", sum(COUNTED.values()), *(totals[name] for name in names))


if __name__ == "__main__":
    main()
