"""Find image files and load them upright as RGB arrays.

Discovery is sorted and matches an anchored, case-insensitive suffix, so
``photo.JPG`` is found and ``photo.jpg.txt`` is not. Loading applies the EXIF
orientation (phones store photos rotated and flag it there), converts every
mode we meet in the wild (RGBA, palette, grayscale, 16-bit, CMYK) to 8-bit RGB,
and refuses decompression bombs before decoding them.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from facematch.errors import ImageError

BASE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
)
HEIF_SUFFIXES = frozenset({".heic", ".heif", ".avif"})

# 16-bit panoramas and scans can be large, but beyond this a file is far more
# likely a decompression bomb than a photo; 200 MP phones save binned 12-50 MP.
MAX_PIXELS = 150_000_000
ORIENTATION_TAG = 0x0112

RGBImage = NDArray[np.uint8]


@functools.cache
def heif_available() -> bool:
    """Register pillow-heif's openers if the optional extra is installed."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    if hasattr(pillow_heif, "register_avif_opener"):
        pillow_heif.register_avif_opener()
    return True


@functools.cache
def native_avif() -> bool:
    """Whether this Pillow reads AVIF itself (Pillow 11.2+ wheels do)."""
    from PIL import features

    return bool(features.check("avif"))


def image_suffixes() -> frozenset[str]:
    """The suffixes facematch reads; HEIC/HEIF (and AVIF on old Pillow) need the heic extra."""
    suffixes = BASE_SUFFIXES | ({".avif"} if native_avif() else set())
    return suffixes | HEIF_SUFFIXES if heif_available() else suffixes


def is_image_name(path: Path) -> bool:
    """True when the name ends in an image suffix (anchored, any case)."""
    return path.suffix.lower() in image_suffixes()


@dataclass(frozen=True)
class Found:
    """One discovered input: a path, and why it cannot be read if we know already."""

    path: str
    problem: str | None = None


def visible_entries(folder: str | Path) -> list[os.DirEntry[str]]:
    """A folder's entries sorted by name, without hidden ones (``.name``, macOS ``._name``)."""
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)


def iter_folder(folder: str, recursive: bool = False) -> Iterator[Found]:
    """Image files in a folder, sorted by name, descending into subfolders if asked.

    Hidden files (``.name``, including macOS ``._name`` resource forks) are
    skipped. A folder whose name looks like an image is reported, not skipped,
    so a user who expected a photo there learns why nothing came of it.
    """
    for entry in visible_entries(folder):
        path = os.path.join(folder, entry.name)
        if entry.is_dir():
            if is_image_name(Path(entry.name)):
                yield Found(path, "is a directory, not an image file")
            if recursive:
                yield from iter_folder(path, recursive=True)
        elif is_image_name(Path(entry.name)):
            yield Found(path)


def discover(inputs: Iterable[str], recursive: bool = False) -> list[Found]:
    """Expand files and folders given on the command line into sorted inputs.

    A file named explicitly is always tried, whatever its suffix: its content,
    not its name, decides whether it is an image.
    """
    found: dict[str, Found] = {}
    for item in inputs:
        if os.path.isdir(item):
            for f in iter_folder(item, recursive):
                found.setdefault(f.path, f)
        elif os.path.exists(item):
            found.setdefault(item, Found(item))
        else:
            found.setdefault(item, Found(item, "no such file or directory"))
    return [found[k] for k in sorted(found)]


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode, keeping the full range of 16-bit and float data."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        data = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(data.max()), 1.0)
        gray = np.clip(data * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


def open_upright(
    file: str | Path | IO[bytes],
    scale_for: Callable[[int, int], float] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode an image upright by its EXIF orientation, as 8-bit RGB.

    With ``scale_for(height, width) -> scale``, return a copy shrunk by that
    scale (a JPEG is decoded at reduced size by the decoder itself, which is
    much faster than decoding it whole). Also returns the full upright
    (height, width). Raises ImageError with a one-line reason for anything that
    is not a readable image of a sane size.
    """
    if isinstance(file, str | Path):
        if os.path.isdir(file):
            raise ImageError("is a directory, not an image file")
        if not os.path.exists(file):
            raise ImageError("no such file")
        if suffix_needs_heif(Path(file)) and not heif_available():
            raise ImageError(
                "HEIC/HEIF/AVIF needs the optional extra: pip install 'facematch[heic]'"
            )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                return _decode(image, scale_for, max_pixels)
    except ImageError:
        raise
    except PermissionError:
        raise ImageError("permission denied") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"decompression bomb refused: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageError(_describe(exc)) from None


def _decode(
    image: Image.Image, scale_for: Callable[[int, int], float] | None, max_pixels: int
) -> tuple[Image.Image, tuple[int, int]]:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(
            f"image is {width}x{height} = {width * height / 1e6:.0f} MP, "
            f"over the {max_pixels / 1e6:.0f} MP limit (decompression bomb?)",
        )
    turned = image.getexif().get(ORIENTATION_TAG, 1) in (5, 6, 7, 8)
    up_height, up_width = (width, height) if turned else (height, width)
    scale = 1.0 if scale_for is None else scale_for(up_height, up_width)
    if scale < 1.0:
        target = scaled_size(up_width, up_height, scale)
        image.draft(None, target[::-1] if turned else target)
    image.load()
    rgb = to_rgb(ImageOps.exif_transpose(image))
    return shrink(rgb, up_width, up_height, scale), (up_height, up_width)


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


def shrink(image: Image.Image, width: int, height: int, scale: float) -> Image.Image:
    """An image of (width, height) shrunk by ``scale`` as face_recognition shrinks it.

    ``image`` may already be smaller (a JPEG draft); a Lanczos thumbnail, made
    in place (callers pass images of their own), brings it to the exact size.
    """
    target = scaled_size(width, height, scale)
    if scale < 1.0 and image.size != target:
        image.thumbnail(target, Image.Resampling.LANCZOS)
    return image


def suffix_needs_heif(path: Path) -> bool:
    suffix = path.suffix.lower()
    return suffix in HEIF_SUFFIXES and not (suffix == ".avif" and native_avif())


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if "cannot identify image file" in text:
        return "not an image, or a format Pillow cannot read"
    return f"cannot decode image: {text}"


def load_rgb(file: str | Path | IO[bytes]) -> RGBImage:
    """An upright RGB image as a (height, width, 3) uint8 array."""
    return np.asarray(open_upright(file)[0], dtype=np.uint8)


def load_scaled(
    file: str | Path | IO[bytes], scale_for: Callable[[int, int], float]
) -> tuple[RGBImage, tuple[int, int]]:
    """An upright RGB copy shrunk by ``scale_for(height, width)``, and the full (height, width)."""
    image, size = open_upright(file, scale_for)
    return np.asarray(image, dtype=np.uint8), size
