"""``facematch redact``: copies with every face covered that is not a known person."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from facematch.cli.common import (
    EXIT_CODES_HELP,
    EXIT_PARTIAL,
    CliUsageError,
    RunOptions,
    choose_tolerance,
    find_inputs,
    format_option,
    image_command,
    progress_bar,
    recursive_option,
    tolerance_option,
    write_all,
)

if TYPE_CHECKING:
    from facematch.encode.faces import Encoder
    from facematch.encode.passes import DetectorPass
    from facematch.privacy.redact import Redaction
    from facematch.records import RedactedImage, RedactedVideo
    from facematch.run.pipeline import Pipeline
    from facematch.sources.images import Found

# The known folder is encoded as matching encodes it, so both share the cache.
KNOWN_UPSAMPLE = 1


@click.command(epilog=EXIT_CODES_HELP)
@click.argument(
    "inputs", nargs=-1, required=True, metavar="PATH...", type=click.Path(path_type=str)
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Folder for the covered copies (same relative paths); never over an input.",
)
@click.option(
    "--known",
    "known_dir",
    type=click.Path(path_type=str),
    metavar="DIR",
    default=None,
    help="Folder of known people (as for matching) who stay clear; without it every "
    "face is covered.",
)
@click.option(
    "--everyone",
    is_flag=True,
    help="Cover every face: what redact does without --known (kept so that scripts "
    "passing it still work; it cannot be given with --known).",
)
@click.option(
    "--style",
    type=click.Choice(["fill", "blur", "pixelate"]),
    default="fill",
    show_default=True,
    help="How a face is covered: a solid fill (cannot be undone), a very strong "
    "blur, or a coarse mosaic.",
)
@click.option(
    "--shape",
    type=click.Choice(["rect", "ellipse"]),
    default="rect",
    show_default=True,
    help="Shape of the mask, 25% larger than the face's box on every side.",
)
@tolerance_option("Largest distance at which a face is a known person (as for matching).")
@click.option(
    "--margin",
    type=click.FloatRange(0.0, 1.0),
    default=0.05,
    show_default=True,
    help="A face is ambiguous, so covered, when within this distance above the "
    "tolerance, or when a second person is within this of its match.",
)
@click.option(
    "--no-audio",
    "no_audio",
    is_flag=True,
    help="Videos: leave the sound out of the copies (by default it is copied unchanged).",
)
@format_option("Report of what was done: compat lines, CSV, one JSON document, or JSON lines.")
@recursive_option
@image_command(default_upsample=2)
def redact(
    inputs: tuple[str, ...],
    out_dir: Path,
    known_dir: str | None,
    everyone: bool,
    style: str,
    shape: str,
    tolerance: float | str,
    margin: float,
    no_audio: bool,
    fmt: str,
    recursive: bool,
    shared: RunOptions,
) -> None:
    """Copy photos with every face covered that is not confidently a --known person.

    \b
    facematch redact PATH... --out DIR                 cover every face
    facematch redact PATH... --out DIR --known KNOWN   keep the people of KNOWN clear

    Every argument is a photo or a folder of photos to redact; only --known
    names the folder of people who may stay clear (as for matching). Redaction
    looks harder for faces than matching does (CenterFace at a sensitive
    threshold with facematch[detector], HOG at upsample 2 and on mirrored
    borders for faces cut by the frame; without the extra the CNN detector
    instead of CenterFace, which --no-fallback leaves out) and covers ambiguous
    faces too. The copies are upright and keep no EXIF (no GPS position, no
    thumbnail).

    Videos (facematch[video]) are redacted in every frame: faces are followed
    from frame to frame, a person is kept clear only when most of their frames
    say so, and the copy is H.264 with the input's size, frames and sound, and
    none of its metadata.
    """
    from facematch.encode.passes import redaction_passes
    from facematch.matching.gallery import known_photos
    from facematch.output.pictures import output_paths, refuse_overwrites
    from facematch.output.writers import REDACT_ROWS, make_writer
    from facematch.privacy import redact as rd
    from facematch.privacy.video import copy_path
    from facematch.run.pipeline import build_gallery
    from facematch.sources.images import is_video_name

    if everyone and known_dir is not None:
        raise CliUsageError(
            "--everyone covers every face and --known keeps known people clear: give one"
        )
    photos = known_photos(known_dir) if known_dir is not None else []
    found = find_inputs(inputs, recursive, videos=True)
    targets = output_paths([f.path for f in found], out_dir)
    targets = {
        path: copy_path(target) if is_video_name(path) else target
        for path, target in targets.items()
    }
    refuse_overwrites("--out", targets.values(), [*targets, *(p.path for p in photos)])
    passes = redaction_passes(shared.settings)
    known_settings = replace(shared.settings, upsample=KNOWN_UPSAMPLE)
    videos = sum(is_video_name(f.path) for f in found)
    with (
        replace(shared, settings=known_settings).pipeline() as pipeline,
        progress_bar(len(photos) + len(found), "redact", shared.quiet) as bar,
        progress_bar(0, "video", shared.quiet or not videos, unit="s", position=1) as video_bar,
    ):
        pipeline.progress = bar.update
        plan = rd.Redaction(targets, style=style, shape=shape, margin=margin)  # type: ignore[arg-type]
        unreadable_known: tuple[str, ...] = ()
        if known_dir is not None:
            known = build_gallery(pipeline, known_dir, photos)
            unreadable_known = known.unreadable
            chosen = choose_tolerance(tolerance, len(known.gallery.embeddings))
            plan = replace(plan, gallery=known.gallery, tolerance=chosen)
        seconds = VideoSeconds(video_bar.reset, video_bar.update)
        results = redact_all(pipeline, found, passes, plan, not no_audio, shared, seconds)
        unreadable = write_all(results, make_writer(fmt, sys.stdout, REDACT_ROWS))
    if unreadable or unreadable_known:
        sys.exit(EXIT_PARTIAL)


@dataclass(frozen=True)
class VideoSeconds:
    """The seconds-of-video bar: ``reset`` for each video, ``update`` per frame read."""

    reset: Callable[[int | None], object]
    update: Callable[[float], object]


def redact_all(
    pipeline: Pipeline,
    found: Sequence[Found],
    passes: tuple[DetectorPass, ...],
    plan: Redaction,
    audio: bool,
    shared: RunOptions,
    seconds: VideoSeconds | None = None,
) -> Iterator[RedactedImage | RedactedVideo]:
    """Photos through the photo redaction, videos one by one; rows in input order."""
    from facematch.encode import engines
    from facematch.privacy import redact as rd
    from facematch.privacy import video as rv
    from facematch.sources.images import is_video_name

    is_video = [item.problem is None and is_video_name(item.path) for item in found]
    photo_rows = rd.redact(
        pipeline, [f for f, v in zip(found, is_video, strict=True) if not v], passes, plan
    )
    video_passes = rv.video_passes(shared.settings)
    settings = video_passes[0].settings

    def encoder() -> Encoder:
        return engines.encoder(pipeline.engine, pipeline.jobs, settings.jitters, settings.mirror)

    for item, video in zip(found, is_video, strict=True):
        if not video:
            yield next(photo_rows)
            continue
        task = rv.VideoTask(
            item.path,
            plan.targets[item.path],
            video_passes,
            plan,
            encoder=encoder,
            audio=audio,
            threads=pipeline.jobs,
            progress=seconds.update if seconds is not None else None,
        )
        if seconds is not None:
            seconds.reset(None)
        row = rv.redact_video(task)
        if pipeline.progress is not None:
            pipeline.progress(1)
        yield row
