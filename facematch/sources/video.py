"""A video file -> sampled frames (time, upright RGB image): another source for the encoder.

Decoding comes from PyAV (the optional extra ``facematch[video]``), imported
only when a video is read, never by ``import facematch`` or ``--help``.

Frames are sampled ``fps`` times a second at times ``k / fps`` from the first
frame; each sample is the first decoded frame at or after its time (within
half a frame). Two ways to reach a sample (``benchmarks/speed/bench_video.py``
measures both on short and long keyframe intervals):

- **seek**: when a keyframe lies between the last decoded frame and the next
  sample, jump to it and decode from there; otherwise decode on. It never
  decodes more frames than decoding through, and with keyframes a sample
  interval apart or closer it decodes about one frame per sample;
- **decode through**: decode every frame and keep the samples.

Seek needs the container's keyframe index, so ``auto`` seeks in files that
have one (MP4, MOV, MKV/WebM with cues, AVI) and decodes through the others.
Either way non-reference frames (B-frames nobody predicts from) are not
decoded at all, and only one frame is held at a time, so memory does not grow
with the length of the file. The stream's rotation (the display matrix phone
videos carry) is applied, as EXIF orientation is for photos.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from facematch.errors import ImageError
from facematch.sources.images import MAX_PIXELS, RGBImage, dlib_pixels, open_regular, working_copy

if TYPE_CHECKING:
    from av.container import InputContainer

log = logging.getLogger("facematch")

MAX_FRAME_PIXELS = MAX_PIXELS
"""Frames larger than photos may be (``sources.images.MAX_PIXELS``) are refused from the
stream's header, before any is decoded."""

EXTRA_HINT = "reading videos needs the optional extra: pip install 'facematch[video]'"
Strategy = Literal["auto", "seek", "through"]


def require_av() -> Any:
    """The ``av`` module, or an ImageError naming the extra to install."""
    try:
        import av
    except ImportError:
        raise ImageError(EXTRA_HINT) from None
    return av


def decoder_version() -> str:
    """PyAV's and FFmpeg's versions: a different decoder may give different pixels."""
    av = require_av()
    return f"av {av.__version__}, ffmpeg {getattr(av, 'ffmpeg_version_info', '?')}"


@dataclass(frozen=True)
class VideoInfo:
    """What a video's headers say: length, size (upright) and how it is keyframed."""

    duration: float | None
    width: int
    height: int
    rotation: int
    codec: str
    frame_rate: float | None
    keyframes: tuple[float, ...]

    @property
    def keyframe_interval(self) -> float | None:
        """Median seconds between keyframes in the index, or None without an index."""
        if len(self.keyframes) < 2:
            return None
        gaps = np.diff(np.asarray(self.keyframes))
        return float(np.median(gaps))

    def strategy(self) -> Literal["seek", "through"]:
        """Seek where the index says where keyframes are, else decode through."""
        return "seek" if len(self.keyframes) >= 2 else "through"


@dataclass(frozen=True)
class Frame:
    """One sampled frame: seconds from the first frame, and its decoded picture.

    The picture stays in the decoder's format (YUV, stored turned) until asked
    for as RGB, whole or scaled.
    """

    time: float
    decoded: Any = field(repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """The upright (height, width)."""
        height, width = self.decoded.height, self.decoded.width
        return (width, height) if _quarter_turns(self.decoded.rotation) % 2 else (height, width)

    def image(self) -> RGBImage:
        """The upright RGB pixels at full size."""
        return upright(self.decoded)

    def scaled(self, scale_for: Callable[[int, int], float]) -> tuple[RGBImage, tuple[int, int]]:
        """An upright RGB copy shrunk by ``scale_for(height, width)``, and the full size.

        Shrunk exactly as a photo's working copy is (Pillow's Lanczos
        thumbnail): the decoder's own area scaler is 6x cheaper, but HOG then
        missed 3 of 12 faces that it finds on the Lanczos copy (measured on
        the 1080p ground truth with 1 s keyframes).
        """
        image = self.image()
        height, width = image.shape[:2]
        return working_copy(image, scale_for(height, width)), (height, width)


def _fail(exc: BaseException) -> ImageError:
    """An FFmpeg error in one line, phrased for a user."""
    text = str(exc).strip() or type(exc).__name__
    text = text.split(";")[0]
    if "Invalid data found" in text:
        return ImageError("cannot decode video: not a video, or a truncated or damaged one")
    return ImageError(f"cannot decode video: {text}")


class _Opened:
    """An open container with its video stream, checked; closes with ``with``."""

    def __init__(self, path: str, threads: int = 1) -> None:
        av = require_av()
        self.path = path
        # open_regular refuses FIFOs and devices, as for photos; FFmpeg reads the file object.
        self.file = open_regular(path)
        if os.fstat(self.file.fileno()).st_size == 0:
            self.file.close()
            raise ImageError("empty file (0 bytes)")
        try:
            self.container: InputContainer = av.open(self.file, "r", metadata_errors="ignore")
        except av.FFmpegError as exc:
            self.file.close()
            raise _fail(exc) from None
        except Exception:
            self.file.close()
            raise
        try:
            if not self.container.streams.video:
                raise ImageError("no video stream in this file")
            self.stream = self.container.streams.video[0]
            context = self.stream.codec_context
            if context is None or self.stream.codec_context.codec is None:
                raise ImageError("unsupported video codec")
            pixels = (context.width or 0) * (context.height or 0)
            if pixels > MAX_FRAME_PIXELS:  # before a frame is decoded (a tiny file can claim it)
                raise ImageError(
                    f"video frames are {context.width}x{context.height} ({pixels / 1e6:.0f} MP), "
                    f"over the {MAX_FRAME_PIXELS / 1e6:.0f} MP limit (decompression bomb?)"
                )
            context.thread_count = max(1, threads)
            context.thread_type = "AUTO"
            # B-frames nobody predicts from are never needed for a sample.
            context.skip_frame = "NONREF"
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> _Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()
        self.file.close()

    @property
    def origin(self) -> float:
        """The stream's first timestamp, in seconds: sample times count from it."""
        start = self.stream.start_time
        return float(start * self.stream.time_base) if start is not None else 0.0

    def info(self) -> VideoInfo:
        stream = self.stream
        duration = None
        if stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        elif self.container.duration is not None:
            container_start = (self.container.start_time or 0) / 1e6
            duration = self.container.duration / 1e6 - (self.origin - container_start)
        rate = stream.average_rate or stream.guessed_rate
        rotation = self._rotation()  # its seek also makes Matroska read its cues (the index)
        keyframes = tuple(
            float(entry.timestamp * stream.time_base) - self.origin
            for entry in stream.index_entries
            if entry.is_keyframe
        )
        width, height = stream.codec_context.width, stream.codec_context.height
        if rotation % 180:
            width, height = height, width
        return VideoInfo(
            duration=duration if duration is not None and duration > 0 else None,
            width=width,
            height=height,
            rotation=rotation,
            codec=stream.codec_context.codec.name,
            frame_rate=float(rate) if rate else None,
            keyframes=keyframes,
        )

    def _rotation(self) -> int:
        """The display rotation (degrees counterclockwise) from the first frame's metadata."""
        try:
            frame = next(self.container.decode(self.stream))
        except StopIteration:
            raise ImageError("the video stream has no frames") from None
        except Exception as exc:
            raise _fail(exc) from None
        finally:
            self.container.seek(0)
        return _quarter_turns(frame.rotation) * 90


def _quarter_turns(rotation: float | None) -> int:
    return round((rotation or 0) / 90) % 4


def probe(path: str) -> VideoInfo:
    """A video's length, size, rotation and keyframes; ImageError if it cannot be decoded."""
    av = require_av()
    try:
        with _Opened(path) as opened:
            return opened.info()
    except av.FFmpegError as exc:
        raise _fail(exc) from None


def sample_times(duration: float | None, fps: float, start: float = 0.0) -> Iterator[float]:
    """Sample times k / fps from ``start`` (inclusive) to the end of the video."""
    k = math.ceil(start * fps - 1e-9)
    while duration is None or k / fps < duration:
        yield k / fps
        k += 1


def upright(frame: Any) -> RGBImage:
    """A decoded frame as C-contiguous 8-bit RGB, turned as its display matrix says.

    Whatever the frame's pixel format (8 or 10 bits, 4:2:0 or 4:4:4) and size:
    PyAV hands back RGB whose rows are padded for most widths (854, 988,
    1080 px: strides (2976, 3, 1) for 988), which dlib refuses; every frame
    leaves here packed, as a decoded photo is.
    """
    return _turned(frame.to_ndarray(format="rgb24"), frame.rotation)


def _turned(image: RGBImage, rotation: float | None) -> RGBImage:
    turns = _quarter_turns(rotation)
    return dlib_pixels(np.rot90(image, k=turns) if turns else image)


@dataclass
class Decoded:
    """How far decoding got: the last frame seen (seconds from the first), and whether
    every sample asked for was reached (False: the stream ended early)."""

    last_frame: float = -math.inf
    duration: float | None = None
    complete: bool = False


def frames(
    path: str,
    fps: float = 1.0,
    start: float = 0.0,
    end: float | None = None,
    *,
    strategy: Strategy = "auto",
    threads: int = 1,
    progress: Decoded | None = None,
) -> Iterator[Frame]:
    """Sampled frames from ``start`` up to (not including) ``end`` seconds, in time order.

    Stops early when the stream ends; ``progress.last_frame`` then tells how
    far it got (a caller checks that against the duration to catch truncated
    files). Raises ImageError for a file that cannot be decoded.
    """
    av = require_av()
    seen = progress if progress is not None else Decoded()
    try:
        with _Opened(path, threads) as opened:
            info, chosen = _prepare(opened, fps, strategy)
            seen.duration = info.duration
            # The last frame starts one frame before the end: no sample after it.
            last = None if info.duration is None else info.duration - _half_frame(info)
            stop = last if end is None else min(end, last if last is not None else end)
            yield from _sample(opened, info, sample_times(stop, fps, start), chosen, seen)
    except av.FFmpegError as exc:
        raise _fail(exc) from None


def frames_at(
    path: str,
    times: Iterable[float],
    fps: float = 1.0,
    *,
    strategy: Strategy = "auto",
    threads: int = 1,
) -> Iterator[Frame]:
    """The frames ``frames(path, fps)`` samples at ``times`` (sample times), in time order.

    Each time once, decoded the same way (so the same picture, turned upright
    the same way), without the samples in between where keyframes allow. For
    the pictures of a row's best samples. Raises ImageError as ``frames`` does.
    """
    wanted = sorted(set(times))
    if not wanted:
        return
    av = require_av()
    try:
        with _Opened(path, threads) as opened:
            info, chosen = _prepare(opened, fps, strategy)
            yield from _sample(opened, info, iter(wanted), chosen, Decoded())
    except av.FFmpegError as exc:
        raise _fail(exc) from None


def _prepare(
    opened: _Opened, fps: float, strategy: Strategy
) -> tuple[VideoInfo, Literal["seek", "through"]]:
    """The video's headers and the way to its samples; which frames the decoder skips."""
    info = opened.info()
    if info.frame_rate is not None and fps * 2 > info.frame_rate:
        # Samples closer than two frames: every frame may be one.
        opened.stream.codec_context.skip_frame = "DEFAULT"
    return info, info.strategy() if strategy == "auto" else strategy


def _sample(
    opened: _Opened,
    info: VideoInfo,
    targets: Iterator[float],
    strategy: Literal["seek", "through"],
    seen: Decoded,
) -> Iterator[Frame]:
    stream, origin = opened.stream, opened.origin
    half_frame = _half_frame(info)
    keyframes = np.asarray(info.keyframes)
    decoded: Iterator[Any] | None = None
    frame: Any = None
    for target in targets:
        if decoded is None or strategy == "seek":
            # Seek only if a keyframe lies between what is decoded and the target
            # (the index's times may be decode times, a little early: no harm).
            ahead = keyframes[(keyframes > seen.last_frame) & (keyframes <= target + half_frame)]
            if decoded is None or (strategy == "seek" and len(ahead)):
                # The demuxer lands on the last keyframe at or before the target.
                pts = round((target + half_frame + origin) / stream.time_base)
                opened.container.seek(pts, stream=stream, backward=True, any_frame=False)
                decoded, frame = opened.container.decode(stream), None
        # A frame already decoded may be the first at or after this target too
        # (samples closer together than frames, or B-frames not decoded).
        if frame is None or seen.last_frame < target - half_frame:
            frame = _next_at(decoded, target - half_frame, origin, seen)
            if frame is None:
                return
        yield Frame(target, frame)
    seen.complete = True


def _next_at(decoded: Iterator[Any], time: float, origin: float, seen: Decoded) -> Any:
    """The first decoded frame at or after ``time``; None if the stream ends first.

    Data that fails to decode after the first frame ends the stream here (a
    truncated file ends in a partial packet); the caller reports how far it got.
    """
    av = require_av()
    try:
        for frame in decoded:
            if frame.time is None:
                continue
            seen.last_frame = float(frame.time) - origin
            if seen.last_frame >= time:
                return frame
    except av.FFmpegError:
        if seen.last_frame == -math.inf:
            raise
    return None


def _half_frame(info: VideoInfo) -> float:
    return 0.5 / info.frame_rate if info.frame_rate else 0.0


class VideoFrames:
    """Every frame of a video, in order, for a copy of it (redaction): the pictures,
    then the demuxed packets again for writing, its audio stream included.

    Opens as ``frames`` does (the same checks and errors, every frame decoded,
    none skipped); close with ``with``. ``frame_rate`` is the stream's average
    rate (its guessed rate, else 25).
    """

    def __init__(self, path: str, threads: int = 1) -> None:
        self._opened = _Opened(path, threads)
        self._opened.stream.codec_context.skip_frame = "DEFAULT"
        self.path = path
        stream = self._opened.stream
        rate = stream.average_rate or stream.guessed_rate
        self.frame_rate = float(rate) if rate else 25.0
        info = self._opened.info()
        self.duration = info.duration
        self.size = (info.width, info.height)  # upright

    def __enter__(self) -> VideoFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self._opened.close()

    @property
    def container(self) -> Any:
        return self._opened.container

    @property
    def stream(self) -> Any:
        return self._opened.stream

    def pictures(
        self, progress: Callable[[float], object] | None = None
    ) -> Iterator[tuple[int, RGBImage]]:
        """(index, upright RGB) of every frame from the first; ``progress`` gets the
        seconds of video each frame advances. Raises ImageError on a damaged stream."""
        av = require_av()
        interval = 1.0 / self.frame_rate
        try:
            for index, frame in enumerate(self.container.decode(self.stream)):
                yield index, upright(frame)
                if progress is not None:
                    progress(interval)
        except av.FFmpegError as exc:
            raise _fail(exc) from None

    def audio(self) -> Any | None:
        """The first audio stream, or None."""
        streams = self.container.streams.audio
        return streams[0] if streams else None

    def packets(self, audio: bool) -> Iterator[Any]:
        """The video stream's packets (and the first audio stream's, with ``audio``), in
        file order, from the start. Raises ImageError on a damaged stream."""
        av = require_av()
        self.container.seek(0)
        chosen = [self.stream]
        sound = self.audio() if audio else None
        if sound is not None:
            chosen.append(sound)
        try:
            yield from self.container.demux(*chosen)
        except av.FFmpegError as exc:
            raise _fail(exc) from None
