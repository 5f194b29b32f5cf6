"""Faces and embeddings stored by image content and settings, so re-runs encode nothing.

One SQLite file (standard library, inspectable with the ``sqlite3`` shell, no
pickle). An entry's key is the SHA-256 of the file's bytes plus every setting
that changes the result, so renaming or touching a file keeps its entry and
editing it does not. Each entry is committed on its own in WAL mode: a crash
loses nothing already written, and several processes may share the file.
A cache that turns out corrupt is reported once, set aside and rebuilt: the
cache may cost time, never a wrong answer. For damage SQLite cannot see (a
changed digit in a stored embedding), every entry carries the SHA-256 of its
key and text; an entry that does not match it is a miss, encoded again.
Embeddings are biometric data: a cache folder facematch creates is 0700 and
its database files 0600 (see facematch.private for existing folders).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from facematch.faces import Face, FaceBox, FaceSettings
from facematch.private import create_private_file, make_private_folder

log = logging.getLogger("facematch")

CACHE_FILE = "encodings.sqlite3"
SCHEMA_VERSION = 2
"""2: entries carry a checksum (table ``entries``); 1 had none (table ``faces``)."""
# Bump when detection, alignment or encoding change in a way settings don't capture.
PIPELINE_VERSION = 1


def default_cache_dir() -> Path:
    """The user's cache folder for facematch (honours XDG_CACHE_HOME)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("facematch", appauthor=False))


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def settings_key(settings: FaceSettings) -> str:
    """Every setting and version that changes what faces and embeddings we get.

    The engine is not part of it on purpose: ONNX and dlib descriptors agree
    within 1e-5, so either may reuse the other's entries (each records its engine).
    """
    fields: dict[str, Any] = asdict(settings)
    fields["min_face_size"] = fields["min_face_size"] or "auto"
    fields["pipeline"] = PIPELINE_VERSION
    fields["dlib"] = _dlib_version()
    fields["models"] = _version("face_recognition_models")
    return json.dumps(fields, sort_keys=True)


def _dlib_version() -> str:
    for name in ("dlib-bin", "dlib"):
        version = _version(name)
        if version != "unknown":
            return version
    return "unknown"


def faces_to_json(faces: list[Face], engine: str) -> str:
    return json.dumps(
        {
            "engine": engine,
            "faces": [
                {
                    "box": list(face.box.css()),
                    "landmarks": [list(p) for p in face.landmarks],
                    "embedding": face.embedding.tolist(),
                }
                for face in faces
            ],
        }
    )


def faces_from_json(text: str) -> list[Face]:
    """Faces from an entry; raises ValueError/KeyError/TypeError on anything malformed."""
    faces = []
    for item in json.loads(text)["faces"]:
        embedding = np.array(item["embedding"], dtype=np.float64)
        if embedding.shape != (128,) or not np.all(np.isfinite(embedding)):
            raise ValueError("bad embedding")
        top, right, bottom, left = (int(v) for v in item["box"])
        landmarks = tuple((int(x), int(y)) for x, y in item["landmarks"])
        faces.append(Face(FaceBox(top, right, bottom, left), landmarks, embedding))
    return faces


def entry_checksum(digest: str, settings: str, faces: str) -> str:
    """SHA-256 of an entry's key and stored text, stored beside it to catch silent damage."""
    return hashlib.sha256("\0".join((digest, settings, faces)).encode()).hexdigest()


def _schema(db: sqlite3.Connection) -> int:
    """The schema version a database was last set up for (0 for a new one)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    try:
        return int(row[0]) if row is not None else 0
    except ValueError:
        return 0


class EncodingCache:
    """Read and write cached faces; every failure degrades to a cache miss."""

    def __init__(self, directory: Path, busy_seconds: float = 60.0) -> None:
        self.directory = directory
        self.busy_seconds = busy_seconds
        self.path = directory / CACHE_FILE
        self._db: sqlite3.Connection | None = None
        self._broken = False
        self._busy_reported = False
        self._damage_reported = False

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is not None or self._broken:
            return self._db
        try:
            make_private_folder(self.directory)
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            self._failed(exc)
        except OSError as exc:
            log.warning("cache disabled: cannot use %s: %s", self.directory, exc)
            self._broken = True
        return self._db

    def _open(self) -> sqlite3.Connection:
        create_private_file(self.path)  # before SQLite makes it 0644; -wal and -shm follow
        db = sqlite3.connect(self.path, timeout=self.busy_seconds, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_seconds * 1000)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            check = db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            self._set_up(db)
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _set_up(db: sqlite3.Connection) -> None:
        """Create the tables; entries of older schemas (without a checksum) are dropped."""
        db.execute(
            "CREATE TABLE IF NOT EXISTS entries ("
            " digest TEXT NOT NULL, settings TEXT NOT NULL, faces TEXT NOT NULL,"
            " checksum TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (digest, settings))"
        )
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        if _schema(db) < SCHEMA_VERSION:
            db.execute("DROP TABLE IF EXISTS faces")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    def _failed(self, exc: sqlite3.DatabaseError) -> None:
        """A database error: skip this operation if the file is busy, rebuild it if corrupt.

        SQLite reports locking and I/O trouble as OperationalError; only the
        other DatabaseErrors ("not a database", "malformed") mean a damaged file.
        Setting aside a file another process is busy with would lose its entries.
        """
        if isinstance(exc, sqlite3.OperationalError):
            if not self._busy_reported:
                log.warning("cache %s unavailable for a moment (%s); going on", self.path, exc)
                self._busy_reported = True
            return
        self._recover(exc)

    def _recover(self, exc: Exception) -> None:
        """Set a corrupt cache file aside (once) and start a fresh one."""
        log.warning("cache file %s is corrupt (%s); rebuilding it", self.path, exc)
        if self._db is not None:
            self._db.close()
            self._db = None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            for suffix in ("", "-wal", "-shm"):
                old = Path(str(self.path) + suffix)
                if old.exists():
                    os.replace(old, Path(f"{old}.corrupt-{stamp}"))
            self._db = self._open()
        except (OSError, sqlite3.DatabaseError) as again:
            log.warning("cache disabled: %s", again)
            self._broken = True

    def get(self, digest: str, settings: str) -> list[Face] | None:
        """The faces stored for an image and settings; None on a miss or a damaged entry."""
        db = self._connect()
        if db is None:
            return None
        try:
            row = db.execute(
                "SELECT faces, checksum FROM entries WHERE digest = ? AND settings = ?",
                (digest, settings),
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            self._failed(exc)
            return None
        if row is None:
            return None
        text, checksum = row
        try:
            if checksum != entry_checksum(digest, settings, text):
                raise ValueError("checksum mismatch")
            return faces_from_json(text)
        except (ValueError, KeyError, TypeError) as exc:
            self._damaged(exc)
            return None

    def _damaged(self, exc: Exception) -> None:
        """One warning per run for entries that fail their checksum (they are encoded again)."""
        if not self._damage_reported:
            log.warning("cache %s has damaged entries (%s); encoding them again", self.path, exc)
            self._damage_reported = True

    def put(self, digest: str, settings: str, faces: list[Face], engine: str) -> None:
        """Store an image's faces, replacing any entry for the same image and settings."""
        db = self._connect()
        if db is None:
            return
        text = faces_to_json(faces, engine)
        try:
            db.execute(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)",
                (digest, settings, text, entry_checksum(digest, settings, text), time.time()),
            )
        except sqlite3.DatabaseError as exc:
            self._failed(exc)

    def info(self) -> dict[str, Any]:
        """Where the cache is, how many images it holds and its size on disk."""
        entries = self._count()
        size = sum(p.stat().st_size for p in self.directory.glob(CACHE_FILE + "*") if p.is_file())
        return {"path": str(self.path), "entries": entries, "bytes": size}

    def clear(self) -> int:
        """Remove every entry (and set-aside corrupt copies); returns how many entries."""
        entries = 0
        if self.path.exists():
            entries = self._count()
            self.close()
        for p in self.directory.glob(CACHE_FILE + "*"):
            p.unlink(missing_ok=True)
        return entries

    def _count(self) -> int:
        db = self._connect()
        return 0 if db is None else int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
