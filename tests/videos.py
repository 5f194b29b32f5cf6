"""Ground-truth videos: stills of people shown at known times, encoded with PyAV.

Each shot shows one photo, letterboxed onto the frame, with a slow zoom so
that consecutive frames differ as in real footage. ``rotation`` stores the
pixels turned and a display matrix that turns them back (as phones do), so
a player, and facematch, show the same picture. Used by the tests (small
files) and by ``benchmarks.speed.bench_video`` (1080p, long files).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Shot:
    """``photo`` on screen from ``start`` to ``end`` seconds; ``name`` None for a stranger."""

    name: str | None
    photo: Path
    start: float
    end: float


def _frame(photo: Image.Image, width: int, height: int, zoom: float) -> Image.Image:
    canvas = Image.new("RGB", (width, height), (40, 40, 48))
    scale = min(width / photo.width, height / photo.height) * zoom
    size = (max(1, round(photo.width * scale)), max(1, round(photo.height * scale)))
    shown = photo.resize(size, Image.Resampling.BILINEAR)
    canvas.paste(shown, ((width - size[0]) // 2, (height - size[1]) // 2))
    return canvas


def write_video(
    path: Path,
    shots: Sequence[Shot],
    *,
    width: int = 480,
    height: int = 270,
    rate: int = 10,
    codec: str = "libx264",
    rotation: int = 0,
    keyframe_interval: int | None = None,
    options: dict[str, str] | None = None,
) -> float:
    """Write the shots as a video; returns its length in seconds.

    ``rotation`` (0, 90, 180, 270): the display rotation, counterclockwise, as
    PyAV reads it back; the stored pixels are turned the other way.
    """
    import av

    duration = max(s.end for s in shots)
    photos = {s.photo: Image.open(s.photo).convert("RGB") for s in shots}
    stored_w, stored_h = (height, width) if rotation % 180 else (width, height)
    with av.open(str(path), "w", options=options or {}) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = stored_w, stored_h
        stream.pix_fmt = "yuv420p"
        # About 0.1 bit per pixel: a sharp picture in every codec (MPEG-4's default is blocky).
        stream.bit_rate = max(500_000, width * height * rate // 10)
        if codec == "libvpx-vp9":  # its defaults take seconds per frame
            stream.options = {"deadline": "realtime", "cpu-used": "8"}
        elif codec == "libx264":
            stream.options = {"preset": "veryfast"}
        if keyframe_interval is not None:
            stream.codec_context.gop_size = keyframe_interval
        if rotation:
            stream.set_display_rotation(rotation)
        for index in range(round(duration * rate)):
            time = index / rate
            shot = next((s for s in shots if s.start <= time < s.end), None)
            if shot is None:
                image = Image.new("RGB", (width, height), (40, 40, 48))
            else:
                progress = (time - shot.start) / (shot.end - shot.start)
                image = _frame(photos[shot.photo], width, height, 0.9 + 0.1 * progress)
            pixels = np.asarray(image)
            if rotation:
                # Stored turned clockwise by the angle the display turns back.
                pixels = np.ascontiguousarray(np.rot90(pixels, k=-(rotation // 90)))
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return duration


def write_reframed(
    path: Path,
    source: Path,
    *,
    width: int,
    height: int,
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
    frames: int = 1,
    rate: int = 1,
) -> None:
    """The first ``frames`` frames of the real clip ``source``, letterboxed onto
    ``width`` x ``height`` and re-encoded with H.264 in ``pix_fmt`` (10-bit too:
    "yuv420p10le"), at ``rate`` frames a second. ``rotation`` as in ``write_video``.
    """
    import av

    with av.open(str(source)) as container:
        decoded = container.decode(video=0)
        pictures = [frame.to_image() for _, frame in zip(range(frames), decoded, strict=False)]
    stored_w, stored_h = (height, width) if rotation % 180 else (width, height)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = stored_w, stored_h
        stream.pix_fmt = pix_fmt
        stream.options = {"preset": "veryfast"}
        if rotation:
            stream.set_display_rotation(rotation)
        for picture in pictures:
            pixels = np.asarray(_frame(picture, width, height, 1.0))
            if rotation:
                pixels = np.ascontiguousarray(np.rot90(pixels, k=-(rotation // 90)))
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def audio_only(path: Path) -> None:
    """A file with one AAC stream and no video (a voice memo named like a video)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=8000)
        for i in range(4):
            samples = np.zeros((1, 1024), dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
