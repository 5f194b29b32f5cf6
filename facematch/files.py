"""Folders and files for this user alone, written without following links.

Face embeddings are biometric data, and a converted model decides every
answer, so whatever facematch keeps goes where only its owner can read or
replace it. Writes go to a fresh temporary file in the destination folder,
renamed into place: a link planted at the destination is replaced, never
followed, and readers never see half a file.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("facematch")

PRIVATE_FOLDER = 0o700


def make_private_folder(path: Path) -> None:
    """Create ``path`` and each missing parent 0700; folders that exist keep their modes.

    Only what facematch creates is made private: an existing folder's mode is its
    owner's choice (a cache shared read-only with a group, say), so it is left
    alone; ``chmod -R go= <folder>`` closes an old cache made before this rule.
    """
    if path.is_dir():
        return
    if path.parent != path:
        make_private_folder(path.parent)
    try:
        path.mkdir(mode=PRIVATE_FOLDER)
    except FileExistsError:
        if not path.is_dir():
            raise


def create_private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 unless something (a link too) is there already.

    For files that others fill in, such as SQLite's: it gives a new database's
    -wal and -shm files the database file's own mode.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    os.close(descriptor)


def is_private_folder(path: Path) -> bool:
    """Whether ``path`` itself (not a link's target) is a folder of ours no one else may use."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.geteuid()
        and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) == 0
    )


def private_temp_folder() -> Path:
    """This user's folder in the temp directory, for files kept between runs without a cache.

    ``$TMPDIR/facematch-<uid>``, created 0700. Anyone may create that name
    first, so an existing one is used only if it is a real folder (not a link),
    ours, and closed to group and others; otherwise we warn and use a fresh
    private folder, removed when this process exits.
    """
    if not hasattr(os, "geteuid"):  # Windows: the temp folder is the user's own already
        return Path(tempfile.gettempdir()) / "facematch"
    folder = Path(tempfile.gettempdir()) / f"facematch-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=PRIVATE_FOLDER)
    if is_private_folder(folder):
        return folder
    log.warning("%s is not a private folder of this user; not using it", folder)
    fresh = Path(tempfile.mkdtemp(prefix="facematch-"))
    atexit.register(shutil.rmtree, fresh, True)
    return fresh


def write_private(path: Path, payload: bytes | Sequence[bytes | memoryview]) -> None:
    """Write ``payload`` to ``path`` atomically as a 0600 file; a link at ``path`` is replaced.

    ``payload`` is the bytes, or a sequence of buffers written one after another
    (a large file without joining it in memory first).
    """
    descriptor, temp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as temp_file:  # mkstemp: O_EXCL, mode 0600
            for part in [payload] if isinstance(payload, bytes) else payload:
                temp_file.write(part)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in blocks (raises OSError when it cannot be read)."""
    with Path(path).open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()
