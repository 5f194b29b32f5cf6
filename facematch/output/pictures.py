"""Pictures of result rows: boxes and labels, face crops, masks, and upright copies on disk.

Everything here reads rows (``ImageResult``, ``VideoResult``) and pixels;
nothing detects or matches again. ``Pictures`` fans each row out to picture
writers (annotated copies, the HTML report) and decodes each image once for all
of them; for a video, the frames of its best samples, once each, in time order.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from PIL import Image, ImageDraw, ImageFont

from facematch.detect.boxes import grow_box
from facematch.errors import ImageError, UsageError
from facematch.matching.appearances import clock
from facematch.output.text import printable
from facematch.output.writers import Writer, output_file
from facematch.records import Appearance, FaceBox, FaceMatch, ImageResult, VideoResult
from facematch.sources.images import open_upright

log = logging.getLogger("facematch")

Kind = Literal["named", "ambiguous", "unknown", "face"]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

# A face is ambiguous when a second person is this close to its match, or when
# it is unknown but this close above the tolerance (docs/guide/pictures.md).
AMBIGUITY_MARGIN = 0.05

# Colour-blind safe pairs (ColorBrewer): box colour and the label text on it.
COLOURS: dict[Kind, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "named": ((26, 152, 80), (255, 255, 255)),
    "ambiguous": ((254, 196, 79), (0, 0, 0)),
    "unknown": ((215, 48, 39), (255, 255, 255)),
    "face": ((33, 102, 172), (255, 255, 255)),
}

# Label height is the long side over this, within the bounds below: about 100 px
# on a 12 MP photo, and the 12 px floor keeps a 250 px crop readable.
FONT_DIVISOR = 40
MIN_FONT_PX = 12
LINE_DIVISOR = 300
# A code point no font draws: what a missing glyph looks like in this font.
_NO_GLYPH = "\U0010fffd"

JPEG_QUALITY = 90


class Drawable(Protocol):
    def add(self, result: ImageResult, image: Image.Image | None) -> None: ...

    def add_frame(self, result: VideoResult, time: float, image: Image.Image) -> None:
        """One decoded frame of a video row: the sample at ``time`` seconds."""

    def add_video(self, result: VideoResult) -> None:
        """A video row, after its frames (none when it could not be decoded)."""

    def close(self) -> None: ...


def classify(face: FaceMatch, tolerance: float | None, margin: float = AMBIGUITY_MARGIN) -> Kind:
    """Named, ambiguous (uncertain, a second person close, or just past the tolerance)
    or unknown.

    A row without distances (``detect``) is just a face.
    """
    if face.distance is None:
        return "face"
    if face.name is not None:
        runner_up = face.runner_up
        close_second = runner_up is not None and runner_up.distance <= face.distance + margin
        return "ambiguous" if close_second or face.uncertain else "named"
    if face.tolerance is not None:
        tolerance = face.tolerance
    if tolerance is not None and face.distance <= tolerance + margin:
        return "ambiguous"
    return "unknown"


def nearest_name(face: FaceMatch) -> str | None:
    """The nearest known person, matched or not."""
    if face.name is not None:
        return face.name
    if face.nearest is not None:
        return face.nearest.name
    return face.known_face.name if face.known_face is not None else None


def label(face: FaceMatch, kind: Kind) -> str:
    """A face's label: name and distance, a question for an ambiguous one, or "unknown"."""
    if kind == "face":
        return ""
    nearest = nearest_name(face)
    if kind == "named":
        return f"{face.name} {face.distance:.2f}"
    if kind == "ambiguous" and nearest is not None:
        text = f"{nearest}? {face.distance:.2f}"
        if face.name is not None and face.runner_up is not None:
            text += f" / {face.runner_up.name} {face.runner_up.distance:.2f}"
        return text
    return "unknown"


@functools.cache
def load_font(size: int, path: str | None = None) -> Font:
    """The label font at ``size`` px: ``path`` (a TrueType/OpenType file) or Pillow's own."""
    if path is None:
        return ImageFont.load_default(size=size)
    try:
        return ImageFont.truetype(path, size)
    except OSError as exc:
        raise UsageError(f"cannot use the font {path}: {exc}") from None


def check_font(path: str | None) -> None:
    """Fail early, as a usage error, when ``--font`` is not a font."""
    if path is not None:
        load_font(MIN_FONT_PX, path)


@functools.cache
def _glyph(font: Font, character: str) -> bytes:
    canvas = Image.new("L", (MIN_FONT_PX * 3, MIN_FONT_PX * 3))
    ImageDraw.Draw(canvas).text((2, 2), character, font=font, fill=255)
    return canvas.tobytes()


def missing_characters(font_path: str | None, text: str) -> str:
    """The characters of ``text`` the font has no glyph for (drawn as a box or nothing)."""
    small = load_font(MIN_FONT_PX, font_path)
    no_glyph = _glyph(small, _NO_GLYPH)
    return "".join(
        c for c in dict.fromkeys(text) if not c.isspace() and _glyph(small, c) == no_glyph
    )


def drawable_text(font_path: str | None, text: str) -> tuple[str, str]:
    """``text`` as the font can draw it (accents dropped, then ``?``), and what it lacked."""
    missing = missing_characters(font_path, text)
    if not missing:
        return text, ""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    still = set(missing_characters(font_path, plain))
    return "".join("?" if c in still else c for c in plain), missing


def font_size(width: int, height: int) -> int:
    return max(MIN_FONT_PX, round(max(width, height) / FONT_DIVISOR))


class Annotations:
    """Draws boxes and labels; warns once per run about names the font cannot draw."""

    def __init__(self, tolerance: float | None, font_path: str | None = None) -> None:
        self.tolerance = tolerance
        self.font_path = font_path
        self.warned = False

    def draw(self, image: Image.Image, faces: Sequence[FaceMatch]) -> Image.Image:
        """``image`` (upright RGB, changed in place) with every face's box and label."""
        labels = []
        for face in faces:
            kind = classify(face, self.tolerance)
            labels.append((face.box, kind, label(face, kind)))
        return self.draw_labels(image, labels)

    def draw_labels(
        self, image: Image.Image, labels: Sequence[tuple[FaceBox, Kind, str]]
    ) -> Image.Image:
        """``image`` (changed in place) with each box in its kind's colour, labelled."""
        width, height = image.size
        size = font_size(width, height)
        font = load_font(size, self.font_path)
        line = max(2, round(max(width, height) / LINE_DIVISOR))
        draw = ImageDraw.Draw(image)
        for box, kind, caption in labels:
            colour, ink = COLOURS[kind]
            draw.rectangle((box.left, box.top, box.right, box.bottom), outline=colour, width=line)
            text = self._drawable(printable(caption))
            if not text:
                continue
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            pad = max(2, size // 6)
            text_w, text_h = right - left + 2 * pad, bottom - top + 2 * pad
            x = min(max(0, box.left - line // 2), max(0, width - text_w))
            y = box.top - line // 2 - text_h
            if y < 0:  # no room above: below the box, or inside its top when no room there
                y = box.bottom + line // 2 if box.bottom + text_h <= height else box.top
            draw.rectangle((x, y, x + text_w, y + text_h), fill=colour)
            draw.text((x + pad - left, y + pad - top), text, font=font, fill=ink)
        return image

    def _drawable(self, text: str) -> str:
        shown, missing = drawable_text(self.font_path, text)
        if missing and not self.warned:
            self.warned = True
            log.warning(
                "the label font has no glyph for %r (in %r); drawn as %r. "
                "Pass --font FILE with a font that has them",
                missing,
                text,
                shown,
            )
        return shown


def crop(image: Image.Image, box: FaceBox, side: int, margin: float = 0.25) -> Image.Image:
    """A face with some room around it, at most ``side`` px on its long side."""
    width, height = image.size
    grown = grow_box(box, margin, width, height)
    area = (grown.left, grown.top, grown.right, grown.bottom)
    if area[2] <= area[0] or area[3] <= area[1]:
        area = (0, 0, width, height)
    piece = image.crop(area)
    piece.thumbnail((side, side), Image.Resampling.LANCZOS)
    return piece


def image_bytes(image: Image.Image, fmt: str = "JPEG", quality: int = 80) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=quality)
    return buffer.getvalue()


def output_paths(paths: Sequence[str], out_dir: Path) -> dict[str, Path]:
    """Where each input's copy goes: its path below the inputs' common folder, under ``out_dir``.

    Distinct inputs always get distinct copies.
    """
    if not paths:
        return {}
    absolute = [os.path.abspath(p) for p in paths]
    root = os.path.commonpath([os.path.dirname(a) for a in absolute])
    return {p: out_dir / os.path.relpath(a, root) for p, a in zip(paths, absolute, strict=True)}


def refuse_overwrites(option: str, targets: Iterable[Path], inputs: Iterable[str]) -> None:
    """A usage error if any copy would be written over an input (or a link to one)."""
    originals: dict[str, str] = {}
    for path in inputs:
        originals[os.path.realpath(path)] = path
    for target in targets:
        hit = originals.get(os.path.realpath(target))
        if hit is None and target.exists():
            hit = next((p for p in originals.values() if _same_file(p, target)), None)
        if hit is not None:
            raise UsageError(
                f"{option} would write over the input {printable(hit)}; choose another folder"
            )


def refuse_output_in_inputs(option: str, out_dir: Path, folders: Iterable[str]) -> None:
    """A usage error if ``out_dir`` is one of the input ``folders`` (KNOWN too) or inside
    one, also through links: the next run would read the pictures written there as
    inputs, or as known people."""
    out = os.path.realpath(out_dir)
    for folder in folders:
        real = os.path.realpath(folder)
        if out == real or out.startswith(real.rstrip(os.sep) + os.sep):
            where = "is" if out == real else "is inside"
            raise UsageError(
                f"{option} {printable(str(out_dir))} {where} the input folder "
                f"{printable(folder)}; choose a folder outside the inputs"
            )


def _same_file(path: str, target: Path) -> bool:
    try:
        return os.path.samefile(path, target)
    except OSError:
        return False


def save_format(path: Path) -> tuple[Path, str]:
    """The format a copy is saved in: its suffix's, or PNG (suffix added) when Pillow cannot."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        return path.with_name(path.name + ".png"), "PNG"
    return path, fmt


def save_copy(
    image: Image.Image,
    path: Path,
    quality: int = JPEG_QUALITY,
    subsampling: int | None = None,
    private: bool = False,
) -> Path:
    """Write ``image`` with no metadata but its colour profile: no EXIF, so no GPS, no thumbnail.

    ``quality`` and ``subsampling`` (Pillow's) are for JPEG; returns where it was
    written (see ``save_format``). Raises OutputError.
    """
    path, fmt = save_format(path)
    image.info = {k: v for k, v in image.info.items() if k == "icc_profile"}
    options: dict[str, int] = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if subsampling is not None and fmt == "JPEG":
        options["subsampling"] = subsampling
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    write_atomically(path, buffer.getvalue(), private)
    return path


def write_atomically(path: Path, data: bytes, private: bool = False) -> None:
    """Write a file (and its missing folders) through ``output_file``: never half-written.

    An existing file or link at ``path`` is replaced, never written through.
    Raises OutputError.
    """
    with output_file(path, private) as stream:
        stream.write(data)


def appearance_label(appearance: Appearance) -> tuple[FaceBox, Kind, str]:
    """A range's best face: named (name, distance) or unknown, and the range's times."""
    span = f"{clock(appearance.start)}-{clock(appearance.end)}"
    if appearance.name is None:
        return appearance.box, "unknown", f"unknown {span}"
    distance = "" if appearance.distance is None else f" {appearance.distance:.2f}"
    return appearance.box, "named", f"{appearance.name}{distance} {span}"


def file_safe(name: str, limit: int = 80) -> str:
    """A person's name as part of a file name: letters, digits, ``_.-``; runs of others ``-``."""
    return re.sub(r"[^\w.-]+", "-", name).strip("-.")[:limit] or "person"


def still_path(copy: Path, time: float, name: str | None = None, per_frame: bool = False) -> Path:
    """Where a video frame's picture goes: beside the video's copy path, its name plus
    ``@HH-MM-SS.mmm`` (the frame's time) and, for a range, ``_`` and the person
    (``unknown_person`` for unknown faces): ``clip.mp4@00-00-03.000_Ada-Lovelace.jpg``.
    Sorted by name, a video's pictures are in time order."""
    stamp = clock(time).replace(":", "-")
    who = "" if per_frame else "_" + file_safe(name if name is not None else "unknown_person")
    return copy.with_name(f"{copy.name}@{stamp}{who}.jpg")


def picture_times(result: VideoResult) -> list[float]:
    """The sample times a video row has pictures for: each range's best sample, or
    (``--per-frame``) each sampled frame with faces."""
    if result.frames is not None:
        return sorted({f.time for f in result.frames if f.faces})
    return sorted({a.time for a in result.appearances})


def video_stills(result: VideoResult) -> Iterator[tuple[float, Image.Image]]:
    """The upright frames of a video row's pictures (``picture_times``), decoded once, in
    time order, as the row's sampling picked them. Raises ImageError."""
    from facematch.sources.video import frames_at

    for frame in frames_at(result.path, picture_times(result), result.fps):
        yield frame.time, Image.fromarray(frame.image())


@dataclass
class AnnotatedCopies:
    """Writes an annotated, upright copy of every readable image into a folder, and a
    picture of each video range's best sample (or each sampled frame with faces)."""

    targets: dict[str, Path]
    annotations: Annotations
    written: int = 0
    _inputs: frozenset[str] = field(init=False, default=frozenset())
    _frames: tuple[str, dict[float, tuple[FaceMatch, ...]]] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._inputs = frozenset(os.path.realpath(p) for p in self.targets)

    def add(self, result: ImageResult, image: Image.Image | None) -> None:
        if image is None or result.status == "error":
            return
        drawn = self.annotations.draw(image.copy(), result.faces)
        save_copy(drawn, self.targets[result.path])
        self.written += 1

    def add_frame(self, result: VideoResult, time: float, image: Image.Image) -> None:
        copy = self.targets[result.path]
        if result.frames is not None:
            faces = self._faces_at(result).get(time, ())
            drawn = self.annotations.draw(image.copy(), faces)
            self._save(drawn, still_path(copy, time, per_frame=True))
            return
        for appearance in result.appearances:
            if appearance.time == time:
                drawn = self.annotations.draw_labels(image.copy(), [appearance_label(appearance)])
                self._save(drawn, still_path(copy, time, appearance.name))

    def _faces_at(self, result: VideoResult) -> dict[float, tuple[FaceMatch, ...]]:
        if self._frames is None or self._frames[0] != result.path:
            self._frames = (result.path, {f.time: f.faces for f in result.frames or ()})
        return self._frames[1]

    def _save(self, image: Image.Image, path: Path) -> None:
        if os.path.realpath(path) in self._inputs:  # an input named like a picture of ours
            log.error("%s: not written: it is an input", printable(str(path)))
            return
        save_copy(image, path)
        self.written += 1

    def add_video(self, result: VideoResult) -> None:
        self._frames = None

    def close(self) -> None:
        return None


class Pictures:
    """A writer that hands every row, and its upright image decoded once, to picture writers."""

    def __init__(self, drawables: Sequence[Drawable]) -> None:
        self.drawables = list(drawables)

    def write(self, result: ImageResult | VideoResult) -> None:
        if isinstance(result, VideoResult):
            self._video(result)
            return
        image = None
        if result.status != "error":
            try:
                image = open_upright(result.path)[0]
            except ImageError as exc:  # changed or removed since it was matched
                log.error("%s: no picture: %s", printable(result.path), exc)
        for drawable in self.drawables:
            drawable.add(result, image)

    def _video(self, result: VideoResult) -> None:
        if picture_times(result):  # also what was decoded of a video cut short (an error row)
            try:
                for time, image in video_stills(result):
                    for drawable in self.drawables:
                        drawable.add_frame(result, time, image)
            except ImageError as exc:  # changed or removed since it was matched
                log.error("%s: no picture: %s", printable(result.path), exc)
        for drawable in self.drawables:
            drawable.add_video(result)

    def close(self) -> None:
        for drawable in self.drawables:
            drawable.close()


class Tee:
    """One writer that writes every row to several (data first, then pictures)."""

    def __init__(self, *writers: Writer) -> None:
        self.writers = writers

    def write(self, result: ImageResult | VideoResult) -> None:
        for writer in self.writers:
            writer.write(result)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
