"""The face regions photo managers wrote: known people (``--known-from-xmp``), and the
names of a library's faces (``index``).

A collection tagged in Immich, digiKam, Lightroom, ACDSee or with ``facematch tag``
names its people in XMP regions (sidecars, or the photos' own XMP). Each named region
is a photo of that person: the face facematch finds inside the region (not the
photo's largest face, see :func:`region_face`) is described and joins the gallery
under the region's name, one person per name (names that differ only in case are
one person). A region with no face inside (drawn by hand around the back of a head,
say) is reported on stderr and not used; so is a region facematch cannot read.

:func:`names_from_xmp` does the same for the photos of a library: the face inside
each named region is put in the person of that name (``People.take_xmp_names``),
where clustering starts from it and search names it.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from facematch.detect.boxes import iou
from facematch.errors import NoKnownFacesError, UsageError
from facematch.matching.gallery import Gallery
from facematch.records import Encoded, Face, FaceBox, KnownFace, PhotoRegions, RegionFace
from facematch.run.pipeline import KnownPeople, Pipeline
from facematch.sources.images import discover
from facematch.sources.xmp import existing_sidecars, photo_regions
from facematch.store.library import Library
from facematch.store.people import People, name_problem

log = logging.getLogger("facematch")

# A face belongs to a region when its centre is inside it and at least this share of
# the face's box is: regions are drawn loosely (a whole head, some hair) around faces.
INSIDE_SHARE = 0.5
# ... and the face is not a speck in it: at least this share of the region's area.
LEAST_AREA_SHARE = 0.04


@dataclass
class Collected:
    """The known faces gathered from regions so far, and how many regions had none."""

    labelled: list[tuple[str, Face]] = field(default_factory=list)
    sources: list[KnownFace] = field(default_factory=list)
    # The first spelling of each name, by its case-folded form.
    spelling: dict[str, str] = field(default_factory=dict)
    regions: int = 0
    no_face: int = 0


def region_face(region: FaceBox, faces: Sequence[FaceBox], taken: set[int]) -> int | None:
    """The index of the face (box) a region is drawn around, among those not yet taken."""
    best, best_overlap = None, 0.0
    for i, box in enumerate(faces):
        if i in taken:
            continue
        centre_x, centre_y = (box.left + box.right) / 2, (box.top + box.bottom) / 2
        if not (
            region.left <= centre_x <= region.right and region.top <= centre_y <= region.bottom
        ):
            continue
        width = min(box.right, region.right) - max(box.left, region.left)
        height = min(box.bottom, region.bottom) - max(box.top, region.top)
        shared = max(0, width) * max(0, height)
        if shared < INSIDE_SHARE * box.area or box.area < LEAST_AREA_SHARE * region.area:
            continue
        overlap = iou(region, box)
        if best is None or overlap > best_overlap:
            best, best_overlap = i, overlap
    return best


def known_from_regions(pipeline: Pipeline, collections: Sequence[str]) -> KnownPeople:
    """The gallery of the named face regions in the photos under ``collections``.

    Every photo under them (folders searched recursively) is looked at; only those
    with named regions are encoded (through the pipeline's cache).
    """
    for collection in collections:
        if not os.path.lexists(collection):
            raise UsageError(f"--known-from-xmp: no such file or directory: {collection}")
    found = discover(collections, recursive=True)
    if not found:
        raise UsageError(f"--known-from-xmp: no images in {', '.join(collections)}")
    unreadable: list[str] = []
    tagged: list[PhotoRegions] = []
    for item in found:
        if item.problem is not None:
            log.error("%s: %s (known photo skipped)", item.path, item.problem)
            unreadable.append(item.path)
            continue
        regions = photo_regions(item.path)
        for reason in regions.skipped:
            log.warning("%s: %s", item.path, reason)
        if regions.error is not None:
            log.error("%s: %s (its regions are not used)", item.path, regions.error)
            unreadable.append(item.path)
        elif regions.regions:
            tagged.append(regions)
    collected = Collected()
    encoded = pipeline.encode([photo.path for photo in tagged])
    for photo, image in zip(tagged, encoded, strict=True):
        if image.error is not None:
            log.error("%s: %s (known photo skipped)", photo.path, image.error)
            unreadable.append(photo.path)
        else:
            _photo_faces(photo, image, collected)
    if collected.no_face:
        log.warning(
            "%d of %d named regions have no face facematch finds inside; they are not used",
            collected.no_face,
            collected.regions,
        )
    if not collected.labelled:
        raise NoKnownFacesError(
            f"no named face region with a face inside in {', '.join(collections)}"
        )
    pairs = [(name, face.embedding) for name, face in collected.labelled]
    return KnownPeople(Gallery.from_faces(pairs, collected.sources), tuple(unreadable))


def _photo_faces(photo: PhotoRegions, image: Encoded, collected: Collected) -> None:
    """Add the faces of one photo's regions."""
    collected.regions += len(photo.regions)
    found, no_face = claimed_faces(photo.path, photo.regions, [f.box for f in image.faces])
    collected.no_face += no_face
    for region, index in found:
        name = collected.spelling.setdefault(region.name.casefold(), region.name)
        face = image.faces[index]
        collected.labelled.append((name, face))
        collected.sources.append(KnownFace(name, photo.path, face.box))


def claimed_faces(
    shown: str, regions: Sequence[RegionFace], faces: Sequence[FaceBox]
) -> tuple[list[tuple[RegionFace, int]], int]:
    """Each region with the index of the face inside it, the region most like a face
    first, and how many regions have none (each named on stderr, ``shown`` the photo)."""
    taken: set[int] = set()
    found: list[tuple[RegionFace, int]] = []
    no_face = 0
    for region in sorted(regions, key=lambda r: -_best_overlap(r.box, faces)):
        index = region_face(region.box, faces, taken)
        if index is None:
            no_face += 1
            log.warning(
                "%s: the region of %s has no face facematch finds inside (drawn by hand?); "
                "not used",
                shown,
                region.name,
            )
            continue
        taken.add(index)
        found.append((region, index))
    return found, no_face


def _best_overlap(region: FaceBox, faces: Sequence[FaceBox]) -> float:
    return max((iou(region, box) for box in faces), default=0.0)


# --- a library's faces named after their photos' regions (``index``) -----------------------


@dataclass
class XmpNames:
    """What :func:`names_from_xmp` did."""

    photos: int = 0
    """Photos whose XMP was read: new ones, and those whose content or sidecars changed."""
    tagged: int = 0
    """Those of them with named face regions."""
    regions: int = 0
    """Named face regions in them."""
    named: int = 0
    """Faces that took the name of the region around them."""
    no_face: int = 0
    """Regions with no face inside (each named on stderr)."""
    left_out: int = 0
    """Regions whose name was not taken (twice in one photo, or not a name)."""
    kept: int = 0
    """Named faces left where ``cluster move`` put them."""
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    """(photo as shown, why its XMP could not be read): tried again on the next run."""

    def summary(self) -> str | None:
        """One line for stderr, or None when no photo read had a named region."""
        if not self.tagged:
            return None
        parts = [
            f"{self.named} faces named after the {self.regions} named face regions in the "
            f"XMP of {self.tagged} photos"
        ]
        if self.no_face:
            parts.append(f"{self.no_face} regions with no face inside (not used)")
        if self.left_out:
            parts.append(f"{self.left_out} names not taken")
        if self.kept:
            parts.append(f"{self.kept} faces left where cluster move put them")
        return "; ".join(parts)


def names_from_xmp(
    library: Library, paths: Sequence[str], shown: Callable[[str], str] = str
) -> XmpNames:
    """Name the faces of the indexed photos under ``paths`` after the named face regions
    of their XMP (a sidecar, else the photo's own; see ``sources.xmp.photo_regions``).

    A photo's XMP is read when it is new to this step, or its content, its settings or
    its sidecars (size, mtime) changed since: an unchanged library costs a few ``stat``
    calls per photo. The face inside each region (:func:`region_face`, as for
    ``--known-from-xmp``) goes to the person of that name (``People.take_xmp_names``).
    """
    people = People(library)
    read = people.xmp_read()
    roots = [os.path.join(os.path.abspath(p), "") for p in paths]
    exact = {os.path.abspath(p) for p in paths}
    done = XmpNames()
    for path, digest, settings in library.photos():
        if path not in exact and not path.startswith(tuple(roots)):
            continue
        state = _xmp_state(path, digest, settings)
        if read.get(path) == state:
            continue
        done.photos += 1
        regions = photo_regions(path)
        if regions.error is not None:
            log.error("%s: %s (its names are not taken)", shown(path), regions.error)
            done.unreadable.append((shown(path), regions.error))
            continue
        for reason in regions.skipped:
            log.warning("%s: %s", shown(path), reason)
        done.tagged += bool(regions.regions)
        done.regions += len(regions.regions)
        named = _usable(shown(path), regions.regions, done)
        faces = library.file_faces(path)
        found, no_face = claimed_faces(shown(path), named, [box for _, box in faces])
        done.no_face += no_face
        names = {faces[index][0]: region.name for region, index in found}
        done.named += len(names)
        done.kept += len(people.take_xmp_names(path, state, names))
    return done


def _xmp_state(path: str, digest: str, settings: int) -> str:
    """What a photo's XMP names depend on: its content and settings (its faces, and its
    own XMP) and its sidecars as they are now."""
    sidecars = []
    for sidecar in existing_sidecars(path):
        try:
            info = os.stat(sidecar)
        except OSError:
            continue
        sidecars.append([os.path.basename(sidecar), info.st_size, info.st_mtime_ns])
    return json.dumps([digest, settings, sidecars])


def _usable(shown: str, regions: Sequence[RegionFace], done: XmpNames) -> list[RegionFace]:
    """The regions whose name a face can take: not one that cannot be a person's name, nor
    one on two regions of the photo (someone is in a photo once: which is it?)."""
    twice = Counter(r.name.casefold() for r in regions)
    usable = []
    for region in regions:
        problem = name_problem(region.name)
        if problem is None and twice[region.name.casefold()] > 1:
            problem = f"{region.name!r} names {twice[region.name.casefold()]} regions"
        if problem is not None:
            log.warning("%s: %s; not taken", shown, problem)
            done.left_out += 1
        else:
            usable.append(region)
    return usable
