"""``cluster --out``: a folder per person of face crops, and the names users gave by renaming."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from facematch.errors import ImageError, UsageError
from facematch.records import PREFIX, FaceRow
from facematch.sources.images import load_rgb

log = logging.getLogger("facematch")

MARKER = ".facematch-people"
UNCLUSTERED_FOLDER = "unclustered"


def folder_name(row: FaceRow, taken: dict[str, int]) -> str:
    """A person's folder: their name (made safe for a file name), else person_N."""
    if row.name is None:
        return row.person_label
    safe = "".join(c if c.isalnum() or c in " ._-" else "_" for c in row.name).strip(" .")
    safe = safe or row.person_label
    if taken.setdefault(safe, row.person or 0) != (row.person or 0):
        safe = f"{safe} ({row.person_label})"
    return safe


def _recorded(out_dir: Path) -> dict[str, tuple[int | None, list[str]]]:
    """The marker of an earlier ``--out``: folder -> (person number, crop file names).

    Markers of older versions list folder names only (no person, no crops).
    """
    marker = out_dir / MARKER
    if not marker.is_file():
        return {}
    text = marker.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        folders = data["folders"]
        return {
            str(folder): (
                None if entry["person"] is None else int(entry["person"]),
                [str(c) for c in entry["crops"]],
            )
            for folder, entry in folders.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return {line: (None, []) for line in text.splitlines()}


def _is_ours(out_dir: Path, folder: str) -> bool:
    """A plain folder name directly inside ``out_dir`` (a tampered marker removes nothing else)."""
    target = out_dir / folder
    plain = folder not in ("", ".", "..") and "/" not in folder and os.sep not in folder
    return plain and target.is_dir() and not target.is_symlink()


def renamed_folders(out_dir: Path) -> dict[int, str]:
    """People whose ``--out`` folder the user renamed: person number -> the new name.

    A folder the last ``--out`` wrote for a person is gone, and exactly one folder that
    it did not write holds crops of that person (by file name) and of nobody else:
    that folder's name is the user's name for the person. Folders named ``person_N``
    or ``unclustered``, hidden ones, and two folders claiming one person are ignored.
    """
    recorded = _recorded(out_dir)
    owner = {
        crop: person
        for folder, (person, crops) in recorded.items()
        if person is not None and not (out_dir / folder).exists()
        for crop in crops
    }
    if not owner:
        return {}
    claims: dict[int, list[str]] = {}
    for entry in sorted(out_dir.iterdir()):
        name = entry.name
        if (
            name in recorded
            or name.startswith(".")
            or name == UNCLUSTERED_FOLDER
            or (name.startswith(PREFIX) and name[len(PREFIX) :].isdigit())
            or not entry.is_dir()
            or entry.is_symlink()
        ):
            continue
        people = {owner[f.name] for f in entry.iterdir() if f.name in owner}
        if len(people) == 1:
            claims.setdefault(people.pop(), []).append(name)
    return {person: names[0] for person, names in claims.items() if len(names) == 1}


def write_crops(
    rows: Sequence[FaceRow],
    out_dir: Path,
    margin: float = 0.25,
    adopted: Sequence[str] = (),
) -> int:
    """A folder per person of face crops named ``<photo path>__face<N>.jpg``; returns count.

    The photo path is relative to the folder all rows share, with ``/`` as ``__``, so a
    crop's name leads back to its photo. Faces in no group go in ``unclustered/``. A
    folder written before (the marker file lists it) is replaced; any other non-empty
    folder is refused. ``adopted``: folders the user renamed (:func:`renamed_folders`);
    the crops written before are removed from them (and they, once empty), since the
    person's crops are written afresh under their name.
    """
    marker = out_dir / MARKER
    if out_dir.exists() and any(out_dir.iterdir()):
        if not marker.exists():
            raise UsageError(f"{out_dir} is not empty and was not written by facematch cluster")
        recorded = _recorded(out_dir)
        for old in recorded:
            if _is_ours(out_dir, old):
                shutil.rmtree(out_dir / old)
        written_before = {crop for _, crops in recorded.values() for crop in crops}
        for folder in adopted:
            if _is_ours(out_dir, folder):
                for old_crop in (out_dir / folder).iterdir():
                    if old_crop.name in written_before and old_crop.is_file():
                        old_crop.unlink()
                if not any((out_dir / folder).iterdir()):
                    (out_dir / folder).rmdir()
    out_dir.mkdir(parents=True, exist_ok=True)
    common = os.path.commonpath([os.path.dirname(r.path) for r in rows]) if rows else ""
    taken: dict[str, int] = {}
    folders: dict[str, tuple[int | None, list[str]]] = {}
    written = 0
    by_path: dict[str, list[FaceRow]] = {}
    for row in rows:
        by_path.setdefault(row.path, []).append(row)
    for path, faces in by_path.items():
        try:
            image = load_rgb(path)
        except (OSError, ImageError) as exc:  # gone or changed since indexing: say so, go on
            log.error("%s: %s (no crops)", path, exc)
            continue
        height, width = image.shape[:2]
        stem = os.path.relpath(path, common).replace(os.sep, "__")
        for row in faces:
            folder = folder_name(row, taken) if row.person is not None else UNCLUSTERED_FOLDER
            crops = folders.setdefault(folder, (row.person, []))[1]
            top, right, bottom, left = row.box.css()
            pad_y, pad_x = int((bottom - top) * margin), int((right - left) * margin)
            crop = image[
                max(0, top - pad_y) : min(height, bottom + pad_y),
                max(0, left - pad_x) : min(width, right + pad_x),
            ]
            if crop.size == 0:
                continue
            (out_dir / folder).mkdir(exist_ok=True)
            crop_name = f"{stem}__face{row.face}.jpg"
            Image.fromarray(crop).save(out_dir / folder / crop_name, quality=90)
            crops.append(crop_name)
            written += 1
    record = {
        "folders": {
            folder: {"person": person, "crops": crops}
            for folder, (person, crops) in sorted(folders.items())
        }
    }
    marker.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return written
