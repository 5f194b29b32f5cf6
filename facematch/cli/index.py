"""``facematch index``: add the photos under some folders to a face library, incrementally."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import click

from facematch.cli.common import (
    EXIT_CODES_HELP,
    EXIT_PARTIAL,
    RunOptions,
    image_command,
    library_option,
    log,
    progress_bar,
    xmp_names_option,
)


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("paths", nargs=-1, required=True, metavar="PATH...", type=click.Path(path_type=str))
@library_option
@click.option(
    "--keep-missing",
    is_flag=True,
    help="Keep the rows of files that are gone from under PATH (by default they are "
    "removed, and their count is printed).",
)
@xmp_names_option
@image_command(default_upsample=1)
def index(
    paths: tuple[str, ...],
    library_path: Path | None,
    keep_missing: bool,
    xmp_names: bool,
    shared: RunOptions,
) -> None:
    """Add every image under PATH (folders are searched recursively) to a face library.

    A re-run encodes only new or changed files: an unchanged file (same path,
    size and modification time) is not even read, and a moved or renamed one
    is recognised by its content. A file that cannot be read is kept as an
    error row and tried again only once it changes. Files that are gone from
    under PATH are removed unless --keep-missing. Each file is saved as it is
    done: an interrupted run loses nothing, and the next run goes on from there.

    The names photo managers gave faces (named face regions in XMP sidecars or in the
    photos) are taken too, unless --no-xmp-names: facematch cluster starts from them
    and facematch search shows them.
    """
    from facematch.errors import UsageError
    from facematch.run.regions import XmpNames, names_from_xmp
    from facematch.sources.images import ShownPaths
    from facematch.store.library import Library

    for path in paths:  # a missing folder (an unmounted disk?) must not prune its photos
        if not os.path.lexists(path):
            raise UsageError(f"no such file or directory: {path}")
    shown = ShownPaths(paths)
    counts: Counter[str] = Counter()
    failed_before = 0
    with (
        Library.open(library_path) as library,
        shared.pipeline() as pipeline,
        progress_bar(0, "files", shared.quiet) as bar,
    ):
        for row in library.index(paths, pipeline, prune=not keep_missing):
            counts[row.action] += 1
            if row.action != "pruned":
                bar.update(1)
                counts[row.status] += 1
            if row.status == "error" and row.action in ("new", "changed"):
                log.error("%s: %s", shown(row.path), row.error)
            elif row.status == "error" and row.action == "unchanged":
                failed_before += 1
        named = names_from_xmp(library, paths, shown) if xmp_names else XmpNames()
        info = library.info()
    if failed_before:
        log.warning(
            "%d unreadable files unchanged since the last run (not tried again)", failed_before
        )
    seen = counts["new"] + counts["changed"] + counts["unchanged"]
    click.echo(
        f"facematch: indexed {seen} files ({counts['new']} new, {counts['changed']} changed, "
        f"{counts['unchanged']} unchanged; {counts['error']} unreadable); "
        f"{counts['pruned']} missing files removed; library {info['path']}: "
        f"{info['files']} files, {info['faces']} faces",
        err=True,
    )
    if named.summary() is not None:
        click.echo(f"facematch: {named.summary()}", err=True)
    if counts["error"] or named.unreadable:
        sys.exit(EXIT_PARTIAL)
