"""What ``--annotate`` costs on a video: ``facematch match`` with and without it, side by side.

The cache is warmed first, so both runs decode nothing for matching; the
difference is the pictures alone (decoding each range's best sample again,
drawing, writing JPEGs). Runs alternate, one process at a time; medians of
CPU seconds (user + system of the child) and wall seconds.

    python benchmarks/bench_video_pictures.py --faces PATH/TO/shared/faces --rounds 5
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(command: list[str]) -> tuple[float, float]:
    """CPU seconds (user + system) and wall seconds of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, required=True, help="the shared faces folder")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-frame", action="store_true", help="time --per-frame runs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-video-pictures-"))
    try:
        known = work / "known"
        known.mkdir()
        portraits = args.faces / "portraits"
        shutil.copy(portraits / "lin-manuel-miranda.png", known / "Lin-Manuel Miranda.png")
        shutil.copy(portraits / "alex-lacamoire.png", known / "Alex Lacamoire.png")
        clip = args.faces / "video" / "short_hamilton_clip.mp4"
        base = [sys.executable, "-m", "facematch", str(known), str(clip), "-j", "1"]
        base += ["--cache-dir", str(work / "cache"), "--quiet"]
        base += ["--per-frame"] if args.per_frame else []
        subprocess.run(base, check=True, stdout=subprocess.DEVNULL)  # warm the cache
        plain: list[tuple[float, float]] = []
        drawn: list[tuple[float, float]] = []
        for round_ in range(args.rounds):
            out = work / f"out{round_}"
            plain.append(timed(base))
            drawn.append(timed([*base, "--annotate", str(out)]))
        pictures = len(list((work / "out0").iterdir()))
        print(f"{clip.name}, {pictures} pictures, {args.rounds} rounds (medians), warm cache")
        print("| run | CPU s | wall s |")
        print("| --- | ---: | ---: |")
        for name, runs in (("match", plain), ("match --annotate DIR", drawn)):
            cpu = statistics.median(c for c, _ in runs)
            wall = statistics.median(w for _, w in runs)
            print(f"| {name} | {cpu:.2f} | {wall:.2f} |")
        extra = statistics.median(d[0] - p[0] for p, d in zip(plain, drawn, strict=True))
        print(f"extra CPU s for the pictures (median of paired differences): {extra:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
