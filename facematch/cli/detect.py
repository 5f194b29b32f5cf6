"""``facematch detect``: face boxes, like face_recognition's face_detection."""

from __future__ import annotations

import sys

import click

from facematch.cli.common import (
    EXIT_CODES_HELP,
    EXIT_PARTIAL,
    PictureOptions,
    RunOptions,
    find_inputs,
    format_option,
    image_command,
    picture_options,
    progress_bar,
    recursive_option,
    write_all,
)


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@format_option("compat prints face_detection's path,top,right,bottom,left lines.")
@recursive_option
@picture_options(report=False)
@image_command(default_upsample=1, encoding=False)
def detect(
    paths: tuple[str, ...],
    fmt: str,
    recursive: bool,
    pictures: PictureOptions,
    shared: RunOptions,
) -> None:
    """Print the face boxes found in images: the faces matching finds, without encoding them.

    Detection is matching's: the same detector, upsampling, smallest face and
    fallback (the defaults find the faces face_recognition's CLI finds on its
    1600 px copy). Photos only.
    """
    from facematch.output.pictures import Tee
    from facematch.output.writers import DETECT_ROWS, make_writer
    from facematch.run import pipeline as pl

    found = find_inputs(paths, recursive)
    inputs = [f.path for f in found]
    pictures.check(inputs)
    with shared.pipeline() as pipeline, progress_bar(len(found), "detect", shared.quiet) as bar:
        pipeline.progress = bar.update
        writer = make_writer(fmt, sys.stdout, DETECT_ROWS)
        drawn = pictures.writer(inputs, None)
        results = pl.find_boxes(pipeline, found)
        unreadable = write_all(results, writer if drawn is None else Tee(writer, drawn))
    if unreadable:
        sys.exit(EXIT_PARTIAL)
