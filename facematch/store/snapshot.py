"""A library's faces as one file of matrices, beside the library, for opening it fast.

Reading a million faces out of SQLite takes about 15 CPU-seconds, almost all of it
row transfer; reading the same faces as matrices takes well under one. So after a
library's faces are read from SQLite (or an index run changes them), they are also
written to ``LIBRARY-faces`` beside it, and the next reader takes them from there
when the snapshot is of the library as it is now.

"As it is now": a library has a random identity (``meta.library_id``) and a random
token that triggers replace on every write to its files, entries and faces
(``meta.generation``); a snapshot records both as the state it was made at, and a
snapshot of any other state is never used: not another library's, and not one made
before a library was restored from a backup and changed again.

The file: ``MAGIC``, an 8-byte little-endian header length, a JSON header
(generation, count, CRC-32 of the body), padding to 64 bytes, then the body:
embeddings (n, 128) float32, face ids (n,) int64, file ids (n,) int64 and boxes
(n, 4) int32, all little-endian. A file that is short, foreign or fails its CRC is
not used (a warning, then the faces come from SQLite, where every face has its own
checksum): the snapshot is a copy that can always be made again, never the answer.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np
from numpy.typing import NDArray

from facematch.files import write_private

log = logging.getLogger("facematch")

MAGIC = b"FMFACES1"
SUFFIX = "-faces"
DIM = 128
_ALIGN = 64

SNAPSHOT_MIN_FACES = 20_000
"""Libraries with fewer faces load from SQLite in a fraction of a second: no snapshot."""


class FaceMatrix(NamedTuple):
    """A library's faces as matrices, ordered by path then face number."""

    ids: NDArray[np.int64]
    """(n,) face ids."""
    files: NDArray[np.int64]
    """(n,) the id of each face's file row."""
    boxes: NDArray[np.int32]
    """(n, 4) top, right, bottom, left."""
    embeddings: NDArray[np.float32]
    """(n, 128) contiguous float32."""


def snapshot_path(library: Path) -> Path:
    """Where the snapshot of the library at ``library`` lives."""
    return library.with_name(library.name + SUFFIX)


def _body_parts(faces: FaceMatrix) -> list[NDArray[np.generic]]:
    return [
        np.ascontiguousarray(faces.embeddings, dtype="<f4"),
        np.ascontiguousarray(faces.ids, dtype="<i8"),
        np.ascontiguousarray(faces.files, dtype="<i8"),
        np.ascontiguousarray(faces.boxes, dtype="<i4"),
    ]


def write_snapshot(path: Path, faces: FaceMatrix, generation: str) -> None:
    """Write ``faces`` as the snapshot of ``generation`` (atomically, 0600)."""
    parts = _body_parts(faces)
    crc = 0
    for part in parts:
        crc = zlib.crc32(part.data.cast("B"), crc)
    header = {"generation": generation, "count": len(faces.ids), "dim": DIM, "crc32": crc}
    write_private(path, [head_bytes(MAGIC, header), *(p.data.cast("B") for p in parts)])


def head_bytes(magic: bytes, header: dict[str, Any]) -> bytes:
    """A file's head as facematch writes its files beside a library: ``magic``, an
    8-byte little-endian length, the JSON ``header``, padded so the body starts on
    a 64-byte boundary."""
    text = json.dumps(header).encode()
    padding = b" " * (-(len(magic) + 8 + len(text)) % _ALIGN)
    return magic + len(text + padding).to_bytes(8, "little") + text + padding


def read_header(file: BinaryIO, magic: bytes = MAGIC) -> dict[str, Any]:
    """The JSON header of a file ``head_bytes`` began, the file left at its body;
    ValueError if it is not such a file."""
    if file.read(len(magic)) != magic:
        raise ValueError("not a facematch file of this kind")
    length = int.from_bytes(file.read(8), "little")
    if length > 1 << 16:
        raise ValueError("header too long")
    header = json.loads(file.read(length))
    if not isinstance(header, dict):
        raise ValueError("not a facematch file of this kind")
    return header


def header_generation(path: Path, magic: bytes = MAGIC) -> str | None:
    """The generation a file beside a library says it is of (its header only);
    None if none is readable."""
    try:
        with open(path, "rb") as file:
            generation = read_header(file, magic).get("generation")
    except (OSError, ValueError):
        return None
    return generation if isinstance(generation, str) else None


def read_snapshot(path: Path, generation: str) -> FaceMatrix | None:
    """The snapshot at ``path`` if it is of ``generation`` and whole; else None.

    Missing, or of another generation: None quietly. Damaged or foreign: None
    with a warning (the caller reads the library itself).
    """
    try:
        with open(path, "rb") as file:
            header = read_header(file)
            if header.get("generation") != generation:
                return None
            count = int(header["count"])
            if header.get("dim") != DIM or count < 0:
                raise ValueError("wrong shape")
            sizes = [count * DIM * 4, count * 8, count * 8, count * 16]
            body_start = file.tell()
            if os.fstat(file.fileno()).st_size != body_start + sum(sizes):
                raise ValueError("wrong length")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("the library's snapshot %s is unusable (%s); reading the library", path, exc)
        return None
    if count == 0:
        body = np.empty(0, dtype=np.uint8)
    else:
        # Mapped, not read: the pages stay the system's file cache (no copy).
        try:
            body = np.memmap(path, dtype=np.uint8, mode="r", offset=body_start, shape=sum(sizes))
        except (OSError, ValueError) as exc:
            log.warning(
                "cannot read the library's snapshot %s (%s); reading the library", path, exc
            )
            return None
    if zlib.crc32(body.data) != header.get("crc32"):
        log.warning("the library's snapshot %s is damaged; reading the library", path)
        return None
    ends = np.cumsum([0, *sizes])
    embeddings = body[ends[0] : ends[1]].view("<f4").reshape(count, DIM)
    ids = body[ends[1] : ends[2]].view("<i8")
    files = body[ends[2] : ends[3]].view("<i8")
    boxes = body[ends[3] : ends[4]].view("<i4").reshape(count, 4)
    return FaceMatrix(ids, files, boxes, embeddings)


def snapshot_generation(path: Path) -> str | None:
    """The generation a snapshot says it is of (its header only); None if none is readable."""
    return header_generation(path)


def remove_beside(path: Path) -> None:
    """Remove a file kept beside a library, the snapshot or the search cells, if it
    is there (the library became too small to need it)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.debug("cannot remove %s: %s", path, exc)
