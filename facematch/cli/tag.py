"""``facematch tag``: the names of matched faces written as XMP face regions for photo managers."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from facematch.cli.common import (
    EXIT_CODES_HELP,
    EXIT_PARTIAL,
    CliUsageError,
    Known,
    RunOptions,
    choose_tolerance,
    find_inputs,
    format_option,
    image_command,
    known_from_xmp_option,
    library_option_for,
    progress_bar,
    recursive_option,
    tolerance_option,
    write_all,
)
from facematch.records import ImageResult, TagResult, VideoResult

if TYPE_CHECKING:
    from facematch.output.writers import RowWriter
    from facematch.output.xmp import Tagger

log = logging.getLogger("facematch")

SIDECAR_FORMS = ("photo.jpg.xmp", "photo.xmp")


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("arguments", nargs=-1, metavar="[KNOWN] PATH...", type=click.Path(path_type=str))
@click.option(
    "--from-json",
    "from_json",
    metavar="FILE",
    default=None,
    help="Write the names of an earlier run instead of matching: FILE is the output of "
    "facematch KNOWN PHOTOS --format json (or jsonl; - reads standard input).",
)
@click.option(
    "--sidecar-name",
    type=click.Choice(SIDECAR_FORMS),
    default=SIDECAR_FORMS[0],
    show_default=True,
    help="The sidecar's name: photo.jpg.xmp (digiKam, darktable, Immich) or photo.xmp "
    "(Lightroom and others that drop the photo's suffix).",
)
@click.option(
    "--in-file",
    is_flag=True,
    help="Write the XMP inside the photo itself (JPEG and PNG; replaced whole or not at "
    "all, the pixels copied byte for byte) instead of a sidecar.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Write nothing: each row says what would be written (status would_write).",
)
@tolerance_option("Largest distance that still counts as a match (as for matching).")
@format_option("Report, one row per photo: compat lines, CSV, one JSON document, or JSON lines.")
@library_option_for(
    "Write the names the people of this face library have (facematch cluster: named "
    "by you, or by --known) instead of matching; nothing is encoded again. PATH... "
    "limits it to the photos under them."
)
@known_from_xmp_option
@recursive_option
@image_command(default_upsample=1)
def tag(
    arguments: tuple[str, ...],
    from_json: str | None,
    sidecar_name: str,
    in_file: bool,
    dry_run: bool,
    tolerance: float | str,
    fmt: str,
    recursive: bool,
    library_path: Path | None,
    known_from_xmp: tuple[str, ...],
    shared: RunOptions,
) -> None:
    """Write the people named in photos as XMP face regions, for photo managers.

    \b
    facematch tag KNOWN PATH...               match, then write each photo's sidecar
    facematch tag --from-json FILE            the names of an earlier --format json run
    facematch tag --known-from-xmp DIR PATH...   the known people: DIR's face regions
    facematch tag --library FILE [PATH...]    the names of a clustered face library

    For every face named with a sure name (an uncertain one is left out), the
    photo's XMP gets an MWG region and a Microsoft Photo region, and the name
    goes into its people keywords, for Immich, digiKam, Lightroom, PhotoPrism
    and Windows to read. By default into a sidecar, photo.jpg.xmp, never into
    the photo; an existing sidecar (or the photo's own XMP, if it has no
    sidecar) is merged: what other tools wrote stays, and only facematch's own
    earlier regions are replaced. Regions are placed on the image as stored
    (the EXIF orientation is undone).
    """
    from facematch.output.writers import TAG_ROWS, make_writer
    from facematch.output.xmp import Tagger, TagOptions

    context = click.get_current_context()
    named_form = (
        context.get_parameter_source("sidecar_name") is click.core.ParameterSource.COMMANDLINE
    )
    if in_file and named_form:
        raise CliUsageError("--in-file writes inside the photo; --sidecar-name names a sidecar")
    tagger = Tagger(TagOptions(sidecar_name, in_file, dry_run))
    writer = make_writer(fmt, sys.stdout, TAG_ROWS)
    unreadable_known: tuple[str, ...] = ()
    if from_json is not None:
        from facematch.sources.answers import read_answers

        if arguments or known_from_xmp or library_path is not None:
            raise CliUsageError(
                "--from-json FILE names the photos and people itself; give no KNOWN, PATH, "
                "--known-from-xmp or --library"
            )
        unreadable = write_all(tags(tagger, read_answers(from_json)), writer)
    elif library_path is not None:
        if known_from_xmp:
            raise CliUsageError("--library names the people itself; give no --known-from-xmp")
        unreadable = _tag_library(library_path, arguments, tagger, writer)
    else:
        first, rest = (arguments[0], arguments[1:]) if arguments else (None, ())
        known, paths = Known.split(first, rest, known_from_xmp)
        if not paths:
            raise CliUsageError("no PATH to tag given (or --from-json FILE)")
        unreadable, unreadable_known = _match_and_tag(
            known, paths, tolerance, recursive, shared, tagger, writer
        )
    _report(tagger)
    if unreadable or unreadable_known:
        sys.exit(EXIT_PARTIAL)


def _match_and_tag(
    known: Known,
    paths: tuple[str, ...],
    tolerance: float | str,
    recursive: bool,
    shared: RunOptions,
    tagger: Tagger,
    writer: RowWriter[TagResult],
) -> tuple[int, tuple[str, ...]]:
    from facematch.run import pipeline as pl

    photos = known.photos()
    found = find_inputs(paths, recursive)
    with (
        progress_bar(len(photos) + len(found), "faces", shared.quiet) as bar,
        shared.pipeline(progress=bar.update) as pipeline,
    ):
        known_people, encoded = known.start(pipeline, photos, found)
        chosen = choose_tolerance(tolerance, len(known_people.gallery.embeddings))
        results = pl.match(
            pipeline, known_people, found, chosen, False, encoded, local=tolerance == "auto"
        )
        unreadable = write_all(tags(tagger, results), writer)
    return unreadable, known_people.unreadable


def _tag_library(
    library_path: Path, paths: tuple[str, ...], tagger: Tagger, writer: RowWriter[TagResult]
) -> int:
    from facematch.errors import UsageError
    from facematch.run.people import named_photos
    from facematch.store.library import Library, resolve_library_path

    where = resolve_library_path(library_path)
    if not where.exists():
        raise UsageError(f"no library at {where}; make one with: facematch cluster PHOTOS")
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:
        raise UsageError(f"no such file or directory: {', '.join(missing)}")
    with Library.open(where) as library:
        photos = named_photos(library, paths)
    return write_all(tags(tagger, photos), writer)


def tags(tagger: Tagger, results: Iterable[ImageResult | VideoResult]) -> Iterator[TagResult]:
    """Each photo's row, its XMP written as the results come."""
    for result in results:
        if isinstance(result, VideoResult):
            yield TagResult(result.path, "error", error="a video: no XMP regions are written")
        else:
            yield tagger(result)


def _report(tagger: Tagger) -> None:
    from facematch.cli.match import warn_uncertain

    warn_uncertain(tagger.uncertain, "(left out: only sure names are written)")
    _warn(
        tagger.other_form,
        "{n} photo{s} had a sidecar named the other way, which was merged into the one "
        "written; --sidecar-name chooses the form your photo manager reads",
    )
    _warn(
        tagger.sidecar_beside,
        "{n} photo{s} written inside also had a sidecar, left as it was; photo managers "
        "may read the sidecar instead",
    )


def _warn(count: int, text: str) -> None:
    """A warning when ``count`` is not 0: ``text`` with {n} the count, {s} a plural's s."""
    if count:
        log.warning("%s", text.format(n=count, s="" if count == 1 else "s"))
