"""The typed records every layer shares: boxes, faces, matches and the rows of each command.

Frozen dataclasses with no behaviour beyond small derived properties; every layer
imports them from here and nothing here imports the rest of facematch.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

Status = Literal["ok", "no_faces", "error"]


@dataclass(frozen=True)
class FaceBox:
    """A face's box in image pixels, in face_recognition's (top, right, bottom, left) order."""

    top: int
    right: int
    bottom: int
    left: int
    # How far the face is tilted in the picture (degrees, the line from its left
    # eye to its right eye against the horizontal), where the detector measures
    # it (CenterFace); 0 where it does not. Not part of the box's identity.
    roll: float = field(default=0.0, compare=False, repr=False)

    @property
    def area(self) -> int:
        return max(0, self.bottom - self.top) * max(0, self.right - self.left)

    def css(self) -> tuple[int, int, int, int]:
        return (self.top, self.right, self.bottom, self.left)


@dataclass(frozen=True, eq=False)
class Face:
    """One face found in an image: where it is, its landmarks, and its 128-d embedding."""

    box: FaceBox
    landmarks: tuple[tuple[int, int], ...]
    embedding: NDArray[np.float64] = field(repr=False)


@dataclass(frozen=True)
class Encoded:
    """One image's faces, or why it could not be read."""

    path: str
    faces: tuple[Face, ...] = ()
    error: str | None = None

    @property
    def largest_face(self) -> Face | None:
        """The face with the largest box (the subject of a portrait), if any."""
        return max(self.faces, key=lambda face: face.box.area, default=None)

    @property
    def status(self) -> Status:
        if self.error is not None:
            return "error"
        return "ok" if self.faces else "no_faces"


@dataclass(frozen=True)
class Match:
    """A known person and the distance from a face to their nearest photo."""

    name: str
    distance: float


@dataclass(frozen=True)
class KnownFace:
    """Whose a known face is, and where it came from: its photo and its box there."""

    name: str
    path: str
    box: FaceBox


@dataclass(frozen=True)
class FaceMatch:
    """One unknown face: its box, the best person (or None) and who else is near."""

    box: FaceBox
    name: str | None
    distance: float | None
    matches: tuple[Match, ...] = ()
    runner_up: Match | None = None
    # The known photo of the nearest person that was nearest to this face.
    known_face: KnownFace | None = None
    # The tolerance this face was judged with (``--tolerance auto`` adapts it per face).
    tolerance: float | None = None
    # The nearest known person, whether or not within tolerance (``runner_up`` is the second).
    nearest: Match | None = None
    # The calibrated chance that a stranger comes this close to somebody in a
    # gallery of this size (``facematch.matching.calibration.stranger_chance``).
    stranger_chance: float | None = None
    # Named, but a stranger would come this close too often to be sure
    # (``stranger_chance`` above ``calibration.UNCERTAIN_CHANCE``).
    uncertain: bool = False


@dataclass(frozen=True)
class ImageResult:
    """One unknown image's row: status, error and matched faces."""

    path: str
    status: Status
    error: str | None = None
    faces: tuple[FaceMatch, ...] = field(default=())


@dataclass(frozen=True)
class Appearance:
    """One person (None: unknown faces) seen from ``start`` to ``end`` seconds.

    ``samples`` is how many sampled frames show them; ``distance``, ``time``
    and ``box`` are those of the best sample (nearest to the known person; for
    unknown faces, the largest face).
    """

    name: str | None
    start: float
    end: float
    samples: int
    distance: float | None
    time: float
    box: FaceBox
    # Those of the best sample (see ``FaceMatch``); none for unknown faces.
    stranger_chance: float | None = None
    uncertain: bool = False


@dataclass(frozen=True)
class FrameFaces:
    """One sampled frame of a video and its matched faces (``--per-frame``)."""

    time: float
    faces: tuple[FaceMatch, ...] = ()


@dataclass(frozen=True)
class VideoResult:
    """One video's row: status, error, and who appears when (or each sampled frame)."""

    path: str
    status: Status
    error: str | None = None
    duration: float | None = None
    fps: float = 1.0
    appearances: tuple[Appearance, ...] = ()
    frames: tuple[FrameFaces, ...] | None = None


class LibraryFaces(NamedTuple):
    """Every face of every indexed file (one row per face and path; a copy of a photo
    at two paths gives two rows with the same face id)."""

    ids: NDArray[np.int64]
    """(n,) face ids, stable while the file's content and settings stay the same."""
    paths: list[str]
    """(n,) the file each face is in."""
    boxes: NDArray[np.int32]
    """(n, 4) top, right, bottom, left in image pixels."""
    embeddings: NDArray[np.float32]
    """(n, 128) the embeddings, one contiguous float32 matrix."""


@dataclass(frozen=True)
class SearchHit:
    """One library face near the query person: where it is, how near, and the name of the
    person it is in, if that person has one (by you, a photo's XMP, or a known folder)."""

    path: str
    box: FaceBox
    distance: float
    face_id: int
    name: str | None = None


NamedBy = Literal["user", "xmp", "known", "none"]


PREFIX = "person_"
# The label of a face in no group (clustering).
UNCLUSTERED = -1


@dataclass(frozen=True)
class FaceRow:
    """One face of one file and the person it belongs to (None: unclustered)."""

    path: str
    face: int
    box: FaceBox
    face_id: int
    person: int | None
    name: str | None
    named_by: NamedBy

    @property
    def person_label(self) -> str:
        return "" if self.person is None else f"{PREFIX}{self.person}"


@dataclass(frozen=True)
class ClusterCounts:
    """A cluster run's rows counted, one way for the summary on stderr and the report.

    A face counts once per path it is printed under: two byte-identical copies of a
    photo are two photos with a face each, as they are two rows.
    """

    photos: int
    faces: int
    people: int
    named: int
    unclustered: int
    new_people: int

    @classmethod
    def of(cls, rows: Sequence[FaceRow], new_people: Collection[int] = ()) -> ClusterCounts:
        """The counts of ``rows``; ``new_people``: the numbers of the people the run made."""
        people = {r.person for r in rows if r.person is not None}
        return cls(
            photos=len({r.path for r in rows}),
            faces=len(rows),
            people=len(people),
            named=len({r.person for r in rows if r.person is not None and r.name is not None}),
            unclustered=sum(1 for r in rows if r.person is None),
            new_people=len(people & set(new_people)),
        )


RedactAction = Literal["kept", "covered"]


RedactReason = Literal["known", "unknown", "ambiguous", "uncertain", "small", "everyone"]


@dataclass(frozen=True)
class RedactedFace:
    """One face: kept (a known person, named) or covered, and why."""

    box: FaceBox
    action: RedactAction
    reason: RedactReason
    name: str | None = None
    distance: float | None = None


@dataclass(frozen=True)
class RedactedImage:
    """One input's row: what was found, kept and covered, and where the copy is."""

    path: str
    status: Status
    error: str | None = None
    output: str | None = None
    faces: tuple[RedactedFace, ...] = ()

    @property
    def kept(self) -> list[str]:
        return [f.name for f in self.faces if f.action == "kept" and f.name is not None]

    @property
    def covered(self) -> int:
        return sum(1 for f in self.faces if f.action == "covered")


@dataclass(frozen=True)
class RedactedTrack:
    """One face followed through a video's frames: kept clear or covered, and why.

    ``box`` is its largest detection; ``start`` and ``end`` in seconds;
    ``frames`` how many frames it is covered in (0 when kept), ``filled`` how many
    of those the detector missed and tracking covered."""

    box: FaceBox
    action: RedactAction
    reason: RedactReason
    name: str | None = None
    distance: float | None = None
    start: float = 0.0
    end: float = 0.0
    frames: int = 0
    filled: int = 0


@dataclass(frozen=True)
class RedactedVideo:
    """One video's row: its tracks, the frames read, and where the copy is."""

    path: str
    status: Status
    error: str | None = None
    output: str | None = None
    tracks: tuple[RedactedTrack, ...] = ()
    frame_count: int = 0

    @property
    def kept(self) -> list[str]:
        return sorted({t.name for t in self.tracks if t.action == "kept" and t.name is not None})

    @property
    def covered(self) -> int:
        return sum(1 for t in self.tracks if t.action == "covered")


@dataclass(frozen=True)
class FaceReport:
    """One face of a cloaked (or checked) photo.

    ``distance`` is the smallest distance between the original face's descriptor and
    the copy's over every checked variant and both alignments; ``passed`` when it is
    above MATCH_THRESHOLD; ``dssim`` the structural dissimilarity of the face's region
    (its box widened by 30% on every side) at full resolution: 0 unchanged.
    ``variants`` gives that smallest distance per variant.

    The same for SFace, a second model the cloak is not made against: ``sface_distance``
    (smallest over the variants), ``sface_passed`` (above its "still matched" distance,
    ``encode.sface.MATCH_DISTANCE``) and ``sface_variants``; None and empty where SFace
    is not installed.
    """

    box: FaceBox
    level: str
    distance: float
    passed: bool
    dssim: float
    epsilon: float
    variants: dict[str, float] = field(default_factory=dict)
    sface_distance: float | None = None
    sface_passed: bool | None = None
    sface_variants: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CloakResult:
    """One input photo: where its copy went, its faces, and whether all are protected.

    status: ``protected`` (every face passed), ``not_protected`` (some face did not),
    ``no_faces`` (no face found: no copy written) or ``error``. The status is dlib's
    alone, the model the cloak is made against; SFace's verdict is each face's own.
    """

    path: str
    status: str
    out: str | None = None
    error: str | None = None
    psnr: float | None = None
    faces: tuple[FaceReport, ...] = ()
    dssim_1080: float | None = None

    @property
    def sface_matched(self) -> bool:
        """Some face of the copy is still matched by SFace (False where it was not checked)."""
        return any(f.sface_passed is False for f in self.faces)


@dataclass(frozen=True)
class FrameSample:
    """One sampled video frame: its time (seconds from the first frame) and its faces."""

    time: float
    faces: tuple[Face, ...] = ()


@dataclass(frozen=True)
class EncodedVideo:
    """A video's sampled frames with their faces, or why (part of) it could not be read."""

    path: str
    samples: tuple[FrameSample, ...] = ()
    duration: float | None = None
    error: str | None = None

    @property
    def status(self) -> Status:
        if self.error is not None:
            return "error"
        return "ok" if any(s.faces for s in self.samples) else "no_faces"


@dataclass(frozen=True)
class Area:
    """A region of a photo as XMP keeps it (MWG's ``stArea``): its centre and size, as
    fractions of the width and height of the image as stored, before any EXIF turn."""

    x: float
    y: float
    w: float
    h: float


RegionSource = Literal["mwg", "mp", "acdsee"]


@dataclass(frozen=True)
class FaceRegion:
    """One region of a photo's XMP: MWG's (``mwg-rs``), Microsoft Photo's (``MPReg``) or
    ACDSee's (``acdsee-rs``).

    ``ours``: facematch wrote it (an MWG region marked ``xmp:CreatorTool`` facematch in
    its ``Extensions``, or the Microsoft twin of one), so a later run may replace it.
    """

    name: str | None
    area: Area
    source: RegionSource
    ours: bool = False
    kind: str = "Face"


@dataclass(frozen=True)
class TaggedFace:
    """A named face given a region: its box in upright pixels (as matching gives it) and
    its area in the stored image (as XMP keeps it)."""

    name: str
    box: FaceBox
    area: Area


TagStatus = Literal["written", "would_write", "unchanged", "skipped", "error"]


@dataclass(frozen=True)
class TagResult:
    """One photo's row of ``facematch tag``: what its XMP got, and where.

    ``faces``: the regions facematch wrote (or, with ``--dry-run``, would write);
    ``removed``: names of facematch's earlier regions that are gone; ``kept``: other
    tools' regions left as they were; ``covered``: named faces not written because
    another tool's region is on them already; ``uncertain``: named faces left out
    because their name is not sure.
    """

    path: str
    status: TagStatus
    target: str | None = None
    error: str | None = None
    faces: tuple[TaggedFace, ...] = ()
    removed: tuple[str, ...] = ()
    kept: int = 0
    covered: int = 0
    uncertain: int = 0


@dataclass(frozen=True)
class RegionFace:
    """A named face region read from a photo's XMP, as a box in upright pixels."""

    name: str
    box: FaceBox
    source: RegionSource


@dataclass(frozen=True)
class PhotoRegions:
    """The named face regions of one photo (its sidecar, else its embedded XMP).

    ``xmp``: where they were read (the sidecar's path, or ``embedded``; None: no XMP);
    ``skipped``: regions not used and why, one line each.
    """

    path: str
    regions: tuple[RegionFace, ...] = ()
    xmp: str | None = None
    error: str | None = None
    skipped: tuple[str, ...] = ()
