"""CPU seconds per face of ``facematch cloak`` as a user runs it, side by side for code versions.

    nice -n 10 python -m benchmarks.speed.bench_cloak_cli --faces PATH/TO/shared/faces \\
        [--people 6 | --phones] [--rounds 2] [--code OLD_CHECKOUT --code NEW_CHECKOUT]

Cloaks photo 1 of ``--people`` lfw-dev people with 3+ photos (evenly spaced,
from ``--offset``) or, with ``--phones``, phone-size photos (the shared
portraits obama3.jpg, 1434x2333, and biden.jpg, 970x2204, and a 12 MP
enlargement of each) with ``facematch cloak FOLDER --out DIR --jobs 1 --quiet``
at each level, and counts every CPU second of that command (user + system,
the process and the children it waits for): start-up and imports, the face
count for the progress bar, loading the models and the compiled JAX graph,
cloaking, writing, and the verification of each copy. Each code version
(``--code``: a checkout put first on PYTHONPATH; default the installed
facematch) gets its own cache folder, warmed by one run first, so the compiled
graph is read from the cache as on any run after a user's first. Versions and
levels are interleaved round by round; the table gives the median over rounds
of CPU seconds per face. One process at a time; use ``nice``; CPU time on a
shared machine is still noisy.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import harness


def photos(faces: Path, count: int, offset: int) -> list[Path]:
    """Photo 1 of ``count`` evenly spaced lfw-dev people with 3+ photos."""
    people = harness.people_with(faces / "lfw-dev", 3)
    return [sorted(d.glob("*.jpg"))[0] for d in harness.evenly_spaced(people, count, offset)]


PHONES = ("obama3.jpg", "biden.jpg")


def phone_photos(faces: Path, work: Path) -> list[Path]:
    """The phone-size portraits, and each enlarged to about 12 MP (as a phone's JPEG)."""
    out = []
    for name in PHONES:
        photo = faces / "portraits" / name
        out.append(photo)
        with Image.open(photo) as image:
            factor = math.sqrt(12e6 / (image.width * image.height))
            size = (round(image.width * factor), round(image.height * factor))
            big = work / f"{photo.stem}-12mp.jpg"
            image.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(big, quality=92)
        out.append(big)
    return out


def run(code: str | None, cache: Path, inputs: Path, out: Path, level: str) -> tuple[float, int]:
    """CPU seconds of one ``facematch cloak`` run and the number of faces it reported."""
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    if code:
        env["PYTHONPATH"] = code
    shutil.rmtree(out, ignore_errors=True)
    command = harness.python_module("facematch", "cloak", str(inputs), "--out", str(out))
    command += ["--level", level, "--jobs", "1", "--quiet", "--format", "json"]
    done, timing = harness.run_timed(
        command,
        env=env,
        cwd=cache,  # not the checkout: python -m puts the working folder first on sys.path
        capture_output=True,
        text=True,
    )
    if done.returncode not in (0, 3):
        raise SystemExit(f"facematch cloak failed ({done.returncode}): {done.stderr}")
    faces = sum(len(row["faces"]) for row in json.loads(done.stdout))
    return timing.children_cpu, faces


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_faces(parser)
    parser.add_argument("--people", type=int, default=6)
    parser.add_argument("--offset", type=int, default=3)
    parser.add_argument("--phones", action="store_true", help="phone-size photos instead")
    harness.add_rounds(parser, 2)
    parser.add_argument("--levels", nargs="+", default=["subtle", "strong"])
    parser.add_argument("--code", action="append", default=None, help="a checkout to time")
    args = parser.parse_args(argv)
    codes: list[str | None] = list(args.code) if args.code else [None]
    results: dict[tuple[str | None, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.phones:
            chosen = phone_photos(args.faces, work)
        else:
            chosen = photos(args.faces, args.people, args.offset)
        inputs = work / "in"
        inputs.mkdir()
        for photo in chosen:
            shutil.copy(photo, inputs / photo.name)
        warm = work / "warm"
        warm.mkdir()
        shutil.copy(chosen[0], warm / chosen[0].name)
        caches = {code: work / f"cache{i}" for i, code in enumerate(codes)}
        for cache in caches.values():
            cache.mkdir()
        for code in codes:
            for level in args.levels:  # compile each graph once into this version's cache
                run(code, caches[code], warm, work / "out", level)
        for round_ in range(args.rounds):
            for level in args.levels:
                for code in codes:
                    cpu, faces = run(code, caches[code], inputs, work / "out", level)
                    results.setdefault((code, level), []).append(cpu / max(1, faces))
                    print(
                        f"round {round_ + 1} {level} {code or 'installed'}: "
                        f"{cpu:.1f} CPU s, {faces} faces",
                        file=sys.stderr,
                        flush=True,
                    )
    print(f"\n{len(chosen)} photos, --jobs 1, median of {args.rounds} rounds\n")
    harness.table_header("code", "level", "CPU s per face")
    for (code, level), values in results.items():
        harness.table_row(code or "installed", level, f"{np.median(values):.2f}")


if __name__ == "__main__":
    main()
