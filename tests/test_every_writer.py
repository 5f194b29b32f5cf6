"""Every command that writes files, on malformed input and killed mid-run.

The malformed-file corpus (tests/malformed.py) through ``index``, ``cluster`` (and a
correction), ``redact`` and ``cloak``: no traceback, every input accounted for, the
good photos still done. Then each of them killed with SIGKILL while it writes: what
it had written is whole (every copy decodes), nothing half-written is left under an
output's name, and the same command run again finishes the job.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import malformed
import pytest
from helpers import clean, facematch_cli
from PIL import Image

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    folder = tmp_path_factory.mktemp("corpus") / "photos"
    files = malformed.build(folder, DATA / "obama2.jpg", cuts=2)
    shutil.copy(DATA / "obama2.jpg", folder / "good.jpg")
    shutil.copy(DATA / "two_people.jpg", folder / "good-two.jpg")
    photos = {str(f) for f in [*files, folder / "good.jpg", folder / "good-two.jpg"]}
    return folder, {p for p in photos if not p.endswith(".mp4")}


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("known") / "known"
    folder.mkdir()
    shutil.copy(DATA / "obama.jpg", folder / "Barack Obama.jpg")
    return folder


def decodes(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
    except Exception:
        return False
    return True


def test_index_and_cluster_account_for_every_malformed_file(
    corpus: tuple[Path, set[str]], tmp_path: Path
) -> None:
    folder, photos = corpus
    library = tmp_path / "l.sqlite3"
    indexed = facematch_cli("index", folder, "--library", library, "-q")
    clean(indexed)
    info = json.loads(facematch_cli("library", "info", "--library", library, "--json").stdout)
    assert info["files"] == len(photos)
    clustered = facematch_cli("cluster", folder, "--library", library, "--format", "json")
    clean(clustered)
    rows = json.loads(clustered.stdout)
    assert {row["path"] for row in rows} >= {str(folder / "good.jpg"), str(folder / "good-two.jpg")}
    named = facematch_cli(
        "cluster", "name", rows[0]["person"] or "person_1", "Someone", "--library", library
    )
    assert named.returncode in (0, 2), named.stderr
    assert "Traceback" not in named.stderr


def test_redact_accounts_for_every_malformed_file(
    corpus: tuple[Path, set[str]], known: Path, tmp_path: Path
) -> None:
    folder, photos = corpus
    out = tmp_path / "out"
    done = facematch_cli("redact", folder, "--known", known, "--out", out, "--format", "json")
    clean(done)
    rows = {row["path"]: row for row in json.loads(done.stdout)}
    assert set(rows) >= photos
    for row in rows.values():
        if row["status"] == "error":
            assert row["output"] is None and "\n" not in row["error"]
        else:
            assert decodes(Path(row["output"]))
    assert rows[str(folder / "good.jpg")]["status"] == "ok"
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_cloak_accounts_for_every_malformed_file(
    corpus: tuple[Path, set[str]], tmp_path: Path
) -> None:
    pytest.importorskip("jax")
    folder, photos = corpus
    few = tmp_path / "few"
    few.mkdir()
    broken = sorted(p for p in photos if "good" not in p)[:6]
    for path in [*broken, str(folder / "good.jpg")]:
        shutil.copy(path, few / Path(path).name)
    out = tmp_path / "out"
    done = facematch_cli("cloak", few, "--out", out, "--level", "strong", "--format", "json")
    clean(done)
    rows = {row["path"]: row for row in json.loads(done.stdout)}
    assert set(rows) == {str(p) for p in few.iterdir()}
    assert rows[str(few / "good.jpg")]["status"] == "protected"
    for row in rows.values():
        if row["status"] == "error":
            assert "\n" not in row["error"]
    assert all(decodes(p) for p in out.rglob("*") if p.is_file())


def many_photos(folder: Path, copies: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(copies):
        for name in ("obama2.jpg", "two_people.jpg", "biden.jpg"):
            shutil.copy(DATA / name, folder / f"{i:03d}-{name}")
    return folder


def kill_when(command: list[str | Path], ready: object, timeout: float = 240) -> None:
    """Start ``facematch command``, SIGKILL it (and its workers) once ``ready()`` holds."""
    run = subprocess.Popen(
        [sys.executable, "-m", "facematch", *(str(a) for a in command)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while not ready() and run.poll() is None:  # type: ignore[operator]
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.05)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()


@pytest.mark.parametrize("command", ["redact", "cloak", "cluster", "annotate", "video"])
def test_a_command_killed_while_writing_leaves_only_whole_files(
    command: str, known: Path, tmp_path: Path
) -> None:
    if command == "cloak":
        pytest.importorskip("jax")
    if command == "video":
        pytest.importorskip("av")
        photos = tmp_path / "videos"
        photos.mkdir()
        for i in range(4):
            shutil.copy(DATA / "hamilton-4s.mp4", photos / f"{i}.mp4")
        (known / "Lin-Manuel Miranda.jpg").write_bytes(
            (DATA / "lin-manuel-miranda.jpg").read_bytes()
        )
    else:
        photos = many_photos(tmp_path / "photos", copies=3 if command == "cloak" else 8)
    out = tmp_path / "out"
    library = tmp_path / "l.sqlite3"
    args: list[str | Path] = {
        "redact": ["redact", photos, "--known", known, "--out", out, "-j", "1"],
        "cloak": ["cloak", photos, "--out", out, "--level", "subtle", "-j", "1"],
        "cluster": ["cluster", photos, "--library", library, "--out", out, "-j", "1"],
        "annotate": [known, photos, "--annotate", out, "-j", "1"],
        "video": [known, photos, "--annotate", out, "-j", "1", "--no-cache"],
    }[command]

    def written() -> bool:
        return out.is_dir() and any(p.suffix in (".jpg", ".png") for p in out.rglob("*"))

    kill_when(args, written)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files  # it was killed while writing, not before
    for path in files:
        if path.name.endswith(".tmp"):
            continue  # a temporary name: never taken for an output
        if path.suffix in (".jpg", ".png"):
            assert decodes(path), path
    again = facematch_cli(*args, timeout=900)
    clean(again)
    outputs = [p for p in out.rglob("*") if p.suffix in (".jpg", ".png")]
    assert outputs and all(decodes(p) for p in outputs)
    if command not in ("cluster", "video"):  # a video's stills: one per range
        assert len(outputs) == len(list(photos.iterdir()))
