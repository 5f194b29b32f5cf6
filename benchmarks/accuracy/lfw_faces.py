"""Faces found in all of lfw-dev with the default settings, and what changed since a reference.

    python -m benchmarks.accuracy.lfw_faces --lfw PATH/TO/shared/faces/lfw-dev --cache-dir DIR
        [--save NOW.npz] [--save-faces FACES.npz] [--reference BEFORE.npz] [--jobs 1]

Encodes every photo of lfw-dev (people/, strangers/, more/: 5,729) through the
pipeline into ``--cache-dir`` (use a fresh one per code version: the cache key
changes only with the settings and the detector's input), and prints the photos
with no face, the faces found and the time taken. ``--save`` keeps each photo's
boxes and largest-face embedding; ``--reference`` compares them with a file saved
by an earlier version: photos whose boxes or face count differ, and how far the
largest face's embedding moved. ``--save-faces`` keeps every face (``paths`` per photo;
``image``, ``face``, ``boxes`` as top, right, bottom, left and ``embeddings`` per face):
the ``lfw-dev-default.npz`` that the library, cluster and cloak benchmarks read.
With the same cache folder, ``facematch evaluate LFW/pairs.csv`` and
``python -m benchmarks.accuracy.openset`` then encode nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import harness
from facematch.encode.faces import FaceSettings
from facematch.run.pipeline import Pipeline


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_lfw(parser)
    harness.add_cache_dir(parser, required=True)
    parser.add_argument("--save", type=Path, default=None, help="write boxes and embeddings here")
    parser.add_argument("--save-faces", type=Path, default=None, help="write every face here")
    parser.add_argument("--reference", type=Path, default=None, help="compare with this file")
    harness.add_jobs(parser, 1, "encoding processes (default 1)")
    args = parser.parse_args(argv)

    paths = [str(p.relative_to(args.lfw)) for p in harness.photos(args.lfw)]
    with (
        harness.timed() as timing,
        Pipeline(FaceSettings(), jobs=args.jobs, cache_dir=args.cache_dir) as pipeline,
    ):
        rows = list(pipeline.encode([str(args.lfw / p) for p in paths]))
    seconds = timing.wall
    no_face = sum(r.status == "no_faces" for r in rows)
    errors = sum(r.status == "error" for r in rows)
    faces = sum(len(r.faces) for r in rows)
    print(f"photos {len(rows)}, no face found {no_face}, errors {errors}, faces {faces}")
    print(f"encoded in {seconds:.0f} s ({args.jobs} process(es); cached photos cost nothing)")

    boxes = [str(sorted(face.box.css() for face in r.faces)) for r in rows]
    largest = np.array(
        [
            r.largest_face.embedding if r.largest_face is not None else np.full(128, np.nan)
            for r in rows
        ]
    )
    if args.save is not None:
        np.savez(args.save, paths=np.array(paths), boxes=np.array(boxes), embeddings=largest)
    if args.save_faces is not None:
        found = [(i, f, face) for i, r in enumerate(rows) for f, face in enumerate(r.faces)]
        np.savez(
            args.save_faces,
            paths=np.array(paths),
            image=np.array([i for i, _, _ in found], dtype=np.int64),
            face=np.array([f for _, f, _ in found], dtype=np.int64),
            boxes=np.array([face.box.css() for _, _, face in found], dtype=np.int32),
            embeddings=np.array([face.embedding for _, _, face in found], dtype=np.float32),
        )
    if args.reference is not None:
        compare(paths, boxes, largest, np.load(args.reference))


def compare(
    paths: list[str], boxes: list[str], largest: np.ndarray, reference: np.lib.npyio.NpzFile
) -> None:
    """Print how the boxes and largest-face embeddings differ from a saved reference."""
    index = {str(p): i for i, p in enumerate(reference["paths"])}
    rows = [index[p] for p in paths]
    before = [str(reference["boxes"][i]) for i in rows]
    counts = [
        (len(ast.literal_eval(a)), len(ast.literal_eval(b)))
        for a, b in zip(before, boxes, strict=True)
    ]
    changed = sum(a != b for a, b in zip(before, boxes, strict=True))
    print(f"photos whose boxes differ from the reference: {changed} of {len(paths)}")
    print(
        f"photos with more faces: {sum(b > a for a, b in counts)}, "
        f"with fewer: {sum(b < a for a, b in counts)}"
    )
    moved = np.linalg.norm(largest - reference["embeddings"][rows], axis=1)
    moved = moved[~np.isnan(moved)]
    print(
        f"largest face's embedding moved: median {np.median(moved):.4f}, "
        f"99th percentile {np.percentile(moved, 99):.4f}, max {moved.max():.4f}, "
        f"by more than 0.01 in {(moved > 0.01).sum()} photos"
    )


if __name__ == "__main__":
    main()
