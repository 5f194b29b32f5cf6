"""A large library's search cells, kept beside it so that a search never trains them.

Below ``ANN_MIN_ROWS`` faces exact search answers a query in milliseconds. Above
it, ``facematch index`` keeps the approximate index's trained cells and codes
(``FaissIndex``: k-means cells of 4-bit product-quantization codes) in
``LIBRARY-index``, and a search, in any later process, reads them in well under a
second instead of training them again (about 30 CPU seconds at a million faces,
minutes at ten million), then re-measures every candidate against the snapshot's
float32 rows (``facematch.store.snapshot``): the file only proposes, the rows answer.

The cells hold each face under a key that never changes and is never given
twice: its file's id and its face id (``row_keys``; the face id alone is not
enough, as two files with the same bytes share their faces). So keeping them up
to date is incremental: the faces indexed since
are added, the faces removed since are taken out, and the cells are trained again
from scratch only when the library has grown eightfold since they were trained
(they are never asked to serve more than eight times the faces they were made
from). Cells made for another state of the library are never used, as for the
snapshot: the header records the library's generation, and a file that is short,
foreign or fails its CRC is not used (a warning; the search is exact, as correct
and slower) and is made again by the next ``facematch index``.

The file: ``MAGIC``, an 8-byte little-endian header length, a JSON header
(generation, count, the face count the cells were trained on, CRC-32 of the
body), padding to 64 bytes, then the body: the keys the cells hold, sorted
(count int64, little-endian), then faiss's serialization of the cells.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from facematch.files import write_private
from facematch.store.snapshot import FaceMatrix, head_bytes, header_generation, read_header

log = logging.getLogger("facematch")

MAGIC = b"FMCELLS1"
SUFFIX = "-index"

REGROW = 8
"""Cells are trained again once the library has this many times the faces they were trained on."""


class StoredCells(NamedTuple):
    """Cells read from beside a library: the faiss index, the keys it holds
    (``row_keys``, sorted), and the face count it was trained on."""

    cells: Any
    keys: NDArray[np.int64]
    trained_on: int


def row_keys(faces: FaceMatrix) -> NDArray[np.int64]:
    """Each face's key in the cells: its file's id in the high 32 bits, its face
    id in the low 32 (ids are SQLite's, from 1, far below 2**31 in any library)."""
    files = np.asarray(faces.files, dtype=np.int64)
    ids = np.asarray(faces.ids, dtype=np.int64)
    if len(ids) and (int(ids.max()) >= 1 << 32 or int(files.max()) >= 1 << 31):
        raise ValueError("face or file ids beyond what the search cells' keys hold")
    return (files << 32) | ids


def index_path(library: Path) -> Path:
    """Where the cells of the library at ``library`` live."""
    return library.with_name(library.name + SUFFIX)


def read_cells(path: Path, generation: str, *, any_state: bool = False) -> StoredCells | None:
    """The cells at ``path`` if they are of ``generation`` (with ``any_state``: of
    any state of the same library, for an update) and whole; else None (with a
    warning when the file is damaged or foreign)."""
    from facematch.neighbours.faiss_index import cells_from_buffer

    library_id = generation.split(":", 1)[0]
    try:
        with open(path, "rb") as file:
            header = read_header(file, MAGIC)
            stored = header.get("generation")
            if not isinstance(stored, str):
                raise ValueError("no generation")
            if stored.split(":", 1)[0] != library_id or (not any_state and stored != generation):
                return None
            count = int(header["count"])
            size = int(header["size"])
            start = file.tell()
            if count < 0 or size < count * 8:
                raise ValueError("wrong shape")
            if os.fstat(file.fileno()).st_size != start + size:
                raise ValueError("wrong length")
            # Mapped, not read: the CRC is checked on the system's file cache, and faiss
            # then reads its part straight into the cells (one copy, no buffer).
            body = np.memmap(path, dtype=np.uint8, mode="r", offset=start, shape=size)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("the library's search cells %s are unusable (%s); searching exactly", path, exc)
        return None
    if zlib.crc32(body.data) != header.get("crc32"):
        log.warning("the library's search cells %s are damaged; searching exactly", path)
        return None
    keys = np.asarray(body[: count * 8].view("<i8"), dtype=np.int64)  # mapped, not copied
    try:
        cells = cells_from_buffer(body[count * 8 :])
    except RuntimeError as exc:  # faiss's own check of what it reads
        log.warning("the library's search cells %s are unusable (%s); searching exactly", path, exc)
        return None
    if cells.ntotal != count:
        log.warning("the library's search cells %s do not add up; searching exactly", path)
        return None
    return StoredCells(cells, keys, int(header.get("trained_on", count)))


def write_cells(path: Path, stored: StoredCells, generation: str) -> None:
    """Write ``stored`` as the cells of ``generation`` (atomically, 0600)."""
    from facematch.neighbours.faiss_index import cells_to_bytes

    keys = np.ascontiguousarray(stored.keys, dtype="<i8")
    serialized = cells_to_bytes(stored.cells)
    crc = zlib.crc32(serialized.data, zlib.crc32(keys.data))
    header = {
        "generation": generation,
        "count": len(keys),
        "trained_on": stored.trained_on,
        "size": keys.nbytes + serialized.nbytes,
        "crc32": crc,
    }
    head = head_bytes(MAGIC, header)
    write_private(path, [head, keys.data.cast("B"), serialized.data.cast("B")])


def cells_generation(path: Path) -> str | None:
    """The generation cells say they are of (their header only); None if unreadable."""
    return header_generation(path, MAGIC)


def updated_cells(previous: StoredCells | None, faces: FaceMatrix) -> tuple[StoredCells, str]:
    """Cells for ``faces``: ``previous`` with the faces added and removed since, or
    trained again (none, or the library has grown ``REGROW``-fold since they were
    trained). Returns the cells and what was done, in words for the log."""
    from facematch.neighbours.faiss_index import fill_cells, remove_keys, trained_cells

    ids = row_keys(faces)
    started = time.perf_counter()
    if previous is None or len(ids) >= REGROW * max(previous.trained_on, 1):
        cells = trained_cells(faces.embeddings)
        fill_cells(cells, faces.embeddings, ids)
        spent = time.perf_counter() - started
        return StoredCells(
            cells, np.sort(ids), len(ids)
        ), f"trained on {len(ids):,} faces in {spent:.1f} s"
    kept = np.isin(previous.keys, ids, assume_unique=True)
    new = ~np.isin(ids, previous.keys, assume_unique=True)
    cells = previous.cells
    removed = remove_keys(cells, previous.keys[~kept])
    fill_cells(cells, faces.embeddings[new], ids[new])
    keys = np.union1d(previous.keys[kept], ids[new])
    spent = time.perf_counter() - started
    return (
        StoredCells(cells, keys, previous.trained_on),
        f"{int(new.sum()):,} faces added, {removed:,} removed in {spent:.1f} s",
    )
