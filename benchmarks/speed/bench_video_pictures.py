"""What ``--annotate`` costs on a video: ``facematch match`` with and without it, side by side.

The cache is warmed first, so both runs decode nothing for matching; the
difference is the pictures alone (decoding each range's best sample again,
drawing, writing JPEGs). Runs alternate, one process at a time; medians of
CPU seconds (user + system of the child) and wall seconds.

    python -m benchmarks.speed.bench_video_pictures --faces PATH/TO/shared/faces --rounds 5
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks import harness


def timed(command: list[str]) -> tuple[float, float]:
    """CPU seconds (user + system) and wall seconds of one run of ``command``."""
    _, timing = harness.run_timed(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return timing.children_cpu, timing.wall


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_faces(parser)
    harness.add_rounds(parser, 5)
    parser.add_argument("--per-frame", action="store_true", help="time --per-frame runs")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-video-pictures-"))
    try:
        known = work / "known"
        known.mkdir()
        portraits = args.faces / "portraits"
        shutil.copy(portraits / "lin-manuel-miranda.png", known / "Lin-Manuel Miranda.png")
        shutil.copy(portraits / "alex-lacamoire.png", known / "Alex Lacamoire.png")
        clip = args.faces / "video" / "short_hamilton_clip.mp4"
        base = harness.python_module("facematch", str(known), str(clip), "-j", "1")
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
        harness.table_header("run", "CPU s", "wall s", align="lrr")
        for name, runs in (("match", plain), ("match --annotate DIR", drawn)):
            cpu = statistics.median(c for c, _ in runs)
            wall = statistics.median(w for _, w in runs)
            harness.table_row(name, f"{cpu:.2f}", f"{wall:.2f}")
        extra = statistics.median(d[0] - p[0] for p, d in zip(plain, drawn, strict=True))
        print(f"extra CPU s for the pictures (median of paired differences): {extra:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
