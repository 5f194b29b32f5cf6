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
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from facematch.gallery import Match
from facematch.pipeline import FaceMatch, ImageResult
from facematch.text import printable, spreadsheet_safe

if TYPE_CHECKING:
    from facematch.cloak import CloakResult

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

DISTANCE_DIGITS = 6


class Writer(Protocol):
    def write(self, result: ImageResult) -> None: ...

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

    def write(self, result: ImageResult) -> None:
        if result.status == "no_faces":
            self._line(result.path, "no_persons_found", None)
        for face in result.faces:
            if face.matches:
                for m in face.matches:
                    self._line(result.path, m.name, m.distance)
            else:
                self._line(result.path, "unknown_person", None)

    def close(self) -> None:
        self.out.flush()


class CsvWriter:
    """Real CSV, quoted where needed: one row per face, or per faceless/failed image."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.csv = csv.writer(out, lineterminator="\n")
        self.csv.writerow(CSV_HEADER)

    def _row(self, cells: list[str | int | float]) -> None:
        self.csv.writerow([spreadsheet_safe(c) if isinstance(c, str) else c for c in cells])

    def write(self, result: ImageResult) -> None:
        if not result.faces:
            row = [result.path, "", "", "", "", "", "", "", result.status, result.error or ""]
            self._row([*row, "", "", ""])
            return
        for index, face in enumerate(result.faces):
            runner_up = face.runner_up
            self._row(
                [
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
            )

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


def result_json(result: ImageResult) -> dict[str, Any]:
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
    """One JSON document: a list of image objects, streamed as they come.

    ``to_json`` turns a result into its object (``result_json`` for match rows).
    """

    def __init__(self, out: TextIO, to_json: Callable[[Any], dict[str, Any]] = result_json) -> None:
        self.out = out
        self.dumps = _json_dumper(out)
        self.to_json = to_json
        self.count = 0
        self.out.write("[")

    def write(self, result: Any) -> None:
        self.out.write(",\n  " if self.count else "\n  ")
        self.out.write(self.dumps(self.to_json(result)))
        self.count += 1

    def close(self) -> None:
        self.out.write("\n]\n" if self.count else "]\n")
        self.out.flush()


class JsonLinesWriter:
    """One image object per line, flushed per line so pipes see results at once."""

    def __init__(self, out: TextIO, to_json: Callable[[Any], dict[str, Any]] = result_json) -> None:
        self.out = out
        self.dumps = _json_dumper(out)
        self.to_json = to_json

    def write(self, result: Any) -> None:
        self.out.write(self.dumps(self.to_json(result)) + "\n")
        self.out.flush()

    def close(self) -> None:
        self.out.flush()


class DetectCompatWriter:
    """face_detection's ``path,top,right,bottom,left`` lines; errors go to stderr only."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, result: ImageResult) -> None:
        for face in result.faces:
            box = ",".join(str(v) for v in face.box.css())
            self.out.write(f"{printable(result.path)},{box}\n")

    def close(self) -> None:
        self.out.flush()


FORMATS = ("compat", "csv", "json", "jsonl")


def make_writer(fmt: str, out: TextIO, show_distance: bool = False) -> Writer:
    """The writer for a format name."""
    if fmt == "compat":
        return CompatWriter(out, show_distance)
    writers: dict[str, type[CsvWriter] | type[JsonWriter] | type[JsonLinesWriter]] = {
        "csv": CsvWriter,
        "json": JsonWriter,
        "jsonl": JsonLinesWriter,
    }
    if fmt not in writers:
        raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")
    return writers[fmt](out)


def make_detect_writer(fmt: str, out: TextIO) -> Writer:
    """The writer for ``facematch detect``: face_detection's lines, or the usual formats."""
    return DetectCompatWriter(out) if fmt == "compat" else make_writer(fmt, out)


# --------------------------------------------------------------------------------------
# facematch cloak: one row per face of each cloaked (or checked) photo

CLOAK_CSV_HEADER = (
    "path",
    "out",
    "face",
    "top",
    "right",
    "bottom",
    "left",
    "level",
    "distance",
    "passed",
    "psnr",
    "ssim",
    "epsilon",
    "status",
    "error",
)

QUALITY_DIGITS = 4


def _quality(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, QUALITY_DIGITS)


class CloakCompatWriter:
    """``path,protected|not_protected,distance`` per face, ``path,no_persons_found``
    for a photo without faces; errors go to stderr only."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, result: CloakResult) -> None:
        path = printable(result.path)
        if result.status == "no_faces":
            self.out.write(f"{path},no_persons_found\n")
        for face in result.faces:
            verdict = "protected" if face.passed else "not_protected"
            self.out.write(f"{path},{verdict},{_round(face.distance)}\n")

    def close(self) -> None:
        self.out.flush()


class CloakCsvWriter:
    """One row per face, or per faceless/failed photo."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.csv = csv.writer(out, lineterminator="\n")
        self.csv.writerow(CLOAK_CSV_HEADER)

    def _row(self, cells: list[Any]) -> None:
        self.csv.writerow([spreadsheet_safe(c) if isinstance(c, str) else c for c in cells])

    def write(self, result: CloakResult) -> None:
        out = result.out or ""
        tail = [result.status, result.error or ""]
        if not result.faces:
            self._row([result.path, out, "", "", "", "", "", "", "", "", "", "", "", *tail])
        for index, face in enumerate(result.faces):
            self._row(
                [
                    result.path,
                    out,
                    index,
                    *face.box.css(),
                    face.level,
                    _round(face.distance),
                    str(face.passed).lower(),
                    _blank(_quality(result.psnr)),
                    _blank(_quality(face.ssim)),
                    _blank(_quality(face.epsilon)),
                    *tail,
                ]
            )

    def close(self) -> None:
        self.out.flush()


def cloak_json(result: CloakResult) -> dict[str, Any]:
    return {
        "path": printable(result.path),
        "out": None if result.out is None else printable(result.out),
        "status": result.status,
        "error": None if result.error is None else printable(result.error),
        "psnr": _quality(result.psnr),
        "faces": [
            {
                "box": dict(zip(("top", "right", "bottom", "left"), f.box.css(), strict=True)),
                "level": f.level,
                "distance": _round(f.distance),
                "passed": f.passed,
                "ssim": _quality(f.ssim),
                "epsilon": _quality(f.epsilon),
                "variants": {k: _round(v) for k, v in f.variants.items()},
            }
            for f in result.faces
        ],
    }


def make_cloak_writer(fmt: str, out: TextIO) -> Writer:
    """The writer for ``facematch cloak``."""
    if fmt == "compat":
        return CloakCompatWriter(out)  # type: ignore[return-value]
    if fmt == "csv":
        return CloakCsvWriter(out)  # type: ignore[return-value]
    if fmt == "json":
        return JsonWriter(out, cloak_json)
    if fmt == "jsonl":
        return JsonLinesWriter(out, cloak_json)
    raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")
