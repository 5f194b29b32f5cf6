"""Redaction on group photos: faces covered, known people left clear, copies re-checked, time.

    python -m benchmarks.speed.bench_redact --faces PATH/TO/shared/faces [--rounds 3]
        [--skip end-to-end|coverage|timing] [--cnn-up1]

Photos: scenes/*.jpg and pairs/couple.jpg, pairs/selfie-many-people.jpg. Known
folder: three of the TV characters of people/tbbt (sheldon, leonard, penny, five
crops each) and portraits/obama.jpg; the other people are strangers.

1. Coverage (printed last: the CNN passes are slow). Every detector pass
   is run on every photo (HOG at upsample 1 and 2, dlib's CNN at upsample 0,
   with and without mirrored borders, and the passes ``redaction_passes``
   chooses now, CenterFace at its sensitive threshold among them when
   facematch[detector] is installed, all on the same 1600 px working copy;
   with ``--cnn-up1`` also the CNN at upsample 1, minutes per photo); their
   union is the reference ("the most sensitive setting available"). For each
   choice of passes, the share of reference faces it would cover (a reference
   box counts as covered when half of it lies inside a mask, as covered wholly
   when 99% of it does; each face masked as far as any chosen pass's box for it
   reaches, as redact does).
2. One run of ``facematch redact`` with the defaults: faces covered, and the share
   of the faces plain matching names that stay clear; then facematch on the
   copies (redaction's own detector passes and matching): faces found with half
   their box in a covered area, and named faces that are not a kept face.
3. Time per photo, interleaved in one process: matching alone, and what
   annotate, report and redact cost on top (redact is its own detection and
   matching), as ratios to matching alone; medians over rounds.

Prints markdown tables. The machine is shared: absolute times are noisy, the
ratios, measured side by side, much less.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from benchmarks import harness
from benchmarks.harness import WALL
from facematch.detect import boxes as box_maths
from facematch.encode.faces import FaceSettings
from facematch.encode.passes import MIRROR_PAD, DetectorPass, detect_pass, redaction_passes
from facematch.matching.gallery import known_photos
from facematch.output.pictures import AnnotatedCopies, Annotations, Pictures, output_paths
from facematch.output.report import Report
from facematch.privacy import redact as rd
from facematch.records import FaceBox
from facematch.run import pipeline as pl
from facematch.sources.images import Found, load_rgb

KNOWN_TBBT = ("sheldon", "leonard", "penny")
# Faces counted by eye (the shared folder's README, "Faces in the group photos").
BY_EYE = {
    "bbt1.jpg": 4,
    "bbt2.jpg": 4,
    "bbt3.jpg": 5,
    "bbt4.jpg": 6,
    "bbt5.jpg": 5,
    "two_people.jpg": 2,
    "couple.jpg": 2,
    "selfie-many-people.jpg": 7,
}
PASSES = {
    "hog up1": DetectorPass(FaceSettings(model="hog", upsample=1)),
    "hog up2": DetectorPass(FaceSettings(model="hog", upsample=2)),
    "hog up1 mirrored": DetectorPass(FaceSettings(model="hog", upsample=1), MIRROR_PAD),
    "hog up2 mirrored": DetectorPass(FaceSettings(model="hog", upsample=2), MIRROR_PAD),
    "cnn up0": DetectorPass(FaceSettings(model="cnn", upsample=0)),
    "cnn up0 mirrored": DetectorPass(FaceSettings(model="cnn", upsample=0), MIRROR_PAD),
}
# dlib's CNN at upsample 1 takes minutes per photo on a shared CPU: only with --cnn-up1.
CNN_UP1 = DetectorPass(FaceSettings(model="cnn", upsample=1))
# Redaction without facematch[detector] (no CenterFace): the two HOG passes and the CNN.
WITHOUT_EXTRA = ("hog up2", "hog up1 mirrored", "cnn up0 mirrored")


def pass_name(detector: DetectorPass) -> str:
    settings = detector.settings
    name = f"{settings.model} up{settings.upsample}"
    if settings.model == "centerface":
        name = f"centerface {settings.threshold:g}"
    return name + (" mirrored" if detector.pad else "")


def default_passes() -> tuple[DetectorPass, ...]:
    """What redact runs with its defaults (upsample 2), straight from the one function
    that chooses it, so this benchmark measures the current choice."""
    return redaction_passes(FaceSettings(upsample=2))


def default_choice(passes: tuple[DetectorPass, ...]) -> tuple[str, ...]:
    """The names of redact's default passes, each added to PASSES if new."""
    names = []
    for detector in passes:
        name = pass_name(detector)
        PASSES.setdefault(name, detector)
        names.append(name)
    return tuple(names)


CHOICES = {
    "matching's detector (hog up1)": ("hog up1",),
    "hog up2": ("hog up2",),
    "hog up2, hog up1 mirrored (`--no-fallback` without the detector extra)": (
        "hog up2",
        "hog up1 mirrored",
    ),
    "without the detector extra (+ cnn up0 mirrored)": WITHOUT_EXTRA,
}


# A reference box is covered wholly when this share of it lies inside the masks.
WHOLLY = 0.99


def photos(faces: Path) -> list[Path]:
    scenes = sorted((faces / "scenes").glob("*.jpg"))
    return [*scenes, faces / "pairs" / "couple.jpg", faces / "pairs" / "selfie-many-people.jpg"]


def make_known(faces: Path, folder: Path) -> Path:
    for name in KNOWN_TBBT:
        shutil.copytree(faces / "people" / "tbbt" / name, folder / name)
    shutil.copy(faces / "portraits" / "obama.jpg", folder / "Barack Obama.jpg")
    return folder


def inside(box: FaceBox, masks: list[FaceBox]) -> float:
    """Share of ``box`` lying inside the union of ``masks``."""
    if box.area == 0:
        return 1.0
    canvas = np.zeros((box.bottom - box.top, box.right - box.left), dtype=bool)
    for m in masks:
        top, bottom = max(m.top, box.top) - box.top, min(m.bottom, box.bottom) - box.top
        left, right = max(m.left, box.left) - box.left, min(m.right, box.right) - box.left
        if bottom > top and right > left:
            canvas[top:bottom, left:right] = True
    return float(canvas.mean())


def grown(boxes: list[FaceBox], image: np.ndarray) -> list[FaceBox]:
    height, width = image.shape[:2]
    return [rd.mask_box(b, width, height) for b in boxes]


def coverage(paths: list[Path], redacted: dict[str, rd.RedactedImage] | None) -> None:
    print("## Coverage of each choice of detector passes\n")
    harness.table_header("photo", *PASSES, "reference (union)")
    found: dict[str, dict[str, list[FaceBox]]] = {}
    reference: dict[str, list[FaceBox]] = {}
    seconds: dict[str, list[float]] = {name: [] for name in PASSES}
    for path in paths:
        image = load_rgb(path)
        found[path.name] = {}
        for name, settings in PASSES.items():
            spent, found[path.name][name] = harness.measure(
                partial(detect_pass, image, settings), WALL
            )
            seconds[name].append(spent)
        reference[path.name] = box_maths.unite(list(found[path.name].values()))
        counts = [len(found[path.name][n]) for n in PASSES]
        harness.table_row(path.name, *counts, len(reference[path.name]))
    times = [f"{statistics.median(seconds[n]):.1f} s" for n in PASSES]
    harness.table_row("median time per photo", *times, "")
    print()
    total = sum(len(r) for r in reference.values())
    harness.table_header(
        "passes", "reference faces covered (half the box or more)", "covered wholly"
    )

    def share(count: int) -> str:
        return f"{count}/{total} ({100 * count / total:.0f}%)"

    for label, names in CHOICES.items():
        covered = wholly = 0
        for path in paths:
            image = load_rgb(path)
            chosen = [found[path.name][n] for n in names]
            boxes = [
                box_maths.reach(b, chosen) for b in box_maths.unite(chosen)
            ]  # as redact covers them
            masks = grown(boxes, image)
            shares = [inside(b, masks) for b in reference[path.name]]
            covered += sum(1 for s in shares if s >= 0.5)
            wholly += sum(1 for s in shares if s >= WHOLLY)
        harness.table_row(label, share(covered), share(wholly))
    if redacted is None:
        return
    handled = handled_wholly = 0
    for path in paths:
        image = load_rgb(path)
        row = redacted[path.name]
        masks = grown([f.box for f in row.faces if f.action == "covered"], image)
        kept = [f.box for f in row.faces if f.action == "kept"]
        for b in reference[path.name]:
            known = any(box_maths.iou(b, k) >= box_maths.SAME_FACE_IOU for k in kept)
            handled += known or inside(b, masks) >= 0.5
            handled_wholly += known or inside(b, masks) >= WHOLLY
    label = "facematch redact, defaults: covered, or kept as a known person"
    harness.table_row(label, share(handled), share(handled_wholly))
    print()


def end_to_end(paths: list[Path], known: Path, work: Path) -> dict[str, rd.RedactedImage]:
    print("## facematch redact with the defaults, and facematch on the copies\n")
    settings = FaceSettings(upsample=2)
    passes = redaction_passes(settings)
    found = [Found(str(p)) for p in paths]
    out = work / "redacted"
    targets = output_paths([f.path for f in found], out)
    with pl.Pipeline(replace(settings, upsample=1), jobs=1) as pipeline:
        people = pl.build_gallery(pipeline, str(known), known_photos(str(known)))
        tolerance = 0.6
        plan = rd.Redaction(targets, people.gallery, tolerance)
        rows = list(rd.redact(pipeline, found, passes, plan))
        matched = list(pl.match(pipeline, people, found, tolerance))
        again = list(
            pipeline.run(
                rd.find_faces,
                [rd.FindTask(str(targets[f.path]), passes, pipeline.engine) for f in found],
                rd.find_failed,
            )
        )
        rematched = list(
            pl.match(pipeline, people, [Found(str(targets[f.path])) for f in found], tolerance)
        )
    harness.table_header(
        "photo",
        "faces by eye",
        "faces found",
        "covered",
        "kept",
        "named by matching",
        "left clear",
        "faces found in covered areas of the copy",
        "covered faces named in the copy",
    )
    sums = np.zeros(7, dtype=int)
    for path, row, match_row, copy_faces, copy_match in zip(
        paths, rows, matched, again, rematched, strict=True
    ):
        image = load_rgb(path)
        covered_boxes = [f.box for f in row.faces if f.action == "covered"]
        kept_boxes = [f.box for f in row.faces if f.action == "kept"]
        masks = grown(covered_boxes, image)
        named = [f for f in match_row.faces if f.name is not None]
        clear = sum(1 for f in named if inside(f.box, masks) < 0.5)
        in_covered = sum(1 for f in copy_faces.faces if inside(f.box, masks) >= 0.5)
        named_covered = sum(
            1 for f in copy_match.faces if f.name is not None and inside(f.box, kept_boxes) == 0
        )
        values = [
            len(row.faces),
            row.covered,
            len(kept_boxes),
            len(named),
            clear,
            in_covered,
            named_covered,
        ]
        sums += values
        kept_names = ", ".join(row.kept) or "-"
        cells = [BY_EYE.get(path.name, "?"), *values[:2], f"{values[2]} ({kept_names})"]
        cells += values[3:5]
        cells += values[5:]
        harness.table_row(path.name, *cells)
    eye = sum(BY_EYE.get(p.name, 0) for p in paths)
    harness.table_row("all", eye, *sums)
    print()
    return {p.name: r for p, r in zip(paths, rows, strict=True)}


def timing(paths: list[Path], known: Path, work: Path, rounds: int) -> None:
    print(
        f"## Time per photo relative to matching alone (medians of {rounds} rounds, interleaved)\n"
    )
    settings = FaceSettings()
    passes = redaction_passes(replace(settings, upsample=2))
    found = [Found(str(p)) for p in paths]
    ratios: dict[str, list[float]] = {"annotate": [], "report": [], "redact": []}
    per_photo: dict[str, list[float]] = {"match": [], "annotate": [], "report": [], "redact": []}
    with pl.Pipeline(settings, jobs=1) as pipeline:
        people = pl.build_gallery(pipeline, str(known), known_photos(str(known)))
        list(pl.match(pipeline, people, found[:1], 0.6))  # models loaded before timing
        for round_ in range(rounds):
            for item in found:
                with harness.timed() as timing:
                    result = next(pl.match(pipeline, people, [item], 0.6))
                matching = timing.wall
                annotate_dir = work / f"annotated-{round_}"
                copies = AnnotatedCopies(output_paths([item.path], annotate_dir), Annotations(0.6))
                with harness.timed() as timing:
                    Pictures([copies]).write(result)
                annotating = timing.wall
                with harness.timed() as timing:
                    report = Pictures([Report(work / f"report-{round_}.html", 0.6)])
                    report.write(result)
                    report.close()
                reporting = timing.wall
                plan = rd.Redaction(
                    output_paths([item.path], work / f"redacted-{round_}"), people.gallery, 0.6
                )
                with harness.timed() as timing:
                    list(rd.redact(pipeline, [item], passes, plan))
                redacting = timing.wall
                per_photo["match"].append(matching)
                per_photo["annotate"].append(annotating)
                per_photo["report"].append(reporting)
                per_photo["redact"].append(redacting)
                ratios["annotate"].append((matching + annotating) / matching)
                ratios["report"].append((matching + reporting) / matching)
                ratios["redact"].append(redacting / matching)
    harness.table_header(
        "step", "median seconds per photo", "median time relative to matching alone"
    )
    rows = [("match alone (no cache)", "match", None)]
    rows += [
        ("match + --annotate", "annotate", "annotate"),
        ("match + --report", "report", "report"),
    ]
    rows += [("redact (defaults)", "redact", "redact")]
    for label, step, ratio in rows:
        seconds = statistics.median(per_photo[step])
        relative = f"{statistics.median(ratios[ratio]):.2f}x" if ratio else "1"
        sign = "+" if step in ("annotate", "report") else ""
        harness.table_row(label, f"{sign}{seconds:.2f}", relative)


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_faces(parser)
    harness.add_rounds(parser, 3)
    parser.add_argument(
        "--skip", choices=["end-to-end", "coverage", "timing"], action="append", default=[]
    )
    parser.add_argument("--cnn-up1", action="store_true", help="add the CNN at upsample 1")
    args = parser.parse_args(argv)
    if args.cnn_up1:
        PASSES["cnn up1"] = CNN_UP1
    passes = default_passes()
    defaults = default_choice(passes)
    for detector in passes:  # CenterFace on mirrored borders too, for the reference
        if detector.settings.model == "centerface" and not detector.pad:
            mirrored = DetectorPass(detector.settings, MIRROR_PAD)
            PASSES.setdefault(pass_name(mirrored), mirrored)
    CHOICES[f"`redact` default ({', '.join(defaults)})"] = defaults
    CHOICES["every pass (the reference)"] = tuple(PASSES)
    paths = photos(args.faces)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        known = make_known(args.faces, work / "known")
        redacted = end_to_end(paths, known, work) if "end-to-end" not in args.skip else None
        if "timing" not in args.skip:
            timing(paths, known, work, args.rounds)
        if "coverage" not in args.skip:
            coverage(paths, redacted)


if __name__ == "__main__":
    main()
