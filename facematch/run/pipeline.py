"""paths -> encoded images -> known gallery -> matches, as typed records.

``Pipeline`` owns the cache and the worker pool for one run; the pool starts
only if some image is not already in the cache, so a warm re-run loads no
model at all. ``encode_image`` is the unit of work: a picklable function of
one path that never raises, since a bad file is a result, not a crash.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from facematch.detect import detectors
from facematch.encode import engines
from facematch.encode.engines import EngineChoice
from facematch.encode.faces import (
    EngineName,
    FaceSettings,
)
from facematch.encode.frames import VideoSettings
from facematch.errors import ImageError, NoKnownFacesError
from facematch.matching.gallery import Gallery, KnownPhoto, known_photos
from facematch.matching.naming import match_faces, match_video
from facematch.records import (
    Encoded,
    EncodedVideo,
    Face,
    FrameSample,
    ImageResult,
    KnownFace,
    VideoResult,
)
from facematch.run.runners import InProcess, Runner, is_remote, make_runner, resolve_jobs
from facematch.run.tasks import (
    DetectTask,
    EncodedSegment,
    EncodeTask,
    VideoTask,
    anywhere,
    detect_failed,
    detect_image,
    encode_task,
    encode_task_failed,
    failure_message,
    segments,
)
from facematch.sources.images import (
    Found,
    is_video_name,
)
from facematch.sources.video import decoder_version, probe
from facematch.store.cache import EncodingCache, FaceStore, StoredVideo, file_digest, settings_key

log = logging.getLogger("facematch")

T = TypeVar("T")
R = TypeVar("R")


def paired(found: Sequence[Found], results: Iterator[R]) -> Iterator[tuple[Found, R | None]]:
    """Each input with its result, in order; inputs already known to be unreadable get None."""
    for item in found:
        yield item, (None if item.problem is not None else next(results))


class Pipeline:
    """One run's settings, cache and workers; use as a context manager."""

    def __init__(
        self,
        settings: FaceSettings | None = None,
        *,
        jobs: int | None = None,
        cache_dir: Path | None = None,
        engine: EngineName | None = None,
        runner: str = "process",
        progress: Callable[[int], object] | None = None,
        store: FaceStore | None = None,
        video: VideoSettings | None = None,
        video_total: Callable[[float], object] | None = None,
        video_progress: Callable[[float], object] | None = None,
    ) -> None:
        """``progress`` hears of each photo done; ``video_total`` of the seconds of video
        once every video is probed, and ``video_progress`` of each part done."""
        self.settings = settings or FaceSettings()
        detectors.require(self.settings.model)
        self.jobs = resolve_jobs(jobs)
        # ``store`` (a face library, say) replaces the encoding cache; whoever made it closes it.
        self.cache: FaceStore | None = store
        self._owns_cache = store is None and cache_dir is not None
        if self._owns_cache:
            assert cache_dir is not None
            self.cache = EncodingCache(cache_dir)
        self.cache_dir = cache_dir
        self.requested_engine = engine or engines.default_engine()
        self.runner_name = runner
        self.progress = progress
        self._engine: EngineChoice | None = None
        self._runner: Runner | None = None
        self._settings_key = settings_key(self.settings)
        self.video = video or VideoSettings()
        self.video_total = video_total
        self.video_progress = video_progress

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(abort=kind is not None)

    def close(self, abort: bool = False) -> None:
        if self._runner is not None:
            self._runner.close(abort)
            self._runner = None
        if self.cache is not None and self._owns_cache:
            self.cache.close()

    @property
    def engine(self) -> EngineChoice:
        """The descriptor engine, prepared on first need (warm runs never need it)."""
        if self._engine is None:
            self._engine = engines.prepare(self.requested_engine, self.cache_dir)
        return self._engine

    def solo(self, count: int) -> bool:
        """Whether work on ``count`` images stays in this process (no pool to start)."""
        if is_remote(self.runner_name):
            return False
        return count <= 1 or self.jobs == 1

    def run(
        self, fn: Callable[[T], R], tasks: Sequence[T], failed: Callable[[T, str], R]
    ) -> Iterator[R]:
        """Results of ``fn`` over ``tasks`` in order, on the pool when it pays.

        ``failed(task, reason)`` is the result of a task whose worker died.
        """
        if self.solo(len(tasks)):
            return InProcess().map(fn, tasks, failed)
        if self._runner is None:
            self._runner = make_runner(self.runner_name, self.jobs)
        return self._runner.map(fn, tasks, failed)

    @property
    def settings_key(self) -> str:
        """The key of this run's settings in the cache (``store.cache.settings_key``)."""
        return self._settings_key

    def encode(
        self,
        paths: Sequence[str],
        digests: Sequence[str | None] | None = None,
        store: FaceStore | None = None,
    ) -> Iterator[Encoded]:
        """Encoded images in the order of ``paths``, from the cache where possible.

        ``digests``, if given, are the paths' content hashes already computed
        (None where unknown), so that no file is read twice. ``store``, if given,
        is read and written instead of this pipeline's cache (a face library
        that is indexing).
        """
        for encoded in self._encode(paths, videos=False, digests=digests, store=store):
            assert isinstance(encoded, Encoded)
            yield encoded

    def encode_inputs(self, paths: Sequence[str]) -> Iterator[Encoded | EncodedVideo]:
        """Encoded images and videos (by their suffix) in the order of ``paths``."""
        return self._encode(paths, videos=True)

    def _video_key(self) -> str:
        frames = settings_key(self.video.base_settings(self.settings))
        return f"{frames} {self.video.key()} {decoder_version()}"

    def _encode(
        self,
        paths: Sequence[str],
        videos: bool,
        digests: Sequence[str | None] | None = None,
        store: FaceStore | None = None,
    ) -> Iterator[Encoded | EncodedVideo]:
        cache = store if store is not None else self.cache
        is_video = [videos and is_video_name(p) for p in paths]
        if digests is None:
            digests = [self._digest(p) for p in paths]
        cached: dict[int, list[Face] | StoredVideo] = {}
        probed: dict[int, float | str | None] = {}  # duration, or why it cannot be read
        for i, digest in enumerate(digests):
            if digest is None or cache is None:
                continue
            hit: list[Face] | StoredVideo | None
            if is_video[i]:
                hit = self._cached_video(digest)
            else:
                hit = cache.get(digest, self._settings_key)
            if hit is not None:
                cached[i] = hit
        tasks: list[EncodeTask | VideoTask] = []
        misses = [i for i in range(len(paths)) if i not in cached]
        for i in misses:
            if not is_video[i]:
                tasks.append(EncodeTask(anywhere(paths[i]), self.settings, self.engine))
                continue
            probed[i] = self._probe(paths[i])
            duration = probed[i]
            if isinstance(duration, str):
                continue
            for start, end in segments(duration, self.video.fps, self.jobs):
                tasks.append(
                    VideoTask(
                        anywhere(paths[i]),
                        self.settings,
                        self.engine,
                        self.video,
                        start,
                        end,
                        duration,
                    )
                )
        if self.solo(len(tasks)):  # no pool: this process may use every core
            tasks = [replace(t, threads=self.jobs) for t in tasks]
        if self.video_total is not None and any(is_video):
            self.video_total(self._video_seconds(cached, probed))
        results = self.run(encode_task, tasks, encode_task_failed) if tasks else iter(())
        for i, path in enumerate(paths):
            hit = cached.get(i)
            if isinstance(hit, StoredVideo):
                yield EncodedVideo(
                    path, tuple(FrameSample(t, f) for t, f in hit.samples), hit.duration
                )
                self._seconds(hit.duration)
                continue
            if hit is not None:
                encoded: Encoded | EncodedVideo = Encoded(path, tuple(hit))
            elif is_video[i]:
                encoded = self._video_result(path, probed[i], digests[i], results)
            else:
                image = next(results)
                assert isinstance(image, Encoded)
                encoded = dataclasses.replace(image, path=path)
                digest = digests[i]
                if cache is not None and digest is not None and encoded.error is None:
                    cache.put(digest, self._settings_key, list(encoded.faces), self.engine.name)
            if self.progress is not None and not is_video[i]:
                self.progress(1)
            yield encoded

    def _cached_video(self, digest: str) -> StoredVideo | None:
        if not isinstance(self.cache, EncodingCache):  # a library keeps photos only
            return None
        try:
            return self.cache.get_video(digest, self._video_key())
        except ImageError:  # no decoder installed: the video becomes an error row
            return None

    def _probe(self, path: str) -> float | str | None:
        try:
            return probe(path).duration
        except ImageError as exc:
            return str(exc)
        except Exception as exc:
            return failure_message(exc)

    @staticmethod
    def _video_seconds(
        cached: dict[int, list[Face] | StoredVideo], probed: dict[int, float | str | None]
    ) -> float:
        known = [hit.duration for hit in cached.values() if isinstance(hit, StoredVideo)]
        known += [d for d in probed.values() if not isinstance(d, str)]
        return sum(d or 0.0 for d in known)

    def _seconds(self, duration: float | None) -> None:
        if self.video_progress is not None and duration:
            self.video_progress(duration)

    def _video_result(
        self,
        path: str,
        duration: float | str | None,
        digest: str | None,
        results: Iterator[Encoded | EncodedSegment],
    ) -> EncodedVideo:
        """Join a video's segments (in order) into one result, cached if it is whole."""
        if isinstance(duration, str):
            return EncodedVideo(path, error=duration)
        parts: list[EncodedSegment] = []
        for _ in segments(duration, self.video.fps, self.jobs):
            part = next(results)
            assert isinstance(part, EncodedSegment)
            parts.append(part)
            end = part.task.end if part.task.end is not None else (duration or 0.0)
            self._seconds(end - part.task.start)
        samples = tuple(s for part in parts for s in part.samples)
        error = next((part.error for part in parts if part.error is not None), None)
        video = EncodedVideo(path, samples, duration, error)
        if isinstance(self.cache, EncodingCache) and digest is not None and error is None:
            stored = StoredVideo(duration, tuple((s.time, s.faces) for s in samples))
            self.cache.put_video(digest, self._video_key(), stored, self.engine.name)
        return video

    def _digest(self, path: str) -> str | None:
        if self.cache is None:
            return None
        try:
            return file_digest(path)
        except (OSError, ImageError):
            return None  # the encoder reports why it cannot be read


@dataclass(frozen=True)
class KnownPeople:
    """The gallery built from the known folder, and the photos that could not be used."""

    gallery: Gallery
    unreadable: tuple[str, ...] = ()


def subject_face(
    encoded: Encoded,
    path: str,
    *,
    noun: str = "",
    error_note: str = "",
    several: str = "using the largest",
) -> Face | None:
    """The face a photo of one person is of: its largest, None if it has none.

    Says on stderr why there is none (unreadable, no face), and when the photo
    holds several faces (``several`` says what is done about it).
    """
    if encoded.error is not None:
        log.error("%s: %s%s", path, encoded.error, error_note)
        return None
    largest = encoded.largest_face
    if largest is None:
        log.warning("no face found in %s%s; skipping it", noun, path)
    elif len(encoded.faces) > 1:
        log.warning("%d faces in %s%s; %s", len(encoded.faces), noun, path, several)
    return largest


def query_faces(pipeline: Pipeline, found: Sequence[Found]) -> tuple[list[Face], int]:
    """The subject face of each photo of one person (``search``), and how many were unreadable."""
    unreadable = 0
    for item in found:
        if item.problem is not None:
            log.error("%s: %s", item.path, item.problem)
            unreadable += 1
    faces = []
    readable = [f.path for f in found if f.problem is None]
    for encoded in pipeline.encode(readable):
        face = subject_face(encoded, encoded.path, several="searching for the largest")
        unreadable += encoded.error is not None
        if face is not None:
            faces.append(face)
    return faces, unreadable


def build_gallery(
    pipeline: Pipeline,
    known_dir: str,
    photos: Sequence[KnownPhoto] | None = None,
    encoded_photos: Iterator[Encoded] | None = None,
) -> KnownPeople:
    """Encode the known folder: one face per photo, several photos per person allowed.

    ``encoded_photos``, if given, yields the usable photos' encodings in order
    (see ``start``); otherwise they are encoded here.
    """
    if photos is None:
        photos = known_photos(known_dir)
    labelled = []
    sources = []
    unreadable = []
    usable = [p for p in photos if p.problem is None]
    for photo in photos:
        if photo.problem is not None:
            log.error("%s: %s", photo.path, photo.problem)
            unreadable.append(photo.path)
    if encoded_photos is None:
        encoded_photos = pipeline.encode([p.path for p in usable])
    for photo, encoded in zip(usable, itertools.islice(encoded_photos, len(usable)), strict=True):
        face = subject_face(
            encoded,
            photo.path,
            noun="known photo ",
            error_note=" (known photo skipped)",
            several=f"using the largest as {photo.name}",
        )
        if encoded.error is not None:
            unreadable.append(photo.path)
        if face is not None:
            labelled.append((photo.name, face.embedding))
            sources.append(KnownFace(photo.name, photo.path, face.box))
    if not labelled:
        raise NoKnownFacesError(f"no face found in any photo in the known folder {known_dir}")
    return KnownPeople(Gallery.from_faces(labelled, sources), tuple(unreadable))


def start(
    pipeline: Pipeline, known_dir: str, photos: Sequence[KnownPhoto], unknown: Sequence[Found]
) -> tuple[KnownPeople, Iterator[Encoded | EncodedVideo]]:
    """Encode known and unknown inputs as one stream, so workers never wait between the two.

    Returns the known people and the (still running) unknown inputs' encodings,
    to hand to ``match``.
    """
    usable = [p.path for p in photos if p.problem is None]
    readable = [f.path for f in unknown if f.problem is None]
    stream = pipeline.encode_inputs(usable + readable)
    known = build_gallery(pipeline, known_dir, photos, _photos(stream, len(usable)))
    return known, stream


def _photos(stream: Iterator[Encoded | EncodedVideo], count: int) -> Iterator[Encoded]:
    """The first ``count`` items of a stream, which are photos (the known folder's)."""
    for encoded in itertools.islice(stream, count):
        assert isinstance(encoded, Encoded)
        yield encoded


def match(
    pipeline: Pipeline,
    known: KnownPeople,
    unknown: Iterable[Found],
    tolerance: float = 0.6,
    all_matches: bool = False,
    encoded: Iterator[Encoded | EncodedVideo] | None = None,
    per_frame: bool = False,
    local: bool = False,
) -> Iterator[ImageResult | VideoResult]:
    """Match every face of every unknown image and video against the known people, in order.

    ``local``: adapt the tolerance to each face's neighbourhood (``--tolerance auto``).
    """
    found = list(unknown)
    if encoded is None:
        encoded = pipeline.encode_inputs([f.path for f in found if f.problem is None])
    for item, image in paired(found, encoded):
        if image is None:
            yield ImageResult(item.path, "error", item.problem)
            continue
        if isinstance(image, EncodedVideo):
            fps = pipeline.video.fps
            yield match_video(image, known.gallery, tolerance, all_matches, fps, per_frame, local)
            continue
        yield ImageResult(
            image.path,
            image.status,
            image.error,
            tuple(match_faces(known.gallery, image.faces, tolerance, all_matches, local)),
        )


def find_boxes(pipeline: Pipeline, found: Iterable[Found]) -> Iterator[ImageResult]:
    """Face boxes for every input, in input order."""
    items = list(found)
    tasks = [DetectTask(anywhere(f.path), pipeline.settings) for f in items if f.problem is None]
    detected = pipeline.run(detect_image, tasks, detect_failed)
    for item, boxes in paired(items, detected):
        if boxes is None:
            result = ImageResult(item.path, "error", item.problem)
        else:
            result = dataclasses.replace(boxes, path=item.path)
        if pipeline.progress is not None:
            pipeline.progress(1)
        yield result
