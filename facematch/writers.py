"""One writer per output format, each with ``write(result)`` and ``close()``.

``compat`` prints face_recognition's exact lines (sentinel names included);
``csv``, ``json`` and ``jsonl`` carry a status and an error for every input.
Every text field goes through :func:`facematch.text.printable` (undecodable
bytes and control characters as ``\\xNN``), and CSV cells are also kept from
running as spreadsheet formulas.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from facematch.appearances import Appearance, clock
from facematch.gallery import Match
from facematch.pipeline import FaceMatch, ImageResult, VideoResult
from facematch.text import printable, spreadsheet_safe

CSV_HEADER = (
    "path",
    "face",
    "top",
    "right",
    "bottom",
    "left",
    "name",
    "distance",
    "status",
    "error",
    "matches",
    "runner_up",
    "runner_up_distance",
)

# Appended when the inputs include a video (photo rows leave them empty): range
# rows fill them all, --per-frame rows only ``time``.
VIDEO_CSV_COLUMNS = ("time", "start", "end", "start_hms", "end_hms", "samples")

DISTANCE_DIGITS = 6
TIME_DIGITS = 3

Result = ImageResult | VideoResult
Cell = str | int | float


class Writer(Protocol):
    def write(self, result: Result) -> None: ...

    def close(self) -> None: ...


def _round(distance: float | None) -> float | None:
    return None if distance is None else round(distance, DISTANCE_DIGITS)


class CompatWriter:
    """face_recognition's ``path,name[,distance]`` lines; errors go to stderr only."""

    def __init__(self, out: TextIO, show_distance: bool = False) -> None:
        self.out = out
        self.show_distance = show_distance

    def _line(self, path: str, name: str, distance: float | None) -> None:
        path, name = printable(path), printable(name)
        if self.show_distance:
            self.out.write(f"{path},{name},{distance}\n")
        else:
            self.out.write(f"{path},{name}\n")

    def write(self, result: Result) -> None:
        if result.status == "no_faces":
            self._line(result.path, "no_persons_found", None)
        if isinstance(result, VideoResult):
            self._video(result)
            return
        self._faces(result.path, result.faces)

    def _faces(self, where: str, faces: tuple[FaceMatch, ...]) -> None:
        for face in faces:
            if face.matches:
                for m in face.matches:
                    self._line(where, m.name, m.distance)
            else:
                self._line(where, "unknown_person", None)

    def _video(self, result: VideoResult) -> None:
        """``path@start-end,name`` per range; ``path@time,name`` per face with --per-frame."""
        if result.frames is not None:
            for frame in result.frames:
                self._faces(f"{result.path}@{clock(frame.time)}", frame.faces)
            return
        for a in result.appearances:
            where = f"{result.path}@{clock(a.start)}-{clock(a.end)}"
            self._line(where, a.name or "unknown_person", a.distance)

    def close(self) -> None:
        self.out.flush()


class CsvWriter:
    """Real CSV, quoted where needed: one row per face, or per faceless/failed image."""

    def __init__(self, out: TextIO, videos: bool = False) -> None:
        self.out = out
        self.csv = csv.writer(out, lineterminator="\n")
        self.videos = videos
        self.csv.writerow(CSV_HEADER + (VIDEO_CSV_COLUMNS if videos else ()))

    def _row(self, cells: list[Cell], video: list[Cell] | None = None) -> None:
        if self.videos:
            cells = cells + (video or [""] * len(VIDEO_CSV_COLUMNS))
        self.csv.writerow([spreadsheet_safe(c) if isinstance(c, str) else c for c in cells])

    def write(self, result: Result) -> None:
        if isinstance(result, VideoResult):
            self._video(result)
            return
        if not result.faces:
            self._empty(result)
            return
        for index, face in enumerate(result.faces):
            self._row(self._face(result, index, face))

    def _empty(self, result: Result) -> None:
        row = [result.path, "", "", "", "", "", "", "", result.status, result.error or ""]
        self._row([*row, "", "", ""])

    @staticmethod
    def _face(result: Result, index: int, face: FaceMatch) -> list[Cell]:
        runner_up = face.runner_up
        return [
            result.path,
            index,
            *face.box.css(),
            face.name or "",
            _blank(_round(face.distance)),
            result.status,
            result.error or "",
            ";".join(m.name for m in face.matches),
            runner_up.name if runner_up else "",
            _blank(_round(runner_up.distance) if runner_up else None),
        ]

    def _video(self, result: VideoResult) -> None:
        """One row per range (``face`` numbers them), or per sampled face with --per-frame."""
        rows = 0
        if result.frames is not None:
            for frame in result.frames:
                for index, face in enumerate(frame.faces):
                    self._row(self._face(result, index, face), [_seconds(frame.time)] + [""] * 5)
                    rows += 1
        for index, a in enumerate(result.appearances):
            cells: list[Cell] = [result.path, index, *a.box.css(), a.name or ""]
            cells += [_blank(_round(a.distance)), result.status, result.error or ""]
            cells += [a.name or "", "", ""]
            times = [_seconds(a.time), _seconds(a.start), _seconds(a.end)]
            self._row(cells, [*times, clock(a.start), clock(a.end), a.samples])
            rows += 1
        if not rows:
            self._empty(result)

    def close(self) -> None:
        self.out.flush()


def _blank(value: float | None) -> str | float:
    return "" if value is None else value


def _match(m: Match | None) -> dict[str, Any] | None:
    return None if m is None else {"name": printable(m.name), "distance": _round(m.distance)}


def face_json(face: FaceMatch) -> dict[str, Any]:
    top, right, bottom, left = face.box.css()
    return {
        "box": {"top": top, "right": right, "bottom": bottom, "left": left},
        "name": None if face.name is None else printable(face.name),
        "distance": _round(face.distance),
        "matches": [_match(m) for m in face.matches],
        "runner_up": _match(face.runner_up),
    }


def _seconds(value: float) -> float:
    return round(value, TIME_DIGITS)


def appearance_json(a: Appearance) -> dict[str, Any]:
    top, right, bottom, left = a.box.css()
    return {
        "name": None if a.name is None else printable(a.name),
        "start": _seconds(a.start),
        "end": _seconds(a.end),
        "start_hms": clock(a.start),
        "end_hms": clock(a.end),
        "samples": a.samples,
        "distance": _round(a.distance),
        "time": _seconds(a.time),
        "box": {"top": top, "right": right, "bottom": bottom, "left": left},
    }


def video_json(result: VideoResult) -> dict[str, Any]:
    document: dict[str, Any] = {
        "path": printable(result.path),
        "status": result.status,
        "error": None if result.error is None else printable(result.error),
        "kind": "video",
        "duration": None if result.duration is None else _seconds(result.duration),
        "fps": result.fps,
    }
    if result.frames is not None:
        document["frames"] = [
            {"time": _seconds(f.time), "faces": [face_json(face) for face in f.faces]}
            for f in result.frames
        ]
    else:
        document["appearances"] = [appearance_json(a) for a in result.appearances]
    return document


def result_json(result: Result) -> dict[str, Any]:
    if isinstance(result, VideoResult):
        return video_json(result)
    return {
        "path": printable(result.path),
        "status": result.status,
        "error": None if result.error is None else printable(result.error),
        "faces": [face_json(f) for f in result.faces],
    }


def _json_dumper(out: TextIO) -> Callable[[Any], str]:
    """json.dumps for this stream: UTF-8 as it is where it takes it, \\u escapes where not."""
    encoding = (getattr(out, "encoding", None) or "utf-8").lower().replace("_", "-")
    ascii_only = encoding not in ("utf-8", "utf8")
    return lambda value: json.dumps(value, ensure_ascii=ascii_only)


class JsonWriter:
    """One JSON document: a list of image objects, streamed as they come."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.dumps = _json_dumper(out)
        self.count = 0
        self.out.write("[")

    def write(self, result: Result) -> None:
        self.out.write(",\n  " if self.count else "\n  ")
        self.out.write(self.dumps(result_json(result)))
        self.count += 1

    def close(self) -> None:
        self.out.write("\n]\n" if self.count else "]\n")
        self.out.flush()


class JsonLinesWriter:
    """One image object per line, flushed per line so pipes see results at once."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.dumps = _json_dumper(out)

    def write(self, result: Result) -> None:
        self.out.write(self.dumps(result_json(result)) + "\n")
        self.out.flush()

    def close(self) -> None:
        self.out.flush()


class DetectCompatWriter:
    """face_detection's ``path,top,right,bottom,left`` lines; errors go to stderr only."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, result: Result) -> None:
        if isinstance(result, VideoResult):
            return  # `facematch detect` reads photos only
        for face in result.faces:
            box = ",".join(str(v) for v in face.box.css())
            self.out.write(f"{printable(result.path)},{box}\n")

    def close(self) -> None:
        self.out.flush()


FORMATS = ("compat", "csv", "json", "jsonl")


def make_writer(fmt: str, out: TextIO, show_distance: bool = False, videos: bool = False) -> Writer:
    """The writer for a format name; ``videos``: the inputs include videos (CSV columns)."""
    if fmt == "compat":
        return CompatWriter(out, show_distance)
    if fmt == "csv":
        return CsvWriter(out, videos)
    writers: dict[str, type[JsonWriter] | type[JsonLinesWriter]] = {
        "json": JsonWriter,
        "jsonl": JsonLinesWriter,
    }
    if fmt not in writers:
        raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")
    return writers[fmt](out)


def make_detect_writer(fmt: str, out: TextIO) -> Writer:
    """The writer for ``facematch detect``: face_detection's lines, or the usual formats."""
    return DetectCompatWriter(out) if fmt == "compat" else make_writer(fmt, out)
