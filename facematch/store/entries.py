"""Faces stored by image content and settings: the one implementation of entries that the
encoding cache and the face library share.

An entry is one image content (the SHA-256 of its bytes) under one settings key: a row
of ``entries`` (its engine and landmarks as JSON, with a SHA-256 of key and text) and
a row of ``faces`` per face (box, embedding as little-endian floats, a 64-bit checksum
of both). ``settings`` holds each settings key once. The library keeps embeddings as
float32 (a million faces in 512 MB); the cache keeps them as float64, so a cached face
is the very face that was encoded (distances print the same, hit or miss).

Damage SQLite cannot see (a changed digit, a flipped bit) fails a checksum: ``get``
raises ``DamagedEntry``, which the cache treats as a miss and the library as damage.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from numpy.typing import DTypeLike, NDArray

from facematch.records import Face, FaceBox

DIM = 128

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS settings (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE)",
    # AUTOINCREMENT: an id is never given twice, even after the row with the highest one
    # is deleted; people's names and corrections refer to face ids.
    "CREATE TABLE IF NOT EXISTS entries ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, digest TEXT NOT NULL,"
    " settings INTEGER NOT NULL REFERENCES settings(id),"
    " faces TEXT NOT NULL, checksum TEXT NOT NULL, created REAL NOT NULL,"
    " UNIQUE (digest, settings))",
    "CREATE TABLE IF NOT EXISTS faces ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, entry INTEGER NOT NULL REFERENCES entries(id),"
    " face INTEGER NOT NULL, top INTEGER NOT NULL, right INTEGER NOT NULL,"
    " bottom INTEGER NOT NULL, left INTEGER NOT NULL,"
    " embedding BLOB NOT NULL, checksum INTEGER NOT NULL, UNIQUE (entry, face))",
)

CHECK_ROWS = 65_536
"""Rows checksummed at a time, to bound memory."""


class DamagedEntry(ValueError):
    """An entry or one of its faces fails its checksum, or is not what was stored."""


def _weights(words: int) -> NDArray[np.uint64]:
    # Odd 64-bit weights: any change to one word of a row changes the sum.
    return np.array([(0x9E3779B97F4A7C15 * (2 * i + 1)) % 2**64 for i in range(words)], np.uint64)


_WEIGHTS = {4: _weights(DIM + 4), 8: _weights(2 * DIM + 4)}


def face_checksums(boxes: NDArray[np.int64], embeddings: NDArray[np.floating]) -> NDArray[np.int64]:
    """Per face, a 64-bit checksum of its box and the bits of its embedding (float32 or 64)."""
    count = len(embeddings)
    size = embeddings.dtype.itemsize
    dtype, words_per_row = ("<f4", DIM) if size == 4 else ("<f8", 2 * DIM)
    weights = _WEIGHTS[size]
    out = np.empty(count, dtype=np.int64)
    for start in range(0, count, CHECK_ROWS):
        part = slice(start, start + CHECK_ROWS)
        rows = len(embeddings[part])
        words = np.empty((rows, words_per_row + 4), dtype=np.uint64)
        words[:, :words_per_row] = (
            np.ascontiguousarray(embeddings[part], dtype=dtype).view("<u4").reshape(rows, -1)
        )
        words[:, words_per_row:] = boxes[part].astype(np.int64).view(np.uint64) & 0xFFFFFFFF
        with np.errstate(over="ignore"):
            out[part] = (words * weights).sum(axis=1, dtype=np.uint64).view(np.int64)
    return out


def entry_checksum(digest: str, settings: str, faces: str) -> str:
    """SHA-256 of an entry's key and stored text, stored beside it to catch silent damage."""
    return hashlib.sha256("\0".join((digest, settings, faces)).encode()).hexdigest()


def embeddings_from_blobs(blobs: Sequence[bytes], dtype: DTypeLike = "<f4") -> NDArray[np.floating]:
    """Stored embeddings as one (n, 128) matrix; raises DamagedEntry if malformed."""
    kind = np.dtype(dtype)
    blob = b"".join(blobs)
    if len(blob) != len(blobs) * DIM * kind.itemsize:
        raise DamagedEntry("an embedding of the wrong size")
    embeddings = np.frombuffer(blob, dtype=kind.newbyteorder("<")).reshape(len(blobs), DIM)
    embeddings = embeddings.astype(kind.newbyteorder("="))
    if not np.isfinite(embeddings).all():
        raise DamagedEntry("an embedding that is not a number")
    return embeddings


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (``BEGIN IMMEDIATE``) on an autocommit connection."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class Entries:
    """The entries of one SQLite connection (tables from ``SCHEMA``), embeddings as ``dtype``."""

    def __init__(self, db: sqlite3.Connection, dtype: DTypeLike = np.float32) -> None:
        self.db = db
        self.dtype = np.dtype(dtype)
        self._settings_ids: dict[str, int] = {}

    def settings_id(self, key: str, create: bool) -> int | None:
        """The id of a settings key; None if it is not stored and ``create`` is False."""
        known = self._settings_ids.get(key)
        if known is not None:
            return known
        row = self.db.execute("SELECT id FROM settings WHERE key = ?", (key,)).fetchone()
        if row is None:
            if not create:
                return None
            self.db.execute("INSERT OR IGNORE INTO settings (key) VALUES (?)", (key,))
            row = self.db.execute("SELECT id FROM settings WHERE key = ?", (key,)).fetchone()
        self._settings_ids[key] = int(row[0])
        return int(row[0])

    def new_settings_id(self, key: str) -> int:
        settings_id = self.settings_id(key, create=True)
        assert settings_id is not None
        return settings_id

    def get(self, digest: str, settings: str) -> list[Face] | None:
        """The faces stored for an image content and settings, or None if not stored.

        Raises DamagedEntry when the entry or a face fails its checksum.
        """
        settings_id = self.settings_id(settings, create=False)
        if settings_id is None:
            return None
        row = self.db.execute(
            "SELECT id, faces, checksum FROM entries WHERE digest = ? AND settings = ?",
            (digest, settings_id),
        ).fetchone()
        if row is None:
            return None
        entry, text, checksum = row
        if checksum != entry_checksum(digest, settings, text):
            raise DamagedEntry("an entry fails its checksum")
        rows = self.db.execute(
            "SELECT top, right, bottom, left, embedding, checksum FROM faces"
            " WHERE entry = ? ORDER BY face",
            (entry,),
        ).fetchall()
        try:
            described = json.loads(text)["faces"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DamagedEntry(f"an entry that is not readable: {exc}") from None
        if len(rows) != len(described):
            raise DamagedEntry("an image's faces are missing")
        if not rows:
            return []
        boxes = np.array([r[:4] for r in rows], dtype=np.int64)
        embeddings = embeddings_from_blobs([r[4] for r in rows], self.dtype)
        if not np.array_equal(face_checksums(boxes, embeddings), [r[5] for r in rows]):
            raise DamagedEntry("a face fails its checksum")
        return [
            Face(
                FaceBox(*(int(v) for v in box)),
                tuple((int(x), int(y)) for x, y in item["landmarks"]),
                embedding.astype(np.float64),
            )
            for box, item, embedding in zip(boxes, described, embeddings, strict=True)
        ]

    def has(self, digest: str, settings: str) -> bool:
        """Whether faces are stored for this content and settings."""
        settings_id = self.settings_id(settings, create=False)
        return settings_id is not None and (
            self.db.execute(
                "SELECT 1 FROM entries WHERE digest = ? AND settings = ?", (digest, settings_id)
            ).fetchone()
            is not None
        )

    def insert(
        self,
        digest: str,
        settings: str,
        faces: Sequence[Face],
        engine: str,
        *,
        replace: bool = False,
    ) -> bool:
        """Store an entry and its face rows (inside the caller's transaction).

        An entry stored already stays (another process stored the same faces), unless
        ``replace`` (the cache overwrites a damaged entry). Returns whether it was stored.
        """
        text = json.dumps(
            {
                "engine": engine,
                "faces": [{"landmarks": [list(p) for p in face.landmarks]} for face in faces],
            }
        )
        boxes = np.array([f.box.css() for f in faces], dtype=np.int64).reshape(-1, 4)
        little = self.dtype.newbyteorder("<")
        embeddings = np.array([f.embedding for f in faces], dtype=little).reshape(-1, DIM)
        checksums = face_checksums(boxes, embeddings)
        settings_id = self.new_settings_id(settings)
        if replace:
            old = "SELECT id FROM entries WHERE digest = ? AND settings = ?"
            self.db.execute(f"DELETE FROM faces WHERE entry IN ({old})", (digest, settings_id))
            self.db.execute(
                "DELETE FROM entries WHERE digest = ? AND settings = ?", (digest, settings_id)
            )
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO entries (digest, settings, faces, checksum, created)"
            " VALUES (?, ?, ?, ?, ?)",
            (digest, settings_id, text, entry_checksum(digest, settings, text), time.time()),
        )
        if cursor.rowcount == 0:
            return False
        entry = cursor.lastrowid
        self.db.executemany(
            "INSERT INTO faces (entry, face, top, right, bottom, left, embedding, checksum)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (entry, i, *map(int, boxes[i]), embeddings[i].tobytes(), int(checksums[i]))
                for i in range(len(faces))
            ],
        )
        return True
