"""``facematch match`` (the default command): name known people in unknown images."""

from __future__ import annotations

import sys

import click

from facematch.cli.common import (
    EXIT_CODES_HELP,
    EXIT_PARTIAL,
    TOLERANCE,
    RunOptions,
    choose_tolerance,
    find_inputs,
    format_option,
    image_command,
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
@click.option(
    "--fps",
    type=click.FloatRange(min=0.01, max=60.0),
    default=1.0,
    show_default=True,
    help="Videos: frames sampled per second (each is matched as a photo).",
)
@click.option(
    "--per-frame",
    is_flag=True,
    help="Videos: one row per sampled frame and face instead of time ranges per person.",
)
@recursive_option
@image_command(default_upsample=1)
def match(
    known: str,
    unknown: tuple[str, ...],
    tolerance: float | str,
    show_distance: bool,
    all_matches: bool,
    fmt: str,
    fps: float,
    per_frame: bool,
    recursive: bool,
    shared: RunOptions,
) -> None:
    """Name the people of KNOWN in the faces of UNKNOWN images.

    KNOWN is a folder: each image directly inside is one person, named by its
    file name ("Barack Obama.jpg"); each subfolder is one person, named by the
    folder, with all of that person's photos inside. UNKNOWN is one or more
    images, videos or folders (--recursive to descend); for a video, the
    output says who appears from when to when.
    """
    from facematch import pipeline as pl
    from facematch.gallery import known_photos
    from facematch.images import is_video_name
    from facematch.video import VideoSettings
    from facematch.writers import make_writer

    photos = known_photos(known)
    found = find_inputs(unknown, recursive, videos=True)
    videos = sum(1 for f in found if is_video_name(f.path))
    # A second bar, in seconds of video, when there are videos.
    quiet_videos = shared.quiet or not videos
    with (
        shared.pipeline() as pipeline,
        progress_bar(len(photos) + len(found) - videos, "faces", shared.quiet) as bar,
        progress_bar(0, "video", quiet_videos, unit="s", position=1) as video_bar,
    ):
        # Frames use the detection fallback only when --fallback is given.
        source = click.get_current_context().get_parameter_source("fallback")
        explicit = source is click.core.ParameterSource.COMMANDLINE
        pipeline.video = VideoSettings(fps=fps, fallback=explicit and shared.settings.fallback)
        pipeline.progress = bar.update
        pipeline.video_total = lambda seconds: video_bar.reset(total=round(seconds))
        pipeline.video_progress = lambda seconds: video_bar.update(seconds)
        known_people, encoded = pl.start(pipeline, known, photos, found)
        chosen = choose_tolerance(tolerance, len(known_people.gallery.embeddings))
        results = pl.match(
            pipeline, known_people, found, chosen, all_matches, encoded, per_frame=per_frame
        )
        writer = make_writer(fmt, sys.stdout, show_distance, videos=videos > 0)
        unreadable = write_all(results, writer)
    if unreadable or known_people.unreadable:
        sys.exit(EXIT_PARTIAL)
