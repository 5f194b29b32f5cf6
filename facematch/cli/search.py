"""``facematch search``: where else does this person appear in the library?"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from facematch.cli.common import (
    EXIT_CODES_HELP,
    EXIT_PARTIAL,
    RunOptions,
    format_option,
    image_command,
    library_option,
    tolerance_option,
    writing,
)


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("faces", nargs=-1, required=True, metavar="FACE...", type=click.Path(path_type=str))
@library_option
@click.option(
    "--top", "-k", type=click.IntRange(min=1), default=None, metavar="K", help="At most K hits."
)
@tolerance_option(
    "Largest distance that still counts as the same person. In a large library "
    "strangers come near 0.6 too: hits are nearest first, so lower it or use --top. "
    "auto: the tolerance for this library's size, step 1 of matching's auto (see the docs, "
    "Choosing a tolerance).",
    default=0.6,
)
@format_option("Output: path,top,right,bottom,left,distance lines, CSV, JSON, or JSON lines.")
@image_command(default_upsample=1)
def search(
    faces: tuple[str, ...],
    library_path: Path | None,
    top: int | None,
    tolerance: float | str,
    fmt: str,
    shared: RunOptions,
) -> None:
    """Find every face in the library within tolerance of the person in FACE photos.

    FACE is one or more photos (or folders of photos) of one person; a library
    face's distance is that to the nearest of them. A photo with several faces
    counts as its largest one. Hits come nearest first, with path, box and
    distance.
    """
    from facematch.cli.common import find_inputs
    from facematch.errors import NoKnownFacesError
    from facematch.matching import calibration
    from facematch.output.writers import hit_rows, make_writer
    from facematch.run.pipeline import query_faces
    from facematch.sources.images import ShownPaths
    from facematch.store.library import Library

    found = find_inputs(faces, recursive=False, can_recurse=False)
    with Library.open(library_path, read_only=True) as library:
        with shared.pipeline() as pipeline:
            faces_found, unreadable = query_faces(pipeline, found)
        queries = [face.embedding for face in faces_found]
        if not queries:
            raise NoKnownFacesError("no face found in any of the FACE photos")
        if tolerance == "auto":
            tolerance = calibration.auto_tolerance(max(library.info()["faces"], 1))
        assert isinstance(tolerance, float)
        hits = library.search(queries, tolerance, top)
    shown = ShownPaths()
    writer = make_writer(fmt, sys.stdout, hit_rows())
    with writing():
        for hit in hits:
            writer.write(dataclasses.replace(hit, path=shown(hit.path)))
        writer.close()
    if unreadable:
        sys.exit(EXIT_PARTIAL)
