"""``facematch library``: what a face library holds, and its faces exported for other tools."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from facematch.cli.common import CliUsageError, library_option, setup_logging, writing


@click.group()
def library() -> None:
    """Inspect a face library or export its faces."""


@library.command("info")
@library_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of lines.")
def library_info(library_path: Path | None, as_json: bool) -> None:
    """Where the library is, its files (by status), faces, size and settings."""
    from facematch.store.library import Library

    setup_logging(False)
    with Library.open(library_path, read_only=True) as opened:
        info = opened.info()
    with writing():
        if as_json:
            click.echo(json.dumps(info))
            return
        click.echo(f"path: {info['path']}")
        click.echo(f"schema: {info['schema']}")
        click.echo(
            f"files: {info['files']} ({info['ok']} with faces, {info['no_faces']} without, "
            f"{info['error']} unreadable)"
        )
        click.echo(f"faces: {info['faces']}")
        click.echo(f"size: {info['bytes'] / 1e6:.1f} MB")
        for item in info["settings"]:
            click.echo(f"settings ({item['files']} files): {item['settings']}")


@library.command("export")
@library_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "npy"]),
    default="jsonl",
    show_default=True,
    help="jsonl: one face per line (face_id, path, box, embedding). npy: PREFIX.npy "
    "(float32 embeddings, one row per face) and PREFIX.csv (row, face_id, path, box).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="jsonl: a file (default: stdout). npy: the PREFIX of the two files (required).",
)
def library_export(library_path: Path | None, fmt: str, output: Path | None) -> None:
    """Export every face with its embedding, in path order."""
    from facematch.output.writers import export_jsonl, export_jsonl_file, export_npy
    from facematch.store.library import Library

    setup_logging(False)
    if fmt == "npy" and output is None:
        raise CliUsageError("--format npy needs --output PREFIX")
    with Library.open(library_path, read_only=True) as opened, writing():
        faces = opened.faces()
        count = len(faces.ids)
        if fmt == "npy":
            assert output is not None
            export_npy(faces, output)
        elif output is None:
            export_jsonl(faces, sys.stdout)
        else:
            export_jsonl_file(faces, output)
    click.echo(f"facematch: exported {count} faces", err=True)
