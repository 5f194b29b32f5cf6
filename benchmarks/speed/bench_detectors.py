"""CPU seconds per photo and peak memory of each detector at 800, 1200 and 1600 px.

    python -m benchmarks.speed.bench_detectors --photo PATH/TO/shared/faces/scenes/bbt1.jpg \\
        [--rounds 3]

Each detector runs on one thread, on the photo resized to each long side, the
detectors interleaved within every round (side-by-side ratios hold up better on
a busy machine than absolute times); medians of the rounds. ``cnn`` is dlib's
MMOD network on ONNX Runtime (facematch's), ``cnn-dlib`` the same detector run
by dlib itself (one round only: tens of seconds a call). Peak memory: each
detector alone in a fresh process at 1600 px (VmHWM, the process's whole
peak, models included); dlib's CNN at 800 px (several GB at 1600 px).
``--memory-only`` skips the timing.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import harness

SIDES = (800, 1200, 1600)
DETECTORS = {"hog": 1, "centerface": 0, "cnn": 1, "cnn-dlib": 1}  # name -> upsample


def run(name: str, image: np.ndarray) -> int:
    """Faces found by one detector (dlib's own CNN when ``name`` is cnn-dlib)."""
    from facematch.detect import detectors
    from facematch.models.dlib_files import dlib_files as models

    if name == "cnn-dlib":
        return len(models.cnn_detector()(image, DETECTORS[name]))
    return len(detectors.detect(image, name, DETECTORS[name]))  # type: ignore[arg-type]


def resized(photo: Path, side: int) -> np.ndarray:
    image = Image.open(photo).convert("RGB")
    scale = side / max(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS))


def peak_memory(photo: Path, name: str, side: int) -> float:
    """Peak resident MB of a fresh process that detects once at ``side`` px (VmHWM, the
    process's whole peak: not ru_maxrss, which Linux carries over from the parent)."""
    code = (
        "from pathlib import Path; from benchmarks.harness import peak_rss_mb; "
        f"import {__spec__.name} as b; "
        f"b.run({name!r}, b.resized(Path({str(photo)!r}), {side})); "
        "print(peak_rss_mb())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=harness.child_env(),
    )
    return float(out.stdout.split()[-1])


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--photo", type=Path, required=True, help="a group photo (scenes/bbt1.jpg)")
    harness.add_rounds(parser, 3)
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    parser.add_argument("--memory-only", action="store_true")
    args = parser.parse_args(argv)
    if args.memory_only:
        for name in args.detectors.split(","):
            side = 800 if name == "cnn-dlib" else 1600
            print(f"{name}: {peak_memory(args.photo, name, side):.0f} MB at {side} px", flush=True)
        return
    names = args.detectors.split(",")
    images = {side: resized(args.photo, side) for side in SIDES}
    for name in names:  # load (and for cnn convert) each model before timing
        run(name, images[800][:100, :100].copy())
    times: dict[tuple[str, int], list[float]] = {}
    found: dict[tuple[str, int], int] = {}
    for round_index in range(args.rounds):
        for side in SIDES:
            for name in names:
                if name == "cnn-dlib" and round_index > 0:
                    continue
                seconds, found[(name, side)] = harness.measure(partial(run, name, images[side]))
                times.setdefault((name, side), []).append(seconds)
    print(f"{args.photo.name}, median of {args.rounds} rounds (cnn-dlib: 1), one thread\n")
    harness.table_header("detector", *(f"{s} px" for s in SIDES), "peak MB")
    hog_1600 = statistics.median(times[("hog", 1600)]) if "hog" in names else None
    for name in names:
        cells = [
            f"{statistics.median(times[(name, s)]):.2f} s ({found[(name, s)]} faces)" for s in SIDES
        ]
        side = 800 if name == "cnn-dlib" else 1600
        memory = f"{peak_memory(args.photo, name, side):.0f} at {side} px"
        harness.table_row(name, *cells, memory)
    if hog_1600:
        ratios = {n: statistics.median(times[(n, 1600)]) / hog_1600 for n in names}
        print("\nCPU time at 1600 px relative to HOG:", json.dumps(ratios))


if __name__ == "__main__":
    main()
