"""How far one detector's boxes sit from HOG's, read from two encoding caches.

    python -m benchmarks.accuracy.compare_boxes --hog-cache DIR --cache DIR --model cnn|centerface

Both caches must hold the same photos encoded with default settings (e.g. by
``facematch evaluate lfw-dev/pairs.csv --cache-dir DIR``); entries are paired by
image digest, and only photos where both detectors found exactly one face
count. Prints the medians, in units of HOG's box side, of the centre offset,
the width and height ratios and the mean absolute edge difference.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import harness


def single_boxes(cache_dir: Path, model: str) -> dict[str, list[int]]:
    """digest -> (top, right, bottom, left) of photos with exactly one face."""
    uri = f"file:{cache_dir / 'encodings.sqlite3'}?mode=ro"
    boxes = {}
    with sqlite3.connect(uri, uri=True) as db:
        for digest, settings, faces in db.execute("SELECT digest, settings, faces FROM entries"):
            chosen = json.loads(settings)
            if chosen.get("model") != model or chosen.get("upsample") != 1:
                continue
            found = json.loads(faces)["faces"]
            if len(found) == 1:
                boxes[digest] = found[0]["box"]
    return boxes


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--hog-cache", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--model", required=True)
    args = parser.parse_args(argv)
    hog = single_boxes(args.hog_cache, "hog")
    other = single_boxes(args.cache, args.model)
    rows = []
    for digest in sorted(set(hog) & set(other)):
        top, right, bottom, left = hog[digest]
        o_top, o_right, o_bottom, o_left = other[digest]
        side = (right - left + bottom - top) / 2
        rows.append(
            (
                (o_left + o_right - left - right) / 2 / side,
                (o_top + o_bottom - top - bottom) / 2 / side,
                (o_right - o_left) / (right - left),
                (o_bottom - o_top) / (bottom - top),
                np.abs([o_top - top, o_right - right, o_bottom - bottom, o_left - left]).mean()
                / side,
            )
        )
    x, y, w, h, edge = np.median(np.array(rows), axis=0)
    print(
        f"{args.model} against hog, {len(rows)} photos: centre moved {x:+.3f} (x) {y:+.3f} (y), "
        f"width x{w:.3f}, height x{h:.3f}, mean edge difference {edge:.3f} of the side"
    )


if __name__ == "__main__":
    main()
