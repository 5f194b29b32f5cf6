"""lfw-dev photos in which each detector finds no face.

    python -m benchmarks.accuracy.lfw_detectors --faces PATH/TO/shared/faces [--cnn] [--every N]
        [--detectors hog,centerface,centerface 0.2]

Every photo goes through facematch.encode.faces.detect with each detector's default
settings (HOG without and with the fallback passes of the pipeline;
CenterFace at its threshold of 0.5 and at 0.2). dlib's CNN costs about a
second per photo here, so with ``--cnn`` it runs only on the photos HOG misses
(and our ONNX version of it on every photo).
``--every N`` takes every Nth photo (sorted paths) when the machine is busy;
``--detectors`` runs only the settings named (comma-separated, as in the table).
"HOG + fallback" is HOG's own result wherever HOG finds a face (the fallback
passes run only when it finds none), so it is timed as HOG plus those passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from benchmarks import harness
from facematch.encode.faces import FaceSettings, detect, detect_with_fallback
from facematch.sources.images import load_rgb


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_faces(parser)
    parser.add_argument("--cnn", action="store_true")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--detectors", default=None, help="comma-separated subset of the rows")
    args = parser.parse_args(argv)
    root = args.faces / "lfw-dev"
    paths = harness.photos(root)[:: args.every]
    settings = {
        "hog": FaceSettings(model="hog", fallback=False),
        "hog + fallback": FaceSettings(model="hog"),
        "centerface": FaceSettings(model="centerface"),
        "centerface 0.2": FaceSettings(model="centerface", threshold=0.2),
    }
    if args.cnn:
        settings["cnn (ONNX)"] = FaceSettings(model="cnn", fallback=False)
    if args.detectors:
        wanted = args.detectors.split(",")
        settings = {name: settings[name] for name in wanted}
    missed: dict[str, list[Path]] = {name: [] for name in settings}
    seconds = dict.fromkeys(settings, 0.0)
    for path in paths:
        image = load_rgb(path)
        hog_found, seconds_hog = False, 0.0
        for name, chosen in settings.items():
            if name == "hog + fallback" and hog_found:
                seconds[name] += seconds_hog
                continue
            finder = detect_with_fallback if chosen.fallback else detect
            spent, boxes = harness.measure(partial(finder, image, chosen))
            found = bool(boxes)
            if not found:
                missed[name].append(path)
            seconds[name] += spent
            if name == "hog":
                hog_found, seconds_hog = found, spent
    print(f"{len(paths)} photos\n")
    harness.table_header("detector", "photos with no face", "CPU s per photo")
    for name in settings:
        harness.table_row(name, len(missed[name]), f"{seconds[name] / len(paths):.4f}")
    if args.cnn and "hog" in missed:
        from facematch.models import dlib_files as models

        still = [p for p in missed["hog"] if not models.cnn_detector()(load_rgb(p), 1)]
        harness.table_row(f"cnn (dlib's own), on HOG's {len(missed['hog'])} misses", len(still), "")
    for name in settings:
        print(f"\n{name} misses:", ", ".join(str(p.relative_to(root)) for p in missed[name]))


if __name__ == "__main__":
    main()
