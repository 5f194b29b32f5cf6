"""One path for every converted model: convert, verify against dlib, mark what passed.

A ``.verified`` marker beside a converted model records the SHA-256 of the bytes
that passed verification. A model whose bytes do not match its marker (damaged,
or replaced since) or that has none is converted and verified again. The marker
detects damage, not tampering: whoever can write the cache can rewrite both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from facematch.errors import ModelError
from facematch.files import file_sha256, write_private

log = logging.getLogger("facematch")


def model_digest(path: Path) -> str:
    """The SHA-256 of a model file, so a changed file never reuses a stale conversion."""
    try:
        return file_sha256(path)
    except OSError as err:
        raise ModelError(f"cannot read {path}: {err.strerror or err}") from err


def marker_path(model: Path) -> Path:
    return model.with_name(model.name + ".verified")


def recorded_sha256(marker: Path) -> str | None:
    """The SHA-256 in a marker ("<sha256> <note>"), or None if absent or unreadable."""
    try:
        words = marker.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    if not words or len(words[0]) != 64 or any(c not in "0123456789abcdef" for c in words[0]):
        return None
    return words[0]


def verified_sha256(model: Path, marker: Path) -> str | None:
    """The SHA-256 the marker records, if the model's bytes have exactly it.

    Only the bytes are checked: building an ONNX session here too (workers build
    their own) would cost 0.6 s before any work could start.
    """
    recorded = recorded_sha256(marker)
    if recorded is None or not model.is_file():
        return None
    try:
        actual = file_sha256(model)
    except OSError:
        return None
    if actual != recorded:
        log.warning(
            "the ONNX model %s is not the one that was verified; converting it again", model
        )
        return None
    return recorded


def ready(model: Path, convert: Callable[[], None], verify: Callable[[], tuple[str, str]]) -> str:
    """The SHA-256 of a verified ``model``, converting and verifying it when needed.

    ``convert`` writes the model; ``verify`` checks it against dlib and returns its
    SHA-256 and a note for the marker, or raises ModelError (after removing it).
    """
    marker = marker_path(model)
    trusted = verified_sha256(model, marker)
    if trusted is not None:
        return trusted
    convert()
    sha256, note = verify()
    write_private(marker, f"{sha256} {note}\n".encode())
    return sha256
