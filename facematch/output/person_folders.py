"""``cluster --out``: a folder per person of face crops, and the names users gave by renaming."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from PIL import Image

from facematch.errors import ImageError, OutputError, UsageError
from facematch.files import write_failure
from facematch.output.pictures import save_copy, write_atomically
from facematch.output.text import printable
from facematch.records import PREFIX, FaceRow
from facematch.sources.images import load_rgb
from facematch.store.people import UNCLUSTERED_FOLDER, safe_name

log = logging.getLogger("facematch")

MARKER = ".facematch-people"
CROP_NAME = re.compile(r"__face\d+\.jpg\Z")  # how every crop is named
CROP_QUALITY = 90


def folder_name(row: FaceRow, taken: dict[str, int]) -> str:
    """A person's folder: their name (made safe for a file name), else person_N."""
    if row.name is None:
        return row.person_label
    safe = safe_name(row.name) or row.person_label
    if taken.setdefault(safe, row.person or 0) != (row.person or 0):
        safe = f"{safe} ({row.person_label})"
    return safe


def _recorded(out_dir: Path) -> dict[str, tuple[int | None, list[str] | None]]:
    """The marker of an earlier ``--out``: folder -> (person number, crop file names).

    Markers of older versions list folder names only (no person; crops None).
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
        return {line: (None, None) for line in text.splitlines()}


def _is_ours(out_dir: Path, folder: str) -> bool:
    """A plain folder name directly inside ``out_dir`` (a tampered marker removes nothing else)."""
    target = out_dir / folder
    plain = folder not in ("", ".", "..") and "/" not in folder and os.sep not in folder
    return plain and target.is_dir() and not target.is_symlink()


def _remove_crops(folder: Path, crops: Collection[str] | None) -> list[str]:
    """Remove the crops facematch wrote in ``folder`` (``crops``: their names; None: every
    file named as a crop), and the folder once empty; returns what else is in it."""
    for entry in folder.iterdir():
        ours = entry.name in crops if crops is not None else CROP_NAME.search(entry.name)
        if ours and not entry.is_dir():
            entry.unlink()
    others = sorted(entry.name for entry in folder.iterdir())
    if not others:
        folder.rmdir()
    return others


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
        for crop in crops or ()
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
    shown: Callable[[str], str] = str,
) -> int:
    """A folder per person of face crops named ``<photo path>__face<N>.jpg``; returns count.

    The photo path is relative to the folder all rows share, with ``/`` as ``__``, so a
    crop's name leads back to its photo. Faces in no group go in ``unclustered/``.
    Only what facematch wrote is ever removed: the crops the marker file lists, and
    their folders once empty; a folder also holding files of the user's stays (with a
    warning when its person's crops now go elsewhere), and a non-empty ``out_dir``
    without a marker is refused. ``adopted``: folders the user renamed
    (:func:`renamed_folders`); the crops written before are removed from them, since
    the person's crops are written afresh under their name. ``shown``: how a message
    names a photo (``sources.images.ShownPaths``). Raises OutputError.
    """
    try:
        kept = _clear(out_dir, adopted)
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        planned = _plan(rows)
        # The marker first: a run cut short (a full disk) still lists every crop it wrote.
        record = {
            "folders": {
                folder: {"person": person, "crops": [name for _, name in crops]}
                for folder, (person, crops) in sorted(planned.items())
            }
        }
        write_atomically(
            out_dir / MARKER, (json.dumps(record, indent=1) + "\n").encode(), private=True
        )
        written = _write(planned, out_dir, margin, shown)
    except OSError as exc:
        where = printable(str(exc.filename or out_dir))
        raise OutputError(write_failure(exc, where)) from None
    new_home = {person: folder for folder, (person, _) in planned.items() if person is not None}
    for folder, (person, others) in sorted(kept.items()):
        if folder in planned:
            continue
        listed = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        moved = f"; its crops are now in {out_dir / new_home[person]}" if person in new_home else ""
        log.warning(
            "%s: kept, as it holds files facematch did not write (%s)%s",
            printable(str(out_dir / folder)),
            printable(listed),
            moved,
        )
    return written


def _clear(out_dir: Path, adopted: Sequence[str]) -> dict[str, tuple[int | None, list[str]]]:
    """Remove what the last ``--out`` wrote; returns the folders kept for the user's files
    in them: folder -> (its person, those files)."""
    if not (out_dir.exists() and any(out_dir.iterdir())):
        return {}
    if not (out_dir / MARKER).exists():
        raise UsageError(f"{out_dir} is not empty and was not written by facematch cluster")
    recorded = _recorded(out_dir)
    kept = {}
    for folder, (person, crops) in recorded.items():
        if _is_ours(out_dir, folder):
            others = _remove_crops(out_dir / folder, crops)
            if others:
                kept[folder] = (person, others)
    written_before = {crop for _, crops in recorded.values() for crop in crops or ()}
    for folder in adopted:
        if _is_ours(out_dir, folder):
            _remove_crops(out_dir / folder, written_before)
    return kept


Planned = dict[str, tuple[int | None, list[tuple[FaceRow, str]]]]


def _plan(rows: Sequence[FaceRow]) -> Planned:
    """Each folder's person and crops (row, file name), in row order."""
    common = os.path.commonpath([os.path.dirname(r.path) for r in rows]) if rows else ""
    taken: dict[str, int] = {}
    planned: Planned = {}
    for row in rows:
        folder = folder_name(row, taken) if row.person is not None else UNCLUSTERED_FOLDER
        stem = os.path.relpath(row.path, common).replace(os.sep, "__")
        planned.setdefault(folder, (row.person, []))[1].append((row, f"{stem}__face{row.face}.jpg"))
    return planned


def _write(planned: Planned, out_dir: Path, margin: float, shown: Callable[[str], str]) -> int:
    """Write the planned crops, each photo decoded once; returns how many were written."""
    by_path: dict[str, list[tuple[str, FaceRow, str]]] = {}
    for folder, (_, crops) in planned.items():
        for row, name in crops:
            by_path.setdefault(row.path, []).append((folder, row, name))
    written = 0
    for path, faces in by_path.items():
        try:
            image = load_rgb(path)
        except (OSError, ImageError) as exc:  # gone or changed since indexing: say so, go on
            log.error("%s: %s (no crops)", shown(path), exc)
            continue
        height, width = image.shape[:2]
        for folder, row, name in faces:
            top, right, bottom, left = row.box.css()
            pad_y, pad_x = int((bottom - top) * margin), int((right - left) * margin)
            crop = image[
                max(0, top - pad_y) : min(height, bottom + pad_y),
                max(0, left - pad_x) : min(width, right + pad_x),
            ]
            if crop.size == 0:
                continue
            save_copy(
                Image.fromarray(crop), out_dir / folder / name, quality=CROP_QUALITY, private=True
            )
            written += 1
    return written
