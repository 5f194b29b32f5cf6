"""Known people from the face regions photo managers wrote (``--known-from-xmp``).

A collection tagged in Immich, digiKam, Lightroom or with ``facematch tag`` names
its people in XMP regions (sidecars, or the photos' own XMP). Each named region
is a photo of that person: the face facematch finds inside the region (not the
photo's largest face) is described and joins the gallery under the region's
name, one person per name (names that differ only in case are one person). A
region with no face inside (drawn by hand around the back of a head, say) is
reported on stderr and not used; so is a region facematch cannot read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from facematch.detect.boxes import iou
from facematch.errors import NoKnownFacesError, UsageError
from facematch.matching.gallery import Gallery
from facematch.records import Encoded, Face, FaceBox, KnownFace, PhotoRegions
from facematch.run.pipeline import KnownPeople, Pipeline
from facematch.sources.images import discover
from facematch.sources.xmp import photo_regions

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


def region_face(region: FaceBox, faces: Sequence[Face], taken: set[int]) -> int | None:
    """The index of the face a region is drawn around, among those not yet taken."""
    best, best_overlap = None, 0.0
    for i, face in enumerate(faces):
        if i in taken:
            continue
        box = face.box
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
    """Add the faces of one photo's regions, the region most like a face first."""
    taken: set[int] = set()
    collected.regions += len(photo.regions)
    for region in sorted(photo.regions, key=lambda r: -_best_overlap(r.box, image.faces)):
        index = region_face(region.box, image.faces, taken)
        if index is None:
            collected.no_face += 1
            log.warning(
                "%s: the region of %s has no face facematch finds inside (drawn by hand?); "
                "not used",
                photo.path,
                region.name,
            )
            continue
        taken.add(index)
        name = collected.spelling.setdefault(region.name.casefold(), region.name)
        face = image.faces[index]
        collected.labelled.append((name, face))
        collected.sources.append(KnownFace(name, photo.path, face.box))


def _best_overlap(region: FaceBox, faces: Sequence[Face]) -> float:
    return max((iou(region, face.box) for face in faces), default=0.0)
