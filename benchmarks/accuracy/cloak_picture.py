"""Before and after pictures of both cloak levels, as a person sees them.

    python -m benchmarks.accuracy.cloak_picture PHOTO OUT.png [--png DIR] [--window 360]

Cloaks the photo at ``subtle`` and ``strong`` (``facematch.privacy.cloak.cloak_file``,
as ``facematch cloak`` does, seed 0) and writes one lossless PNG: a column per
picture (original, subtle, strong) and a row per way of looking at it:

- the middle of the face (eyes, nose, cheeks) at 100%, a ``--window``-pixel square;
- the whole face at phone size, the photo scaled to 1080 px on its longer side
  (only for photos larger than that);
- the background beside the face at 100%, the same square (a wall, clothes):
  the cloak must leave no pattern there.

Prints each level's PSNR, DSSIM (face region, whole photo, at 1080 px) and smallest
verified distance (for the captions). ``--png`` also writes every crop there.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import harness
from facematch.encode import engines
from facematch.privacy import cloak
from facematch.privacy.cloak.quality import at_most
from facematch.sources.images import RGBImage, load_rgb

LEVELS = ("subtle", "strong")


def square(image: RGBImage, centre_x: int, centre_y: int, side: int) -> RGBImage:
    """A ``side`` square of the image around a point, moved inside the image."""
    height, width = image.shape[:2]
    side = min(side, height, width)
    left = min(max(centre_x - side // 2, 0), width - side)
    top = min(max(centre_y - side // 2, 0), height - side)
    return image[top : top + side, left : left + side]


def fit(crop: RGBImage, side: int) -> RGBImage:
    """The crop on a white ``side`` square (crops near an edge may be smaller)."""
    out = np.full((side, side, 3), 255, np.uint8)
    out[: crop.shape[0], : crop.shape[1]] = crop[:side, :side]
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("photo", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--png", type=Path, default=None, help="also every crop, as PNG, here")
    parser.add_argument("--window", type=int, default=360, help="side of the 100%% crops")
    args = parser.parse_args(argv)
    engine = engines.prepare("onnx", None)
    original = load_rgb(args.photo)
    pictures = {"original": original}
    with tempfile.TemporaryDirectory() as tmp:
        for level in LEVELS:
            out = Path(tmp) / f"{level}{args.photo.suffix.lower()}"
            task = cloak.CloakTask(str(args.photo), str(out), level, 0, engine)  # type: ignore[arg-type]
            result = cloak.cloak_file(task)
            face = max(result.faces, key=lambda f: f.box.area)
            pictures[level] = load_rgb(out)
            whole = cloak.photo_dssim(original, pictures[level])
            print(
                f"{level}: PSNR {result.psnr:.1f} dB, DSSIM face {face.dssim:.4f}, "
                f"photo {whole:.5f}, at 1080 px {result.dssim_1080:.5f}; "
                f"smallest distance {face.distance:.2f}, {result.status}"
            )
    box = max(cloak.find_original_faces(original), key=lambda b: b.area)
    side = box.right - box.left
    cx, cy = (box.left + box.right) // 2, (box.top + 2 * box.bottom) // 3 - side // 6
    beside = box.right + side if box.right + side < original.shape[1] else box.left - side
    rows: list[list[RGBImage]] = [
        [square(p, cx, cy, args.window) for p in pictures.values()],
    ]
    if max(original.shape[:2]) > cloak.VIEWING_SIDE:
        region = cloak.face_region(box, *original.shape[:2])
        small = []
        for p in pictures.values():
            scaled = at_most(p, cloak.VIEWING_SIDE)
            factor = cloak.VIEWING_SIDE / max(p.shape[:2])
            top, bottom = round(region.top * factor), round(region.bottom * factor)
            left, right = round(region.left * factor), round(region.right * factor)
            small.append(scaled[top:bottom, left:right])
        rows.append(small)
    rows.append([square(p, beside, cy, args.window) for p in pictures.values()])
    cell = max(max(c.shape[:2]) for row in rows for c in row)
    gap = 6
    lines = []
    for r, row in enumerate(rows):
        cells = []
        for name, crop in zip(pictures, row, strict=True):
            if args.png is not None:
                args.png.mkdir(parents=True, exist_ok=True)
                Image.fromarray(crop).save(args.png / f"{r}-{name}.png")
            cells += [fit(crop, cell), np.full((cell, gap, 3), 255, np.uint8)]
        lines += [np.concatenate(cells[:-1], axis=1)]
        lines += [np.full((gap, lines[-1].shape[1], 3), 255, np.uint8)]
    Image.fromarray(np.concatenate(lines[:-1], axis=0)).save(args.out)


if __name__ == "__main__":
    main()
