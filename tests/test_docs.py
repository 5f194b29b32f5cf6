"""The documentation: the generated CLI reference is current, the user guide explains every
command and option, and the README stays short and starts with its two commands.

Nothing here loads a model: ``--help`` and click's introspection never do.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import click
import pytest

from facematch.cli import main

REPO = Path(__file__).parent.parent
DOCS = REPO / "docs"
README = (REPO / "README.md").read_text(encoding="utf-8")
REFERENCE = DOCS / "cli-reference.md"

# Every page but the generated reference: an option is explained somewhere, not just listed.
GUIDE = "\n".join(
    page.read_text(encoding="utf-8") for page in sorted(DOCS.rglob("*.md")) if page != REFERENCE
)

VENV = "python3 -m venv .venv && . .venv/bin/activate && "
README_START = (
    "# facematch\n\n"
    f"```bash\n{VENV}pip install . && facematch examples/known examples/unknown\n```\n\n"
    f"```bash\n{VENV}pip install '.[test]' && pytest\n```\n"
)

EXAMPLE_OUTPUT = """\
```
examples/unknown/obama.jpg,Barack Obama
examples/unknown/stranger.png,unknown_person
examples/unknown/two_people.jpg,Joe Biden
examples/unknown/two_people.jpg,Barack Obama
```
"""


def load_reference_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def commands() -> list[tuple[str, click.Command]]:
    """Every command, subcommands included, by its name after ``facematch`` ("" for the group)."""
    found: list[tuple[str, click.Command]] = [("", main)]
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert command is not None
        found.append((name, command))
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", command.commands[sub]) for sub in command.commands]
    return found


def spelled(name: str) -> str:
    """How the docs spell a command: ``cluster run`` is ``facematch cluster PATH...``."""
    return f"facematch {name.removesuffix(' run')}".strip()


def test_cli_reference_is_current() -> None:
    script = load_reference_script()
    assert REFERENCE.read_text(encoding="utf-8") == script.render(), (
        f"docs/cli-reference.md is out of date: run {script.REGENERATE}"
    )


def test_cli_reference_has_every_command() -> None:
    reference = REFERENCE.read_text(encoding="utf-8")
    for name, _ in commands():
        if name != "cluster run":  # `facematch cluster --help` shows it
            assert f"## `{spelled(name)}`" in reference, name


@pytest.mark.parametrize(
    ("name", "command"), commands(), ids=[n or "facematch" for n, _ in commands()]
)
def test_command_and_its_options_are_in_the_guide(name: str, command: click.Command) -> None:
    assert spelled(name) in GUIDE, f"{spelled(name)} is not in docs/"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            longest = max(param.opts, key=len)
            if longest == "--help":
                continue
            assert re.search(re.escape(longest) + r"(?![\w-])", GUIDE), (
                f"{spelled(name)}: {longest} is not explained in docs/ (the generated "
                "cli-reference.md does not count)"
            )


def test_readme_is_short_and_starts_with_its_two_commands() -> None:
    lines = README.splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; at most 200 (move text to docs/)"
    assert README.startswith(README_START), "README.md must start with its two command blocks"
    rest = README[len(README_START) :]
    assert EXAMPLE_OUTPUT in rest[: rest.index("## ")], (
        "the example's output must follow the two commands"
    )


def test_readme_links_point_at_files() -> None:
    for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if "://" not in link:
            assert (REPO / link).exists(), f"README.md links to {link}, which does not exist"
