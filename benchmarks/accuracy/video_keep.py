"""Who video redaction keeps clear: the people who agreed, and nobody else.

    python -m benchmarks.accuracy.video_keep CLIP --known DIR [--person NAME=LEFT-RIGHT ...]

Runs ``facematch redact -r --known DIR CLIP`` and decodes the copy. The faces
of each original frame are those photo redaction's passes find (as in
``bench_redact_video``). ``--person Woman=0-0.45`` says that the faces whose
centre lies in that horizontal band of the frame (shares of its width) are
that known person (for clips where people keep their places); every other
face is a stranger. A face is *clear* in the copy when under 10% of its box is
black there. Prints each person's share of face-frames kept clear (the aim:
90% or more) and the strangers' face-frames kept clear (the target: none).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks import harness
from benchmarks.speed.bench_redact_video import black_share, frames_of, reference


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("clip", type=Path)
    parser.add_argument("--known", type=Path, required=True)
    parser.add_argument("--person", action="append", default=[], help="NAME=LEFT-RIGHT")
    parser.add_argument("--reference-every", type=int, default=1)
    args = parser.parse_args(argv)
    bands = {}
    for item in args.person:
        name, band = item.split("=")
        low, high = (float(v) for v in band.split("-"))
        bands[name] = (low, high)
    work = Path(tempfile.mkdtemp(prefix="video-keep-"))
    command = [sys.executable, "-m", "facematch", "redact", "-r", "--known", str(args.known)]
    subprocess.run(
        [*command, str(args.clip), "--out", str(work), "-q"], check=True, stdout=subprocess.DEVNULL
    )
    copy = frames_of(work / args.clip.name)
    faces = reference(args.clip, args.reference_every)
    clear: dict[str, list[bool]] = {name: [] for name in [*bands, "strangers"]}
    for index, boxes in faces.items():
        width = copy[index].shape[1]
        for box in boxes:
            dark = black_share(copy[index], box)
            centre = (box.left + box.right) / 2 / width
            owner = next((n for n, (a, b) in bands.items() if a <= centre <= b), "strangers")
            clear[owner].append(bool(dark < 0.1))
    harness.table_header("clip", "who", "face-frames", "kept clear")
    for name, seen in clear.items():
        share = 100 * sum(seen) / len(seen) if seen else 0.0
        print(f"| {args.clip.name} | {name} | {len(seen)} | {sum(seen)} ({share:.1f}%) |")


if __name__ == "__main__":
    main()
