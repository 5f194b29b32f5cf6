"""XMP face regions (facematch tag): sidecars per second on 10,000 photos, round trips.

    python -m benchmarks.speed.bench_tag [--faces PATH/TO/shared/faces] [--photos 10000]
        [--sample 400] [--jobs 2] [--work DIR]

1. A library of ``--photos`` photos: the group photos of ``scenes/`` and
   ``portraits/obama.jpg`` (which carries Photoshop's XMP, to be merged), each
   stored in all eight EXIF orientations (the pixels turned, the Orientation tag
   set), linked over and over into folders of 500 (hard links: the same bytes,
   as a library of copies would hold them). ``facematch index`` encodes each
   distinct picture once (the library keys faces by content);
   ``facematch cluster --known`` (the eight people of ``people/tbbt``, Obama and
   Biden) names the people.
2. Timed, in a process of its own: ``facematch tag --library`` writes every
   photo's sidecar from the stored faces, no image decoded; then again (nothing
   changes: every photo ``unchanged``, each sidecar read, merged and compared).
   Sidecars per second = photos written / wall seconds.
3. Exactness: every region written is read back with facematch's reader
   (``sources.xmp.photo_regions``) and compared with the face's box in the library
   (upright pixels): the share equal to the pixel on all four sides, and within a
   pixel. For ``--sample`` photos ExifTool reads the sidecars: its regions,
   denormalised with AppliedToDimensions, against the box in the stored pixels
   found by turning a mask of the upright box with Pillow (within a pixel).
4. Names: the regions of the first folder read back as the known people
   (``--known-from-xmp``) name the distinct pictures; the share of the library's
   named faces named the same.

Prints markdown tables. The machine is shared: times are medians of one run each,
noisy; the photos come from the page cache (linked), so a cold disk costs more.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks import harness
from facematch.sources.xmp import photo_regions

FOLDER = 500
T = Image.Transpose
# The turn that stores an upright picture under each orientation (the inverse of
# what ImageOps.exif_transpose does to show it).
STORE = {
    2: T.FLIP_LEFT_RIGHT,
    3: T.ROTATE_180,
    4: T.FLIP_TOP_BOTTOM,
    5: T.TRANSPOSE,
    6: T.ROTATE_90,
    7: T.TRANSVERSE,
    8: T.ROTATE_270,
}


def stored(upright: Image.Image, orientation: int) -> Image.Image:
    return upright if orientation == 1 else upright.transpose(STORE[orientation])


def make_originals(faces: Path, out: Path) -> list[Path]:
    """Each scene and obama.jpg in the eight orientations, upright when shown."""
    out.mkdir(parents=True)
    sources = [*sorted((faces / "scenes").glob("*.jpg")), faces / "portraits" / "obama.jpg"]
    made = []
    for source in sources:
        with Image.open(source) as image:
            upright = image.convert("RGB")
            xmp = image.info.get("xmp")
        for o in range(1, 9):
            exif = Image.Exif()
            exif[0x0112] = o
            path = out / f"{source.stem}-o{o}.jpg"
            extra = {"xmp": xmp} if xmp else {}
            stored(upright, o).save(path, exif=exif, quality=90, **extra)
            made.append(path)
    return made


def make_known(faces: Path, out: Path) -> Path:
    known = out / "known"
    shutil.copytree(faces / "people" / "tbbt", known)
    shutil.copy(faces / "portraits" / "obama2.jpg", known / "Barack Obama.jpg")
    shutil.copy(faces / "portraits" / "biden.jpg", known / "Joe Biden.jpg")
    return known


def link_library(originals: Sequence[Path], folder: Path, count: int) -> None:
    for i in range(count):
        original = originals[i % len(originals)]
        target = folder / f"{i // FOLDER:03d}" / f"{i:05d}-{original.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(original, target)
        except OSError:
            shutil.copy(original, target)


def facematch(*args: object, **options: Any) -> tuple[subprocess.CompletedProcess[str], float]:
    command = harness.python_module("facematch", *map(str, args))
    done, timing = harness.run_timed(
        command, env=harness.child_env(), capture_output=True, text=True, **options
    )
    if done.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return done, timing.wall


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def box_of(row: dict[str, Any]) -> tuple[int, int, int, int]:
    box = row.get("box", row)
    return tuple(int(box[k]) for k in ("top", "right", "bottom", "left"))  # type: ignore[return-value]


def read_back(written: list[dict[str, Any]]) -> tuple[int, int, int, float]:
    """Regions written, read back equal to the pixel, within a pixel; the largest error."""
    exact = near = total = 0
    worst = 0.0
    for row in written:
        regions = {r["name"]: box_of(r) for r in row["regions"]}
        if not regions:
            continue
        found = {r.name: r.box.css() for r in photo_regions(row["path"]).regions}
        for name, box in regions.items():
            total += 1
            back = found.get(name)
            if back is None:
                worst = float("inf")
                continue
            error = max(abs(a - b) for a, b in zip(back, box, strict=True))
            worst = max(worst, error)
            exact += error == 0
            near += error <= 1
    return total, exact, near, worst


def stored_box(size: tuple[int, int], box: Sequence[int], orientation: int) -> list[int]:
    """An upright box as (left, top, right, bottom) in the stored image, by Pillow."""
    top, right, bottom, left = box
    mask = np.zeros(size[::-1], dtype=np.uint8)
    mask[top:bottom, left:right] = 255
    rows, cols = np.nonzero(np.asarray(stored(Image.fromarray(mask), orientation)))
    return [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1]


def exiftool_check(written: list[dict[str, Any]], sample: int) -> tuple[int, int, float]:
    """Regions exiftool reads within a pixel of the face in the stored pixels."""
    exiftool = shutil.which("exiftool")
    chosen = [r for r in written if r["regions"]]
    chosen = harness.evenly_spaced(chosen, min(sample, len(chosen)))
    if exiftool is None or not chosen:
        return 0, 0, float("nan")
    done = subprocess.run(
        [exiftool, "-j", "-struct", "-XMP:RegionInfo", *(r["target"] for r in chosen)],
        capture_output=True,
        text=True,
        check=False,
    )
    read = {item["SourceFile"]: item for item in json.loads(done.stdout)}
    total = within = 0
    worst = 0.0
    for row in chosen:
        info = read[row["target"]]["RegionInfo"]
        width, height = info["AppliedToDimensions"]["W"], info["AppliedToDimensions"]["H"]
        orientation = int(Path(row["path"]).stem.rsplit("-o", 1)[1])
        upright = (height, width) if orientation >= 5 else (width, height)
        regions = {r["Name"]: r["Area"] for r in info["RegionList"]}
        for region in row["regions"]:
            total += 1
            a = regions[region["name"]]
            x, y, w, h = (float(a[k]) for k in "XYWH")
            found = [(x - w / 2) * width, (y - h / 2) * height, (x + w / 2) * width]
            found.append((y + h / 2) * height)
            expected = stored_box(upright, box_of(region), orientation)
            error = max(abs(f - e) for f, e in zip(found, expected, strict=True))
            worst = max(worst, error)
            within += error <= 1
    return total, within, worst


def share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.2f}%)" if whole else "-"


def main(argv: Sequence[str] | None = None) -> None:
    arguments = harness.parser(__doc__)
    harness.add_faces(arguments, required=False)
    arguments.add_argument("--photos", type=int, default=10_000, help="library size")
    arguments.add_argument(
        "--sample", type=int, default=400, help="photos whose sidecars exiftool reads"
    )
    harness.add_jobs(arguments, default=2)
    arguments.add_argument(
        "--work", type=Path, default=None, help="work folder (default: a temporary one, removed)"
    )
    args = arguments.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_tag-"))
    try:
        run(args, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def run(args: Any, work: Path) -> None:
    originals = make_originals(args.faces, work / "originals")
    known = make_known(args.faces, work)
    photos = work / "photos"
    link_library(originals, photos, args.photos)
    library = work / "photos.sqlite3"
    common = ("--library", library, "--cache-dir", work / "cache", "-q", "-j", args.jobs)
    _, index_wall = facematch("index", photos, *common)
    clustered, cluster_wall = facematch(
        "cluster", photos, "--known", known, "--format", "csv", *common[:2], "-q"
    )
    named = [r for r in csv_rows(clustered.stdout) if r["named_by"] != "none"]

    first, tag_wall = facematch("tag", "--library", library, "--format", "json", "-q")
    written = json.loads(first.stdout)
    statuses = [r["status"] for r in written]
    again, again_wall = facematch("tag", "--library", library, "--format", "csv", "-q")
    unchanged = sum(r["status"] == "unchanged" for r in csv_rows(again.stdout))
    regions = sum(len(r["regions"]) for r in written)

    print(f"\n{args.photos} photos ({len(originals)} distinct pictures, 8 orientations), ")
    print(f"{len(named)} named faces in the library; index {index_wall:.0f} s, ")
    print(f"cluster --known {cluster_wall:.0f} s (not part of tagging).\n")
    harness.table_header("run", "photos", "regions", "wall s", "sidecars / s", align="lrrrr")
    written_count = statuses.count("written")
    harness.table_row(
        "tag --library (first: every sidecar written)",
        f"{written_count} written",
        regions,
        f"{tag_wall:.1f}",
        f"{written_count / tag_wall:.0f}",
    )
    harness.table_row(
        "tag --library (again: nothing to change)",
        f"{unchanged} unchanged",
        regions,
        f"{again_wall:.1f}",
        f"{len(written) / again_wall:.0f} read",
    )

    total, exact, near, worst = read_back(written)
    checked, within, exif_worst = exiftool_check(written, args.sample)
    print()
    harness.table_header("round trip", "regions", "share", "largest error (px)", align="lrrr")
    harness.table_row(
        "facematch reads back the same box, to the pixel", total, share(exact, total), f"{worst:g}"
    )
    harness.table_row("... within a pixel", total, share(near, total), f"{worst:g}")
    harness.table_row(
        "exiftool's region on the face in the stored pixels, within a pixel",
        checked,
        share(within, checked),
        f"{exif_worst:.3f}",
    )

    names = names_round_trip(photos / "000", originals, work / "cache", named)
    print()
    harness.table_header("names", "faces", "share", align="lrr")
    harness.table_row(
        "library's named faces named the same by --known-from-xmp (one copy of each picture)",
        names[1],
        share(*names),
    )


def names_round_trip(
    folder: Path, originals: Sequence[Path], cache: Path, named: list[dict[str, str]]
) -> tuple[int, int]:
    """Faces of the distinct pictures named as the library named them, by the regions of
    one tagged copy of each read back as the known people."""
    expected: dict[tuple[str, tuple[int, ...]], str] = {}
    for row in named:
        picture = Path(row["path"]).name.split("-", 1)[1]
        expected[(picture, box_of(row))] = row["name"]
    tagged = sorted(folder.glob("*.jpg"))[: len(originals)]
    known = [option for path in tagged for option in ("--known-from-xmp", path)]
    done, _ = facematch(*known, *originals, "--format", "csv", "-q", "--cache-dir", cache)
    found = {
        (Path(r["path"]).name, box_of(r)): r["name"]
        for r in csv_rows(done.stdout)
        if r["name"] and r["uncertain"] == "no"
    }
    same = sum(found.get(key) == name for key, name in expected.items())
    return same, len(expected)


if __name__ == "__main__":
    main()
