"""A matching run's answers read back: ``facematch KNOWN PHOTOS --format json`` (or jsonl).

What ``facematch tag --from-json`` writes regions from, without matching again.
Each photo becomes the ``ImageResult`` it was printed from, as far as tagging needs:
its path, status and error, and per face the box, the name and whether the name
is uncertain. A name whose ``uncertain`` field is missing (output of a facematch
that did not judge it) counts as uncertain: only names known to be sure are written.
Videos are rows with an error: their faces are in frames, not in a photo's XMP.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from facematch.errors import UsageError
from facematch.records import FaceBox, FaceMatch, ImageResult

BOX_KEYS = ("top", "right", "bottom", "left")
STATUSES = frozenset({"ok", "no_faces", "error"})


def read_answers(source: str) -> list[ImageResult]:
    """The photos of a JSON or JSON-lines file of match output (``-``: standard input)."""
    try:
        if source == "-":
            content = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as stream:
                content = stream.read()
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{source} is not UTF-8 text") from None
    try:
        documents = _documents(content)
        return [_photo(item) for item in documents]
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{source} is not the output of facematch --format json or jsonl: {exc}"
        ) from None


def _documents(content: str) -> list[Any]:
    stripped = content.strip()
    if not stripped:
        return []
    if stripped.startswith("["):
        whole = json.loads(stripped)
        if not isinstance(whole, list):
            raise ValueError("not a list of photos")
        return whole
    return [json.loads(line) for line in stripped.splitlines() if line.strip()]


def _photo(item: Any) -> ImageResult:
    if not isinstance(item, dict) or not isinstance(item.get("path"), str):
        raise ValueError("an entry without a path")
    path = item["path"]
    if item.get("kind") == "video":
        return ImageResult(path, "error", "a video: its faces are not written as XMP regions")
    status = item.get("status")
    if status not in STATUSES:
        raise ValueError(f"{path}: unknown status {status!r}")
    faces = tuple(_face(path, face) for face in item.get("faces") or ())
    error = item.get("error") if isinstance(item.get("error"), str) else None
    return ImageResult(path, status, error, faces)


def _face(path: str, face: Any) -> FaceMatch:
    box = face["box"]
    values = [box[key] for key in BOX_KEYS]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{path}: a face box that is not four whole numbers")
    name = face.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"{path}: a name that is not text")
    sure = face.get("uncertain") is False
    distance = face.get("distance")
    if not isinstance(distance, int | float) or isinstance(distance, bool):
        distance = None
    return FaceMatch(FaceBox(*values), name, distance, uncertain=not sure)
