"""The known people: which photos belong to whom, and nearest-person search.

Search goes through the shared nearest-neighbour component
(``facematch.neighbours.index``): the known faces are one float32 matrix searched in
BLAS batches, so 10,000 or a million known faces cost milliseconds per unknown face.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facematch.errors import UsageError
from facematch.matching import calibration
from facematch.neighbours.exact import ExactIndex, nearest_people
from facematch.records import KnownFace, Match
from facematch.sources.images import file_problem, is_image_name, iter_folder, visible_entries


@dataclass(frozen=True)
class KnownPhoto:
    """One photo of a known person, or a path in the known folder we cannot use."""

    name: str
    path: str
    problem: str | None = None


def known_photos(known_dir: str) -> list[KnownPhoto]:
    """Photos of known people: a file is a person, a subfolder is a person's photos.

    ``Barack Obama.jpg`` is Barack Obama; ``Joe Biden/a.jpg`` and
    ``Joe Biden/b.png`` are two photos of Joe Biden. Both layouts can be mixed,
    and a file and a folder with the same name are the same person.
    """
    if not os.path.exists(known_dir):
        raise UsageError(f"known folder not found: {known_dir}")
    if not os.path.isdir(known_dir):
        raise UsageError(f"KNOWN must be a folder of photos, not a file: {known_dir}")
    photos: list[KnownPhoto] = []
    try:
        entries = visible_entries(known_dir)
    except OSError as exc:
        raise UsageError(f"cannot read the known folder {known_dir}: {exc.strerror}") from None
    for entry in entries:
        path = os.path.join(known_dir, entry.name)
        if os.path.isdir(path):
            photos.extend(
                KnownPhoto(entry.name, found.path, found.problem)
                for found in iter_folder(path, recursive=True)
            )
        elif is_image_name(Path(entry.name)):
            photos.append(KnownPhoto(Path(entry.name).stem, path, file_problem(path)))
    if not photos:
        raise UsageError(f"no images in the known folder: {known_dir}")
    return photos


@dataclass(frozen=True)
class Nearest:
    """The people nearest to one face: who is within tolerance, the best and the runner-up."""

    within: tuple[Match, ...]
    best: Match | None
    runner_up: Match | None
    tolerance: float  # the one this face was judged with


@dataclass(frozen=True, eq=False)
class Gallery:
    """Known faces as one matrix; a person's distance is the minimum over their photos."""

    names: tuple[str, ...]
    embeddings: NDArray[np.float64] = field(repr=False)
    owners: NDArray[np.intp] = field(repr=False)
    # One per row of ``embeddings`` when known (built from photos), else empty.
    sources: tuple[KnownFace, ...] = field(default=(), repr=False)

    @classmethod
    def from_faces(
        cls,
        labelled: Sequence[tuple[str, NDArray[np.float64]]],
        sources: Sequence[KnownFace] = (),
    ) -> Gallery:
        """Build from (person name, embedding) pairs; several per person are fine.

        ``sources``, if given, says for each pair which photo and box it came from.
        """
        names = tuple(sorted({name for name, _ in labelled}))
        index = {name: i for i, name in enumerate(names)}
        embeddings = np.array([e for _, e in labelled], dtype=np.float64).reshape(-1, 128)
        owners = np.array([index[name] for name, _ in labelled], dtype=np.intp)
        if sources and len(sources) != len(labelled):
            raise ValueError("sources must name one photo per labelled face")
        return cls(names, embeddings, owners, tuple(sources))

    def nearest_photo(self, embedding: NDArray[np.float64], name: str) -> KnownFace | None:
        """The photo of ``name`` nearest to a face, when the gallery knows its photos."""
        person = self._person_index.get(name)
        if not self.sources or person is None:
            return None
        start, end = self._person_bounds[person], self._person_bounds[person + 1]
        rows = self._rows_by_person[start:end]
        distances = np.linalg.norm(self.embeddings[rows] - embedding, axis=1)
        return self.sources[int(rows[np.argmin(distances)])]

    @cached_property
    def _person_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    @cached_property
    def _rows_by_person(self) -> NDArray[np.intp]:
        """Photo rows grouped by person (row order kept within a person)."""
        return np.argsort(self.owners, kind="stable")

    @cached_property
    def _person_bounds(self) -> NDArray[np.intp]:
        """Where each person's rows start in ``_rows_by_person`` (and where the last ends)."""
        return np.searchsorted(self.owners[self._rows_by_person], np.arange(len(self.names) + 1))

    @cached_property
    def index(self) -> ExactIndex:
        """The known faces in the shared nearest-neighbour index (built on first use)."""
        index = ExactIndex(self.embeddings.shape[1])
        index.add(self.embeddings)
        return index

    @cached_property
    def _spread(self) -> tuple[NDArray[np.float64], float]:
        """How crowded each person's part of face space is, and the gallery's median.

        A photo's spread is its mean distance to its ``LOCAL_PEOPLE`` nearest
        other people; a person's is the mean over their photos.
        """
        wanted = calibration.LOCAL_PEOPLE
        distances, people = nearest_people(self.index, self.owners, self.embeddings, k=wanted + 1)
        others = people != self.owners[:, None]
        keep = others & (np.cumsum(others, axis=1) <= wanted)
        photo = (distances * keep).sum(1) / np.maximum(keep.sum(1), 1)
        total = np.bincount(self.owners, photo, len(self.names)).astype(np.float64)
        count = np.maximum(np.bincount(self.owners, minlength=len(self.names)), 1)
        return total / count, float(np.median(photo))

    def nearest(
        self,
        embeddings: NDArray[np.float64],
        tolerance: float,
        all_matches: bool = False,
        local: bool = False,
    ) -> list[Nearest]:
        """For each face (row), the nearest person and runner-up, and who is within tolerance.

        ``within`` holds every person within tolerance, nearest first, with
        ``all_matches``; otherwise at most the best one. Ties go to the name first
        in sorted order, as in ``ranked``. With ``local`` (``--tolerance auto``),
        each face's tolerance is adapted to its neighbourhood
        (``calibration.local_tolerances``) in galleries of at least
        ``calibration.LOCAL_MIN_PEOPLE`` people.
        """
        queries = np.asarray(embeddings, dtype=np.float64).reshape(-1, self.embeddings.shape[1])
        local = local and len(self.names) >= calibration.LOCAL_MIN_PEOPLE
        k = calibration.LOCAL_PEOPLE + 1 if local else 2
        distances, people = nearest_people(self.index, self.owners, queries, k=k)
        tolerances = np.full(len(queries), tolerance)
        if local and len(queries):
            named_spread, usual = self._spread
            face_spread = distances[:, 1:].mean(axis=1)
            tolerances = calibration.local_tolerances(
                tolerance, named_spread[people[:, 0]], face_spread, usual
            )
        ranges = None
        if all_matches and len(queries):
            ranges = self.index.range_search(queries, float(tolerances.max()))
        found = []
        for i in range(len(queries)):
            top = [
                Match(self.names[p], float(d))
                for p, d in zip(people[i, :2], distances[i, :2], strict=True)
            ]
            best = top[0] if top else None
            limit = float(tolerances[i])
            if ranges is not None:
                reach, rows = ranges[i]
                close = reach <= limit
                within = self._people_within(reach[close], rows[close])
            else:
                within = (best,) if best is not None and best.distance <= limit else ()
            found.append(Nearest(within, best, top[1] if len(top) > 1 else None, limit))
        return found

    def _people_within(
        self, distances: NDArray[np.float64], rows: NDArray[np.intp]
    ) -> tuple[Match, ...]:
        """People from photo rows ranked nearest first (ties by row): each at their nearest."""
        owners = self.owners[rows]
        _, first = np.unique(owners, return_index=True)
        people = sorted((float(distances[i]), int(owners[i])) for i in first)
        return tuple(Match(self.names[p], d) for d, p in people)

    def person_distances(self, embedding: NDArray[np.float64]) -> NDArray[np.float64]:
        """Distance from one face to every person (nearest photo of each)."""
        per_photo = np.linalg.norm(self.embeddings - embedding, axis=1)
        best = np.full(len(self.names), np.inf)
        np.minimum.at(best, self.owners, per_photo)
        return best

    def ranked(self, embedding: NDArray[np.float64]) -> list[Match]:
        """Every person, nearest first (ties broken by name for a stable order)."""
        distances = self.person_distances(embedding)
        order = sorted(range(len(self.names)), key=lambda i: (distances[i], self.names[i]))
        return [Match(self.names[i], float(distances[i])) for i in order]
