"""CPU seconds per photo and peak memory of each detector at 800, 1200 and 1600 px.

    python benchmarks/bench_detectors.py --photo ../shared/faces/scenes/bbt1.jpg [--rounds 3]

Each detector runs on one thread, on the photo resized to each long side, the
detectors interleaved within every round (side-by-side ratios hold up better on
a busy machine than absolute times); medians of the rounds. dlib's CNN runs one
round only (tens of seconds a call). Peak memory: each detector alone in a
fresh process at 1600 px (ru_maxrss, the process's whole peak, model included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

SIDES = (800, 1200, 1600)
DETECTORS = {"hog": 1, "cnn": 1, "centerface": 0}  # name -> upsample


def resized(photo: Path, side: int) -> np.ndarray:
    image = Image.open(photo).convert("RGB")
    scale = side / max(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS))


def peak_memory(photo: Path, name: str) -> float:
    """Peak resident MB of a fresh process that detects once at 1600 px."""
    code = (
        "import sys, resource; from pathlib import Path; "
        "sys.path.insert(0, 'benchmarks'); import bench_detectors as b; "
        "from facematch import detectors; "
        f"image = b.resized(Path({str(photo)!r}), 1600); "
        f"detectors.detect(image, {name!r}, {DETECTORS[name]}); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    args = parser.parse_args()
    from facematch import detectors

    names = args.detectors.split(",")
    images = {side: resized(args.photo, side) for side in SIDES}
    for name in names:  # load each model once before timing
        detectors.detect(images[800][:100, :100].copy(), name, 0)
    times: dict[tuple[str, int], list[float]] = {}
    found: dict[tuple[str, int], int] = {}
    for round_index in range(args.rounds):
        for side in SIDES:
            for name in names:
                if name == "cnn" and round_index > 0:
                    continue
                started = time.process_time()
                faces = detectors.detect(images[side], name, DETECTORS[name])
                times.setdefault((name, side), []).append(time.process_time() - started)
                found[(name, side)] = len(faces)
    print(f"{args.photo.name}, median of {args.rounds} rounds (cnn: 1), one thread\n")
    print("| detector | " + " | ".join(f"{s} px" for s in SIDES) + " | peak MB at 1600 px |")
    print("| --- |" + " --- |" * (len(SIDES) + 1))
    hog_1600 = statistics.median(times[("hog", 1600)]) if "hog" in names else None
    for name in names:
        cells = [
            f"{statistics.median(times[(name, s)]):.2f} s ({found[(name, s)]} faces)" for s in SIDES
        ]
        print(f"| {name} | " + " | ".join(cells) + f" | {peak_memory(args.photo, name):.0f} |")
    if hog_1600:
        ratios = {n: statistics.median(times[(n, 1600)]) / hog_1600 for n in names}
        print("\nCPU time at 1600 px relative to HOG:", json.dumps(ratios))


if __name__ == "__main__":
    main()
