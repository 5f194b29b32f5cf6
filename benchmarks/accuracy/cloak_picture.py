"""The README's before/after picture of both cloak levels (docs/cloak-obama2.jpg).

    python -m benchmarks.accuracy.cloak_picture tests/data/obama2.jpg docs/cloak-obama2.jpg \\
        [--png DIR]

Cloaks the photo at ``subtle`` and ``strong`` (``facematch.privacy.cloak.cloak_file``,
as ``facematch cloak`` does, seed 0), cuts the largest face's region at full
resolution from the original and both copies, and writes them side by side.
Prints each level's budget, PSNR, face SSIM and smallest verified distance
(for the caption). ``--png`` also writes the three crops as PNG files there.
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
from facematch.sources.images import load_rgb

LEVELS = ("subtle", "strong")


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("photo", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--png", type=Path, default=None, help="also the crops, as PNG, here")
    args = parser.parse_args(argv)
    engine = engines.prepare("onnx", None)
    original = load_rgb(args.photo)
    crops = []
    with tempfile.TemporaryDirectory() as tmp:
        copies = {}
        for level in LEVELS:
            out = Path(tmp) / f"{level}.png"
            task = cloak.CloakTask(str(args.photo), str(out), level, 0, engine)  # type: ignore[arg-type]
            result = cloak.cloak_file(task)
            face = max(result.faces, key=lambda f: f.box.area)
            print(
                f"{level}: {face.epsilon:g}/255, PSNR {result.psnr:.1f} dB, "
                f"face SSIM {face.ssim:.3f}, smallest distance {face.distance:.2f}, {result.status}"
            )
            copies[level] = load_rgb(out)
    box = max(cloak.find_original_faces(original), key=lambda b: b.area)
    margin = (box.bottom - box.top) // 6
    top, bottom = max(box.top - margin, 0), min(box.bottom + margin, original.shape[0])
    left, right = max(box.left - margin, 0), min(box.right + margin, original.shape[1])
    for name, image in (("original", original), *copies.items()):
        crop = image[top:bottom, left:right]
        crops.append(crop)
        if args.png is not None:
            args.png.mkdir(parents=True, exist_ok=True)
            Image.fromarray(crop).save(args.png / f"{name}.png")
    gap = np.full((bottom - top, 4, 3), 255, np.uint8)
    row = np.concatenate([crops[0], gap, crops[1], gap, crops[2]], axis=1)
    Image.fromarray(row).save(args.out, quality=92)


if __name__ == "__main__":
    main()
