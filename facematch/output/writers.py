"""Every command's rows in four formats: ``compat``, ``csv``, ``json`` and ``jsonl``.

A row definition (:class:`Rows`) says how one kind of record is written: its CSV
header and CSV rows (several per record: one per face, say), its JSON object, and
its compat lines. Four writers, one per format, write any kind; :func:`make_writer`
picks one, e.g. ``make_writer("csv", sys.stdout, REDACT_ROWS)``.

``compat`` prints face_recognition's exact lines (sentinel names included);
``csv``, ``json`` and ``jsonl`` carry a status and an error for every input.
Every text field goes through :func:`facematch.output.text.printable` (undecodable
bytes and control characters as ``\\xNN``), and CSV cells are also kept from
running as spreadsheet formulas.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, Generic, Protocol, TextIO, TypeAlias, TypeVar

from facematch.errors import OutputError
from facematch.files import atomic_file, write_failure
from facematch.matching.appearances import clock
from facematch.output.text import printable, spreadsheet_safe
from facematch.records import (
    Appearance,
    CloakResult,
    FaceBox,
    FaceMatch,
    FaceRow,
    ImageResult,
    LibraryFaces,
    Match,
    RedactedFace,
    RedactedImage,
    RedactedTrack,
    RedactedVideo,
    SearchHit,
    TagResult,
    VideoResult,
)

DISTANCE_DIGITS = 6
TIME_DIGITS = 3
QUALITY_DIGITS = 4

R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)

Cell = str | int | float | None
"""A CSV cell: text is made spreadsheet-safe, None is written empty."""
JsonObject = dict[str, Any]


class RowWriter(Protocol[R_contra]):
    def write(self, row: R_contra) -> None: ...

    def close(self) -> None: ...


Result = ImageResult | VideoResult
Writer: TypeAlias = RowWriter[Result]
"""A writer of match (and detect) results."""


@dataclass(frozen=True)
class Rows(Generic[R]):
    """How one kind of record is written in each format."""

    header: tuple[str, ...]
    csv_rows: Callable[[R], Iterable[Sequence[Cell]]]
    """The record's CSV rows, their cells in ``header`` order."""
    json_object: Callable[[R], JsonObject]
    """The record's JSON object (one item of the JSON array, or one JSON line)."""
    compat_lines: Callable[[R], Iterable[str]]
    """The record's compat lines, printable, without their newlines."""


# --- the writers, one per format -------------------------------------------------------


class CompatWriter(Generic[R]):
    """The compat lines of each record; errors go to stderr only."""

    def __init__(self, out: TextIO, rows: Rows[R]) -> None:
        self.out = out
        self.rows = rows

    def write(self, row: R) -> None:
        for line in self.rows.compat_lines(row):
            self.out.write(line + "\n")

    def close(self) -> None:
        self.out.flush()


class CsvWriter(Generic[R]):
    """Real CSV, quoted where needed, with a header."""

    def __init__(self, out: TextIO, rows: Rows[R]) -> None:
        self.out = out
        self.rows = rows
        self.csv = csv.writer(out, lineterminator="\n")
        self.started = False

    def _start(self) -> None:
        # Not in __init__: every write happens where the command handles a failed one.
        if not self.started:
            self.started = True
            self.csv.writerow(self.rows.header)

    def write(self, row: R) -> None:
        self._start()
        for cells in self.rows.csv_rows(row):
            self.csv.writerow([spreadsheet_safe(c) if isinstance(c, str) else c for c in cells])

    def close(self) -> None:
        self._start()
        self.out.flush()


def _json_dumper(out: TextIO) -> Callable[[Any], str]:
    """json.dumps for this stream: UTF-8 as it is where it takes it, \\u escapes where not."""
    encoding = (getattr(out, "encoding", None) or "utf-8").lower().replace("_", "-")
    ascii_only = encoding not in ("utf-8", "utf8")
    return lambda value: json.dumps(value, ensure_ascii=ascii_only)


class JsonWriter(Generic[R]):
    """One JSON document: a list of objects, streamed as they come."""

    def __init__(self, out: TextIO, rows: Rows[R]) -> None:
        self.out = out
        self.rows = rows
        self.dumps = _json_dumper(out)
        self.count = 0

    def write(self, row: R) -> None:
        # "[" with the first row, not in __init__: every write happens where the
        # command handles a failed one.
        self.out.write(",\n  " if self.count else "[\n  ")
        self.out.write(self.dumps(self.rows.json_object(row)))
        self.count += 1

    def close(self) -> None:
        self.out.write("\n]\n" if self.count else "[]\n")
        self.out.flush()


class JsonLinesWriter(Generic[R]):
    """One object per line, flushed per line so pipes see results at once."""

    def __init__(self, out: TextIO, rows: Rows[R]) -> None:
        self.out = out
        self.rows = rows
        self.dumps = _json_dumper(out)

    def write(self, row: R) -> None:
        self.out.write(self.dumps(self.rows.json_object(row)) + "\n")
        self.out.flush()

    def close(self) -> None:
        self.out.flush()


FORMATS = ("compat", "csv", "json", "jsonl")


def make_writer(fmt: str, out: TextIO, rows: Rows[R]) -> RowWriter[R]:
    """The writer of ``rows`` for a format name."""
    if fmt == "compat":
        return CompatWriter(out, rows)
    if fmt == "csv":
        return CsvWriter(out, rows)
    if fmt == "json":
        return JsonWriter(out, rows)
    if fmt == "jsonl":
        return JsonLinesWriter(out, rows)
    raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")


# --- the pieces of every kind of row ---------------------------------------------------


def _round(distance: float | None) -> float | None:
    return None if distance is None else round(distance, DISTANCE_DIGITS)


def _seconds(value: float) -> float:
    return round(value, TIME_DIGITS)


def _quality(value: float | None, digits: int = QUALITY_DIGITS) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _text(value: str | None) -> str | None:
    return None if value is None else printable(value)


def _line(*cells: object) -> str:
    """A compat line: the cells, printable, joined by commas."""
    return ",".join(printable(str(cell)) for cell in cells)


def box_json(box: FaceBox) -> dict[str, int]:
    top, right, bottom, left = box.css()
    return {"top": top, "right": right, "bottom": bottom, "left": left}


FACE_COLUMNS = ("path", "face", "top", "right", "bottom", "left")
"""A face's first CSV columns in every row kind that has one per face."""

# --- match results (``facematch match``, and ``facematch detect``) ------------------------

CSV_HEADER = (
    *FACE_COLUMNS,
    "name",
    "distance",
    "status",
    "error",
    "matches",
    "runner_up",
    "runner_up_distance",
    "nearest",
    "nearest_distance",
    "tolerance",
    "stranger_chance",
    "uncertain",
)

# Appended when the inputs include a video (photo rows leave them empty): range
# rows fill them all, --per-frame rows only ``time``.
VIDEO_CSV_COLUMNS = ("time", "start", "end", "start_hms", "end_hms", "samples")
_NO_VIDEO: list[Cell] = [""] * len(VIDEO_CSV_COLUMNS)


def _face_cells(result: Result, index: int, face: FaceMatch) -> list[Cell]:
    runner_up = face.runner_up
    return [
        result.path,
        index,
        *face.box.css(),
        face.name or "",
        _round(face.distance),
        result.status,
        result.error or "",
        ";".join(m.name for m in face.matches),
        runner_up.name if runner_up else "",
        _round(runner_up.distance) if runner_up else None,
        *_sureness_cells(face),
    ]


def _sureness_cells(face: FaceMatch) -> list[Cell]:
    """Who was nearest, the tolerance used, and how sure a name is."""
    nearest = face.nearest
    return [
        nearest.name if nearest else "",
        _round(nearest.distance) if nearest else None,
        _round(face.tolerance),
        face.stranger_chance,
        _flag(face.name is not None, face.uncertain),
    ]


def _flag(applies: bool, value: bool) -> str:
    """A yes/no cell, empty where the question does not apply."""
    if not applies:
        return ""
    return "yes" if value else "no"


def _appearance_cells(
    result: VideoResult, index: int, a: Appearance
) -> tuple[list[Cell], list[Cell]]:
    """A range's row: its best sample, and its times."""
    name = a.name or ""
    cells: list[Cell] = [result.path, index, *a.box.css(), name, _round(a.distance)]
    cells += [result.status, result.error or "", name, "", ""]
    sure: list[Cell] = [a.stranger_chance, _flag(a.name is not None, a.uncertain)]
    cells += [name, _round(a.distance), "", *sure]
    times: list[Cell] = [_seconds(a.time), _seconds(a.start), _seconds(a.end)]
    return cells, [*times, clock(a.start), clock(a.end), a.samples]


def _match_csv(result: Result) -> list[tuple[list[Cell], list[Cell]]]:
    """The CSV_HEADER and VIDEO_CSV_COLUMNS cells of each row: one per face, or per
    sampled face (--per-frame) and per range of a video; one for none."""
    rows: list[tuple[list[Cell], list[Cell]]] = []
    if isinstance(result, ImageResult):
        rows = [(_face_cells(result, i, face), _NO_VIDEO) for i, face in enumerate(result.faces)]
    else:
        for frame in result.frames or ():
            at: list[Cell] = [_seconds(frame.time), *_NO_VIDEO[1:]]
            rows += [(_face_cells(result, i, face), at) for i, face in enumerate(frame.faces)]
        rows += [_appearance_cells(result, i, a) for i, a in enumerate(result.appearances)]
    empty: list[Cell] = [result.path, *[""] * 7, result.status, result.error or ""]
    empty += [""] * (len(CSV_HEADER) - len(empty))
    return rows or [(empty, _NO_VIDEO)]


def _match_json(m: Match | None) -> JsonObject | None:
    return None if m is None else {"name": printable(m.name), "distance": _round(m.distance)}


def face_json(face: FaceMatch) -> JsonObject:
    return {
        "box": box_json(face.box),
        "name": _text(face.name),
        "distance": _round(face.distance),
        "matches": [_match_json(m) for m in face.matches],
        "runner_up": _match_json(face.runner_up),
        "tolerance": _round(face.tolerance),
        "nearest": _match_json(face.nearest),
        "stranger_chance": face.stranger_chance,
        "uncertain": face.uncertain if face.name is not None else None,
    }


def appearance_json(a: Appearance) -> JsonObject:
    return {
        "name": _text(a.name),
        "start": _seconds(a.start),
        "end": _seconds(a.end),
        "start_hms": clock(a.start),
        "end_hms": clock(a.end),
        "samples": a.samples,
        "distance": _round(a.distance),
        "time": _seconds(a.time),
        "box": box_json(a.box),
        "stranger_chance": a.stranger_chance,
        "uncertain": a.uncertain if a.name is not None else None,
    }


def result_json(result: Result) -> JsonObject:
    document: JsonObject = {
        "path": printable(result.path),
        "status": result.status,
        "error": _text(result.error),
    }
    if isinstance(result, ImageResult):
        document["faces"] = [face_json(f) for f in result.faces]
        return document
    document["kind"] = "video"
    document["duration"] = None if result.duration is None else _seconds(result.duration)
    document["fps"] = result.fps
    if result.frames is not None:
        document["frames"] = [
            {"time": _seconds(f.time), "faces": [face_json(face) for face in f.faces]}
            for f in result.frames
        ]
    else:
        document["appearances"] = [appearance_json(a) for a in result.appearances]
    return document


def _match_lines(result: Result, show_distance: bool) -> Iterator[str]:
    """face_recognition's ``path,name[,distance]`` lines; for a video ``path@start-end,name``
    per range, or ``path@time,name`` per face with --per-frame."""

    def line(where: str, name: str, distance: float | None = None) -> str:
        return _line(where, name, distance) if show_distance else _line(where, name)

    def faces(where: str, faces: tuple[FaceMatch, ...]) -> Iterator[str]:
        for face in faces:
            if face.matches:
                yield from (line(where, m.name, m.distance) for m in face.matches)
            else:
                yield line(where, "unknown_person")

    if result.status == "no_faces":
        yield line(result.path, "no_persons_found")
    if isinstance(result, ImageResult):
        yield from faces(result.path, result.faces)
    elif result.frames is not None:
        for frame in result.frames:
            yield from faces(f"{result.path}@{clock(frame.time)}", frame.faces)
    else:
        for a in result.appearances:
            where = f"{result.path}@{clock(a.start)}-{clock(a.end)}"
            yield line(where, a.name or "unknown_person", a.distance)


def match_rows(show_distance: bool = False, videos: bool = False) -> Rows[Result]:
    """Match results; ``show_distance``: compat lines end in the distance; ``videos``:
    the inputs include videos (CSV gets VIDEO_CSV_COLUMNS)."""

    def csv_rows(result: Result) -> Iterator[list[Cell]]:
        for cells, video in _match_csv(result):
            yield cells + video if videos else cells

    return Rows(
        header=CSV_HEADER + (VIDEO_CSV_COLUMNS if videos else ()),
        csv_rows=csv_rows,
        json_object=result_json,
        compat_lines=lambda result: _match_lines(result, show_distance),
    )


def _detect_lines(result: Result) -> Iterator[str]:
    """face_detection's ``path,top,right,bottom,left`` lines (photos only)."""
    if isinstance(result, ImageResult):
        yield from (_line(result.path, *face.box.css()) for face in result.faces)


DETECT_ROWS = replace(match_rows(), compat_lines=_detect_lines)
"""``facematch detect``'s boxes: match rows, and face_detection's compat lines."""


# --- search hits (``facematch search``) ---------------------------------------------

SEARCH_CSV_HEADER = (
    "rank",
    "path",
    "top",
    "right",
    "bottom",
    "left",
    "distance",
    "face_id",
    "name",
)


def hit_rows() -> Rows[SearchHit]:
    """Search hits, ranked 1, 2, ... in the order written: a new one for each output.
    Compat lines: face_detection's lines plus the distance, and the name of a named hit."""
    ranks = itertools.count(1)

    def csv_rows(hit: SearchHit) -> list[list[Cell]]:
        return [
            [next(ranks), hit.path, *hit.box.css(), _round(hit.distance), hit.face_id, hit.name]
        ]

    def json_object(hit: SearchHit) -> JsonObject:
        return {
            "rank": next(ranks),
            "path": printable(hit.path),
            "box": box_json(hit.box),
            "distance": _round(hit.distance),
            "face_id": hit.face_id,
            "name": _text(hit.name),
        }

    def compat_lines(hit: SearchHit) -> list[str]:
        named = () if hit.name is None else (hit.name,)
        return [_line(hit.path, *hit.box.css(), _round(hit.distance), *named)]

    return Rows(SEARCH_CSV_HEADER, csv_rows, json_object, compat_lines)


# --- people (``facematch cluster``) ---------------------------------------------------

CLUSTER_CSV_HEADER = (
    *FACE_COLUMNS,
    "person",
    "name",
    "named_by",
)


def face_row_json(row: FaceRow) -> JsonObject:
    return {
        "path": printable(row.path),
        "face": row.face,
        "box": box_json(row.box),
        "person": row.person_label or None,
        "name": _text(row.name),
        "named_by": row.named_by,
    }


FACE_ROWS = Rows[FaceRow](
    header=CLUSTER_CSV_HEADER,
    csv_rows=lambda row: [
        [row.path, row.face, *row.box.css(), row.person_label, row.name or "", row.named_by]
    ],
    json_object=face_row_json,
    # ``path,person``: the name if there is one, else person_N, else unclustered.
    compat_lines=lambda row: [
        _line(row.path, row.name if row.name is not None else row.person_label or "unclustered")
    ],
)
"""Clustered faces, one row per face."""


# --- redaction (``facematch redact``) ---------------------------------------------------

REDACT_CSV_HEADER = (
    *FACE_COLUMNS,
    "action",
    "reason",
    "name",
    "distance",
    "output",
    "status",
    "error",
    "start",
    "end",
    "frames_covered",
    "frames_filled",
)
"""A row per face of a photo, per track of a video (``face`` is the track's number
and its largest box; the last four columns are a video track's)."""

Redacted = RedactedImage | RedactedVideo


def _redact_csv(result: Redacted) -> list[list[Cell]]:
    """One row per face or track, or one for a faceless or failed input."""
    tail: list[Cell] = [result.output or "", result.status, result.error or ""]
    if isinstance(result, RedactedVideo):
        rows = [
            [
                result.path,
                i,
                *t.box.css(),
                t.action,
                t.reason,
                t.name or "",
                _round(t.distance),
                *tail,
                _seconds(t.start),
                _seconds(t.end),
                t.frames,
                t.filled,
            ]
            for i, t in enumerate(result.tracks)
        ]
    else:
        rows = []
        for i, f in enumerate(result.faces):
            row: list[Cell] = [result.path, i, *f.box.css(), f.action, f.reason, f.name or ""]
            rows.append([*row, _round(f.distance), *tail, "", "", "", ""])
    return rows or [[result.path, *[""] * 9, *tail, "", "", "", ""]]


def _redacted_part(part: RedactedFace | RedactedTrack) -> JsonObject:
    return {
        "box": box_json(part.box),
        "action": part.action,
        "reason": part.reason,
        "name": _text(part.name),
        "distance": _round(part.distance),
    }


def redacted_json(result: Redacted) -> JsonObject:
    parts: Sequence[RedactedFace | RedactedTrack] = (
        result.tracks if isinstance(result, RedactedVideo) else result.faces
    )
    document: JsonObject = {
        "path": printable(result.path),
        "status": result.status,
        "error": _text(result.error),
        "output": _text(result.output),
        "found": len(parts),
        "kept": [printable(name) for name in result.kept],
        "covered": result.covered,
    }
    if not isinstance(result, RedactedVideo):
        document["faces"] = [_redacted_part(face) for face in result.faces]
        return document
    document["kind"] = "video"
    document["frames"] = result.frame_count
    document["tracks"] = [
        {
            **_redacted_part(t),
            "start": _seconds(t.start),
            "end": _seconds(t.end),
            "frames_covered": t.frames,
            "frames_filled": t.filled,
        }
        for t in result.tracks
    ]
    return document


def _redact_lines(result: Redacted) -> Iterator[str]:
    """``path,kept,NAME`` or ``path,covered,REASON`` per face or track;
    ``path,no_persons_found``."""
    if result.status == "no_faces":
        yield _line(result.path, "no_persons_found")
    parts = result.tracks if isinstance(result, RedactedVideo) else result.faces
    for part in parts:
        detail = part.name if part.action == "kept" and part.name else part.reason
        yield _line(result.path, part.action, detail)


REDACT_ROWS = Rows(REDACT_CSV_HEADER, _redact_csv, redacted_json, _redact_lines)
"""``facematch redact``'s report of what was done."""


# --- cloaking (``facematch cloak``): one row per face of each cloaked (or checked) photo

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
    "sface_distance",
    "sface_passed",
    "psnr",
    "dssim_1080",
    "face_dssim",
    "epsilon",
    "status",
    "error",
)


def _cloak_csv(result: CloakResult) -> list[list[Cell]]:
    """One row per face, or one for a faceless or failed photo."""
    head: list[Cell] = [result.path, result.out or ""]
    tail: list[Cell] = [result.status, result.error or ""]
    rows: list[list[Cell]] = [
        [
            *head,
            i,
            *f.box.css(),
            f.level,
            _round(f.distance),
            str(f.passed).lower(),
            _round(f.sface_distance),
            "" if f.sface_passed is None else str(f.sface_passed).lower(),
            _quality(result.psnr),
            _quality(result.dssim_1080, 5),
            _quality(f.dssim, 5),
            _quality(f.epsilon),
            *tail,
        ]
        for i, f in enumerate(result.faces)
    ]
    return rows or [[*head, *[""] * (len(CLOAK_CSV_HEADER) - 4), *tail]]


def cloak_json(result: CloakResult) -> JsonObject:
    return {
        "path": printable(result.path),
        "out": _text(result.out),
        "status": result.status,
        "error": _text(result.error),
        "psnr": _quality(result.psnr),
        "dssim_1080": _quality(result.dssim_1080, 5),
        "faces": [
            {
                "box": box_json(f.box),
                "level": f.level,
                "distance": _round(f.distance),
                "passed": f.passed,
                "dssim": _quality(f.dssim, 5),
                "epsilon": _quality(f.epsilon),
                "variants": {k: _round(v) for k, v in f.variants.items()},
                "sface_distance": _round(f.sface_distance),
                "sface_passed": f.sface_passed,
                "sface_variants": {k: _round(v) for k, v in f.sface_variants.items()},
            }
            for f in result.faces
        ],
    }


def _cloak_lines(result: CloakResult) -> Iterator[str]:
    """``path,protected|not_protected,distance`` per face, followed by
    ``,sface_unmatched|sface_matched,sface_distance`` where SFace checked it;
    ``path,no_persons_found``."""
    if result.status == "no_faces":
        yield _line(result.path, "no_persons_found")
    for face in result.faces:
        cells: list[object] = [
            result.path,
            "protected" if face.passed else "not_protected",
            _round(face.distance),
        ]
        if face.sface_passed is not None:
            cells += ["sface_unmatched" if face.sface_passed else "sface_matched"]
            cells += [_round(face.sface_distance)]
        yield _line(*cells)


CLOAK_ROWS = Rows(CLOAK_CSV_HEADER, _cloak_csv, cloak_json, _cloak_lines)
"""``facematch cloak``'s report, one row per face."""


# --- face regions in XMP (``facematch tag``): one row per photo -----------------------

TAG_CSV_HEADER = (
    "path",
    "target",
    "status",
    "names",
    "regions",
    "removed",
    "kept",
    "covered",
    "uncertain",
    "error",
)
AREA_DIGITS = 6


def _names(names: Iterable[str]) -> str:
    return ";".join(printable(n) for n in names)


def _tag_csv(result: TagResult) -> list[list[Cell]]:
    names = [f.name for f in result.faces]
    return [
        [
            result.path,
            result.target or "",
            result.status,
            _names(names),
            len(names),
            _names(result.removed),
            result.kept,
            result.covered,
            result.uncertain,
            result.error or "",
        ]
    ]


def tag_json(result: TagResult) -> JsonObject:
    return {
        "path": printable(result.path),
        "target": _text(result.target),
        "status": result.status,
        "error": _text(result.error),
        "regions": [
            {
                "name": printable(f.name),
                "box": box_json(f.box),
                "area": {
                    key: round(value, AREA_DIGITS)
                    for key, value in zip(
                        "xywh", (f.area.x, f.area.y, f.area.w, f.area.h), strict=True
                    )
                },
            }
            for f in result.faces
        ],
        "removed": [printable(n) for n in result.removed],
        "kept": result.kept,
        "covered": result.covered,
        "uncertain": result.uncertain,
    }


def _tag_lines(result: TagResult) -> list[str]:
    """``path,status,target,name;name``."""
    return [
        _line(result.path, result.status, result.target or "", _names(f.name for f in result.faces))
    ]


TAG_ROWS = Rows(TAG_CSV_HEADER, _tag_csv, tag_json, _tag_lines)
"""``facematch tag``'s report, one row per photo."""


# --- library export (``facematch library export``) ----------------------------------

EXPORT_CSV_HEADER = ("row", "face_id", "path", "top", "right", "bottom", "left")


def export_jsonl(faces: LibraryFaces, out: TextIO) -> int:
    """One face per line: face id, path, box and the float32 embedding; returns the count."""
    dumps = _json_dumper(out)
    for i in range(len(faces.ids)):
        item = {
            "face_id": int(faces.ids[i]),
            "path": printable(faces.paths[i]),
            "box": box_json(FaceBox(*(int(v) for v in faces.boxes[i]))),
            "embedding": faces.embeddings[i].tolist(),
        }
        out.write(dumps(item) + "\n")
    out.flush()
    return len(faces.ids)


def export_jsonl_file(faces: LibraryFaces, path: Path) -> int:
    """``export_jsonl`` into the file ``path``, written whole or not at all (OutputError)."""
    with output_file(path, private=True) as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        count = export_jsonl(faces, text)
        text.detach()
    return count


def export_npy(faces: LibraryFaces, prefix: Path) -> tuple[Path, Path]:
    """``PREFIX.npy`` (the (n, 128) float32 matrix) and ``PREFIX.csv`` (row i's face and path).

    Each is written whole or not at all (OutputError).
    """
    import numpy as np

    matrix = prefix.with_name(prefix.name + ".npy")
    table = prefix.with_name(prefix.name + ".csv")
    with output_file(matrix, private=True) as stream:
        np.save(stream, faces.embeddings)
    with output_file(table, private=True) as stream:
        out = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        rows = csv.writer(out, lineterminator="\n")
        rows.writerow(EXPORT_CSV_HEADER)
        for i in range(len(faces.ids)):
            path = spreadsheet_safe(printable(faces.paths[i]))
            rows.writerow([i, int(faces.ids[i]), path, *(int(v) for v in faces.boxes[i])])
        out.flush()
        out.detach()
    return matrix, table


# --- output files -----------------------------------------------------------------------


@contextlib.contextmanager
def output_file(path: Path, private: bool = False) -> Iterator[BinaryIO]:
    """A file of output (a copy, a crop, a page, an export), and its missing folders.

    Written through ``files.atomic_file``: never half a file, nothing left
    behind on failure. A failure is an OutputError naming its cause and the
    file: ``no space left on device writing OUT``. ``private``: for what holds
    faces or embeddings (reports, crops, exports): the file 0600 and the folders
    it makes 0700, like the library.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
        with atomic_file(path, mode=0o600 if private else None) as stream:
            yield stream
    except OSError as exc:
        raise OutputError(write_failure(exc, printable(str(path)))) from None
