"""``facematch cache``: inspect or clear the encoding cache."""

from __future__ import annotations

from pathlib import Path

import click

from facematch.cli.common import (
    resolve_cache_dir,
    setup_logging,
)


@click.group()
def cache() -> None:
    """Inspect or clear the encoding cache."""


cache_dir_option = click.option(
    "--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None
)


@cache.command("info")
@cache_dir_option
def cache_info(cache_dir: Path | None) -> None:
    """Where the cache is, how many images it holds, and its size."""
    from facematch.store.cache import EncodingCache

    setup_logging(False)
    info = EncodingCache(resolve_cache_dir(cache_dir)).info()
    click.echo(f"path: {info['path']}")
    click.echo(f"images: {info['entries']}")
    click.echo(f"size: {info['bytes'] / 1e6:.1f} MB")


@cache.command("clear")
@cache_dir_option
def cache_clear(cache_dir: Path | None) -> None:
    """Delete every cached encoding."""
    from facematch.store.cache import EncodingCache

    setup_logging(False)
    folder = resolve_cache_dir(cache_dir)
    removed = EncodingCache(folder).clear()
    click.echo(f"removed {removed} cached images from {folder}")
