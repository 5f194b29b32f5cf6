"""One writer per output format, each with ``write(result)`` and ``close()``.

``compat`` prints face_recognition's exact lines (sentinel names included);
``csv``, ``json`` and ``jsonl`` carry a status and an error for every input.
Every text field goes through :func:`facematch.output.text.printable` (undecodable
bytes and control characters as ``\\xNN``), and CSV cells are also kept from
running as spreadsheet formulas.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from facematch.match.appearances import clock
from facematch.output.text import printable, spreadsheet_safe
from facematch.records import (
    Appearance,
    FaceMatch,
    ImageResult,
    LibraryFaces,
    Match,
    SearchHit,
    VideoResult,
)

if TYPE_CHECKING:
    from facematch.records import CloakResult, FaceRow, RedactedImage

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
        "tolerance": _round(face.tolerance),
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


def format_writer(
    fmt: str,
    out: TextIO,
    compat: Callable[[TextIO], Any],
    csv_writer: Callable[[TextIO], Any],
    to_json: Callable[[Any], dict[str, Any]],
) -> Any:
    """The writer of one kind of row for a format name: its own compat and CSV
    writers, and the shared JSON and JSON-lines writers with its ``to_json``."""
    if fmt == "compat":
        return compat(out)
    if fmt == "csv":
        return csv_writer(out)
    if fmt == "json":
        return JsonWriter(out, to_json)
    if fmt == "jsonl":
        return JsonLinesWriter(out, to_json)
    raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")


# --- search hits (``facematch search``) ---------------------------------------------

SEARCH_CSV_HEADER = ("rank", "path", "top", "right", "bottom", "left", "distance", "face_id")


class HitWriter(Protocol):
    def write(self, hit: SearchHit) -> None: ...

    def close(self) -> None: ...


def hit_json(rank: int, hit: SearchHit) -> dict[str, Any]:
    top, right, bottom, left = hit.box.css()
    return {
        "rank": rank,
        "path": printable(hit.path),
        "box": {"top": top, "right": right, "bottom": bottom, "left": left},
        "distance": _round(hit.distance),
        "face_id": hit.face_id,
    }


def ranked_hit_json() -> Callable[[SearchHit], dict[str, Any]]:
    """``hit_json`` numbering the hits of one output 1, 2, ... in the order written."""
    ranks = itertools.count(1)
    return lambda hit: hit_json(next(ranks), hit)


class HitCompatWriter:
    """``path,top,right,bottom,left,distance`` lines (face_detection's lines plus the distance)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, hit: SearchHit) -> None:
        box = ",".join(str(v) for v in hit.box.css())
        self.out.write(f"{printable(hit.path)},{box},{_round(hit.distance)}\n")

    def close(self) -> None:
        self.out.flush()


class HitCsvWriter:
    """One CSV row per hit, nearest first, with a header."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.csv = csv.writer(out, lineterminator="\n")
        self.csv.writerow(SEARCH_CSV_HEADER)
        self.rank = 0

    def write(self, hit: SearchHit) -> None:
        self.rank += 1
        path = spreadsheet_safe(hit.path)
        self.csv.writerow([self.rank, path, *hit.box.css(), _round(hit.distance), hit.face_id])

    def close(self) -> None:
        self.out.flush()


def make_hit_writer(fmt: str, out: TextIO) -> HitWriter:
    """The writer of search hits for a format name."""
    writer: HitWriter = format_writer(fmt, out, HitCompatWriter, HitCsvWriter, ranked_hit_json())
    return writer


# --- library export (``facematch library export``) ----------------------------------

EXPORT_CSV_HEADER = ("row", "face_id", "path", "top", "right", "bottom", "left")


def export_jsonl(faces: LibraryFaces, out: TextIO) -> int:
    """One face per line: face id, path, box and the float32 embedding; returns the count."""
    dumps = _json_dumper(out)
    for i in range(len(faces.ids)):
        top, right, bottom, left = (int(v) for v in faces.boxes[i])
        item = {
            "face_id": int(faces.ids[i]),
            "path": printable(faces.paths[i]),
            "box": {"top": top, "right": right, "bottom": bottom, "left": left},
            "embedding": faces.embeddings[i].tolist(),
        }
        out.write(dumps(item) + "\n")
    out.flush()
    return len(faces.ids)


def export_npy(faces: LibraryFaces, prefix: Path) -> tuple[Path, Path]:
    """``PREFIX.npy`` (the (n, 128) float32 matrix) and ``PREFIX.csv`` (row i's face and path)."""
    import numpy as np

    matrix = prefix.with_name(prefix.name + ".npy")
    table = prefix.with_name(prefix.name + ".csv")
    np.save(matrix, faces.embeddings)
    with open(table, "w", newline="", encoding="utf-8") as out:
        rows = csv.writer(out, lineterminator="\n")
        rows.writerow(EXPORT_CSV_HEADER)
        for i in range(len(faces.ids)):
            path = spreadsheet_safe(printable(faces.paths[i]))
            rows.writerow([i, int(faces.ids[i]), path, *(int(v) for v in faces.boxes[i])])
    return matrix, table


# --- people (``facematch cluster``) ---------------------------------------------------

CLUSTER_CSV_HEADER = (
    "path",
    "face",
    "top",
    "right",
    "bottom",
    "left",
    "person",
    "name",
    "named_by",
)


class FaceRowWriter(Protocol):
    def write(self, row: FaceRow) -> None: ...

    def close(self) -> None: ...


def face_row_json(row: FaceRow) -> dict[str, Any]:
    top, right, bottom, left = row.box.css()
    return {
        "path": printable(row.path),
        "face": row.face,
        "box": {"top": top, "right": right, "bottom": bottom, "left": left},
        "person": row.person_label or None,
        "name": None if row.name is None else printable(row.name),
        "named_by": row.named_by,
    }


class FaceRowCompatWriter:
    """``path,person`` lines: the name if there is one, else person_N, else unclustered."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, row: FaceRow) -> None:
        who = row.name if row.name is not None else (row.person_label or "unclustered")
        self.out.write(f"{printable(row.path)},{printable(who)}\n")

    def close(self) -> None:
        self.out.flush()


class FaceRowCsvWriter:
    """One CSV row per face, with a header."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.csv = csv.writer(out, lineterminator="\n")
        self.csv.writerow(CLUSTER_CSV_HEADER)

    def write(self, row: FaceRow) -> None:
        name = "" if row.name is None else spreadsheet_safe(row.name)
        self.csv.writerow(
            [
                spreadsheet_safe(row.path),
                row.face,
                *row.box.css(),
                row.person_label,
                name,
                row.named_by,
            ]
        )

    def close(self) -> None:
        self.out.flush()


def make_face_row_writer(fmt: str, out: TextIO) -> FaceRowWriter:
    """The writer of clustered faces for a format name."""
    writer: FaceRowWriter = format_writer(
        fmt, out, FaceRowCompatWriter, FaceRowCsvWriter, face_row_json
    )
    return writer


# Redaction rows (facematch.privacy.redact.RedactedImage): one writer per format too.

REDACT_CSV_HEADER = (
    "path",
    "face",
    "top",
    "right",
    "bottom",
    "left",
    "action",
    "reason",
    "name",
    "distance",
    "output",
    "status",
    "error",
)


class RedactCompatWriter:
    """``path,kept,NAME`` and ``path,covered,REASON`` per face, ``path,no_persons_found``."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, result: RedactedImage) -> None:
        path = printable(result.path)
        if result.status == "no_faces":
            self.out.write(f"{path},no_persons_found\n")
        for face in result.faces:
            detail = face.name if face.action == "kept" and face.name else face.reason
            self.out.write(f"{path},{face.action},{printable(detail)}\n")

    def close(self) -> None:
        self.out.flush()


class RedactCsvWriter:
    """One row per face, or per faceless or failed image."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.csv = csv.writer(out, lineterminator="\n")
        self.csv.writerow(REDACT_CSV_HEADER)

    def _row(self, cells: list[str | int | float]) -> None:
        self.csv.writerow([spreadsheet_safe(c) if isinstance(c, str) else c for c in cells])

    def write(self, result: RedactedImage) -> None:
        tail = [result.output or "", result.status, result.error or ""]
        if not result.faces:
            self._row([result.path, "", "", "", "", "", "", "", "", "", *tail])
        for index, face in enumerate(result.faces):
            self._row(
                [
                    result.path,
                    index,
                    *face.box.css(),
                    face.action,
                    face.reason,
                    face.name or "",
                    _blank(_round(face.distance)),
                    *tail,
                ]
            )

    def close(self) -> None:
        self.out.flush()


def redacted_json(result: RedactedImage) -> dict[str, Any]:
    faces = []
    for face in result.faces:
        top, right, bottom, left = face.box.css()
        faces.append(
            {
                "box": {"top": top, "right": right, "bottom": bottom, "left": left},
                "action": face.action,
                "reason": face.reason,
                "name": None if face.name is None else printable(face.name),
                "distance": _round(face.distance),
            }
        )
    return {
        "path": printable(result.path),
        "status": result.status,
        "error": None if result.error is None else printable(result.error),
        "output": None if result.output is None else printable(result.output),
        "found": len(result.faces),
        "kept": [printable(name) for name in result.kept],
        "covered": result.covered,
        "faces": faces,
    }


def make_redact_writer(fmt: str, out: TextIO) -> Any:
    """The writer of ``facematch redact``'s report of what was done."""
    return format_writer(fmt, out, RedactCompatWriter, RedactCsvWriter, redacted_json)


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
    writer: Writer = format_writer(fmt, out, CloakCompatWriter, CloakCsvWriter, cloak_json)
    return writer
