"""The work a worker process does: picklable tasks and the functions that run them.

A photo (``EncodeTask`` -> ``Encoded``), a segment of a video (``VideoTask`` ->
``EncodedSegment``) or a photo's boxes alone (``DetectTask`` -> ``ImageResult``). Each
function never raises: any failure becomes the item's error, in one whole line, and a
task whose worker died becomes an error row through its ``*_failed`` twin.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from facematch.encode import engines
from facematch.encode.engines import EngineChoice
from facematch.encode.faces import (
    Encoder,
    FaceSettings,
)
from facematch.encode.frames import VideoSettings, frame_face_settings
from facematch.encode.photo import boxes_in_file, faces_in_file, faces_in_working_copy
from facematch.errors import ImageError
from facematch.matching.appearances import clock
from facematch.records import (
    Encoded,
    FaceMatch,
    FrameSample,
    ImageResult,
)
from facematch.run.worker import on_worker
from facematch.sources.video import Decoded, frames


@dataclass(frozen=True)
class EncodeTask:
    """Everything a worker needs to encode one image."""

    path: str
    settings: FaceSettings
    engine: EngineChoice
    threads: int = 1


def encode_image(task: EncodeTask) -> Encoded:
    """Load and encode one image; any failure becomes an error result."""
    settings = task.settings
    try:
        faces = faces_in_file(task.path, settings, task_encoder(task, settings))
        return Encoded(task.path, tuple(faces))
    except Exception as exc:  # a per-image failure must never stop the run
        return Encoded(task.path, error=on_worker(failure_message(exc)))


def task_encoder(task: EncodeTask | VideoTask, settings: FaceSettings) -> Callable[[], Encoder]:
    """This worker's descriptor engine for a task, built when first asked for."""
    return lambda: engines.encoder(task.engine, task.threads, settings.jitters, settings.mirror)


def encode_failed(task: EncodeTask, reason: str) -> Encoded:
    """The result of an image whose worker process died reading it."""
    return Encoded(task.path, error=reason)


@dataclass(frozen=True)
class VideoTask:
    """One time segment of a video to sample and encode: the unit of parallel work."""

    path: str
    settings: FaceSettings
    engine: EngineChoice
    video: VideoSettings
    start: float
    end: float | None
    duration: float | None
    threads: int = 1


@dataclass(frozen=True)
class EncodedSegment:
    """A segment's samples; ``error`` if it could not be decoded to its end."""

    task: VideoTask
    samples: tuple[FrameSample, ...] = ()
    error: str | None = None


def encode_segment(task: VideoTask) -> EncodedSegment:
    """FrameSample one segment of a video; each frame is encoded exactly as a photo is.

    Samples decoded before a failure are kept; the failure, or a stream that
    ends before the segment does (a truncated file), is the segment's error.
    """
    samples: list[FrameSample] = []
    seen = Decoded()
    try:
        for frame in frames(
            task.path,
            task.video.fps,
            task.start,
            task.end,
            strategy=task.video.strategy,
            threads=task.threads,
            progress=seen,
        ):
            settings = frame_face_settings(task.settings, task.video, *frame.size)
            small, full_size = frame.scaled(settings.working_scale)
            encoder = task_encoder(task, settings)
            faces = faces_in_working_copy(small, full_size, frame.image, settings, encoder)
            samples.append(FrameSample(frame.time, tuple(faces)))
    except Exception as exc:  # a per-video failure must never stop the run
        return EncodedSegment(task, tuple(samples), failure_message(exc))
    if not seen.complete:
        reached = max(seen.last_frame, 0.0)
        length = f" of {clock(seen.duration)}" if seen.duration is not None else ""
        return EncodedSegment(
            task,
            tuple(samples),
            f"the video data ends at {clock(reached)}{length} (truncated or damaged); "
            "faces up to there are reported",
        )
    if not samples and task.start == 0:
        return EncodedSegment(task, (), "no frame could be decoded")
    return EncodedSegment(task, tuple(samples))


def encode_segment_failed(task: VideoTask, reason: str) -> EncodedSegment:
    """The result of a video segment whose worker process died decoding it."""
    return EncodedSegment(task, (), reason.replace("this image", "this video"))


def encode_task(task: EncodeTask | VideoTask) -> Encoded | EncodedSegment:
    """The worker's function: a photo or a video segment (one stream, one pool)."""
    return encode_segment(task) if isinstance(task, VideoTask) else encode_image(task)


def encode_task_failed(task: EncodeTask | VideoTask, reason: str) -> Encoded | EncodedSegment:
    if isinstance(task, VideoTask):
        return encode_segment_failed(task, reason)
    return encode_failed(task, reason)


# Long videos are cut into segments so that several workers share one; never
# shorter than this (each segment opens the file and seeks once) ...
MIN_SEGMENT_SECONDS = 20.0


# ... nor longer than this, so that results and progress come steadily.
MAX_SEGMENT_SECONDS = 300.0


def segments(duration: float | None, fps: float, jobs: int) -> list[tuple[float, float | None]]:
    """(start, end) segments of a video, cut on sample times; one piece if its length is unknown."""
    if duration is None:
        return [(0.0, None)]
    length = min(MAX_SEGMENT_SECONDS, max(MIN_SEGMENT_SECONDS, duration / jobs))
    step = max(1, round(length * fps)) / fps
    count = max(1, int(-(-duration // step)))
    cuts = [i * step for i in range(count)]
    return [(start, cuts[i + 1] if i + 1 < count else None) for i, start in enumerate(cuts)]


def one_line(text: str) -> str:
    """A (possibly many-line, e.g. dlib's or pybind11's) message whole, on one line.

    Its lines are joined, blank ones left out, runs of spaces made one: the
    part that says what went wrong is often not the first line (pybind11
    names the argument types it would have taken after a colon).
    """
    return " ".join(text.split())


def failure_message(exc: Exception) -> str:
    """One line saying why an image failed: ours are already phrased for users."""
    if isinstance(exc, ImageError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory while processing this image"
    return f"internal error: {type(exc).__name__}: {one_line(str(exc))}"


def anywhere(path: str) -> str:
    """``path`` as any worker finds it: relative to this process's folder, not the worker's.

    Not normalised: "link/.." must still mean what it means here.
    """
    return os.path.join(os.getcwd(), path)


@dataclass(frozen=True)
class DetectTask:
    """One image to find face boxes in (no landmarks, no embeddings)."""

    path: str
    settings: FaceSettings


def detect_image(task: DetectTask) -> ImageResult:
    """Face boxes of one image as a result row, found as matching finds them (the
    settings' working copy and fallback); any failure becomes an error row."""
    try:
        boxes = boxes_in_file(task.path, task.settings)
    except Exception as exc:  # a per-image failure must never stop the run
        return ImageResult(task.path, "error", on_worker(failure_message(exc)))
    faces = tuple(FaceMatch(box, None, None) for box in boxes)
    return ImageResult(task.path, "ok" if faces else "no_faces", None, faces)


def detect_failed(task: DetectTask, reason: str) -> ImageResult:
    """The row of an image whose worker process died reading it."""
    return ImageResult(task.path, "error", reason)
