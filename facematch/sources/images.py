"""Find image files and load them upright as RGB arrays.

Discovery is sorted and matches an anchored, case-insensitive suffix, so
``photo.JPG`` is found and ``photo.jpg.txt`` is not. Loading applies the EXIF
orientation (phones store photos rotated and flag it there), converts every
mode we meet in the wild (RGBA, palette, grayscale, 16-bit, CMYK) to 8-bit RGB,
and refuses decompression bombs before decoding them.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import stat
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
# Found in folders by ``facematch match`` (read by facematch.sources.video, with the video extra).
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"})

# 16-bit panoramas and scans can be large, but beyond this a file is far more
# likely a decompression bomb than a photo; 200 MP phones save binned 12-50 MP.
MAX_PIXELS = 150_000_000
ORIENTATION_TAG = 0x0112

RGBImage = NDArray[np.uint8]
# Modes of more than 8 bits per sample, scaled down to 8-bit gray.
WIDE_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
# Rows converted at a time from 16-bit and 32-bit images, to bound memory.
CONVERT_ROWS = 256

log = logging.getLogger("facematch")


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


def is_video_name(path: str | Path) -> bool:
    """True when the name ends in a video suffix (anchored, any case)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class Found:
    """One discovered input: a path, and why it cannot be read if we know already."""

    path: str
    problem: str | None = None


def visible_entries(folder: str | Path) -> list[os.DirEntry[str]]:
    """A folder's entries sorted by name, without hidden ones (``.name``, macOS ``._name``)."""
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)


FILE_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def file_problem(path: str) -> str | None:
    """Why ``path`` cannot be an image file (no such file, a FIFO, ...), or None.

    Only regular files are ever opened: a FIFO or a device blocks or never
    ends, so it is refused by its type before anything reads it.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "broken symbolic link" if os.path.islink(path) else "no such file or directory"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if stat.S_ISDIR(info.st_mode):
        return "is a directory, not an image file"
    if not stat.S_ISREG(info.st_mode):
        return f"not a regular file: {FILE_KINDS.get(stat.S_IFMT(info.st_mode), 'special file')}"
    return None


def open_regular(path: str | Path) -> io.BufferedReader:
    """Open a regular file for reading without ever blocking on a FIFO or device.

    O_NONBLOCK makes opening a FIFO return at once; the type is then checked
    on the open file itself, so a file swapped after discovery is caught too.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except OSError as exc:
        raise ImageError(f"cannot open: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise ImageError("is a directory, not an image file")
        kind = FILE_KINDS.get(stat.S_IFMT(mode), "special file")
        raise ImageError(f"not a regular file: {kind}")
    if flags & getattr(os, "O_NONBLOCK", 0) and hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def iter_folder(
    folder: str,
    recursive: bool = False,
    visited: set[tuple[int, int]] | None = None,
    videos: bool = False,
) -> Iterator[Found]:
    """Image files in a folder, sorted by name, descending into subfolders if asked.

    Hidden files (``.name``, including macOS ``._name`` resource forks) are
    skipped. A folder whose name looks like an image is reported, not skipped,
    so a user who expected a photo there learns why nothing came of it; so is
    an image name that is not a regular file (a FIFO, a broken link) and a
    folder that cannot be listed. Links to folders are followed, each folder
    searched once (a link loop is reported as a warning and not followed).
    With ``videos``, video files are found too.
    """
    wanted = (lambda p: is_image_name(p) or is_video_name(p)) if videos else is_image_name
    visited = set() if visited is None else visited
    try:
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in visited:
            log.warning(
                "%s: a folder already searched (a link loop?); not searching it again", folder
            )
            return
        entries = visible_entries(folder)
    except OSError as exc:
        yield Found(folder, f"cannot read folder: {exc.strerror or exc}")
        return
    visited.add((info.st_dev, info.st_ino))
    for entry in entries:
        path = os.path.join(folder, entry.name)
        if _is_dir(entry):
            if wanted(Path(entry.name)):
                yield Found(path, "is a directory, not an image file")
            if recursive:
                yield from iter_folder(path, recursive=True, visited=visited, videos=videos)
        elif wanted(Path(entry.name)):
            yield Found(path, file_problem(path))


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link loop or an unreadable link: not a folder we can search
        return False


def discover(inputs: Iterable[str], recursive: bool = False, videos: bool = False) -> list[Found]:
    """Expand files and folders given on the command line into sorted inputs.

    A file named explicitly is always tried, whatever its suffix: its content,
    not its name, decides whether it is an image. With ``videos``, folders
    yield video files too.
    """
    found: dict[str, Found] = {}
    visited: set[tuple[int, int]] = set()
    for item in inputs:
        if os.path.isdir(item):
            for f in iter_folder(item, recursive, visited, videos):
                found.setdefault(f.path, f)
        else:
            found.setdefault(item, Found(item, file_problem(item)))
    return [found[k] for k in sorted(found)]


class ShownPaths:
    """Absolute paths, as the library stores them, printed the way the user named them.

    A path under one of the paths ``given`` on the command line prints as discovery
    names what it finds there: the path as given, joined with the rest (``photos/``
    and ``/home/me/photos/a.jpg`` give ``photos/a.jpg``, as matching ``photos/``
    prints it). Any other path (a search hit, every file of ``match --library``
    without UNKNOWN) prints relative to the current folder when it is under it (and
    that is not ``/``), else as it is. The deepest given path that holds a path wins;
    among equals, the first.
    """

    def __init__(self, given: Iterable[str] = ()) -> None:
        roots = [(os.path.abspath(g), g) for g in given]
        roots.sort(key=lambda root: -len(root[0]))  # stable: the first given among equals
        self._roots = roots
        here = os.getcwd()
        # At the root every path is under "here"; absolute ones say more there.
        self._here = os.path.join(here, "") if os.path.dirname(here) != here else None

    def __call__(self, path: str) -> str:
        for root, as_given in self._roots:
            if path == root:
                return as_given
            prefix = os.path.join(root, "")
            if path.startswith(prefix):
                return os.path.join(as_given, path[len(prefix) :])
        here = self._here
        if here is not None and path.startswith(here) and len(path) > len(here):
            return path[len(here) :]
        return path


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode, keeping the full range of 16-bit and float data."""
    if image.mode in WIDE_MODES:
        return Image.fromarray(_to_8bit(image), mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


def _to_8bit(image: Image.Image) -> NDArray[np.uint8]:
    """A 16-bit, 32-bit or float image scaled to 8 bits, a band of rows at a time.

    16-bit data is scaled by integer arithmetic (0..65535 to 0..255); 32-bit
    and float data by its own maximum. Only one band is ever widened, so
    memory stays near the size of the image itself.
    """
    width, height = image.size
    sixteen = image.mode.startswith("I;16")
    top = 65535.0 if sixteen else max(float(image.getextrema()[1] or 0), 1.0)  # type: ignore[arg-type]
    gray = np.empty((height, width), dtype=np.uint8)
    for y in range(0, height, CONVERT_ROWS):
        band = np.asarray(image.crop((0, y, width, min(y + CONVERT_ROWS, height))))
        if sixteen:
            gray[y : y + len(band)] = (band.astype(np.uint32) * 255 // 65535).astype(np.uint8)
        else:
            scaled = np.clip(band.astype(np.float32) * np.float32(255.0 / top), 0, 255)
            gray[y : y + len(band)] = np.nan_to_num(scaled).astype(np.uint8)
    return gray


def open_upright(
    file: str | Path | IO[bytes],
    scale_for: Callable[[int, int], float] | None = None,
    max_pixels: int = MAX_PIXELS,
    *,
    luminance_over: int | None = None,
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode an image upright by its EXIF orientation, as 8-bit RGB.

    With ``scale_for(height, width) -> scale``, return a copy shrunk by that
    scale (a JPEG is decoded at reduced size by the decoder itself, which is
    much faster than decoding it whole). With ``luminance_over`` too, a shrunk
    copy of more pixels than that is 8-bit luminance ("L"; a JPEG decodes only
    its luma then).
    Also returns the full upright (height, width). Raises ImageError with a
    one-line reason for anything that is not a readable image of a sane size.
    """
    if isinstance(file, str | Path):
        if suffix_needs_heif(Path(file)) and not heif_available():
            raise ImageError(
                "HEIC/HEIF/AVIF needs the optional extra: pip install 'facematch[heic]'"
            )
        with open_regular(file) as stream:
            return open_upright(stream, scale_for, max_pixels, luminance_over=luminance_over)
    try:
        # Pillow's warnings (corrupt EXIF, truncated data) concern metadata we
        # cope with; they must not reach the user's terminal, -q or not.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(file) as image:
                return _decode(image, scale_for, max_pixels, luminance_over)
    except ImageError:
        raise
    except PermissionError:
        raise ImageError("permission denied") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(_bomb(exc, max_pixels)) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, TypeError) as exc:
        raise ImageError(_describe(exc)) from None


def _bomb(exc: Exception, max_pixels: int) -> str:
    """Pillow's own bomb refusal, reworded with the limit that applies (ours)."""
    size = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = f"{int(size.group(1)) / 1e6:.0f} MP" if size else "too many pixels"
    return f"image is {pixels}, over the {max_pixels / 1e6:.0f} MP limit (decompression bomb?)"


def _decode(
    image: Image.Image,
    scale_for: Callable[[int, int], float] | None,
    max_pixels: int,
    luminance_over: int | None = None,
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
    target = scaled_size(up_width, up_height, scale)
    grey = shrinks_to_luminance((up_width, up_height), target, luminance_over)
    if scale < 1.0:
        image.draft("L" if grey else None, target[::-1] if turned else target)
    image.load()
    upright = ImageOps.exif_transpose(image)
    if upright.mode in WIDE_MODES:  # shrink the 8-bit gray copy, then widen it to RGB
        gray = Image.fromarray(_to_8bit(upright), mode="L")
        shrunk = shrink(gray, up_width, up_height, scale)
        return shrunk if grey else to_rgb(shrunk), (up_height, up_width)
    if grey:
        lum = upright if upright.mode == "L" else to_rgb(upright).convert("L")
        return shrink(lum, up_width, up_height, scale), (up_height, up_width)
    return shrink(to_rgb(upright), up_width, up_height, scale), (up_height, up_width)


def shrinks_to_luminance(
    size: tuple[int, int], target: tuple[int, int], luminance_over: int | None
) -> bool:
    """Whether a copy of a (width, height) ``size`` picture shrunk to ``target`` is made
    as luminance (``load_scaled``'s ``luminance_over``)."""
    return luminance_over is not None and target != size and target[0] * target[1] > luminance_over


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
    file: str | Path | IO[bytes],
    scale_for: Callable[[int, int], float],
    *,
    luminance_over: int | None = None,
) -> tuple[RGBImage, tuple[int, int]]:
    """An upright RGB copy shrunk by ``scale_for(height, width)``, and the full (height, width).

    With ``luminance_over``, a shrunk copy of more pixels than that is an (H, W)
    luminance array instead: enough for HOG, cheaper to decode. An unshrunk
    copy stays RGB, since its faces are described from it.
    """
    image, size = open_upright(file, scale_for, luminance_over=luminance_over)
    return np.asarray(image, dtype=np.uint8), size


def dlib_pixels(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """``image`` as dlib's detectors, predictor and chip cutter take it: C-contiguous uint8,
    (H, W, 3) RGB or an (H, W) luminance array; RGBA's alpha is dropped.

    The array itself when it already is (no copy). dlib refuses anything else
    (``get_face_chips(): incompatible function arguments``), and decoders hand
    back padded rows: PyAV's frames of 854, 988 or 1080 px are views into
    buffers whose rows are longer than the picture.
    """
    if image.ndim == 3 and image.shape[2] > 3:
        image = image[..., :3]
    return np.ascontiguousarray(image, dtype=np.uint8)


def luminance(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """An (H, W) uint8 luminance array (ITU-R 601 luma, as Pillow's "L" and JPEG have it).

    An (H, W) array is returned as it is; RGBA's alpha is ignored.
    """
    if image.ndim == 2:
        return dlib_pixels(image)
    return np.asarray(Image.fromarray(dlib_pixels(image)).convert("L"), dtype=np.uint8)


def working_copy(image: RGBImage, scale: float) -> RGBImage:
    """The image shrunk by ``scale`` as face_recognition shrinks it (Lanczos thumbnail)."""
    if scale >= 1.0:
        return image
    height, width = image.shape[:2]
    return np.asarray(shrink(Image.fromarray(image), width, height, scale))
