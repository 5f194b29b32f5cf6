"""``facematch cluster``: who is in my photos? Faces grouped into people, kept in the library."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import click

from facematch.cli.common import (
    EXIT_CODES_HELP,
    EXIT_PARTIAL,
    CliUsageError,
    PictureOptions,
    RunOptions,
    format_option,
    image_command,
    known_from_xmp_option,
    library_option,
    picture_options,
    progress_bar,
    setup_logging,
    writing,
    xmp_names_option,
)

DEFAULT_MIN_FACES = 2  # measured on lfw-dev (docs/measurements/cluster.md)


class ClusterGroup(click.Group):
    """``facematch cluster PATH...`` runs the clustering; ``name``/``merge``/``move`` correct it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        command = self.commands["run"]
        with click.Context(command, info_name=ctx.info_name, parent=ctx.parent) as sub:
            command.format_help(sub, formatter)
        self.format_commands(ctx, formatter)


@click.group(cls=ClusterGroup, epilog=EXIT_CODES_HELP)
def cluster() -> None:
    """Group the faces of a photo collection into people."""


@cluster.command("run", epilog=EXIT_CODES_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@library_option
@click.option(
    "--known",
    "known_dir",
    type=click.Path(path_type=str),
    default=None,
    metavar="KNOWN",
    help="A folder of known people (as for matching): a group whose faces confidently "
    "match one of them takes that name (named_by=known). Names you gave win.",
)
@known_from_xmp_option
@xmp_names_option
@click.option(
    "--min-faces",
    type=click.IntRange(min=1),
    default=DEFAULT_MIN_FACES,
    show_default=True,
    help="Smallest group that counts as a person; faces in smaller ones are unclustered.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Write a folder per person (person_N or its name) of face crops, each named "
    "after its photo and face number; unclustered faces go in unclustered/. Rename a "
    "person's folder and re-run with the same --out to give them that name.",
)
@format_option("Output: path,person lines, CSV, JSON or JSON lines; one row per face.")
@picture_options(
    annotate=False,
    report_help="Write a self-contained HTML page to check the people by eye: a section "
    "per person with the crops of their faces, the unclustered faces, a filter by person.",
)
@image_command(default_upsample=1)
def run(
    paths: tuple[str, ...],
    library_path: Path | None,
    known_dir: str | None,
    known_from_xmp: tuple[str, ...],
    xmp_names: bool,
    min_faces: int,
    out_dir: Path | None,
    fmt: str,
    pictures: PictureOptions,
    shared: RunOptions,
) -> None:
    """Group every face under PATHS into people (person_1 is the largest group).

    Photos not yet in the library are encoded and indexed first, and the names in
    their XMP face regions taken (as facematch index takes them). People keep their
    number, their name and their faces in later runs; new photos join them or make
    new people. Faces in no group of --min-faces are reported as unclustered.
    Correct the result with the name, merge and move subcommands.
    """
    from facematch.cli.common import find_inputs
    from facematch.output.person_folders import renamed_folders
    from facematch.output.writers import FACE_ROWS, make_writer
    from facematch.records import PREFIX, ClusterCounts
    from facematch.run.people import cluster_paths
    from facematch.sources.images import ShownPaths
    from facematch.store.library import Library, resolve_library_path

    if known_dir is not None and known_from_xmp:
        raise CliUsageError("give --known or --known-from-xmp, not both")
    found = find_inputs(paths, recursive=True)
    pictures.check([f.path for f in found], protected=[str(resolve_library_path(library_path))])
    folder_names = renamed_folders(out_dir) if out_dir is not None and out_dir.is_dir() else {}
    with (
        Library.open(library_path) as library,
        shared.pipeline() as pipeline,
        progress_bar(0, "files", shared.quiet) as bar,
    ):
        done = cluster_paths(
            library,
            pipeline,
            paths,
            min_faces=min_faces,
            known_dir=known_dir,
            tagged=known_from_xmp,
            folder_names=folder_names,
            out_dir=out_dir,
            progress=bar.update,
            xmp_names=xmp_names,
        )
    if done.xmp.summary() is not None:
        click.echo(f"facematch: {done.xmp.summary()}", err=True)
    for number, folder in done.renamed:
        click.echo(
            f"facematch: {PREFIX}{number} is now {folder} (its folder was renamed)", err=True
        )
    shown = ShownPaths(paths)
    rows = [dataclasses.replace(r, path=shown(r.path)) for r in done.rows]
    writer = make_writer(fmt, sys.stdout, FACE_ROWS)
    with writing():
        for face_row in rows:
            writer.write(face_row)
        writer.close()
    if out_dir is not None:
        from facematch.output.person_folders import write_crops

        adopted = [folder for _, folder in done.renamed]
        write_crops(done.rows, out_dir, adopted=adopted, shown=shown)
    if pictures.report is not None:
        from facematch.output.report import write_cluster_report

        write_cluster_report(pictures.report, rows, done.unreadable, pictures.report_assets)
    counts = ClusterCounts.of(rows, done.new_people)  # as the report counts them
    click.echo(
        f"facematch: {counts.people} people ({counts.new_people} new, {counts.named} named) in "
        f"{counts.faces} faces; {counts.unclustered} faces unclustered",
        err=True,
    )
    if done.unreadable:
        sys.exit(EXIT_PARTIAL)


def _corrections(library_path: Path | None) -> Any:
    """The library and its people; a correction never creates a library."""
    from facematch.errors import UsageError
    from facematch.store.library import Library, resolve_library_path
    from facematch.store.people import People

    where = resolve_library_path(library_path)
    if not where.exists():
        raise UsageError(f"no library at {where}; make one with: facematch cluster PHOTOS")
    library = Library.open(where)
    try:
        return library, People(library)
    except BaseException:
        library.close()
        raise


def _logged(fn: Any) -> Any:
    """A correction command, with stderr logging set up."""
    import functools

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        setup_logging(False)
        return fn(**kwargs)

    return wrapper


@cluster.command("name")
@click.argument("person")
@click.argument("name")
@library_option
@_logged
def name(person: str, name: str, library_path: Path | None) -> None:
    """Name a person (PERSON: person_N or their current name); the name sticks."""
    library, people = _corrections(library_path)
    with library:
        number = people.name(person, name)
    click.echo(f"facematch: person_{number} is now {name}", err=True)


@cluster.command("merge")
@click.argument("person")
@click.argument("into")
@library_option
@_logged
def merge(person: str, into: str, library_path: Path | None) -> None:
    """Merge PERSON into INTO (both person_N or a name): one person from now on."""
    library, people = _corrections(library_path)
    with library:
        number = people.merge(person, into)
    click.echo(f"facematch: {person} merged into person_{number}", err=True)


@cluster.command("move")
@click.argument("photo", type=click.Path(path_type=str))
@click.option(
    "--face",
    "face_number",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Which face of the photo (the face column of the output).",
)
@click.option(
    "--to",
    "to",
    default=None,
    metavar="PERSON",
    help="The person it belongs to (person_N or a name); by default nobody.",
)
@library_option
@_logged
def move(photo: str, face_number: int, to: str | None, library_path: Path | None) -> None:
    """Move one face of PHOTO out of its group (or --to another person), for good."""
    from facematch.errors import UsageError

    library, people = _corrections(library_path)
    with library:
        face_id = people.face_id(os.path.abspath(photo), face_number)
        if face_id is None:
            raise UsageError(f"no face {face_number} of {photo} in the library")
        people.move(face_id, to)
    click.echo(f"facematch: face {face_number} of {photo} moved to {to or 'nobody'}", err=True)
