"""Stress sets with known face positions, and each detector's recall and false boxes on them.

From photos holding one face each (the face's box taken from HOG on the
upright photo, upsample 1), this makes:

* ``tilt-N``: each photo rotated by N degrees (20, 35, 50) about its face;
* ``small-N``: each face cut out and shrunk to N px (40, 30, 20, 14), pasted on a
  grid into 1600x1200 frames of plain noisy grey;
* ``edge``: each photo cropped so that the frame cuts 35% of the face off
  (left, right, top or bottom in turn).

A face counts as found when a box's centre lies inside its true box and the
box's side is within 0.5-2x the true side; a box matching no face is false.

    python -m benchmarks.speed.stress --faces PATH/TO/shared/faces

prints a markdown table (recall and false boxes per set and detector setting);
``--detectors cnn --sets tilt,edge`` adds dlib's CNN (ONNX) where it is affordable;
``--sets`` takes kinds (tilt, small, edge) or single sets ("tilt 50", "small 20 px").
The detectors run through facematch.encode.faces.detect, so working copies and
tiling are those of the real pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import harness
from facematch.encode.faces import FaceSettings, detect, run_detector
from facematch.records import FaceBox

FRAME = (1600, 1200)
ANGLES = (20, 35, 50)
SMALL_SIDES = (40, 30, 20, 14)
EDGE_CUT = 0.35
# Rotated copies are made from the photo shrunk so that its face is this wide.
TILT_FACE_SIDE = 120


@dataclass(frozen=True)
class Sample:
    """One test image and the true boxes of the faces in it."""

    name: str
    image: np.ndarray
    faces: tuple[FaceBox, ...]


def source_faces(paths: list[Path]) -> list[tuple[str, np.ndarray, FaceBox]]:
    """Photos in which HOG finds exactly one face, with that face's box."""
    from facematch.sources.images import load_rgb

    sources = []
    for path in paths:
        image = load_rgb(path)
        scale = min(1.0, 1000 / max(image.shape[:2]))
        if scale < 1.0:
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
        boxes = run_detector(image, "hog", 1)
        if len(boxes) == 1:
            sources.append((path.name, image, boxes[0]))
    return sources


def tilted(name: str, image: np.ndarray, box: FaceBox, angle: float) -> Sample:
    """The photo rotated by ``angle`` degrees about its face's centre (canvas kept)."""
    scale = TILT_FACE_SIDE / max(1, box.right - box.left)
    picture = Image.fromarray(image)
    if scale < 1.0:
        picture = picture.resize(
            (round(image.shape[1] * scale), round(image.shape[0] * scale)),
            Image.Resampling.LANCZOS,
        )
    else:
        scale = 1.0
    centre = ((box.left + box.right) / 2 * scale, (box.top + box.bottom) / 2 * scale)
    rotated = picture.rotate(angle, Image.Resampling.BILINEAR, center=centre, fillcolor=(128,) * 3)
    half = (box.right - box.left) * scale / 2
    truth = FaceBox(
        round(centre[1] - half),
        round(centre[0] + half),
        round(centre[1] + half),
        round(centre[0] - half),
    )
    return Sample(f"{name}@{angle}", np.asarray(rotated), (truth,))


def small_frames(
    sources: list[tuple[str, np.ndarray, FaceBox]], side: int, seed: int = 0
) -> Iterator[Sample]:
    """Faces shrunk to ``side`` px, cut with some context, pasted on a grid in 1600x1200
    frames of noisy grey; as many frames as needed for all faces."""
    rng = np.random.default_rng(seed)
    cell = 200
    columns, rows = FRAME[0] // cell, FRAME[1] // cell
    per_frame = columns * rows
    for start in range(0, len(sources), per_frame):
        noise = rng.normal(128, 12, (FRAME[1], FRAME[0], 3))
        frame = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))
        truths = []
        for slot, (_, image, box) in enumerate(sources[start : start + per_frame]):
            face_side = box.right - box.left
            margin = face_side  # one face side of context all round
            crop = Image.fromarray(image).crop(
                (box.left - margin, box.top - margin, box.right + margin, box.bottom + margin)
            )
            crop = crop.resize((3 * side, 3 * side), Image.Resampling.LANCZOS)
            column, row = slot % columns, slot // columns
            left = column * cell + int(rng.integers(0, cell - 3 * side + 1))
            top = row * cell + int(rng.integers(0, cell - 3 * side + 1))
            frame.paste(crop, (left, top))
            truths.append(FaceBox(top + side, left + 2 * side, top + 2 * side, left + side))
        yield Sample(f"small-{side}-{start}", np.asarray(frame), tuple(truths))


def edge_cut(name: str, image: np.ndarray, box: FaceBox, index: int) -> Sample:
    """The photo cropped so that the frame cuts EDGE_CUT of the face off one side."""
    height, width = image.shape[:2]
    left, top, right, bottom = 0, 0, width, height
    cut_x = round((box.right - box.left) * EDGE_CUT)
    cut_y = round((box.bottom - box.top) * EDGE_CUT)
    side = index % 4
    if side == 0:
        left = box.left + cut_x
    elif side == 1:
        right = box.right - cut_x
    elif side == 2:
        top = box.top + cut_y
    else:
        bottom = box.bottom - cut_y
    cropped = image[top:bottom, left:right]
    truth = FaceBox(box.top - top, box.right - left, box.bottom - top, box.left - left)
    return Sample(f"{name}-edge{side}", np.ascontiguousarray(cropped), (truth,))


def score(found: list[FaceBox], truths: tuple[FaceBox, ...]) -> tuple[int, int]:
    """(faces found, false boxes) for one image."""
    matched = set()
    false = 0
    for box in found:
        centre_x, centre_y = (box.left + box.right) / 2, (box.top + box.bottom) / 2
        side = math.sqrt(max(1, box.area))
        hit = None
        for index, truth in enumerate(truths):
            truth_side = truth.right - truth.left
            if (
                truth.left <= centre_x <= truth.right
                and truth.top <= centre_y <= truth.bottom
                and 0.5 <= side / truth_side <= 2.0
            ):
                hit = index
                break
        if hit is None:
            false += 1
        else:
            matched.add(hit)
    return len(matched), false


SETTINGS = {
    "hog": FaceSettings(model="hog", upsample=1),
    "hog up2": FaceSettings(model="hog", upsample=2),
    "cnn": FaceSettings(model="cnn", upsample=1),
    "cnn up2": FaceSettings(model="cnn", upsample=2),
    "centerface": FaceSettings(model="centerface"),
    "centerface 0.2": FaceSettings(model="centerface", threshold=0.2),
}


def run(samples: list[Sample], settings: FaceSettings, min_face: int | None) -> tuple[int, int]:
    found = false = 0
    for sample in samples:
        from dataclasses import replace

        boxes = detect(sample.image, replace(settings, min_face_size=min_face))
        hits, wrong = score(boxes, sample.faces)
        found += hits
        false += wrong
    return found, false


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_faces(parser)
    parser.add_argument("--detectors", default="hog,hog up2,centerface,centerface 0.2")
    parser.add_argument(
        "--sets", default="tilt,small,edge", help="kinds of set (tilt,small,edge) or set names"
    )
    args = parser.parse_args(argv)
    paths = sorted((args.faces / "portraits").glob("*.[jp][pn]g"))
    paths += sorted((args.faces / "people" / "knn" / "train").glob("*/*.[jp][pn]g"))
    sources = source_faces(paths)
    sets: dict[str, tuple[list[Sample], int | None]] = {}
    for angle in ANGLES:
        sets[f"tilt {angle}"] = ([tilted(n, i, b, angle) for n, i, b in sources], None)
    for side in SMALL_SIDES:
        # Ask every detector for faces this small: the working copy is sized for them.
        sets[f"small {side} px"] = (list(small_frames(sources, side)), side)
    sets["edge cut"] = ([edge_cut(n, i, b, k) for k, (n, i, b) in enumerate(sources)], None)
    names = args.detectors.split(",")
    print(f"{len(sources)} faces per set\n")
    harness.table_header("set", *names)
    kinds = args.sets.split(",")
    for set_name, (samples, min_face) in sets.items():
        if set_name.split()[0] not in kinds and set_name not in kinds:
            continue
        cells = []
        for name in names:
            seconds, (found, false) = harness.measure(
                partial(run, samples, SETTINGS[name], min_face)
            )
            cells.append(f"{found}/{len(sources)}, {false} false ({seconds:.0f} s)")
        harness.table_row(set_name, *cells)


if __name__ == "__main__":
    main()
