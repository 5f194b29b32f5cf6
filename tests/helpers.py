"""Helpers every CLI test shares: run the facematch command in this process.

Imported as ``from helpers import run, lines`` (pytest puts this folder on sys.path,
as for ``crashy``, ``malformed`` and ``videos``); ``facematch_cli`` runs the real
command in a process of its own.
"""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner, Result

from facematch.cli import main


def run(*args: object, catch_exceptions: bool = False) -> Result:
    """``facematch ARGS...`` through click's CliRunner, each argument as ``str``.

    ``result.stdout`` and ``result.stderr`` are separate (click 8.2+), ``result.output``
    is both interleaved. An exception escaping the command fails the test, unless
    ``catch_exceptions``: then it is ``result.exception`` and the exit code is 1.
    """
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=catch_exceptions)


def lines(result: Result) -> list[str]:
    """The lines a run wrote to stdout."""
    return result.stdout.splitlines()


def facematch_cli(
    *args: object, timeout: float = 240, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    """Run the real command in its own process (as a user's shell would)."""
    return subprocess.run(
        [sys.executable, "-m", "facematch", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kw,  # type: ignore[call-overload]
    )


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr


def clean(done: subprocess.CompletedProcess[str]) -> None:
    """Exit 0 or 3, and stderr only ever our own one-line messages."""
    assert done.returncode in (0, 3), done.stderr
    for line in done.stderr.splitlines():
        assert line.startswith("facematch: "), line
