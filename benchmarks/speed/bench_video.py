"""Faces in video: ground-truth accuracy, speed per minute of 1080p, seek vs decode, memory.

    python -m benchmarks.speed.bench_video --faces PATH/TO/shared/faces [--seconds 60] [--rounds 3]

Writes ground-truth videos into benchmarks/data/video/ (kept between runs): real
photos of five people shown for 2-6 s each, a stranger (LFW) for 3-4 s between
them, at 1920x1080, 25 fps, in H.264 (x264's default keyframes: at shot
changes, at most 10 s apart), H.264 with 1 s keyframes, VP9, and H.264 stored
turned 90 degrees with a display matrix (as phones write it). The known
folder holds a different photo of each person. Then, printing markdown tables:

1. accuracy per file at the default sampling: the share of true appearances
   (all at least 2 s) reported as a range of that person, the share whose range
   starts and ends within one sample interval of the truth, ranges of a person
   not on screen at the time, and whether the rotated copy gives the same
   ranges as its upright original;
2. speed: CPU seconds per minute of 1080p of one worker with its models
   loaded (sampling, detection, encoding), per file, and the reference row:
   every frame sampled with the photo defaults, as face_recognition's video
   example does, timed on a 1 s cut and scaled to a minute; then the wall time
   of the whole command (start-up and known folder included, ``--no-cache``)
   with one and two workers; medians over ``--rounds`` interleaved rounds;
3. sampling alone (decode, no faces) per minute of 1080p: seek vs decode through,
   per file;
4. peak memory (RSS) for a long low-resolution file against a 1-minute one.

The machine is shared: absolute times are noisy, ratios measured side by side
in one run are the figures to trust.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks import harness
from facematch.encode import frames as frames_mod
from facematch.sources import video
from tests.videos import Shot, write_video  # the ground-truth video writer the tests use

OUT = harness.DATA / "video"
# (name, known photo, photo shown in the video), under people/knn of the shared faces.
PEOPLE = [
    ("Barack Obama", "train/obama/obama.jpg", "train/obama/obama2.jpg"),
    ("Joe Biden", "train/biden/biden.jpg", "train/biden/biden2.jpg"),
    ("Kit Harington", "train/kit_harington/john1.jpeg", "train/kit_harington/john2.jpeg"),
    ("Rose Leslie", "train/rose_leslie/img1.jpg", "train/rose_leslie/img2.jpg"),
    ("Alex Lacamoire", "train/alex_lacamoire/img1.jpg", "test/alex_lacamoire1.jpg"),
]


def schedule(faces: Path, seconds: float, seed: int = 0) -> list[Shot]:
    """Known people for 2-6 s, each followed by a stranger for 3-4 s, until ``seconds``."""
    rng = random.Random(seed)
    strangers = sorted((faces / "lfw-dev" / "strangers").glob("*.jpg"))
    shots: list[Shot] = []
    time_now, turn = 0.0, 0
    while time_now < seconds - 2:
        name, _, shown = PEOPLE[turn % len(PEOPLE)]
        length = min(rng.choice([2, 3, 4, 5, 6]), seconds - time_now)
        shots.append(Shot(name, faces / "people" / "knn" / shown, time_now, time_now + length))
        time_now += length
        gap = min(rng.choice([3, 4]), seconds - time_now)
        if gap > 0:
            shots.append(Shot(None, rng.choice(strangers), time_now, time_now + gap))
            time_now += gap
        turn += 1
    return shots


def known_folder(faces: Path) -> Path:
    folder = OUT / "known"
    folder.mkdir(parents=True, exist_ok=True)
    for name, photo, _ in PEOPLE:
        source = faces / "people" / "knn" / photo
        shutil.copy(source, folder / f"{name}{source.suffix}")
    return folder


def make(path: Path, shots: list[Shot], **options: object) -> Path:
    if not path.exists():
        partial = path.with_name("partial-" + path.name)
        with harness.timed() as timing:
            write_video(partial, shots, **options)  # type: ignore[arg-type]
            partial.rename(path)
        print(f"wrote {path.name} in {timing.wall:.0f} s", file=sys.stderr)
    return path


def facematch(*args: str | Path) -> tuple[dict[str, object], float, float, float]:
    """Run facematch; (its first JSON document, wall s, CPU s of it and its workers, peak MiB)."""
    done, timing = harness.run_timed(
        harness.python_module("facematch", *(str(a) for a in args), "--format", "json", "-q"),
        capture_output=True,
        text=True,
    )
    if done.returncode not in (0, 3):
        raise SystemExit(f"facematch failed: {done.stderr}")
    document = json.loads(done.stdout)[0]
    return document, timing.wall, timing.children_cpu, timing.children_peak_mb


def score(
    document: dict[str, object], shots: list[Shot], interval: float
) -> tuple[int, int, int, int]:
    """(true appearances, reported, with boundaries within one sample, ranges of absent people)."""
    found = [(a["name"], a["start"], a["end"]) for a in document["appearances"]]  # type: ignore[attr-defined]
    truth = [s for s in shots if s.name is not None and s.end - s.start >= 2]
    reported = exact = 0
    for shot in truth:
        overlapping = [
            f for f in found if f[0] == shot.name and f[1] < shot.end and f[2] > shot.start
        ]
        if overlapping:
            reported += 1
            start, end = min(f[1] for f in overlapping), max(f[2] for f in overlapping)
            if abs(start - shot.start) <= interval and abs(end - shot.end) <= interval:
                exact += 1
    absent = sum(
        1
        for name, start, end in found
        if name is not None
        and not any(s.name == name and s.start < end and s.end > start for s in shots)
    )
    return len(truth), reported, exact, absent


def decode_seconds(path: Path, strategy: video.Strategy) -> float:
    """CPU seconds to sample ``path`` once a second."""
    with harness.timed() as timing:
        for _ in video.frames(str(path), 1.0, strategy=strategy):
            pass
    return timing.cpu


def cut(path: Path, seconds: float, out: Path) -> Path:
    """The first ``seconds`` of a video (stream copy up to a keyframe), for the reference row."""
    import av

    if out.exists():
        return out
    with av.open(str(path)) as source, av.open(str(out), "w") as target:
        stream = source.streams.video[0]
        copy = target.add_stream_from_template(stream)
        for packet in source.demux(stream):
            if packet.dts is None:
                continue
            if packet.pts is not None and packet.pts * stream.time_base >= seconds:
                break
            packet.stream = copy
            target.mux(packet)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_faces(parser, required=False)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the 1080p videos")
    parser.add_argument("--long-minutes", type=float, default=10.0, help="the memory test file")
    harness.add_rounds(parser, 3)
    parser.add_argument(
        "--parts", nargs="+", default=["accuracy", "speed", "decode", "memory"], help="what to run"
    )
    parser.add_argument(
        "--models",
        type=lambda text: text.split(","),
        default=["default", "hog"],
        help="frames' detectors to compare: default (CenterFace when installed), hog, ...",
    )
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    known = known_folder(args.faces)
    shots = schedule(args.faces, args.seconds)
    hd = {"width": 1920, "height": 1080, "rate": 25}
    tag = f"{args.seconds:g}s"
    files = {
        "H.264, x264 default keyframes": make(OUT / f"truth-h264-{tag}.mp4", shots, **hd),
        "H.264, 1 s keyframes": make(
            OUT / f"truth-h264-gop1-{tag}.mp4", shots, keyframe_interval=25, **hd
        ),
        "VP9 (WebM)": make(OUT / f"truth-vp9-{tag}.webm", shots, codec="libvpx-vp9", **hd),
        "H.264, rotated 90 (display matrix)": make(
            OUT / f"truth-h264-rotated-{tag}.mp4", shots, rotation=90, **hd
        ),
    }
    if "accuracy" in args.parts:
        accuracy(files, known, shots, args.models)
    minutes = args.seconds / 60
    if "speed" in args.parts:
        speed(files, known, args, tag)
    if "decode" in args.parts:
        decoding(files, args, minutes)
    if "memory" in args.parts:
        memory(known, args)


def accuracy(files: dict[str, Path], known: Path, shots: list[Shot], models: list[str]) -> None:
    interval = 1.0
    print("## Accuracy (default sampling, 1 per second)\n")
    harness.table_header(
        "file",
        "frames' detector",
        "appearances >= 2 s",
        "reported",
        "boundaries within 1 sample",
        "ranges of absent people",
    )
    documents = {}
    for label, path in files.items():
        for model in models:
            chosen = () if model == "default" else ("--model", model)
            document, *_ = facematch(known, path, "--no-cache", *chosen)
            if model == models[0]:
                documents[label] = document
            total, reported, exact, absent = score(document, shots, interval)
            harness.table_row(
                label,
                model,
                total,
                f"{reported} ({reported / total:.0%})",
                f"{exact} ({exact / total:.0%})",
                absent,
            )
    same = [
        (a["name"], a["start"], a["end"])
        for a in documents["H.264, x264 default keyframes"]["appearances"]  # type: ignore[index]
    ] == [
        (a["name"], a["start"], a["end"])
        for a in documents["H.264, rotated 90 (display matrix)"]["appearances"]
    ]  # type: ignore[index]
    print(
        f"\nRotated copy gives the same ranges as the upright original: {'yes' if same else 'NO'}\n"
    )


def segment_cpu(
    path: Path, seconds: float, fps: float, min_face: int | None, model: str = "default"
) -> float:
    """CPU seconds of one worker sampling and encoding a whole video (models already loaded).

    ``model`` "default" is what the command picks for frames (CenterFace when installed).
    """
    from facematch.encode import engines
    from facematch.encode.faces import FaceSettings
    from facematch.run.tasks import VideoTask, encode_segment

    engine = engines.prepare(engines.default_engine(), None)
    settings = FaceSettings(min_face_size=min_face)
    if model == "default":
        frames = frames_mod.VideoSettings(fps=fps, detector=frames_mod.video_detector(False, "hog"))
    else:
        frames = frames_mod.VideoSettings(fps=fps, detector=model)  # type: ignore[arg-type]
    task = VideoTask(str(path), settings, engine, frames, 0.0, None, seconds)
    with harness.timed() as timing:
        result = encode_segment(task)
        if result.error:
            raise SystemExit(f"{path}: {result.error}")
    return timing.cpu


def speed(files: dict[str, Path], known: Path, args: argparse.Namespace, tag: str) -> None:
    print("## Speed per minute of 1080p\n")
    minutes = args.seconds / 60
    reference_clip = cut(files["H.264, x264 default keyframes"], 1.0, OUT / f"cut-1s-{tag}.mp4")
    reference_seconds = video.probe(str(reference_clip)).duration or 1.0
    main_file = files["H.264, x264 default keyframes"]
    for model in args.models:  # load the models first
        segment_cpu(reference_clip, reference_seconds, 1.0, None, model)
    cpu_rows: dict[str, list[float]] = {}
    wall_rows: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for label in ("H.264, x264 default keyframes", "H.264, 1 s keyframes", "VP9 (WebM)"):
            for model in args.models:
                cpu = segment_cpu(files[label], args.seconds, 1.0, None, model)
                row = f"facematch, frames: {model}, {label}"
                cpu_rows.setdefault(row, []).append(cpu / minutes)
        cpu = segment_cpu(reference_clip, reference_seconds, 25.0, 48, "hog")
        label = "every frame, photo defaults (face_recognition's approach), H.264"
        cpu_rows.setdefault(label, []).append(cpu * 60 / reference_seconds)
        for jobs in ("1", "2"):
            _, wall, _, _ = facematch(known, main_file, "--no-cache", "-j", jobs)
            wall_rows.setdefault(f"-j {jobs}", []).append(wall)
    print("One worker, models loaded, sampling + detection + encoding:\n")
    harness.table_header("run", "CPU s / min of video")
    for label, values in cpu_rows.items():
        harness.table_row(label, f"{statistics.median(values):.1f}")
    print(
        f"\nThe whole command on the {args.seconds:g} s H.264 file (start-up, known folder, "
        "video), --no-cache:\n"
    )
    harness.table_header("jobs", "wall s")
    for label, values in wall_rows.items():
        harness.table_row(label, f"{statistics.median(values):.1f}")


def decoding(files: dict[str, Path], args: argparse.Namespace, minutes: float) -> None:
    print("\n## Sampling alone (decode + RGB, no faces), CPU s per minute of 1080p\n")
    harness.table_header("file", "keyframe interval", "seek", "decode through", "auto picks")
    for label in ("H.264, 1 s keyframes", "H.264, x264 default keyframes", "VP9 (WebM)"):
        path = files[label]
        info = video.probe(str(path))
        times: dict[str, list[float]] = {"seek": [], "through": []}
        for _ in range(args.rounds):
            for strategy in ("seek", "through"):
                times[strategy].append(decode_seconds(path, strategy) / minutes)  # type: ignore[arg-type]
        interval_text = f"{info.keyframe_interval:.1f} s" if info.keyframe_interval else "no index"
        harness.table_row(
            label,
            interval_text,
            f"{statistics.median(times['seek']):.2f}",
            f"{statistics.median(times['through']):.2f}",
            info.strategy(),
        )


def memory(known: Path, args: argparse.Namespace) -> None:
    print("\n## Peak memory, 480x270 at 10 fps, 1 worker\n")
    small = {"width": 480, "height": 270, "rate": 10}
    one = make(OUT / "small-1min.mp4", schedule(args.faces, 60), **small)
    long_seconds = args.long_minutes * 60
    long = make(
        OUT / f"small-{args.long_minutes:g}min.mp4", schedule(args.faces, long_seconds), **small
    )
    harness.table_header("file", "peak RSS", "wall s", "samples")
    for label, path in (("1 minute", one), (f"{args.long_minutes:g} minutes", long)):
        measure = (
            f"import resource, subprocess, sys, json\n"
            f"done = subprocess.run([sys.executable, '-m', 'facematch', {str(known)!r}, "
            f"{str(path)!r}, '--no-cache', '-j', '1', '-q', '--per-frame', '--format', 'json'],"
            f" capture_output=True, text=True)\n"
            f"frames = len(json.loads(done.stdout)[0]['frames'])\n"
            f"print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, frames)\n"
        )
        out, timing = harness.run_timed(
            [sys.executable, "-c", measure], capture_output=True, text=True
        )
        peak, samples = out.stdout.split()
        harness.table_row(label, f"{float(peak):.0f} MiB", f"{timing.wall:.0f}", samples)


if __name__ == "__main__":
    main()
