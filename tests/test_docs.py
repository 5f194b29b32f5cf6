"""The README documents every command and every option the command line accepts."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from facematch.cli import main

README = (Path(__file__).parent.parent / "README.md").read_text()


def commands() -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert command is not None
        found.append((name, command))
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", command.commands[sub]) for sub in command.commands]
    return found


@pytest.mark.parametrize(("name", "command"), commands(), ids=[n for n, _ in commands()])
def test_command_and_its_options_are_in_the_readme(name: str, command: click.Command) -> None:
    assert f"facematch {name.split()[0]}" in README or name == "match"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            longest = max(param.opts, key=len)
            if longest == "--help":
                continue
            assert longest in README, f"{name}: {longest} is not documented"
