"""Shared fixtures: the repo's real test photos, and an isolated cache per test session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

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
