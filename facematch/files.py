"""Folders and files for this user alone, written without following links.

Face embeddings are biometric data, and a converted model decides every
answer, so whatever facematch keeps goes where only its owner can read or
replace it. Writes go to a fresh temporary file in the destination folder,
renamed into place: a link planted at the destination is replaced, never
followed, and readers never see half a file.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import multiprocessing.util
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

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
    -wal and -shm files the database file's own mode. A link to nothing (a library
    kept on another disk, say) gets its target made 0600 the same way, since SQLite
    would follow it and make the target with the umask's mode.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        if not (os.path.islink(path) and not os.path.exists(path)):
            return
        try:
            descriptor = os.open(
                os.path.realpath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
            )
        except (FileExistsError, FileNotFoundError):
            return  # made meanwhile, or its folder is missing: SQLite says so
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


# Set by the process that made a fresh private temp folder, for the processes it starts.
TEMP_FOLDER_VARIABLE = "FACEMATCH_PRIVATE_TEMP"


@functools.cache
def private_temp_folder() -> Path:
    """This user's folder in the temp directory, for files kept between runs without a cache.

    ``$TMPDIR/facematch-<uid>``, created 0700. Anyone may create that name
    first, so an existing one is used only if it is a real folder (not a link),
    ours, and closed to group and others; otherwise we warn and use a fresh
    private folder, removed when this process exits. Decided once per process;
    a fresh folder is handed down (``FACEMATCH_PRIVATE_TEMP``) to the worker
    processes started after the decision, which use it without a warning and
    leave it to this process to remove. The runners decide in the main process
    before starting any worker; a worker that still has to decide alone (a
    remote Dask worker) removes its own fresh folder when it exits.
    """
    if not hasattr(os, "geteuid"):  # Windows: the temp folder is the user's own already
        return Path(tempfile.gettempdir()) / "facematch"
    folder = Path(tempfile.gettempdir()) / f"facematch-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=PRIVATE_FOLDER)
    if is_private_folder(folder):
        return folder
    handed_down = os.environ.get(TEMP_FOLDER_VARIABLE)
    if handed_down and is_private_folder(Path(handed_down)):
        return Path(handed_down)
    log.warning("%s is not a private folder of this user; not using it", folder)
    fresh = Path(tempfile.mkdtemp(prefix="facematch-"))
    os.environ[TEMP_FOLDER_VARIABLE] = str(fresh)
    # Run at exit by the main process and by worker processes alike (atexit is not).
    multiprocessing.util.Finalize(None, shutil.rmtree, args=(fresh, True), exitpriority=0)
    return fresh


def write_private(path: Path, payload: bytes | Sequence[bytes | memoryview]) -> None:
    """Write ``payload`` to ``path`` atomically as a 0600 file; a link at ``path`` is replaced.

    ``payload`` is the bytes, or a sequence of buffers written one after another
    (a large file without joining it in memory first).
    """
    with atomic_file(path, mode=0o600, durable=True) as stream:
        for part in [payload] if isinstance(payload, bytes) else payload:
            stream.write(part)


@contextlib.contextmanager
def atomic_file(path: Path, mode: int | None = None, durable: bool = False) -> Iterator[BinaryIO]:
    """A stream whose bytes become the file ``path`` only once all of them are written.

    The one way facematch writes a file. The bytes go to a new temporary file
    beside ``path`` (created exclusively, 0600); when the block ends the write
    is checked (flushed, the file's size compared with the bytes written, and
    with ``durable`` synced to the disk), the file gets ``mode`` (default: 0666
    less the umask) and is renamed over ``path``: a link planted there is
    replaced, never followed, and no reader ever sees half a file. On any
    failure (a full disk, Ctrl-C) the temporary file is removed, ``path`` is as
    it was, and the error is raised (:func:`write_failure` words an OSError).
    """
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as stream:
            yield stream
            stream.flush()
            if os.fstat(stream.fileno()).st_size != stream.tell():
                raise OSError(errno.EIO, "the file written is shorter than its data")
            if durable:
                os.fsync(stream.fileno())
        if mode != 0o600:  # mkstemp's own
            os.chmod(temporary, 0o666 & ~_umask() if mode is None else mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_failure(exc: OSError, where: str) -> str:
    """Why a file could not be written, in one line: ``no space left on device writing OUT``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason[:1].lower()}{reason[1:]} writing {where}"


@functools.cache
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in blocks (raises OSError when it cannot be read)."""
    with Path(path).open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()
