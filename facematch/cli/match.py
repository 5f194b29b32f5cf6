"""``facematch match`` (the default command): name known people in unknown images."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import click

from facematch.cli.common import (
    EXIT_CODES_HELP,
    EXIT_PARTIAL,
    Known,
    PictureOptions,
    RunOptions,
    choose_tolerance,
    find_inputs,
    format_option,
    image_command,
    known_from_xmp_option,
    library_option_for,
    picture_options,
    progress_bar,
    recursive_option,
    tolerance_option,
    write_all,
)
from facematch.errors import UsageError
from facematch.records import ImageResult, VideoResult

log = logging.getLogger("facematch")


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("known", required=False, type=click.Path(path_type=str))
@click.argument("unknown", nargs=-1, type=click.Path(path_type=str))
@tolerance_option(
    "Largest distance that still counts as a match; lower is stricter "
    "(0.5-0.55 for children, relatives and look-alikes). auto: 0.6 for small "
    "galleries, lower as the known folder grows, so strangers are rarely named; "
    "0.6 gives face_recognition's answers."
)
@click.option("--show-distance", is_flag=True, help="compat format: append the distance.")
@click.option(
    "--all-matches", is_flag=True, help="List every person within tolerance, nearest first."
)
@library_option_for(
    "Take the faces of UNKNOWN from this face library (see facematch index) instead "
    "of encoding them; folders are searched recursively; no UNKNOWN: every indexed file."
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
@known_from_xmp_option
@recursive_option
@picture_options()
@image_command(default_upsample=1)
def match(
    known: str | None,
    unknown: tuple[str, ...],
    tolerance: float | str,
    show_distance: bool,
    all_matches: bool,
    fmt: str,
    fps: float,
    per_frame: bool,
    recursive: bool,
    library_path: Path | None,
    known_from_xmp: tuple[str, ...],
    pictures: PictureOptions,
    shared: RunOptions,
) -> None:
    """Name the people of KNOWN in the faces of UNKNOWN images.

    KNOWN is a folder: each image directly inside is one person, named by its
    file name ("Barack Obama.jpg"); each subfolder is one person, named by the
    folder, with all of that person's photos inside. UNKNOWN is one or more
    images, videos or folders (--recursive to descend); for a video, the
    output says who appears from when to when. With --library, the faces
    of UNKNOWN come from an indexed face library, and nothing is encoded again.
    With --known-from-xmp, the known people are the named face regions photo
    managers wrote, and every argument is UNKNOWN.
    """
    from facematch.encode.frames import video_settings
    from facematch.output.pictures import Tee
    from facematch.output.writers import make_writer, match_rows
    from facematch.run import pipeline as pl
    from facematch.sources.images import is_video_name

    people, unknown = Known.split(known, unknown, known_from_xmp)
    if library_path is not None:
        match_library(
            people,
            unknown,
            library_path,
            tolerance,
            all_matches,
            show_distance,
            fmt,
            shared,
            pictures,
        )
        return
    if not unknown:
        raise UsageError("no UNKNOWN images given (or use --library FILE)")
    photos = people.photos()
    found = find_inputs(unknown, recursive, videos=True)
    paths = [f.path for f in found]
    pictures.check(paths, protected=[p.path for p in photos])
    videos = sum(1 for f in found if is_video_name(f.path))
    # A second bar, in seconds of video, when there are videos.
    quiet_videos = shared.quiet or not videos
    context = click.get_current_context()
    given = {
        name: context.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
        for name in ("fallback", "model")
    }
    frames = video_settings(
        fps,
        shared.settings,
        videos=videos > 0,
        fallback_given=given["fallback"],
        model_given=given["model"],
    )
    with (
        progress_bar(len(photos) + len(found) - videos, "faces", shared.quiet) as bar,
        progress_bar(0, "video", quiet_videos, unit="s", position=1) as video_bar,
        shared.pipeline(
            video=frames,
            progress=bar.update,
            video_total=lambda seconds: video_bar.reset(total=round(seconds)),
            video_progress=video_bar.update,
        ) as pipeline,
    ):
        known_people, encoded = people.start(pipeline, photos, found)
        chosen = choose_tolerance(tolerance, len(known_people.gallery.embeddings))
        results = pl.match(
            pipeline,
            known_people,
            found,
            chosen,
            all_matches,
            encoded,
            per_frame=per_frame,
            local=tolerance == "auto",
        )
        writer = make_writer(fmt, sys.stdout, match_rows(show_distance, videos=videos > 0))
        drawn = pictures.writer(paths, chosen)
        tally = Uncertain(results)
        unreadable = write_all(tally, writer if drawn is None else Tee(writer, drawn))
    tally.report()
    if unreadable or known_people.unreadable:
        sys.exit(EXIT_PARTIAL)


def match_library(
    known: Known,
    unknown: tuple[str, ...],
    library_path: Path,
    tolerance: float | str,
    all_matches: bool,
    show_distance: bool,
    fmt: str,
    shared: RunOptions,
    pictures: PictureOptions,
) -> None:
    """``match --library``: the known folder is encoded, the unknown faces read from the library."""
    from facematch.output.pictures import Tee
    from facematch.output.writers import make_writer, match_rows
    from facematch.run import pipeline as pl
    from facematch.sources.images import Found, ShownPaths
    from facematch.store.library import Library

    with Library.open(library_path, read_only=True) as library, shared.pipeline() as pipeline:
        if unknown:
            found = find_inputs(unknown, recursive=True)
        else:  # paths only the library knows: relative to here when under it
            shown = ShownPaths()
            found = [Found(shown(row.path)) for row in library.files()]
        inputs, encoded = library.stored(found)
        paths = [item.path for item in inputs]
        photos = known.photos()
        pictures.check(paths, protected=[p.path for p in photos])
        known_people = known.people(pipeline, photos)
        chosen = choose_tolerance(tolerance, len(known_people.gallery.embeddings))
        results = pl.match(
            pipeline,
            known_people,
            inputs,
            chosen,
            all_matches,
            iter(encoded),
            local=tolerance == "auto",
        )
        writer = make_writer(fmt, sys.stdout, match_rows(show_distance))
        drawn = pictures.writer(paths, chosen)
        tally = Uncertain(results)
        unreadable = write_all(tally, writer if drawn is None else Tee(writer, drawn))
    tally.report()
    if unreadable or known_people.unreadable:
        sys.exit(EXIT_PARTIAL)


class Uncertain:
    """Passes results through, counting the names marked uncertain, and says so on stderr."""

    def __init__(self, results: Iterable[ImageResult | VideoResult]) -> None:
        self.results = results
        self.count = 0

    def __iter__(self) -> Iterator[ImageResult | VideoResult]:
        for result in self.results:
            if isinstance(result, ImageResult):
                self.count += sum(face.uncertain for face in result.faces)
            else:
                faces = [face for frame in result.frames or () for face in frame.faces]
                self.count += sum(face.uncertain for face in faces)
                self.count += sum(a.uncertain for a in result.appearances)
            yield result

    def report(self) -> None:
        warn_uncertain(self.count)


def warn_uncertain(
    count: int, note: str = "(the stranger_chance and uncertain fields of --format csv or json)"
) -> None:
    """Say on stderr how many names are uncertain, and why that matters; ``note`` ends it."""
    from facematch.matching import calibration

    if count:
        log.warning(
            "%d %s uncertain: a stranger would come as close with a chance above %g%% %s",
            count,
            "name is" if count == 1 else "names are",
            100 * calibration.UNCERTAIN_CHANCE,
            note,
        )
