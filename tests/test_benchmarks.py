"""The benchmarks package: every benchmark imports, describes itself and parses its
arguments, and ``python -m benchmarks`` lists them all. No model, no data, no timing."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).parent.parent
BENCHMARKS = REPO / "benchmarks"
# A benchmark is a module in a kind folder (benchmarks/KIND/NAME.py); the modules
# directly under benchmarks/ (the harness, the generators) are what they share.
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*/*.py") if not p.stem.startswith("_"))
SHARED = sorted(p for p in BENCHMARKS.glob("*.py") if not p.stem.startswith("_"))


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def load(path: Path) -> ModuleType:
    before = dict(os.environ)
    module = importlib.import_module(module_name(path))
    assert dict(os.environ) == before, f"importing {module.__name__} changed the environment"
    return module


def child_env() -> dict[str, str]:
    """This environment with the repository first on PYTHONPATH."""
    path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def test_every_folder_is_a_package() -> None:
    assert SCRIPTS, "no benchmark found"
    for folder in {p.parent for p in SCRIPTS} | {BENCHMARKS}:
        assert (folder / "__init__.py").is_file(), f"{folder} has no __init__.py"


def test_names_are_unique_across_kinds() -> None:
    """``python -m benchmarks NAME`` needs no kind."""
    names = [p.stem for p in SCRIPTS]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("path", SHARED + SCRIPTS, ids=[module_name(p) for p in SHARED + SCRIPTS])
def test_imports_without_running_anything(path: Path) -> None:
    module = load(path)
    assert (module.__doc__ or "").strip(), f"{module.__name__} has no docstring"
    text = path.read_text()
    assert "sys.path.insert" not in text and "sys.path.append" not in text


@pytest.mark.parametrize("path", SCRIPTS, ids=[module_name(p) for p in SCRIPTS])
def test_main_parses_its_arguments(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each benchmark has ``main(argv=None)``, described by its docstring's first line."""
    module = load(path)
    assert callable(getattr(module, "main", None)), f"{module.__name__} has no main()"
    assert "argv" in inspect.signature(module.main).parameters
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:")
    first_line = module.__doc__.strip().splitlines()[0]
    assert " ".join(first_line.split()[:4]) in " ".join(out.split())


def test_the_listing_names_every_benchmark_by_kind() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks"],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    listed: dict[str, list[str]] = {}
    kind = None
    for line in done.stdout.splitlines():
        if not line.strip():
            kind = None
        elif kind is not None and line.startswith("  "):
            listed[kind].append(line.split()[0])
        elif line.partition(":")[0] in {p.parent.name for p in SCRIPTS}:
            kind = line.partition(":")[0]
            listed[kind] = []
    wanted: dict[str, list[str]] = {}
    for path in SCRIPTS:
        wanted.setdefault(path.parent.name, []).append(path.stem)
    assert listed == wanted


def test_a_benchmark_runs_through_the_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "compare_boxes", "--help"],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: compare_boxes.py")
    unknown = subprocess.run(
        [sys.executable, "-m", "benchmarks", "no_such_benchmark"],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 2
    assert "not a benchmark" in unknown.stderr
