"""People found by clustering, kept in the library file: numbers, names and corrections.

These tables live beside the library's own, created on its connection::

    people       number (person_N), name, named_by ('user', 'xmp', 'known' or 'none'),
                 merged_into (the person a user merged this one into, else NULL)
    assignments  face (the library's faces.id) -> person (NULL: in no group; moved out
                 by the user if fixed), fixed (1 when the user put it there)
    corrections  every user correction as it was made: kind ('name', 'merge', 'move'),
                 person, other, face, name, when
    xmp_files    path -> state: what was read of a photo's XMP (its content and settings,
                 its sidecars' size and mtime), so that it is read again only once changed
    xmp_names    path, face -> name: the faces its XMP face regions named

Names from XMP (:meth:`People.take_xmp_names`, what ``index`` reads from photo managers'
face regions) put each named face in the person of that name, made if need be
(``named_by`` 'xmp'), so that the clustering starts from them: the face is a seed.

An update (:func:`update`) keeps every assigned face where it is: its person is a seed
of the clustering, so old people only gain faces, keep their number and their name, and
two old people never merge on their own. Only the new faces look for neighbours (among
all faces), so an update costs in proportion to what is new: they join old people or
each other, and can bring in faces an earlier run left in no group (those have an
``assignments`` row with no person, so they are not searched again). New groups get the
next numbers, largest first (on the first run that makes ``person_1`` the largest
group). A face the user moved out of a group is not clustered again. Corrections
rewrite the assignments at once, so they hold in every later run. The library's ``meta``
table keeps the clustering settings of the last run (``cluster_settings``): when they
change, the faces in no group are searched again.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Hashable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from facematch.errors import UsageError
from facematch.records import PREFIX, UNCLUSTERED, FaceBox, FaceRow, LibraryFaces, NamedBy
from facematch.store.library import PEOPLE_TABLE, Library

log = logging.getLogger("facematch")

SETTINGS_KEY = "cluster_settings"  # in the library's meta table: the last run's FaceClusterer

SCHEMA = (
    PEOPLE_TABLE,
    "CREATE TABLE IF NOT EXISTS assignments ("
    " face INTEGER PRIMARY KEY, person INTEGER REFERENCES people(number),"
    " fixed INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS assignments_person ON assignments (person)",
    "CREATE TABLE IF NOT EXISTS corrections ("
    " id INTEGER PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('name', 'merge', 'move')),"
    " person INTEGER, other INTEGER, face INTEGER, name TEXT, made REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS xmp_files (path TEXT PRIMARY KEY, state TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS xmp_names ("
    " path TEXT NOT NULL, face INTEGER NOT NULL, name TEXT NOT NULL, PRIMARY KEY (path, face))",
)

# Who wins when people merge: a name you gave, then one from XMP (the others are made
# again by every run that names by a known folder).
_NAME_RANK = {"user": 2, "xmp": 1}


UNCLUSTERED_FOLDER = "unclustered"
"""The ``cluster --out`` folder of the faces in no group (so a name cannot make it)."""


def safe_name(name: str) -> str:
    """A name made safe as a folder name: letters, digits and `` ._-``, others ``_``."""
    return "".join(c if c.isalnum() or c in " ._-" else "_" for c in name).strip(" .")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a person's name, or None: a blank name, or one whose folder
    would be ``unclustered`` or ``person_N`` (in any case) and so collide with those."""
    if not name.strip():
        return "a person's name cannot be empty"
    folder = safe_name(name).casefold()
    if folder == UNCLUSTERED_FOLDER:
        return f"{name!r} cannot be a name: {UNCLUSTERED_FOLDER} holds the faces in no group"
    if folder.startswith(PREFIX) and folder[len(PREFIX) :].isdigit():
        return f"{name!r} cannot be a name: {PREFIX}N is for people without one"
    return None


def _named(people: Mapping[int, tuple[str | None, NamedBy]], person: int | None, name: str) -> bool:
    """Whether ``person`` is one of ``people`` and named ``name`` (in any case)."""
    if person is None or person not in people:
        return False
    own = people[person][0]
    return own is not None and own.casefold() == name.casefold()


class Clusterer(Protocol):
    """What ``People.update`` needs of a clusterer (``matching.cluster.FaceClusterer``)."""

    def get_params(self) -> dict[str, float]: ...

    def fit_predict(
        self,
        embeddings: Any,
        photos: Sequence[Hashable] | None = None,
        keys: Sequence[Any] | None = None,
        seeds: Any = None,
        searched: Any = None,
        index: Any = None,
    ) -> NDArray[np.int64]: ...


class People:
    """The people tables of one open library."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self.db = library.connection
        with self._write():
            for statement in SCHEMA:
                self.db.execute(statement)

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        """One transaction holding the write lock: another run waits, never interleaves."""
        return self.library.write()

    # --- reading ---------------------------------------------------------------------

    def face_keys(self, ids: Sequence[int]) -> dict[int, tuple[str, int]]:
        """Each face id's (content digest, face number): its key for ordering and its photo."""
        rows = self.db.execute(
            "SELECT fa.id, e.digest, fa.face FROM faces fa JOIN entries e ON e.id = fa.entry"
        ).fetchall()
        wanted = set(ids)
        return {int(i): (str(d), int(f)) for i, d, f in rows if i in wanted}

    def face_id(self, path: str, face: int) -> int | None:
        """The library's id of face number ``face`` of the file at ``path``."""
        row = self.db.execute(
            "SELECT fa.id FROM files fi JOIN entries e"
            " ON e.digest = fi.digest AND e.settings = fi.settings"
            " JOIN faces fa ON fa.entry = e.id WHERE fi.path = ? AND fa.face = ?",
            (path, face),
        ).fetchone()
        return None if row is None else int(row[0])

    def assignments(self) -> dict[int, tuple[int | None, bool]]:
        rows = self.db.execute("SELECT face, person, fixed FROM assignments").fetchall()
        return {int(f): (p, bool(x)) for f, p, x in rows}

    def people(self) -> dict[int, tuple[str | None, NamedBy]]:
        rows = self.db.execute(
            "SELECT number, name, named_by FROM people WHERE merged_into IS NULL"
        ).fetchall()
        return {int(n): (name, by) for n, name, by in rows}

    def resolve(self, person: str) -> int:
        """A person by ``person_N`` or by name."""
        current = self.people()
        if person.startswith(PREFIX) and person[len(PREFIX) :].isdigit():
            number = int(person[len(PREFIX) :])
            merged = self.db.execute(
                "SELECT merged_into FROM people WHERE number = ?", (number,)
            ).fetchone()
            while merged is not None and merged[0] is not None:
                number = int(merged[0])
                merged = self.db.execute(
                    "SELECT merged_into FROM people WHERE number = ?", (number,)
                ).fetchone()
            if number in current:
                return number
        named = [n for n, (name, _) in current.items() if name == person]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            raise UsageError(f"{len(named)} people are named {person!r}; use their person_N")
        raise UsageError(f"no person {person!r} (run facematch cluster first?)")

    # --- clustering --------------------------------------------------------------------

    def update(
        self, faces: LibraryFaces, clusterer: Clusterer
    ) -> tuple[list[FaceRow], frozenset[int]]:
        """Cluster what is new around what is assigned; store and return every face's row,
        and the numbers of the people made.

        The whole update holds the library's write lock, so two runs cannot both number
        new people.
        """
        with self._write():
            made = self._update(faces, clusterer)
        return self.rows(faces), made

    def _update(self, faces: LibraryFaces, clusterer: Clusterer) -> frozenset[int]:
        db = self.db
        unique_ids, first_row = np.unique(faces.ids, return_index=True)
        ids = [int(i) for i in unique_ids]
        keys = self.face_keys(ids)
        assigned = self.assignments()
        present = set(ids)
        clustered = [
            i for i, face_id in enumerate(ids) if not assigned.get(face_id, (None, False))[1]
        ]
        seeds = np.array(
            [assigned.get(ids[i], (None, False))[0] or UNCLUSTERED for i in clustered],
            dtype=np.int64,
        )
        embeddings = faces.embeddings[first_row[clustered]]
        # Faces an earlier run left in no group are searched again only when the
        # clustering settings changed since (--min-faces, say).
        settings = json.dumps(clusterer.get_params(), sort_keys=True)
        stored = db.execute("SELECT value FROM meta WHERE key = ?", (SETTINGS_KEY,)).fetchone()
        same_settings = stored is not None and stored[0] == settings
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (SETTINGS_KEY, settings)
        )
        labels = clusterer.fit_predict(
            embeddings,
            photos=[keys[ids[i]][0] for i in clustered],
            keys=[keys[ids[i]] for i in clustered],
            seeds=seeds,
            searched=[same_settings and ids[i] in assigned for i in clustered],
            # The library's search cells, when current: the graph need not train its own.
            index=self.library.stored_index(faces, first_row[clustered], embeddings),
        )
        gone = [f for f in assigned if f not in present]
        db.executemany("DELETE FROM assignments WHERE face = ?", [(f,) for f in gone])
        number = int(db.execute("SELECT COALESCE(MAX(number), 0) FROM people").fetchone()[0])
        person_of_label: dict[int, int] = {}
        for label, seed in zip(labels, seeds, strict=True):
            if label != UNCLUSTERED and seed != UNCLUSTERED:
                person_of_label[int(label)] = int(seed)
        made = []
        for label in range(int(labels.max(initial=-1)) + 1):  # largest new group first
            if label not in person_of_label:
                number += 1
                made.append(number)
                person_of_label[label] = number
                db.execute("INSERT INTO people (number) VALUES (?)", (number,))
        db.executemany(  # a face in no group gets a row too: it has been searched
            "INSERT OR REPLACE INTO assignments (face, person, fixed) VALUES (?, ?, 0)",
            [
                (ids[i], None if label == UNCLUSTERED else person_of_label[int(label)])
                for i, label, seed in zip(clustered, labels, seeds, strict=True)
                if seed == UNCLUSTERED
            ],
        )
        return frozenset(made)

    def rows(self, faces: LibraryFaces) -> list[FaceRow]:
        """One row per face and path, sorted by path then face number."""
        keys = self.face_keys([int(i) for i in faces.ids])
        assigned = self.assignments()
        people = self.people()
        rows = []
        for i, face_id in enumerate(int(f) for f in faces.ids):
            person = assigned.get(face_id, (None, False))[0]
            name, named_by = (
                people.get(person, (None, "none"))
                if person is not None
                else (
                    None,
                    "none",
                )
            )
            rows.append(
                FaceRow(
                    faces.paths[i],
                    keys[face_id][1],
                    FaceBox(*(int(v) for v in faces.boxes[i])),
                    face_id,
                    person,
                    name,
                    named_by,
                )
            )
        rows.sort(key=lambda r: (r.path, r.face))
        return rows

    def name_by_known(self, names: dict[int, str]) -> None:
        """Name people ``known`` (never over a user's name); drop stale ``known`` names."""
        with self._write() as db:
            db.execute("UPDATE people SET name = NULL, named_by = 'none' WHERE named_by = 'known'")
            db.executemany(
                "UPDATE people SET name = ?, named_by = 'known' "
                "WHERE number = ? AND named_by = 'none'",
                [(name, number) for number, name in names.items()],
            )

    # --- names from photos' XMP ---------------------------------------------------------

    def xmp_read(self) -> dict[str, str]:
        """What was read of each photo's XMP (path -> state, see ``take_xmp_names``); the
        rows of photos no longer in the library are dropped first."""
        with self._write() as db:
            for table in ("xmp_files", "xmp_names"):
                db.execute(f"DELETE FROM {table} WHERE path NOT IN (SELECT path FROM files)")
            rows = db.execute("SELECT path, state FROM xmp_files").fetchall()
        return {str(path): str(state) for path, state in rows}

    def take_xmp_names(self, path: str, state: str, named: Mapping[int, str]) -> list[int]:
        """Put the faces of the photo at ``path`` that its XMP names (face id -> name) in
        the people of those names, and record ``state`` (what was read) as its XMP's.

        A face goes to the person of its name (in any case; the lowest number if
        several), else its own person takes the name if it has none, else a new person
        of that name is made (``named_by`` 'xmp'; a known folder's name of the same
        person becomes 'xmp' too). A face you moved (``cluster move``) stays where you
        put it: those are returned. A face whose name is gone from the XMP since it was
        last read leaves the person of that name, for the next clustering to place.
        """
        kept: list[int] = []
        with self._write() as db:
            assigned = self.assignments()
            people = self.people()
            before = db.execute("SELECT face, name FROM xmp_names WHERE path = ?", (path,))
            for face, name in before.fetchall():
                person, fixed = assigned.get(int(face), (None, False))
                if face not in named and not fixed and _named(people, person, name):
                    db.execute("DELETE FROM assignments WHERE face = ?", (face,))
            db.execute("DELETE FROM xmp_names WHERE path = ?", (path,))
            for face, name in sorted(named.items()):
                db.execute("INSERT INTO xmp_names VALUES (?, ?, ?)", (path, face, name))
                person, fixed = assigned.get(face, (None, False))
                if fixed:
                    kept.append(face)
                    continue
                person = self._xmp_person(db, name, person, people)
                db.execute(
                    "INSERT OR REPLACE INTO assignments (face, person, fixed) VALUES (?, ?, 0)",
                    (face, person),
                )
            db.execute("INSERT OR REPLACE INTO xmp_files VALUES (?, ?)", (path, state))
        return kept

    @staticmethod
    def _xmp_person(
        db: sqlite3.Connection,
        name: str,
        current: int | None,
        people: dict[int, tuple[str | None, NamedBy]],
    ) -> int:
        """The person a face named ``name`` by XMP goes to (see ``take_xmp_names``), named
        or made if need be; ``people`` is kept up to date."""
        if _named(people, current, name):
            assert current is not None
            return current
        same = sorted(n for n in people if _named(people, n, name))
        if same:
            number = same[0]
            if people[number][1] == "known":  # a tag confirms the known folder's guess
                db.execute("UPDATE people SET named_by = 'xmp' WHERE number = ?", (number,))
                people[number] = (people[number][0], "xmp")
            return number
        if current is not None and people.get(current, ("", "none"))[0] is None:
            db.execute(
                "UPDATE people SET name = ?, named_by = 'xmp' WHERE number = ?", (name, current)
            )
            people[current] = (name, "xmp")
            return current
        number = int(db.execute("SELECT COALESCE(MAX(number), 0) FROM people").fetchone()[0]) + 1
        db.execute(
            "INSERT INTO people (number, name, named_by) VALUES (?, ?, 'xmp')", (number, name)
        )
        people[number] = (name, "xmp")
        return number

    # --- corrections -------------------------------------------------------------------

    def name(self, person: str, name: str) -> int:
        """Give ``person`` a name (a UsageError for one that would collide, see
        ``name_problem``); returns their number."""
        problem = name_problem(name)
        if problem is not None:
            raise UsageError(problem)
        number = self.resolve(person)
        with self._write() as db:
            db.execute(
                "UPDATE people SET name = ?, named_by = 'user' WHERE number = ?", (name, number)
            )
            self._record(db, "name", person=number, name=name)
        return number

    def merge(self, person: str, into: str) -> int:
        """Move every face of ``person`` into ``into``; the first keeps only its number."""
        source, target = self.resolve(person), self.resolve(into)
        if source == target:
            raise UsageError(f"{person} and {into} are the same person")
        with self._write() as db:
            db.execute("UPDATE assignments SET person = ? WHERE person = ?", (target, source))
            db.execute("UPDATE people SET merged_into = ? WHERE number = ?", (target, source))
            names = dict(
                db.execute(
                    "SELECT number, named_by FROM people WHERE number IN (?, ?)", (source, target)
                ).fetchall()
            )
            if _NAME_RANK.get(names[source], 0) > _NAME_RANK.get(names[target], 0):
                db.execute(  # a name you gave (or a photo's XMP) carries over
                    "UPDATE people SET (name, named_by) = (SELECT name, named_by FROM people"
                    " WHERE number = ?) WHERE number = ?",
                    (source, target),
                )
            self._record(db, "merge", person=source, other=target)
        return target

    def move(self, face_id: int, to: str | None) -> int | None:
        """Put one face in another person (``to``) or in nobody (None), for good."""
        target = self.resolve(to) if to is not None else None
        with self._write() as db:
            before = db.execute("SELECT person FROM assignments WHERE face = ?", (face_id,))
            row = before.fetchone()
            db.execute(
                "INSERT OR REPLACE INTO assignments (face, person, fixed) VALUES (?, ?, 1)",
                (face_id, target),
            )
            self._record(
                db, "move", person=None if row is None else row[0], other=target, face=face_id
            )
        return target

    def _record(
        self,
        db: sqlite3.Connection,
        kind: str,
        *,
        person: int | None = None,
        other: int | None = None,
        face: int | None = None,
        name: str | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO corrections (kind, person, other, face, name, made)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (kind, person, other, face, name, time.time()),
        )
