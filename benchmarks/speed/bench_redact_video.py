"""Video redaction against deface, side by side: faces covered, exposed frames, CPU time.

    python -m benchmarks.speed.bench_redact_video CLIP... [--work DIR] [--reference-every 1]

For each clip, in one run on the same cores (one process each, ``-j 1``):

- ``facematch redact CLIP --out DIR --format json -j 1`` (fill style: black);
- ``deface CLIP -o OUT --replacewith solid --boxes --thresh 0.2`` (deface's
  default threshold and mask scale 1.3, full-resolution inference, black boxes).

CPU seconds are the child processes' user + system time (``getrusage``), per
second of video; facematch's peak memory is the largest resident size of the
children after its run (it runs first). The reference faces of each frame are those of photo
redaction's detector passes (``redaction_passes``: CenterFace at 0.2, HOG at
upsample 2, HOG on mirrored borders) on the original frame, every
``--reference-every`` frames. A reference face is *covered* in a copy when
at least 90% of its box is black there (each copy is decoded back); a face is
*exposed* in a frame when it is not covered there but is covered in the frame
before or after (a one-frame flicker). Prints a markdown table.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import harness
from facematch.detect.boxes import iou
from facematch.records import FaceBox

BLACK = 12  # a channel value at or under this is the fill (H.264 leaves 0 at 0-12)


@dataclass
class Outcome:
    tool: str
    cpu: float
    frames: int
    faces: int = 0
    covered: int = 0
    exposed: int = 0


def cpu_of(command: Sequence[str]) -> float:
    """User + system CPU seconds of one child command (which must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def frames_of(path: Path) -> list[np.ndarray]:
    from facematch.sources.video import VideoFrames

    with VideoFrames(str(path)) as video:
        return [image for _, image in video.pictures()]


def reference(clip: Path, every: int) -> dict[int, list[FaceBox]]:
    """Frame index -> face boxes by photo redaction's passes."""
    from facematch.detect.boxes import unite
    from facematch.encode.faces import FaceSettings
    from facematch.encode.passes import detect_pass, redaction_passes

    passes = redaction_passes(FaceSettings(upsample=2))
    found = {}
    for index, image in enumerate(frames_of(clip)):
        if index % every == 0:
            found[index] = unite([detect_pass(image, p) for p in passes])
    return found


def black_share(frame: np.ndarray, box: FaceBox) -> float:
    """The share of ``box`` that is the fill in ``frame`` (1 for an empty box)."""
    region = frame[box.top : box.bottom, box.left : box.right]
    return float((region.max(axis=2) <= BLACK).mean()) if region.size else 1.0


def score(copy: Path, faces: dict[int, list[FaceBox]], out: Outcome) -> None:
    frames = frames_of(copy)
    hidden: dict[tuple[int, int], bool] = {}
    for index, boxes in faces.items():
        for k, box in enumerate(boxes):
            hidden[(index, k)] = black_share(frames[index], box) >= 0.9
    out.faces = len(hidden)
    out.covered = sum(hidden.values())
    out.exposed = sum(
        not covered
        and any(
            hidden.get((other, j)) and iou(faces[index][k], near) >= 0.3
            for other in (index - 1, index + 1)
            for j, near in enumerate(faces.get(other, []))
        )
        for (index, k), covered in hidden.items()
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--work", type=Path, default=None, help="where the copies go")
    parser.add_argument("--reference-every", type=int, default=1)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-redact-video-"))
    harness.table_header(
        "clip",
        "tool",
        "CPU s per s of video",
        "faces (face-frames)",
        "covered",
        "exposed",
        "peak MB",
    )
    for clip in args.clips:
        from facematch.privacy.video import copy_path
        from facematch.sources.video import probe

        info = probe(str(clip))
        seconds = info.duration or 1.0
        faces = reference(clip, args.reference_every)
        ours_dir = work / f"{clip.stem}-facematch"
        ours = Outcome("facematch", 0.0, 0)
        command = [sys.executable, "-m", "facematch", "redact", str(clip), "--out", str(ours_dir)]
        ours.cpu = cpu_of([*command, "--format", "json", "-j", "1", "-q"])
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        score(copy_path(ours_dir / clip.name), faces, ours)
        theirs = Outcome("deface", 0.0, 0)
        deface_out = work / f"{clip.stem}-deface.mp4"
        theirs.cpu = cpu_of(
            [
                "deface",
                str(clip),
                "-o",
                str(deface_out),
                "--replacewith",
                "solid",
                "--boxes",
                "--thresh",
                "0.2",
            ]
        )
        score(deface_out, faces, theirs)
        for outcome in (ours, theirs):
            harness.table_row(
                f"{clip.name} ({info.width}x{info.height}, {seconds:.1f} s)",
                outcome.tool,
                f"{outcome.cpu / seconds:.2f}",
                outcome.faces,
                f"{outcome.covered} ({100 * outcome.covered / max(outcome.faces, 1):.1f}%)",
                outcome.exposed,
                f"{peak_mb:.0f}" if outcome is ours else "",
            )


if __name__ == "__main__":
    main()
