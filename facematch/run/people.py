"""``cluster``: index what is new, group every face into people, and take the names given.

The command's work, apart from parsing and printing: bring the library up to date
with the photos under the paths and the names in their XMP face regions, cluster
around what earlier runs (and the user's corrections, and those names) decided, name
the groups that confidently match a known person, and take the names the user gave
by renaming ``--out`` folders.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from facematch.errors import UsageError
from facematch.matching.calibration import auto_tolerance
from facematch.matching.cluster import FaceClusterer, known_names
from facematch.matching.gallery import Gallery
from facematch.records import PREFIX, FaceMatch, FaceRow, ImageResult, LibraryFaces
from facematch.run.pipeline import Pipeline, build_gallery
from facematch.run.regions import XmpNames, known_from_regions, names_from_xmp
from facematch.sources.images import ShownPaths
from facematch.store.library import Library
from facematch.store.people import People

log = logging.getLogger("facematch")


@dataclass(frozen=True)
class Clustered:
    """What a ``cluster`` run found: every face under its paths, and what it did."""

    rows: list[FaceRow]
    """One per face and path (a copy of a photo has rows of its own), by the library's
    absolute path."""
    new_people: frozenset[int]
    """The numbers of the people this run made."""
    unreadable: list[tuple[str, str]]
    """(path as the user named it, see ``ShownPaths``; why it could not be read)."""
    renamed: list[tuple[int, str]]
    """People named after the ``--out`` folder the user renamed: (number, name)."""
    xmp: XmpNames = field(default_factory=XmpNames)
    """What taking the names of the photos' XMP face regions did."""


def cluster_paths(
    library: Library,
    pipeline: Pipeline,
    paths: Sequence[str],
    *,
    min_faces: int,
    known_dir: str | None = None,
    tagged: Sequence[str] = (),
    folder_names: Mapping[int, str] | None = None,
    out_dir: Path | None = None,
    progress: Callable[[int], object] | None = None,
    xmp_names: bool = True,
) -> Clustered:
    """Index, cluster and name; the rows of the faces under ``paths``, by path.

    With ``xmp_names``, the faces inside the named face regions of the photos' XMP go
    to the people of those names first (as ``index`` does), and the clustering starts
    from them. The known people who name groups are ``known_dir``'s, or the named face
    regions in the XMP of the photos under ``tagged`` (``--known-from-xmp``).
    """
    shown = ShownPaths(paths)
    unreadable: list[tuple[str, str]] = []
    for row in library.index(paths, pipeline, prune=False):
        if progress is not None:
            progress(1)
        if row.status == "error":
            unreadable.append((shown(row.path), row.error or ""))
            log.error("%s: %s", shown(row.path), row.error)
    named = names_from_xmp(library, paths, shown) if xmp_names else XmpNames()
    unreadable += named.unreadable
    everything = library.faces()
    people = People(library)
    rows, new_people = people.update(everything, FaceClusterer(min_faces=min_faces))
    if known_dir is not None or tagged:
        gallery = (
            build_gallery(pipeline, known_dir).gallery
            if known_dir is not None
            else known_from_regions(pipeline, tagged).gallery
        )
        name_by_known(people, everything, rows, gallery)
        rows = people.rows(everything)
    renamed = take_folder_names(people, folder_names or {}, out_dir or Path())
    if renamed:
        rows = people.rows(everything)
    roots = [os.path.abspath(p) for p in paths]
    return Clustered(
        [r for r in rows if _under(r.path, roots)], new_people, unreadable, renamed, named
    )


def name_by_known(
    people: People, faces: LibraryFaces, rows: Sequence[FaceRow], gallery: object
) -> None:
    """Give ``known`` names to the groups that confidently match a known person."""

    assert isinstance(gallery, Gallery)
    person_of = {r.face_id: r.person for r in rows}
    face_ids, first = np.unique(faces.ids, return_index=True)
    numbers = sorted({p for p in person_of.values() if p is not None})
    label_of = {n: i for i, n in enumerate(numbers)}
    labels = np.array([label_of.get(person_of.get(int(f)) or 0, -1) for f in face_ids])
    tolerance = auto_tolerance(len(gallery.embeddings))
    found = known_names(gallery, faces.embeddings[first], labels, tolerance)
    people.name_by_known({numbers[label]: name for label, name in found.items()})


def take_folder_names(
    people: People, folder_names: Mapping[int, str], out_dir: Path
) -> list[tuple[int, str]]:
    """Name the people whose ``--out`` folder the user renamed; returns whom and how.

    A folder whose name cannot be a name, or whose person was merged away or is gone
    since, is left alone with a warning.
    """
    taken = []
    for number, folder in sorted(folder_names.items()):
        try:
            people.name(f"{PREFIX}{number}", folder)
        except UsageError as exc:
            log.warning("%s: not taken as a name (%s)", out_dir / folder, exc)
            continue
        taken.append((number, folder))
    return taken


def named_photos(library: Library, paths: Sequence[str] = ()) -> list[ImageResult]:
    """The library's photos (those under ``paths``, if given) with the names its people
    have, as matching's results: what ``facematch tag --library`` writes.

    A face is named when its person is, by you (``cluster name``, a renamed ``--out``
    folder), by the photos' XMP (``index``) or by a known person (``cluster --known``).
    A name on two faces of one photo is uncertain on both, as in matching: someone is
    in a photo once.
    """
    shown = ShownPaths(paths)
    roots = [os.path.abspath(p) for p in paths]
    faces: dict[str, list[FaceMatch]] = {}
    for row in People(library).rows(library.faces()):
        if roots and not _under(row.path, roots):
            continue
        named = faces.setdefault(row.path, [])
        if row.name is not None and row.named_by != "none":
            named.append(FaceMatch(row.box, row.name, None))
    results = []
    for path, named in sorted(faces.items()):
        twice = {name for name, count in Counter(f.name for f in named).items() if count > 1}
        sure = tuple(replace(f, uncertain=f.name in twice) for f in named)
        results.append(ImageResult(shown(path), "ok", None, sure))
    return results


def _under(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)
