"""A corpus of malformed image files, made from one real photo.

Truncations of real JPEG, PNG, WebP, GIF, TIFF and HEIC files (and, with
PyAV, an MP4 video) at many offsets, valid headers followed by garbage,
zero-length files, huge dimensions in a tiny file, and files whose names lie
about their format.
Every one of them must become a row with a status, never a traceback.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path
from typing import Any

from PIL import Image

FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "tif": "TIFF"}


def encoded(photo: Image.Image, fmt: str) -> bytes:
    """The photo saved in one format, as bytes."""
    buffer = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    photo.save(buffer, fmt)
    return buffer.getvalue()


def huge_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    ihdr = struct.pack(">I", len(header)) + b"IHDR" + header
    ihdr += struct.pack(">I", zlib.crc32(b"IHDR" + header))
    body = zlib.compress(b"\0" * 64)
    idat = struct.pack(">I", len(body)) + b"IDAT" + body
    idat += struct.pack(">I", zlib.crc32(b"IDAT" + body))
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat + iend


def build(folder: Path, photo_path: Path, cuts: int = 4, seed: int = 0) -> list[Path]:
    """Write the corpus into ``folder``; ``cuts`` truncations per format. Returns the files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    photo = Image.open(photo_path).convert("RGB")
    photo.thumbnail((400, 400))
    formats = dict(FORMATS)
    try:
        import pillow_heif  # noqa: F401

        formats["heic"] = "HEIF"
    except ImportError:
        pass
    files: dict[str, bytes] = {}
    for suffix, fmt in formats.items():
        whole = encoded(photo, fmt)
        for k in range(cuts):
            # The first bytes (magic and header) and offsets spread over the body.
            cut = [8, 40][k] if k < 2 else int(len(whole) * (k - 1) / (cuts - 1))
            files[f"cut-{fmt.lower()}-{cut}.{suffix}"] = whole[:cut]
        garbage = bytes(rng.getrandbits(8) for _ in range(2000))
        files[f"garbage-{fmt.lower()}.{suffix}"] = whole[:64] + garbage
        files[f"flipped-{fmt.lower()}.{suffix}"] = _flip_bytes(whole, rng)
        files[f"misnamed-{fmt.lower()}.bmp"] = whole  # a good image under a wrong name
    try:
        whole = short_video(photo)
    except ImportError:
        pass
    else:
        for k in range(cuts):
            files[f"cut-video-{k}.mp4"] = whole[: int(len(whole) * (k + 1) / (cuts + 1))]
        files["empty.mp4"] = b""
    files["empty.jpg"] = b""
    files["empty.png"] = b""
    files["text.jpg"] = b"this is not an image\n" * 10
    files["huge-dimensions.png"] = huge_png(60000, 60000)
    files["huge-width.png"] = huge_png(2**31 - 1, 1)
    files["zero-size.png"] = huge_png(0, 0)
    for name, payload in files.items():
        (folder / name).write_bytes(payload)
    return sorted(folder / name for name in files)


def short_video(photo: Image.Image) -> bytes:
    """A one-second H.264 MP4 of the photo, index first (so a cut keeps its index)."""
    import tempfile

    import av
    import numpy as np

    still = np.asarray(photo.resize((photo.width // 2 * 2, photo.height // 2 * 2)))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "video.mp4"
        _write(path, still, av)
        return path.read_bytes()


def _write(path: Path, still: Any, av: Any) -> None:
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = still.shape[1], still.shape[0], "yuv420p"
        for _ in range(5):
            for packet in stream.encode(av.VideoFrame.from_ndarray(still, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _flip_bytes(whole: bytes, rng: random.Random) -> bytes:
    """The file with a few hundred bytes after its header overwritten at random."""
    data = bytearray(whole)
    for _ in range(300):
        data[rng.randrange(min(64, len(data) - 1), len(data))] = rng.getrandbits(8)
    return bytes(data)
