"""The face library: one SQLite file of photos, their faces and embeddings.

The encoding cache grown up: images are stored by content and settings as the
cache stores them (table ``entries``: SHA-256 of the bytes, settings, JSON,
a checksum; same key, same checksum function), so the library is also the store
``Pipeline.encode`` reads and writes while indexing. Tables (``sqlite3 FILE .schema``):

``files``
    one row per indexed path: size, mtime (ns), content digest, settings,
    status (``ok``, ``no_faces``, ``error``), error message, when indexed. A
    re-run recognises an unchanged file by path, size and mtime without reading
    it; a changed one by its digest (a moved or renamed photo is not encoded
    again); a failed one is tried again only when it changes.
``entries``
    one row per image content and settings: the engine and each face's
    landmarks as JSON, with the SHA-256 of key and text.
``faces``
    one row per face of an entry: its box and its embedding as 128
    little-endian float32 (512 bytes), with a 64-bit checksum of both. Binary
    and apart from the JSON so that a million faces load in seconds into one
    matrix and take 0.6 KB each (as JSON text in the entry: 5 KB, and slow to parse).
``settings``
    each settings key once (rows refer to it by number).
``meta``
    ``format`` = ``facematch-library`` and ``schema`` (a version number;
    migrations run by number on open).

The people (``facematch.store.people``: clustering, names, and the names taken from
photos' XMP face regions) keep their tables in the same file; search reads the name
of each hit's person from them.

Every file is committed as it is indexed, in WAL mode: ``kill -9`` loses
nothing already written and the next run resumes; several processes may index
into one library at once. A file that is not a library, a damaged one or one
made by a newer facematch is a ``LibraryError`` (one line), never a wrong
answer: a face or entry whose checksum does not match is refused too. The file
is created 0600 in a 0700 folder: embeddings are biometric data.

A ``Library`` is a context manager::

    with Library.open(path) as library:
        for row in library.index(["Photos"], pipeline):
            ...
        faces = library.faces()      # ids, paths, boxes, float32 embeddings
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from facematch.errors import ImageError, LibraryError
from facematch.files import create_private_file, make_private_folder
from facematch.neighbours.exact import NeighbourIndex, nearest_to_any
from facematch.neighbours.faiss_index import FaissIndex, faiss_available
from facematch.neighbours.index import ANN_MIN_ROWS, make_index
from facematch.records import Encoded, Face, FaceBox, LibraryFaces, SearchHit, Status
from facematch.sources.images import Found, discover
from facematch.store.cache import FaceStore, file_digest, primary_code
from facematch.store.entries import (
    CHECK_ROWS,
    Entries,
    embeddings_from_blobs,
    face_checksums,
    transaction,
)
from facematch.store.entries import SCHEMA as ENTRY_SCHEMA
from facematch.store.face_index import (
    cells_generation,
    index_path,
    read_cells,
    row_keys,
    updated_cells,
    write_cells,
)
from facematch.store.snapshot import (
    SNAPSHOT_MIN_FACES,
    SUFFIX,
    FaceMatrix,
    read_snapshot,
    remove_beside,
    snapshot_generation,
    snapshot_path,
    write_snapshot,
)


class Pipeline(Protocol):
    """What indexing needs of ``facematch.run.pipeline.Pipeline``: its settings and encoder."""

    @property
    def settings_key(self) -> str: ...

    def encode(
        self,
        paths: Sequence[str],
        digests: Sequence[str | None] | None = None,
        store: FaceStore | None = None,
    ) -> Iterator[Encoded]: ...


log = logging.getLogger("facematch")

FORMAT = "facematch-library"
SCHEMA_VERSION = 4
READS_FROM = 3
"""The oldest schema read as it is when opened read-only (schema 4 only let people be
named by XMP and added tables reading does not need); older ones need upgrading first."""
LIBRARY_FILE = "library.sqlite3"
ENV_VAR = "FACEMATCH_LIBRARY"
DIM = 128
NOT_INDEXED = "not in the library, or changed since it was indexed (run facematch index)"

Action = Literal["new", "changed", "unchanged", "pruned"]

# AUTOINCREMENT: an id is never given twice, even after the row with the highest one
# is deleted; people's names and corrections refer to face ids (issue: a pruned face's
# id went to a new face, and with it a name the user gave to someone else).
_FILES = (
    "CREATE TABLE IF NOT EXISTS files ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL UNIQUE, size INTEGER,"
    " mtime_ns INTEGER, digest TEXT, settings INTEGER NOT NULL REFERENCES settings(id),"
    " status TEXT NOT NULL CHECK (status IN ('ok', 'no_faces', 'error')),"
    " error TEXT, indexed REAL NOT NULL)"
)
_TABLES = {"entries": ENTRY_SCHEMA[1], "faces": ENTRY_SCHEMA[2], "files": _FILES}

PEOPLE_TABLE = (
    "CREATE TABLE IF NOT EXISTS people ("
    " number INTEGER PRIMARY KEY, name TEXT,"
    " named_by TEXT NOT NULL DEFAULT 'none'"
    " CHECK (named_by IN ('user', 'xmp', 'known', 'none')),"
    " merged_into INTEGER REFERENCES people(number))"
)
"""The people found by clustering (``facematch.store.people`` makes it, with the rest of
its tables, when first used); here because a migration rebuilds it."""
_INDEXES = ("CREATE INDEX IF NOT EXISTS files_content ON files (digest, settings)",)

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    *ENTRY_SCHEMA,
    _FILES,
    *_INDEXES,
)

_CHANGE_TABLES = ("files", "entries", "faces")
_TRIGGERS = tuple(
    f"CREATE TRIGGER IF NOT EXISTS {table}_{event.lower()} AFTER {event} ON {table}"
    " BEGIN UPDATE meta SET value = lower(hex(randomblob(16))) WHERE key = 'generation'; END"
    for table in _CHANGE_TABLES
    for event in ("INSERT", "UPDATE", "DELETE")
)
"""Every write to the tables that make ``faces()`` gives ``meta.generation`` a new random
value: with the library's random ``library_id``, the state a snapshot of the faces is
checked against (see ``facematch.store.snapshot``). A counter would repeat (a library
restored from a backup counts up to the old value again); 128 random bits do not."""

_NEW_STATE = (
    "INSERT OR REPLACE INTO meta VALUES ('library_id', lower(hex(randomblob(16))))",
    "INSERT OR REPLACE INTO meta VALUES ('generation', lower(hex(randomblob(16))))",
)


def _migrate_to_4(db: sqlite3.Connection) -> None:
    """People may be named by the face regions of their photos' XMP (``named_by`` 'xmp');
    SQLite cannot widen a CHECK in place, so the people table is made again."""
    if not _exists(db, "people"):
        return
    columns = ", ".join(row[1] for row in db.execute("PRAGMA table_info(people)"))
    db.execute(PEOPLE_TABLE.replace("EXISTS people (", "EXISTS people_v4 ("))
    db.execute(f"INSERT INTO people_v4 ({columns}) SELECT {columns} FROM people")
    db.execute("DROP TABLE people")
    db.execute("ALTER TABLE people_v4 RENAME TO people")


def _exists(db: sqlite3.Connection, table: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return row is not None


def _migrate_to_3(db: sqlite3.Connection) -> None:
    """Ids that are never reused, and the random change token (see ``_TRIGGERS``)."""
    for table in _CHANGE_TABLES:
        for event in ("insert", "update", "delete"):
            db.execute(f"DROP TRIGGER IF EXISTS {table}_{event}")
    for table, create in _TABLES.items():
        columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        db.execute(create.replace(f"EXISTS {table} (", f"EXISTS {table}_v3 ("))
        names = ", ".join(columns)
        db.execute(f"INSERT INTO {table}_v3 ({names}) SELECT {names} FROM {table}")
        db.execute(f"DROP TABLE {table}")
        db.execute(f"ALTER TABLE {table}_v3 RENAME TO {table}")
    # Ids that people's tables still name (a face pruned before this upgrade) are never
    # given to a new face either.
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    highest = [int(db.execute("SELECT COALESCE(MAX(id), 0) FROM faces").fetchone()[0])]
    if "assignments" in tables:
        highest.append(
            int(db.execute("SELECT COALESCE(MAX(face), 0) FROM assignments").fetchone()[0])
        )
    if "corrections" in tables:
        highest.append(
            int(db.execute("SELECT COALESCE(MAX(face), 0) FROM corrections").fetchone()[0])
        )
    db.execute("DELETE FROM sqlite_sequence WHERE name = 'faces'")
    db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('faces', ?)", (max(highest),))
    for statement in (*_INDEXES, *_TRIGGERS, *_NEW_STATE):
        db.execute(statement)


def _migrate_to_2(db: sqlite3.Connection) -> None:
    """A change counter for snapshots (replaced by a random token in 3)."""
    db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    2: _migrate_to_2,
    3: _migrate_to_3,
    4: _migrate_to_4,
}
"""What takes a library from schema N - 1 to N (inside one transaction)."""

_JOINED = (
    " FROM files fi JOIN entries e ON e.digest = fi.digest AND e.settings = fi.settings"
    " JOIN faces fa ON fa.entry = e.id WHERE fi.status = 'ok'"
)
"""The faces of the indexed files (what ``faces()`` reads)."""


def default_library_path() -> Path:
    """The library used when none is named: ``$FACEMATCH_LIBRARY``, else the user data folder."""
    named = os.environ.get(ENV_VAR)
    if named:
        return Path(named)
    import platformdirs

    return Path(platformdirs.user_data_dir("facematch", appauthor=False)) / LIBRARY_FILE


def resolve_library_path(path: str | os.PathLike[str] | None) -> Path:
    """``path`` if given, else the default library (see ``default_library_path``)."""
    return Path(path) if path is not None else default_library_path()


def _read_only_connection(where: Path, busy_seconds: float) -> sqlite3.Connection:
    """A connection that only reads the library at ``where``.

    A WAL database needs its -shm index even to be read, and SQLite cannot make one
    where the library's folder or file is not writable (a DVD, a read-only share, a
    backup mount): there the file is read as immutable (no locks; a -wal left by a
    writer that did not finish is not read, and every face still has its checksum).
    """
    uri = f"{where.absolute().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=busy_seconds, isolation_level=None)
    try:
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        db.close()
        if os.access(where.parent, os.W_OK | os.X_OK) and os.access(where, os.W_OK):
            raise
    return sqlite3.connect(
        f"{uri}&immutable=1", uri=True, timeout=busy_seconds, isolation_level=None
    )


@dataclass(frozen=True)
class IndexedFile:
    """What an index run did with one file: its status now and the action taken."""

    path: str
    status: Status
    action: Action
    faces: int = 0
    error: str | None = None


@dataclass(frozen=True)
class FileRow:
    """One indexed file as stored."""

    path: str
    size: int | None
    mtime_ns: int | None
    digest: str | None
    status: Status
    error: str | None


class Library:
    """One library file; open with ``Library.open`` and use as a context manager."""

    def __init__(self, path: Path, db: sqlite3.Connection, read_only: bool) -> None:
        self.path = path
        self.read_only = read_only
        self._db = db
        self._entries = Entries(db, np.float32)
        self._searchable: tuple[FaceMatrix, NeighbourIndex] | None = None
        # The snapshot as last mapped, with its generation (see ``_snapshot``).
        self._mapped: tuple[str, FaceMatrix] | None = None

    # --- opening ---------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        read_only: bool = False,
        busy_seconds: float = 60.0,
    ) -> Library:
        """Open (or, unless ``read_only``, create) a library; ``path`` None is the default.

        Raises LibraryError for a missing library opened read-only, a file that is
        not a facematch library, a damaged one, or one of a newer schema.
        """
        where = resolve_library_path(path)
        if where.is_dir():
            raise LibraryError(f"{where} is a folder; a library is a file")
        if read_only and not where.exists():
            raise LibraryError(f"no library at {where}; make one with: facematch index PHOTOS")
        try:
            if read_only:
                db = _read_only_connection(where, busy_seconds)
            else:
                make_private_folder(where.parent.absolute())
                create_private_file(where)
                db = sqlite3.connect(where, timeout=busy_seconds, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise LibraryError(f"cannot open the library {where}: {exc}") from None
        library = cls(where, db, read_only)
        try:
            library._set_up(busy_seconds)
        except BaseException:
            db.close()
            raise
        return library

    def _set_up(self, busy_seconds: float) -> None:
        deadline = time.monotonic() + busy_seconds
        with self._guard():
            while True:
                try:
                    self._prepare(busy_seconds)
                    return
                except sqlite3.OperationalError as exc:
                    # Two processes making one new library: switching it to WAL needs a
                    # lock SQLite does not wait for. Preparing again is safe (it checks
                    # under the lock whether the other made it).
                    if primary_code(exc) != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.05)

    def _prepare(self, busy_seconds: float) -> None:
        """Set up, check or upgrade the tables (inside the caller's guard)."""
        db = self._db
        db.execute(f"PRAGMA busy_timeout = {int(busy_seconds * 1000)}")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            if self.read_only:
                raise LibraryError(f"{self.path} is an empty file, not a facematch library")
            self._create()
            return
        if "meta" not in tables:
            raise LibraryError(f"{self.path} is not a facematch library (other tables)")
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("format") != FORMAT:
            raise LibraryError(f"{self.path} is not a facematch library")
        schema = int(meta.get("schema", "0"))
        if schema > SCHEMA_VERSION:
            raise LibraryError(
                f"{self.path} was made by a newer facematch (library schema {schema}; "
                f"this one reads up to {SCHEMA_VERSION})"
            )
        if not self.read_only:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            if schema < SCHEMA_VERSION:
                self._migrate(schema)
        elif schema < READS_FROM:
            raise LibraryError(
                f"{self.path} has library schema {schema}; open it once for writing "
                f"(facematch index) to upgrade it to {SCHEMA_VERSION}"
            )

    def _create(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have created it between our look and the lock.
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
                for statement in (*SCHEMA, *_TRIGGERS, *_NEW_STATE):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO meta VALUES ('format', ?), ('schema', ?)",
                    (FORMAT, str(SCHEMA_VERSION)),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _migrate(self, schema: int) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for version in range(schema + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](db)
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn SQLite's errors into one-line LibraryErrors naming the file."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise LibraryError(f"library {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise LibraryError(
                f"{self.path} is damaged or not a facematch library ({exc})"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise LibraryError(f"{self.path} is damaged ({exc})") from None

    def __enter__(self) -> Library:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The open SQLite connection, for tables kept beside the library's (the people)."""
        return self._db

    # --- the content store (what Pipeline.encode reads and writes) -------------------

    def get(self, digest: str, settings: str) -> list[Face] | None:
        """The faces stored for an image content and settings, or None if not stored."""
        with self._guard():
            return self._entries.get(digest, settings)

    def has(self, digest: str, settings: str) -> bool:
        """Whether faces are stored for this content and settings."""
        with self._guard():
            return self._entries.has(digest, settings)

    def put(self, digest: str, settings: str, faces: list[Face], engine: str) -> None:
        """Store an image's faces (entry and face rows in one transaction)."""
        if self.read_only:
            raise LibraryError(f"library {self.path} is open read-only")
        with self._guard(), self._transaction():
            self._insert(digest, settings, faces, engine)

    def _insert(self, digest: str, settings: str, faces: Sequence[Face], engine: str) -> None:
        """Insert an entry and its face rows (inside the caller's transaction)."""
        self._entries.insert(digest, settings, faces, engine)

    def add_many(
        self,
        files: Iterable[tuple[str, Sequence[Face], str]],
        *,
        settings: str,
        engine: str,
        batch: int = 10_000,
    ) -> int:
        """``add`` for many (path, faces, digest) at once, ``batch`` files per transaction.

        For faces encoded elsewhere in bulk (a distributed run, a benchmark);
        returns how many files were added.
        """
        if self.read_only:
            raise LibraryError(f"library {self.path} is open read-only")
        self._searchable = None
        count = 0
        pending: list[tuple[str, Sequence[Face], str]] = []
        for item in files:
            pending.append(item)
            if len(pending) >= batch:
                count += self._add_batch(pending, settings, engine)
                pending = []
        if pending:
            count += self._add_batch(pending, settings, engine)
        self.refresh_snapshot()
        return count

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db)

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding the library's lock (``BEGIN IMMEDIATE``): another
        writer waits, never interleaves; SQLite's errors become LibraryErrors."""
        if self.read_only:
            raise LibraryError(f"library {self.path} is open read-only")
        with self._guard(), transaction(self._db) as db:
            yield db

    def add(
        self,
        path: str,
        faces: Sequence[Face],
        *,
        digest: str,
        settings: str,
        engine: str,
        size: int | None = None,
        mtime_ns: int | None = None,
    ) -> IndexedFile:
        """Store one file's faces encoded elsewhere (another machine, a benchmark).

        ``digest`` is the SHA-256 of the file's bytes and ``settings`` the key of
        the settings that encoded it (``Pipeline.settings_key``). Without size and
        mtime, the next index run over the file hashes it once to recognise it.
        """
        self.put(digest, settings, list(faces), engine)
        self._searchable = None
        with self._guard():
            settings_id = self._entries.new_settings_id(settings)
        return self._record(
            os.path.abspath(path),
            (size, mtime_ns),
            digest,
            settings_id,
            _status(faces),
            None,
            "new",
            len(faces),
        )

    # --- indexing --------------------------------------------------------------------

    def files(self) -> list[FileRow]:
        """Every indexed file, sorted by path."""
        with self._guard():
            rows = self._db.execute(
                "SELECT path, size, mtime_ns, digest, status, error FROM files ORDER BY path"
            ).fetchall()
        return [FileRow(*row) for row in rows]

    def index(
        self,
        paths: Sequence[str],
        pipeline: Pipeline,
        *,
        prune: bool = True,
        recursive: bool = True,
    ) -> Iterator[IndexedFile]:
        """Bring the library up to date with the images under ``paths``; one row per file.

        Unchanged files (same path, size, mtime and settings) are not read;
        changed or new ones are hashed, and encoded (through ``pipeline``, which
        uses this library as its store meanwhile) only if their content is not
        stored yet. Each file is committed as it is done. With ``prune``, files
        under ``paths`` that are gone are removed (rows with action "pruned");
        faces no file refers to any more are dropped at the end.
        """
        if self.read_only:
            raise LibraryError(f"library {self.path} is open read-only")
        started = time.time()
        self._searchable = None
        settings = pipeline.settings_key
        found = discover([os.path.abspath(p) for p in paths], recursive)
        with self._guard():
            settings_id = self._entries.new_settings_id(settings)
            stored = {
                row[0]: row[1:]
                for row in self._db.execute(
                    "SELECT path, size, mtime_ns, digest, settings, status, error FROM files"
                )
            }
        todo: list[tuple[str, os.stat_result, str, Action]] = []
        for item in found:
            previous = stored.get(item.path)
            action: Action = "new" if previous is None else "changed"
            if item.problem is not None:
                yield self._record(item.path, None, None, settings_id, "error", item.problem)
                continue
            try:
                info = os.stat(item.path)
            except OSError as exc:
                yield self._record(item.path, None, None, settings_id, "error", str(exc))
                continue
            if previous is not None and previous[:2] + previous[3:4] == (
                info.st_size,
                info.st_mtime_ns,
                settings_id,
            ):
                yield IndexedFile(item.path, previous[4], "unchanged", error=previous[5])
                continue
            try:
                digest = file_digest(item.path)
            except (OSError, ImageError) as exc:
                yield self._record(item.path, info, None, settings_id, "error", str(exc), action)
                continue
            if previous is not None and previous[2] == digest and previous[3] == settings_id:
                # touched, not changed (a failed file is not tried again for that)
                yield self._record_again(item.path, info, previous[4])
                continue
            known = self._record_known(item.path, info, digest, settings_id, action)
            if known is not None:
                yield known
                continue
            todo.append((item.path, info, digest, action))
        # Copies of one photo are encoded once; the others reuse what that stored.
        first: dict[str, tuple[str, os.stat_result, str, Action]] = {}
        copies = []
        for task in todo:
            if task[2] in first:
                copies.append(task)
            else:
                first[task[2]] = task
        yield from self._encode(pipeline, list(first.values()), settings_id)
        for path, info, digest, action in copies:
            known = self._record_known(path, info, digest, settings_id, action)
            if known is None:  # the first copy failed: the same error
                status, error = stored_status(self._db, first[digest][0])
                known = self._record(path, info, digest, settings_id, status, error, action)
            yield known
        if prune:
            unreadable = [f.path for f in found if (f.problem or "").startswith("cannot read")]
            yield from self._prune(paths, {f.path for f in found}, unreadable)
        self._collect(started)
        self.refresh_snapshot()

    def _encode(
        self,
        pipeline: Pipeline,
        todo: list[tuple[str, os.stat_result, str, Action]],
        settings_id: int,
    ) -> Iterator[IndexedFile]:
        if not todo:
            return
        encoded: Iterable[Encoded] = pipeline.encode(
            [path for path, *_ in todo], [digest for _, _, digest, _ in todo], store=self
        )
        for (path, info, digest, action), image in zip(todo, encoded, strict=True):
            yield self._record(
                path,
                info,
                digest,
                settings_id,
                image.status,
                image.error,
                action,
                len(image.faces),
            )

    def _record(
        self,
        path: str,
        stat: os.stat_result | tuple[int | None, int | None] | None,
        digest: str | None,
        settings_id: int,
        status: Status,
        error: str | None,
        action: Action = "new",
        faces: int = 0,
    ) -> IndexedFile:
        """Write one file's row (its own transaction) and return what was done."""
        size: int | None
        mtime: int | None
        if isinstance(stat, os.stat_result):
            size, mtime = stat.st_size, stat.st_mtime_ns
        else:
            size, mtime = stat if stat is not None else (None, None)
        with self._guard(), self._transaction():
            self._upsert_file(path, size, mtime, digest, settings_id, status, error)
        return IndexedFile(path, status, action, faces, error)

    def _add_batch(
        self, files: Sequence[tuple[str, Sequence[Face], str]], settings: str, engine: str
    ) -> int:
        with self._guard(), self._transaction():
            settings_id = self._entries.new_settings_id(settings)
            for path, faces, digest in files:
                self._insert(digest, settings, faces, engine)
                self._upsert_file(
                    os.path.abspath(path), None, None, digest, settings_id, _status(faces)
                )
        return len(files)

    def _upsert_file(
        self,
        path: str,
        size: int | None,
        mtime: int | None,
        digest: str | None,
        settings_id: int,
        status: Status,
        error: str | None = None,
    ) -> None:
        self._db.execute(
            "INSERT INTO files (path, size, mtime_ns, digest, settings, status, error, indexed)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET"
            " size = excluded.size, mtime_ns = excluded.mtime_ns, digest = excluded.digest,"
            " settings = excluded.settings, status = excluded.status,"
            " error = excluded.error, indexed = excluded.indexed",
            (path, size, mtime, digest, settings_id, status, error, time.time()),
        )

    def _record_known(
        self, path: str, info: os.stat_result, digest: str, settings_id: int, action: Action
    ) -> IndexedFile | None:
        """Record a file whose content is stored already; None if it is not.

        Looking and writing in one transaction: another process pruning orphaned
        faces at that moment either sees this file's row or has deleted them first.
        """
        with self._guard(), self._transaction():
            entry = self._db.execute(
                "SELECT id FROM entries WHERE digest = ? AND settings = ?", (digest, settings_id)
            ).fetchone()
            if entry is None:
                return None
            faces = self._db.execute(
                "SELECT COUNT(*) FROM faces WHERE entry = ?", (entry[0],)
            ).fetchone()[0]
            status: Status = "ok" if faces else "no_faces"
            self._upsert_file(path, info.st_size, info.st_mtime_ns, digest, settings_id, status)
        return IndexedFile(path, status, action, int(faces))

    def _record_again(self, path: str, info: os.stat_result, status: Status) -> IndexedFile:
        """A file whose size or mtime changed but not its content: new stat, same result."""
        with self._guard(), self._transaction():
            self._db.execute(
                "UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?",
                (info.st_size, info.st_mtime_ns, path),
            )
            row = self._db.execute(
                "SELECT error, (SELECT COUNT(*) FROM faces JOIN entries ON faces.entry = entries.id"
                " WHERE entries.digest = files.digest AND entries.settings = files.settings)"
                " FROM files WHERE path = ?",
                (path,),
            ).fetchone()
        return IndexedFile(path, status, "unchanged", int(row[1]), row[0])

    def _prune(
        self, roots: Sequence[str], seen: set[str], unreadable: Sequence[str] = ()
    ) -> Iterator[IndexedFile]:
        """Remove the rows of files under ``roots`` that were not found this time.

        Files under a folder that could not be listed (``unreadable``) are kept:
        they may well still be there.
        """
        prefixes = [os.path.join(os.path.abspath(r), "") for r in roots]
        exact = {os.path.abspath(r) for r in roots}
        kept = tuple(os.path.join(folder, "") for folder in unreadable)
        with self._guard():
            rows = self._db.execute("SELECT path, status FROM files").fetchall()
        gone = [
            (path, status)
            for path, status in rows
            if path not in seen
            and (path in exact or path.startswith(tuple(prefixes)))
            and not (kept and path.startswith(kept))
        ]
        for path, status in gone:
            with self._guard(), self._transaction():
                self._db.execute("DELETE FROM files WHERE path = ?", (path,))
            yield IndexedFile(path, status, "pruned")

    def _collect(self, before: float) -> int:
        """Drop stored faces that no file refers to, if stored before ``before``.

        Entries written since (by another process indexing now, whose file row
        may not be written yet) are left for a later run.
        """
        orphans = (
            "SELECT id FROM entries WHERE created < ? AND NOT EXISTS (SELECT 1 FROM files"
            " WHERE files.digest = entries.digest AND files.settings = entries.settings)"
        )
        with self._guard(), self._transaction():
            if self._has_table("assignments"):  # people's rows of the faces going away
                self._db.execute(
                    "DELETE FROM assignments WHERE face IN (SELECT id FROM faces WHERE entry IN"
                    f" ({orphans}))",
                    (before,),
                )
            self._db.execute(f"DELETE FROM faces WHERE entry IN ({orphans})", (before,))
            count = self._db.execute(f"DELETE FROM entries WHERE id IN ({orphans})", (before,))
        return count.rowcount

    def _has_table(self, name: str) -> bool:
        return _exists(self._db, name)

    # --- reading ---------------------------------------------------------------------

    def faces(self) -> LibraryFaces:
        """Every face of every indexed file, ordered by path then face number.

        Raises LibraryError if a face fails its checksum (a damaged file).
        """
        matrix, paths_by_id, _ = self._matrix(paths=True)
        try:
            paths = [paths_by_id[i] for i in matrix.files.tolist()]
        except KeyError:  # a snapshot that does not fit its library: never an answer
            log.warning("the library's snapshot names files it does not have; reading the library")
            self._mapped = None
            matrix, paths_by_id, _ = self._matrix(paths=True, snapshot=False)
            paths = [paths_by_id[i] for i in matrix.files.tolist()]
        return LibraryFaces(matrix.ids, paths, matrix.boxes, matrix.embeddings)

    def _matrix(
        self, *, paths: bool = False, snapshot: bool = True
    ) -> tuple[FaceMatrix, dict[int, str], str]:
        """The faces as matrices: from the snapshot if it is of the library as it is
        now, else from SQLite (then written as the snapshot, when there are enough);
        with ``paths``, each file id's path too (else an empty dict), read in the same
        transaction; and the generation they are of."""
        paths_by_id: dict[int, str] = {}
        with self._guard():
            self._db.execute("BEGIN")  # one read snapshot for the generation and the rows
            try:
                generation = self._generation()
                matrix = self._snapshot(generation) if snapshot else None
                loaded = matrix is None
                if matrix is None:
                    matrix = self._read_faces()
                if paths:
                    paths_by_id = dict(
                        self._db.execute("SELECT id, path FROM files WHERE status = 'ok'")
                    )
            finally:
                self._db.execute("COMMIT")
        if loaded and len(matrix.ids) >= SNAPSHOT_MIN_FACES:
            self._write_snapshot(matrix, generation)
        return matrix, paths_by_id, generation

    def _generation(self) -> str:
        """This library's identity and the token of its latest change (see ``_TRIGGERS``)."""
        rows = dict(
            self._db.execute(
                "SELECT key, value FROM meta WHERE key IN ('library_id', 'generation')"
            ).fetchall()
        )
        return f"{rows['library_id']}:{rows['generation']}"

    def _snapshot(self, generation: str) -> FaceMatrix | None:
        """The snapshot if it is of ``generation`` (``read_snapshot``), mapped and
        CRC-checked once per open library and generation, not once per reader: an
        index run's cells, ``faces()`` and ``stored_index`` read the same one (its
        CRC is a second at ten million faces)."""
        if self._mapped is None or self._mapped[0] != generation:
            matrix = read_snapshot(snapshot_path(self.path), generation)
            if matrix is None:
                return None
            self._mapped = generation, matrix
        return self._mapped[1]

    def _write_snapshot(self, matrix: FaceMatrix, generation: str) -> None:
        self._mapped = None  # the file is made again, whatever generation it had
        try:
            write_snapshot(snapshot_path(self.path), matrix, generation)
        except OSError as exc:  # a read-only folder, a full disk: slower next time, not wrong
            log.debug("cannot write the library's snapshot: %s", exc)

    def refresh_snapshot(self) -> None:
        """Write the snapshot now if it is stale and the library is large enough for one,
        and the search cells (``facematch.store.face_index``) if it is large enough
        for them (after an index run, so that the next search opens fast)."""
        with self._guard():
            count = self._db.execute(f"SELECT COUNT(*){_JOINED}").fetchone()[0]
            generation = self._generation()
        where = snapshot_path(self.path)
        if count < SNAPSHOT_MIN_FACES:
            remove_beside(where)
        elif snapshot_generation(where) != generation:
            self._matrix()
        cells = index_path(self.path)
        if not _keeps_cells(count):
            remove_beside(cells)
        elif cells_generation(cells) != generation:
            self._refresh_cells(cells)

    def _refresh_cells(self, where: Path) -> None:
        """Bring the search cells up to the library as it is now (incrementally)."""
        matrix, _, generation = self._matrix()
        previous = read_cells(where, generation, any_state=True)
        stored, done = updated_cells(previous, matrix)
        try:
            write_cells(where, stored, generation)
        except OSError as exc:  # a read-only folder, a full disk: searches are exact, not wrong
            log.warning("cannot write the library's search cells %s: %s", where, exc)
            return
        log.info("facematch: the library's search cells: %s", done)

    def stored_index(
        self, faces: LibraryFaces, rows: ArrayLike, embeddings: NDArray[np.float32]
    ) -> FaissIndex | None:
        """The stored search cells as an index over ``embeddings``, the rows ``rows``
        of ``faces`` (as ``faces()`` gave them; any subset, in any order), when the
        library keeps cells and they are of the state ``faces`` were read at; else
        None. For the clusterer's graph, which then trains no index of its own."""
        if not _keeps_cells(len(faces.ids)):
            return None
        # Read as it is (the caller may hold a write transaction: People.update does).
        with self._guard():
            generation = self._generation()
        matrix = self._snapshot(generation)
        if matrix is None or not np.array_equal(matrix.ids, faces.ids):
            return None  # changed since: the faces are not the rows the cells were made of
        keys = row_keys(matrix)[np.asarray(rows, dtype=np.intp)]
        return self._over_cells(embeddings, keys, generation)

    def _over_cells(
        self, rows: NDArray[np.float32], keys: NDArray[np.int64], generation: str
    ) -> FaissIndex | None:
        """An index over ``rows`` (whose keys are ``keys``) searching the stored cells,
        if there are cells of ``generation``; else None."""
        stored = read_cells(index_path(self.path), generation)
        return None if stored is None else FaissIndex.keyed(rows, stored.cells, keys)

    def _search_index(self, matrix: FaceMatrix, generation: str) -> NeighbourIndex:
        """The stored search cells over the snapshot's rows when they are of this
        generation, else an index made here (exact below ``ANN_MIN_ROWS``)."""
        if _keeps_cells(len(matrix.ids)):
            index = self._over_cells(matrix.embeddings, row_keys(matrix), generation)
            if index is not None:
                return index
            if cells_generation(index_path(self.path)) != generation:  # (damaged: said so)
                log.warning(
                    "the library's search cells are missing or out of date: searching "
                    "exactly, which is slower (facematch index brings them up to date)"
                )
        return make_index(matrix.embeddings)

    def _read_faces(self) -> FaceMatrix:
        """The faces from SQLite, checksums checked (inside the caller's read transaction)."""
        count = self._db.execute(f"SELECT COUNT(*){_JOINED}").fetchone()[0]
        ids = np.empty(count, dtype=np.int64)
        file_ids = np.empty(count, dtype=np.int64)
        boxes = np.empty((count, 4), dtype=np.int64)
        embeddings = np.empty((count, DIM), dtype=np.float32)
        checksums = np.empty(count, dtype=np.int64)
        cursor = self._db.execute(
            "SELECT fa.id, fi.id, fa.top, fa.right, fa.bottom, fa.left, fa.embedding,"
            f" fa.checksum{_JOINED} ORDER BY fi.path, fa.face"
        )
        done = 0
        # A chunk at a time into preallocated arrays: a million faces fit in
        # little more than their float32 matrix.
        while rows := cursor.fetchmany(CHECK_ROWS):
            part = slice(done, done + len(rows))
            columns = list(zip(*rows, strict=True))
            ids[part] = columns[0]
            file_ids[part] = columns[1]
            boxes[part] = np.array(columns[2:6], dtype=np.int64).T
            embeddings[part] = embeddings_from_blobs(columns[6])
            checksums[part] = columns[7]
            done += len(rows)
        if not np.array_equal(face_checksums(boxes, embeddings), checksums):
            raise LibraryError(f"{self.path} is damaged (a face fails its checksum)")
        return FaceMatrix(ids, file_ids, boxes.astype(np.int32), embeddings)

    def search(
        self, queries: ArrayLike, tolerance: float, top: int | None = None
    ) -> list[SearchHit]:
        """Library faces within ``tolerance`` of the query person, nearest first.

        ``queries`` are one or more embeddings of the same person (rows); a face's
        distance is that to the nearest of them. ``top`` keeps at most that many.
        Ties go to the path (then face) first in sorted order. The faces and their
        index are loaded on the first search and kept for the next ones. A hit whose
        face is in a named person (``facematch.store.people``) carries that name.
        """
        if self._searchable is None:
            matrix, _, generation = self._matrix()
            # The index keeps the float32 matrix itself (no second copy).
            self._searchable = matrix, self._search_index(matrix, generation)
        matrix, index = self._searchable
        # The queries as the rows are stored (float32): a face's distance to the same
        # face in the library is then exactly 0, and such ties go by path, not by
        # the last bits of the float64 query (which differ from one CPU to another).
        stored = np.asarray(queries, dtype=np.float32).astype(np.float64)
        distances, rows = nearest_to_any(index, stored, tolerance, top)
        owners = matrix.files[rows].tolist()  # each hit's file id
        face_ids = matrix.ids[rows].tolist()
        with self._guard():
            paths = self._lookup("SELECT id, path FROM files WHERE id IN", owners)
            names = (
                self._lookup(
                    "SELECT a.face, p.name FROM assignments a JOIN people p"
                    " ON p.number = a.person WHERE p.name IS NOT NULL AND a.face IN",
                    face_ids,
                )
                if self._has_table("assignments") and self._has_table("people")
                else {}
            )
        return [
            SearchHit(
                paths[owner],
                FaceBox(*map(int, matrix.boxes[r])),
                float(d),
                face,
                names.get(face),
            )
            for d, r, owner, face in zip(distances, rows, owners, face_ids, strict=True)
            if owner in paths  # not removed since the faces were read
        ]

    def _lookup(self, query: str, keys: Iterable[int]) -> dict[int, Any]:
        """``query`` (ending ``... IN``, selecting key and value) for many keys, 500 at a
        time (SQLite's limit on parameters is lower than a search's hits)."""
        wanted = sorted(set(keys))
        found: dict[int, Any] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            found.update(self._db.execute(f"{query} ({','.join('?' * len(part))})", part))
        return found

    def photos(self) -> list[tuple[str, str, int]]:
        """(path, content digest, settings id) of every file indexed with or without faces:
        what a file's faces are (they change when either does)."""
        with self._guard():
            rows = self._db.execute(
                "SELECT path, digest, settings FROM files WHERE status IN ('ok', 'no_faces')"
                " ORDER BY path"
            ).fetchall()
        return [(str(p), str(d), int(s)) for p, d, s in rows]

    def file_faces(self, path: str) -> list[tuple[int, FaceBox]]:
        """The id and box of each face of the indexed file at ``path``, by face number."""
        with self._guard():
            rows = self._db.execute(
                "SELECT fa.id, fa.top, fa.right, fa.bottom, fa.left FROM files fi"
                " JOIN entries e ON e.digest = fi.digest AND e.settings = fi.settings"
                " JOIN faces fa ON fa.entry = e.id WHERE fi.path = ? AND fi.status = 'ok'"
                " ORDER BY fa.face",
                (path,),
            ).fetchall()
        return [(int(row[0]), FaceBox(*map(int, row[1:]))) for row in rows]

    def encoded(self, paths: Iterable[str]) -> Iterator[tuple[str, Encoded | None]]:
        """For each path, its stored faces as an ``Encoded``; None if not indexed or stale.

        Stale: its size or mtime is not what was indexed (it changed since).
        """
        from facematch.records import Encoded

        with self._guard():
            stored = {
                row[0]: row[1:]
                for row in self._db.execute(
                    "SELECT fi.path, fi.size, fi.mtime_ns, fi.digest, s.key, fi.status, fi.error"
                    " FROM files fi JOIN settings s ON s.id = fi.settings"
                )
            }
        for path in paths:
            row = stored.get(os.path.abspath(path))
            if row is None:
                yield path, None
                continue
            size, mtime, digest, key, status, error = row
            try:
                info = os.stat(path)
            except OSError:
                yield path, None
                continue
            if (info.st_size, info.st_mtime_ns) != (size, mtime):
                yield path, None
            elif status == "error":
                yield path, Encoded(path, error=error)
            else:
                faces = self.get(digest, key)
                if faces is None:
                    raise LibraryError(f"{self.path} is damaged (a file's faces are missing)")
                yield path, Encoded(path, tuple(faces))

    def stored(self, found: Sequence[Found]) -> tuple[list[Found], list[Encoded]]:
        """Inputs with their stored faces, for matching without encoding anything.

        Returns the inputs again, where one that is not indexed (or changed since
        it was) now has that as its problem, and the stored ``Encoded`` of the
        others, in order: what ``pipeline.match`` takes as ``unknown`` and ``encoded``.
        """
        readable = [f for f in found if f.problem is None]
        stored = dict(self.encoded(f.path for f in readable))
        inputs: list[Found] = []
        encoded: list[Encoded] = []
        for item in found:
            image = stored.get(item.path) if item.problem is None else None
            if item.problem is None and image is None:
                item = Found(item.path, NOT_INDEXED)
            inputs.append(item)
            if image is not None:
                encoded.append(image)
        return inputs, encoded

    def info(self) -> dict[str, Any]:
        """Where the library is, its size, and how many files (by status) and faces it holds."""
        with self._guard():
            statuses = dict(
                self._db.execute("SELECT status, COUNT(*) FROM files GROUP BY status").fetchall()
            )
            faces = self._db.execute(
                "SELECT COUNT(*) FROM files fi"
                " JOIN entries e ON e.digest = fi.digest AND e.settings = fi.settings"
                " JOIN faces fa ON fa.entry = e.id WHERE fi.status = 'ok'"
            ).fetchone()[0]
            settings = [
                {"settings": key, "files": count}
                for key, count in self._db.execute(
                    "SELECT s.key, COUNT(*) FROM files fi JOIN settings s ON s.id = fi.settings"
                    " GROUP BY s.key ORDER BY COUNT(*) DESC"
                )
            ]
            schema = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
        size = sum(
            Path(str(self.path) + suffix).stat().st_size
            for suffix in ("", "-wal", "-shm", SUFFIX)
            if Path(str(self.path) + suffix).exists()
        )
        return {
            "path": str(self.path.absolute()),
            "schema": int(schema),
            "files": sum(statuses.values()),
            "ok": statuses.get("ok", 0),
            "no_faces": statuses.get("no_faces", 0),
            "error": statuses.get("error", 0),
            "faces": int(faces),
            "bytes": size,
            "settings": settings,
        }


def _keeps_cells(faces: int) -> bool:
    """Whether a library of this many faces keeps search cells (``face_index``)."""
    return faces >= ANN_MIN_ROWS and faiss_available()


def stored_status(db: sqlite3.Connection, path: str) -> tuple[Status, str | None]:
    """A recorded file's status and error."""
    row = db.execute("SELECT status, error FROM files WHERE path = ?", (path,)).fetchone()
    return (row[0], row[1]) if row is not None else ("error", "not recorded")


def _status(faces: Sequence[Face]) -> Status:
    return "ok" if faces else "no_faces"


__all__ = [
    "ENV_VAR",
    "FileRow",
    "IndexedFile",
    "Library",
    "LibraryFaces",
    "SearchHit",
    "default_library_path",
    "resolve_library_path",
]
