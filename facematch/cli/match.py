"""``facematch match`` (the default command): name known people in unknown images."""

from __future__ import annotations

import sys

import click

from facematch.cli.common import (
    EXIT_CODES_HELP,
    EXIT_PARTIAL,
    TOLERANCE,
    PictureOptions,
    RunOptions,
    choose_tolerance,
    find_inputs,
    format_option,
    image_command,
    picture_options,
    progress_bar,
    recursive_option,
    write_all,
)


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("known", type=click.Path(path_type=str))
@click.argument("unknown", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--tolerance",
    "-t",
    type=TOLERANCE,
    default="auto",
    show_default=True,
    help="Largest distance that still counts as a match; lower is stricter "
    "(0.5-0.55 for children, relatives and look-alikes). auto: 0.6 for small "
    "galleries, lower as the known folder grows, so strangers are rarely named; "
    "0.6 gives face_recognition's answers.",
)
@click.option("--show-distance", is_flag=True, help="compat format: append the distance.")
@click.option(
    "--all-matches", is_flag=True, help="List every person within tolerance, nearest first."
)
@format_option("Output: face_recognition's lines, CSV, one JSON document, or JSON lines.")
@recursive_option
@picture_options()
@image_command(default_upsample=1)
def match(
    known: str,
    unknown: tuple[str, ...],
    tolerance: float | str,
    show_distance: bool,
    all_matches: bool,
    fmt: str,
    recursive: bool,
    pictures: PictureOptions,
    shared: RunOptions,
) -> None:
    """Name the people of KNOWN in the faces of UNKNOWN images.

    KNOWN is a folder: each image directly inside is one person, named by its
    file name ("Barack Obama.jpg"); each subfolder is one person, named by the
    folder, with all of that person's photos inside. UNKNOWN is one or more
    images or folders (--recursive to descend).
    """
    from facematch import pipeline as pl
    from facematch.gallery import known_photos
    from facematch.render import Tee
    from facematch.writers import make_writer

    photos = known_photos(known)
    found = find_inputs(unknown, recursive)
    paths = [f.path for f in found]
    pictures.check(paths, protected=[p.path for p in photos])
    with (
        shared.pipeline() as pipeline,
        progress_bar(len(photos) + len(found), "faces", shared.quiet) as bar,
    ):
        pipeline.progress = bar.update
        known_people, encoded = pl.start(pipeline, known, photos, found)
        chosen = choose_tolerance(tolerance, len(known_people.gallery.embeddings))
        results = pl.match(pipeline, known_people, found, chosen, all_matches, encoded)
        writer = make_writer(fmt, sys.stdout, show_distance)
        drawn = pictures.writer(paths, chosen)
        unreadable = write_all(results, writer if drawn is None else Tee(writer, drawn))
    if unreadable or known_people.unreadable:
        sys.exit(EXIT_PARTIAL)
