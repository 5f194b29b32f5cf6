"""The encoding cache: reused across runs, keyed by content and settings, never wrong.

Most runs here find fake faces (``fake_faces``): what the cache keeps is what they
are about, not the faces. Runs in other processes, and the test of the stored model's
permissions, use the real models."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import FakeFaces
from helpers import run

from facematch.records import Encoded
from facematch.run import tasks
from facematch.store.cache import CACHE_FILE, EncodingCache, file_digest


def entries(cache_dir: Path) -> int:
    return int(EncodingCache(cache_dir).info()["entries"])


@pytest.fixture
def no_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to encode an image fail the test (runs stay in-process with -j 1)."""

    def refuse(task: tasks.EncodeTask) -> Encoded:
        raise AssertionError(f"encoded {task.path} although it was cached")

    monkeypatch.setattr(tasks, "encode_image", refuse)


@pytest.mark.usefixtures("fake_faces")
def test_second_run_with_other_tolerance_and_format_encodes_nothing(
    known_files: Path, unknown: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    first = run(known_files, unknown, "--cache-dir", cache, "-j", "1", "--format", "json")
    assert first.exit_code == 0
    assert entries(cache) == 5  # 2 known + 3 unknown

    def refuse(task: tasks.EncodeTask) -> Encoded:
        raise AssertionError(f"encoded {task.path} although it was cached")

    monkeypatch.setattr(tasks, "encode_image", refuse)
    again = run(known_files, unknown, "--cache-dir", cache, "-j", "1", "--format", "json")
    assert again.stdout == first.stdout
    strict = run(known_files, unknown, "--cache-dir", cache, "-j", "1", "-t", "0.3")
    assert strict.exit_code == 0 and "unknown_person" in strict.stdout


@pytest.mark.usefixtures("fake_faces")
def test_key_is_content_not_name_and_includes_settings(
    known_files: Path, data: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    run(known_files, data / "obama2.jpg", "--cache-dir", cache, "-j", "1")
    assert entries(cache) == 3
    renamed = tmp_path / "renamed.jpg"
    shutil.copy(data / "obama2.jpg", renamed)
    run(known_files, renamed, "--cache-dir", cache, "-j", "1")
    assert entries(cache) == 3  # same bytes, same entry
    run(known_files, renamed, "--cache-dir", cache, "-j", "1", "--upsample", "0")
    assert entries(cache) == 6  # another setting, new entries


@pytest.mark.usefixtures("fake_faces")
def test_no_cache_writes_nothing(known_files: Path, data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run(known_files, data / "obama2.jpg", "--cache-dir", cache, "--no-cache", "-j", "1")
    assert not (cache / CACHE_FILE).exists()


@pytest.mark.usefixtures("fake_faces")
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_cache_is_reported_once_and_rebuilt(
    known_files: Path, unknown: Path, tmp_path: Path, damage: str
) -> None:
    cache = tmp_path / "cache"
    good = run(known_files, unknown, "--cache-dir", cache, "-j", "1")
    EncodingCache(cache).close()
    db = cache / CACHE_FILE
    with sqlite3.connect(db) as conn:  # fold the WAL in so the file holds the data
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = db.read_bytes()
    db.write_bytes(b"not a database" * 500 if damage == "garbage" else raw[: len(raw) // 2])
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    again = run(known_files, unknown, "--cache-dir", cache, "-j", "1")
    assert again.exit_code == 0
    assert again.stdout == good.stdout
    assert again.stderr.count("is corrupt") == 1
    assert entries(cache) == 5
    third = run(known_files, unknown, "--cache-dir", cache, "-j", "1")
    assert "is corrupt" not in third.stderr


@pytest.mark.usefixtures("fake_faces")
def test_cache_info_and_clear(known_files: Path, data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run(known_files, data / "obama2.jpg", "--cache-dir", cache, "-j", "1")
    info = run("cache", "info", "--cache-dir", cache)
    assert "images: 3" in info.stdout and str(cache / CACHE_FILE) in info.stdout
    cleared = run("cache", "clear", "--cache-dir", cache)
    assert "removed 3" in cleared.stdout
    assert entries(cache) == 0


@pytest.mark.usefixtures("fake_faces")
def test_default_cache_honours_xdg_cache_home(
    known_files: Path, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    run(known_files, data / "obama2.jpg", "-j", "1")
    assert (tmp_path / "xdg" / "facematch" / CACHE_FILE).exists()


def facematch_process(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "facematch", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.slow
def test_two_processes_share_one_cache(known_folders: Path, unknown: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = (known_folders, unknown, "--cache-dir", cache, "-j", "1", "--format", "json")
    procs = [facematch_process(*args) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    assert outputs[0][0] == outputs[1][0]
    assert entries(cache) == 6


@pytest.mark.slow
def test_a_killed_run_keeps_what_it_had_written(
    known_files: Path, data: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(12):
        shutil.copy(data / ("obama2.jpg" if i % 2 else "obama3.jpg"), folder / f"{i:02}.jpg")
        with open(folder / f"{i:02}.jpg", "ab") as f:
            f.write(bytes([i]))  # distinct content, distinct entries
    cache = tmp_path / "cache"
    proc = facematch_process(known_files, folder, "--cache-dir", cache, "-j", "1")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not (cache / CACHE_FILE).exists() or entries(cache) < 4):
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    kept = entries(cache)
    assert kept >= 4
    with sqlite3.connect(cache / CACHE_FILE) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.usefixtures("fake_faces")
def test_a_locked_cache_is_skipped_not_rebuilt(
    known_files: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    run(known_files, data / "obama2.jpg", "--cache-dir", cache, "-j", "1")
    capsys.readouterr()
    holder = sqlite3.connect(cache / CACHE_FILE, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a write
    try:
        waiting = EncodingCache(cache, busy_seconds=0.1)
        assert waiting.get("0" * 64, "settings") is None
        waiting.put("0" * 64, "settings", [], "onnx")
        waiting.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert capsys.readouterr().err.count("unavailable for a moment") == 1
    assert not list(cache.glob("*.corrupt-*"))
    assert entries(cache) == 3


def damage_entry(cache_dir: Path, digest: str) -> None:
    """Flip one bit of a stored embedding in place, as damage SQLite cannot see would."""
    with sqlite3.connect(cache_dir / CACHE_FILE) as conn:
        ((face, blob),) = conn.execute(
            "SELECT f.id, f.embedding FROM faces f JOIN entries e ON e.id = f.entry"
            " WHERE e.digest = ? AND f.face = 0",
            (digest,),
        )
        changed = bytearray(blob)
        changed[0] ^= 1  # the lowest bit of the first number: still a finite float
        conn.execute("UPDATE faces SET embedding = ? WHERE id = ?", (bytes(changed), face))


@pytest.mark.usefixtures("fake_faces")
def test_an_entry_changed_on_disk_is_encoded_again(
    known_files: Path, data: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    good = run(known_files, data / "obama2.jpg", "--cache-dir", cache, "-j", "1")
    assert good.stdout.strip().endswith("Barack Obama")
    damage_entry(cache, file_digest(str(known_files / "Barack Obama.jpg")))
    again = run(known_files, data / "obama2.jpg", "--cache-dir", cache, "-j", "1")
    assert again.exit_code == 0
    assert again.stdout == good.stdout
    assert again.stderr.count("damaged") == 1
    third = run(known_files, data / "obama2.jpg", "--cache-dir", cache, "-j", "1")
    assert third.stdout == good.stdout and "damaged" not in third.stderr  # overwritten


OLD_SCHEMAS = {
    # schema 1: entries as JSON text without a checksum, in a table called faces
    1: (
        "CREATE TABLE faces (digest TEXT NOT NULL, settings TEXT NOT NULL, faces TEXT NOT NULL,"
        " created REAL NOT NULL, PRIMARY KEY (digest, settings))",
        "INSERT INTO faces VALUES (?, ?, ?, 0)",
    ),
    # schema 2: the same with a checksum, in a table called entries
    2: (
        "CREATE TABLE entries (digest TEXT NOT NULL, settings TEXT NOT NULL,"
        " faces TEXT NOT NULL, checksum TEXT NOT NULL, created REAL NOT NULL,"
        " PRIMARY KEY (digest, settings))",
        "INSERT INTO entries VALUES (?, ?, ?, 'not checked', 0)",
    ),
}


@pytest.mark.parametrize("schema", sorted(OLD_SCHEMAS))
@pytest.mark.usefixtures("fake_faces")
def test_entries_of_older_schemas_are_dropped(
    known_files: Path, data: Path, tmp_path: Path, schema: int
) -> None:
    scratch = tmp_path / "scratch"
    good = run(known_files, data / "obama2.jpg", "--cache-dir", scratch, "-j", "1")
    with sqlite3.connect(scratch / CACHE_FILE) as conn:
        keys = list(
            conn.execute(
                "SELECT e.digest, s.key FROM entries e JOIN settings s ON s.id = e.settings"
            )
        )
    cache = tmp_path / "cache"
    cache.mkdir()
    wrong = {"box": [0, 10, 10, 0], "landmarks": [], "embedding": [0.0] * 128}
    create, insert = OLD_SCHEMAS[schema]
    with sqlite3.connect(cache / CACHE_FILE) as old:  # as that schema left it, wrong faces
        old.execute(create)
        old.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        old.execute("INSERT INTO meta VALUES ('schema', ?)", (str(schema),))
        text = json.dumps({"engine": "onnx", "faces": [wrong]})
        old.executemany(insert, [(d, k, text) for d, k in keys])
    again = run(known_files, data / "obama2.jpg", "--cache-dir", cache, "-j", "1")
    assert again.stdout == good.stdout
    assert "damaged" not in again.stderr and "corrupt" not in again.stderr
    assert entries(cache) == 3
    with sqlite3.connect(cache / CACHE_FILE) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("3",)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_what_the_cache_stores_only_its_owner_can_read(
    known_files: Path, data: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "new" / "cache"
    done = run(known_files, data / "obama2.jpg", "--cache-dir", cache, "-j", "1")
    assert done.exit_code == 0
    (model,) = (cache / "models").glob("*.onnx")
    private = {
        tmp_path / "new": 0o700,
        cache: 0o700,
        cache / "models": 0o700,
        model: 0o600,
        model.with_name(model.name + ".verified"): 0o600,
        cache / CACHE_FILE: 0o600,
    }
    opened = EncodingCache(cache)
    assert opened.get("0" * 64, "settings") is None  # a reader: the -wal and -shm files exist
    for suffix in ("-wal", "-shm"):
        private[cache / (CACHE_FILE + suffix)] = 0o600
    assert {path: oct(mode(path)) for path in private} == {p: oct(m) for p, m in private.items()}
    opened.close()


def permissions_bind() -> list[str]:
    """A command prefix under which file permissions bind a child process, even as root.

    Root ignores them through CAP_DAC_OVERRIDE; setpriv runs the child without it.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    prefix = [str(setpriv), "--bounding-set=-dac_override,-dac_read_search"]
    if setpriv is None or subprocess.run([*prefix, "true"], capture_output=True).returncode:
        pytest.skip("running as root, where permissions do not bind, and setpriv cannot drop that")
    return prefix


def facematch_run(prefix: list[str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "facematch", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.parametrize("folder_writable", [False, True], ids=["read-only folder", "writable"])
def test_a_read_only_cache_serves_hits_and_says_it_saves_nothing(
    known_files: Path, data: Path, tmp_path: Path, folder_writable: bool
) -> None:
    prefix = permissions_bind()
    cache = tmp_path / "shared"
    first = run(known_files, data / "obama2.jpg", "--cache-dir", cache, "-j", "1")
    # Without its model folder, any encoding now warns: the model cannot be stored there.
    shutil.rmtree(cache / "models")
    (cache / CACHE_FILE).chmod(0o400)
    cache.chmod(0o700 if folder_writable else 0o500)
    try:
        warm = facematch_run(
            prefix, known_files, data / "obama2.jpg", "--cache-dir", cache, "-j", "1"
        )
        new = tmp_path / "new.jpg"
        shutil.copy(data / "obama3.jpg", new)
        more = facematch_run(prefix, known_files, new, "--cache-dir", cache, "-j", "1")
    finally:
        cache.chmod(0o700)
    assert (warm.returncode, warm.stdout, warm.stderr) == (0, first.stdout, "")
    assert more.returncode == 0 and more.stdout.strip().endswith("Barack Obama")
    assert more.stderr.count("is read-only; new encodings are not saved") == 1, more.stderr
    assert "for a moment" not in more.stderr
    assert entries(cache) == 3


def stored_key(cache_dir: Path) -> str:
    """The settings key of a cache's entries (all made with one set of settings)."""
    with sqlite3.connect(cache_dir / CACHE_FILE) as conn:
        ((key,),) = conn.execute("SELECT key FROM settings")
    return str(key)


@pytest.fixture
def filled(
    fake_faces: FakeFaces,
    known_files: Path,
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> tuple[Path, str, str]:
    """A cache filled by a run (of fake faces), its settings key, and an image's digest."""
    cache = tmp_path / "cache"
    run(known_files, data / "obama2.jpg", "--cache-dir", cache, "-j", "1")
    capsys.readouterr()
    return cache, stored_key(cache), file_digest(str(data / "obama2.jpg"))


def test_a_cache_opened_read_only_serves_hits_and_writes_nothing(
    filled: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cache, key, digest = filled
    before = (cache / CACHE_FILE).read_bytes()
    reader = EncodingCache(cache, read_only=True)
    hit = reader.get(digest, key)
    assert hit is not None and len(hit) == 1
    reader.put("0" * 64, key, hit, "onnx")
    reader.put("1" * 64, key, hit, "onnx")
    assert reader.get("0" * 64, key) is None
    reader.close()
    assert capsys.readouterr().err.count("is read-only; new encodings are not saved") == 1
    assert (cache / CACHE_FILE).read_bytes() == before
    assert entries(cache) == 3


def test_a_full_disk_is_reported_as_such(
    filled: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cache, key, digest = filled
    full = EncodingCache(cache)
    hit = full.get(digest, key)
    db = full._connect()
    assert hit is not None and db is not None
    db.execute("PRAGMA max_page_count = 1")  # SQLite now answers SQLITE_FULL to any growth
    for i in range(3):
        full.put(f"{i}" * 64, key, hit * 50, "onnx")
    assert full.get(digest, key) is not None
    full.close()
    err = capsys.readouterr().err
    assert err.count("disk is full; new encodings are not saved") == 1, err
    assert "for a moment" not in err
    assert entries(cache) == 3


@pytest.mark.usefixtures("fake_faces")
def test_only_the_latest_corrupt_copy_is_kept(
    known_files: Path, data: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    run(known_files, data / "obama2.jpg", "--cache-dir", cache, "-j", "1")
    for stamp in ("20240101-000000", "20240102-000000"):  # set aside by earlier runs
        for suffix in ("", "-wal", "-shm"):
            (cache / f"{CACHE_FILE}{suffix}.corrupt-{stamp}").write_bytes(b"old damage")
    (cache / CACHE_FILE).write_bytes(b"new damage" * 500)
    again = run(known_files, data / "obama2.jpg", "--cache-dir", cache, "-j", "1")
    assert again.exit_code == 0 and again.stderr.count("is corrupt") == 1
    (kept,) = cache.glob("*.corrupt-*")
    assert kept.name.startswith(f"{CACHE_FILE}.corrupt-")
    assert kept.read_bytes() == b"new damage" * 500
    assert entries(cache) == 3
