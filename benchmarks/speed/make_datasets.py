"""Build the benchmark photo sets from the shared face photos, deterministically.

    python -m benchmarks.speed.make_datasets [--faces PATH/TO/shared/faces] [--out benchmarks/data]

Two sets, each with a ``known/`` folder (one photo per person, named after the person)
and an ``unknown/`` folder:

``phone/``
    12 MP-class photos, as a phone takes them: every photo is upscaled with Lanczos so
    its long side is 4032 px and saved as a quality-90 JPEG without EXIF.
``portraits/``
    A few hundred small photos (long side at most 600 px): the portraits, The Big Bang
    Theory face crops and the people photos, each written several times, mirrored and
    slightly cropped or rescaled so that no two files are the same.

The same inputs always give byte-identical outputs (with the same Pillow). Paths are
relative to the current folder; the defaults suit running from the repository root.
A ``manifest.json`` next to the sets records which source photo each file came from.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from benchmarks import harness

PHONE_LONG_SIDE = 4032
PORTRAIT_MAX_SIDE = 600
JPEG_QUALITY = 90
VARIANTS_PER_SOURCE = 5

# known/<file name>: source photo under --faces
PHONE_KNOWN = {
    "Barack Obama.jpg": "portraits/obama.jpg",
    "Joe Biden.jpg": "portraits/biden.jpg",
    "Alex Lacamoire.jpg": "people/knn/train/alex_lacamoire/img1.jpg",
    "Kit Harington.jpg": "people/knn/train/kit_harington/john1.jpeg",
    "Rose Leslie.jpg": "people/knn/train/rose_leslie/img1.jpg",
}

# unknown/<file name>: source photo under --faces
PHONE_UNKNOWN = {
    "obama2.jpg": "portraits/obama2.jpg",
    "obama3.jpg": "portraits/obama3.jpg",
    "test_obama1.jpg": "people/knn/test/obama1.jpg",
    "test_alex_lacamoire1.jpg": "people/knn/test/alex_lacamoire1.jpg",
    "test_johnsnow_test1.jpg": "people/knn/test/johnsnow_test1.jpg",
    "test_kit_with_rose.jpg": "people/knn/test/kit_with_rose.jpg",
    "test_obama_and_biden.jpg": "people/knn/test/obama_and_biden.jpg",
    "two_people.jpg": "scenes/two_people.jpg",
    "biden2.jpg": "people/knn/train/biden/biden2.jpg",
    "train_obama2.jpg": "people/knn/train/obama/obama2.jpg",
    "rose_leslie2.jpg": "people/knn/train/rose_leslie/img2.jpg",
    "kit_harington2.jpg": "people/knn/train/kit_harington/john2.jpeg",
    "lin-manuel-miranda.jpg": "portraits/lin-manuel-miranda.png",  # a stranger
    "bbt1.jpg": "scenes/bbt1.jpg",  # strangers
}

TBBT_PEOPLE = ("amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart")

# The portraits folder, minus obama_exif_rotated.jpg: the two tools read its EXIF
# orientation differently on purpose, which is not what this set measures.
PORTRAIT_SOURCES = (
    "32bit.png",
    "alex-lacamoire.png",
    "biden.jpg",
    "lin-manuel-miranda.png",
    "obama-1080p.jpg",
    "obama-240p.jpg",
    "obama-480p.jpg",
    "obama-720p.jpg",
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
    "obama_small.jpg",
)


@dataclass(frozen=True)
class Variant:
    """How one copy of a source photo differs from it."""

    mirror: bool
    crop: tuple[float, float, float, float]  # fractions cut from left, top, right, bottom
    long_side: int  # target long side in pixels


def load_upright(path: Path) -> Image.Image:
    """The photo upright (EXIF orientation applied), as RGB or grayscale, alpha on white."""
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened)
        image.load()
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat.alpha_composite(rgba)
        return flat.convert("RGB")
    if image.mode not in ("RGB", "L"):
        return image.convert("RGB")
    return image


def resize_long_side(image: Image.Image, long_side: int) -> Image.Image:
    width, height = image.size
    scale = long_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS)


def save_jpeg(image: Image.Image, path: Path) -> None:
    """A plain baseline JPEG: no EXIF, no ICC profile, fixed settings."""
    image.save(path, "JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)


def variants(key: str, width: int, height: int) -> list[Variant]:
    """VARIANTS_PER_SOURCE variants of one source, the same every time for the same key.

    Variant 0 is the whole photo, variant 1 the whole photo mirrored; the others cut
    1-4% from each side and rescale by up to 25%, mirrored or not. Small crops (the
    150 px TV crops) are enlarged instead, never past PORTRAIT_MAX_SIDE.
    """
    rng = random.Random(f"facematch-benchmark:{key}")
    base = min(PORTRAIT_MAX_SIDE, max(width, height))
    out = [
        Variant(False, (0.0, 0.0, 0.0, 0.0), base),
        Variant(True, (0.0, 0.0, 0.0, 0.0), base),
    ]
    for index in range(2, VARIANTS_PER_SOURCE):
        crop = (
            rng.uniform(0.01, 0.04),
            rng.uniform(0.01, 0.04),
            rng.uniform(0.01, 0.04),
            rng.uniform(0.01, 0.04),
        )
        # tiny face crops are scaled up so that the detector can still find them
        scale = rng.uniform(1.1, 2.0) if base < 300 else rng.uniform(0.75, 0.98)
        out.append(Variant(index % 2 == 1, crop, min(PORTRAIT_MAX_SIDE, round(base * scale))))
    return out


def apply(image: Image.Image, variant: Variant) -> Image.Image:
    width, height = image.size
    left, top, right, bottom = variant.crop
    box = (
        round(width * left),
        round(height * top),
        width - round(width * right),
        height - round(height * bottom),
    )
    out = image.crop(box) if box != (0, 0, width, height) else image
    if variant.mirror:
        out = ImageOps.mirror(out)
    return resize_long_side(out, variant.long_side)


def fresh_folder(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def build_phone(faces: Path, out: Path) -> dict[str, str]:
    manifest: dict[str, str] = {}
    for folder, table in (("known", PHONE_KNOWN), ("unknown", PHONE_UNKNOWN)):
        target = fresh_folder(out / "phone" / folder)
        for name, source in table.items():
            image = resize_long_side(load_upright(faces / source), PHONE_LONG_SIDE)
            save_jpeg(image.convert("RGB"), target / name)
            manifest[f"phone/{folder}/{name}"] = source
    return manifest


def portrait_sources(faces: Path) -> Iterable[tuple[str, str]]:
    """(file name stem, source path under faces) for every unknown portrait source."""
    for name in PORTRAIT_SOURCES:
        yield f"portrait-{Path(name).stem}", f"portraits/{name}"
    for person in TBBT_PEOPLE:
        for number in range(2, 6):
            yield f"tbbt-{person}{number}", f"people/tbbt/{person}/{person}{number}.png"
    for split in ("train", "test"):
        for path in sorted((faces / "people" / "knn" / split).rglob("*")):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
                relative = path.relative_to(faces).as_posix()
                stem = "-".join(path.relative_to(faces / "people" / "knn").with_suffix("").parts)
                yield f"knn-{stem}", relative


def build_portraits(faces: Path, out: Path) -> dict[str, str]:
    manifest: dict[str, str] = {}
    known = fresh_folder(out / "portraits" / "known")
    for person in TBBT_PEOPLE:
        source = f"people/tbbt/{person}/{person}1.png"
        load_upright(faces / source).save(known / f"{person}.png", "PNG")
        manifest[f"portraits/known/{person}.png"] = source
    for person in ("obama", "biden"):
        source = f"portraits/{person}.jpg"
        image = load_upright(faces / source)
        save_jpeg(
            resize_long_side(image, min(PORTRAIT_MAX_SIDE, max(image.size))),
            known / f"{person}.jpg",
        )
        manifest[f"portraits/known/{person}.jpg"] = source

    unknown = fresh_folder(out / "portraits" / "unknown")
    for stem, source in portrait_sources(faces):
        image = load_upright(faces / source)
        for index, variant in enumerate(variants(source, *image.size)):
            name = f"{stem}-v{index}.jpg"
            save_jpeg(apply(image, variant), unknown / name)
            manifest[f"portraits/unknown/{name}"] = source
    return manifest


def check_sources(faces: Path) -> list[str]:
    wanted = [*PHONE_KNOWN.values(), *PHONE_UNKNOWN.values()]
    wanted += [f"portraits/{name}" for name in PORTRAIT_SOURCES]
    wanted += [f"people/tbbt/{p}/{p}{n}.png" for p in TBBT_PEOPLE for n in range(1, 6)]
    return [source for source in wanted if not (faces / source).is_file()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = harness.parser(__doc__)
    harness.add_faces(parser, required=False)
    parser.add_argument(
        "--out",
        type=Path,
        default=harness.DATA,
        help="where to write phone/ and portraits/ (default: benchmarks/data)",
    )
    args = parser.parse_args(argv)
    faces: Path = args.faces
    out: Path = args.out

    missing = check_sources(faces)
    if missing:
        print(f"make_datasets: missing in {faces}: {', '.join(missing)}", file=sys.stderr)
        return 2

    manifest = {**build_phone(faces, out), **build_portraits(faces, out)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    for name in ("phone", "portraits"):
        counts = {f: len(list((out / name / f).iterdir())) for f in ("known", "unknown")}
        print(f"{out / name}: {counts['known']} known, {counts['unknown']} unknown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
