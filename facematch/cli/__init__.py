"""The ``facematch`` command: a click group with one module per command.

Each command module only parses options, calls the library and picks a writer;
what they share (options, exit statuses, errors, output) is in ``common``.
Nothing here loads a model or imports dlib/numpy at import time, so
``facematch --help`` and ``--version`` return at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence

import click

from facematch import __version__
from facematch.cli.cache import cache
from facematch.cli.cloak import cloak
from facematch.cli.cluster import cluster
from facematch.cli.common import (
    EXIT_CODES_HELP,
    EXIT_FATAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT_CLOSED,
    EXIT_PARTIAL,
    EXIT_TERMINATED,
    EXIT_USAGE,
    DefaultGroup,
    OutputClosed,
    Terminated,
    _terminate,
)
from facematch.cli.detect import detect
from facematch.cli.evaluate import evaluate
from facematch.cli.index import index
from facematch.cli.library import library
from facematch.cli.match import match
from facematch.cli.redact import redact
from facematch.cli.search import search
from facematch.cli.tag import tag

__all__ = [
    "EXIT_FATAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_OUTPUT_CLOSED",
    "EXIT_PARTIAL",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "entry",
    "main",
    "run",
]


@click.group(cls=DefaultGroup, epilog=EXIT_CODES_HELP, context_settings={"max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="facematch")
def main() -> None:
    """Match known people in unknown photos."""


for command in (
    match,
    detect,
    evaluate,
    cache,
    index,
    search,
    library,
    cluster,
    redact,
    cloak,
    tag,
):
    main.add_command(command)


def run(argv: Sequence[str] | None = None) -> int:
    """Entry point that also maps interrupts, SIGTERM and closed pipes to exit statuses."""
    for stream in (sys.stdout, sys.stderr):
        # A name that the locale cannot encode is escaped, never a crash mid-run.
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    previous = None
    with contextlib.suppress(ValueError):  # not in the main thread: leave SIGTERM alone
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        main.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("facematch: interrupted", err=True)
        return EXIT_INTERRUPTED
    except Terminated:
        click.echo("facematch: terminated", err=True)
        return EXIT_TERMINATED
    except (OutputClosed, BrokenPipeError):
        _discard_stdout()
        return EXIT_OUTPUT_CLOSED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def entry() -> None:
    """The ``facematch`` console script."""
    sys.exit(run())
