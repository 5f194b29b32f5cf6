"""Descriptor engines: dlib's own ResNet, or the same network on ONNX Runtime.

The ONNX model is converted from dlib's .dat on first use, stored in the cache
folder (or this user's private temp folder), and checked against dlib before it
is trusted, then again whenever its SHA-256 is not the one that passed; if it
disagrees (or onnxruntime is missing) we warn once and use dlib. Both engines
give the same embeddings within 1e-5, so cached entries from either serve both.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facematch import files as private
from facematch.encode.faces import DlibEncoder, Encoder, EngineName
from facematch.errors import ModelError
from facematch.models import dlib_files as models
from facematch.models import provision

log = logging.getLogger("facematch")

# Largest ONNX/dlib disagreement (Euclidean) we accept; measured ~1e-6.
MAX_ENGINE_DIFFERENCE = 1e-5


def onnx_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def default_engine() -> EngineName:
    return "onnx" if onnx_available() else "dlib"


@dataclass(frozen=True)
class EngineChoice:
    """The engine a run will use, and for ONNX the verified model file and its SHA-256."""

    name: EngineName
    onnx_model: str | None = None
    onnx_sha256: str | None = None


def prepare(requested: EngineName, cache_dir: Path | None) -> EngineChoice:
    """Make the requested engine ready in this process, or fall back to dlib with a warning.

    The model lives in the cache folder, or without one in this user's private
    temp folder (never a shared one: whoever controls the model decides every answer).
    """
    if requested == "dlib":
        return EngineChoice("dlib")
    if not onnx_available():
        log.warning("onnxruntime is not installed; using dlib's slower descriptor engine")
        return EngineChoice("dlib")
    try:
        folder = cache_dir if cache_dir is not None else private.private_temp_folder()
        path, sha256 = _ready_model(folder)
    except (ModelError, OSError) as exc:
        log.warning("ONNX engine unavailable (%s); using dlib's descriptor engine", exc)
        return EngineChoice("dlib")
    return EngineChoice("onnx", str(path), sha256)


def _ready_model(folder: Path) -> tuple[Path, str]:
    """The converted model and its SHA-256, checked against dlib once per conversion."""
    from facematch.encode import onnx_encoder

    dat = models.model_path("recognition")
    path = onnx_encoder.model_file(folder, dat)

    def convert() -> None:
        onnx_encoder.ensure_onnx_model(folder, dat, rebuild=True)

    def verify() -> tuple[str, str]:
        encoder = onnx_encoder.OnnxEncoder(path)
        difference = onnx_encoder.verify_against_dlib(encoder, models.dlib_face_encoder())
        if difference > MAX_ENGINE_DIFFERENCE:
            path.unlink(missing_ok=True)
            raise ModelError(
                f"converted model differs from dlib by {difference:.2e} (limit "
                f"{MAX_ENGINE_DIFFERENCE:.0e})"
            )
        return encoder.sha256, f"{difference:.3e}"

    return path, provision.ready(path, convert, verify)


@functools.cache
def encoder(
    choice: EngineChoice, threads: int = 1, jitters: int = 1, mirror: bool = False
) -> Encoder:
    """This process's encoder for a choice, built once."""
    base: Encoder = DlibEncoder()
    if choice.name == "onnx" and choice.onnx_model is not None:
        from facematch.encode.onnx_encoder import OnnxEncoder

        model = _model_here(choice)
        try:
            base = OnnxEncoder(model, threads, choice.onnx_sha256)
        except ModelError as exc:  # same embeddings within 1e-5, so the answers stand
            log.warning("ONNX engine unavailable here (%s); using dlib's descriptor engine", exc)
    if jitters <= 1 and not mirror:
        return base
    return AveragingEncoder(base, jitters, mirror)


def _model_here(choice: EngineChoice) -> Path:
    """The choice's ONNX model as this process sees it.

    A worker on another machine may not see the folder the run prepared the
    model in: it prepares its own, which must be the very same model.
    """
    assert choice.onnx_model is not None
    path = Path(choice.onnx_model)
    if path.is_file():
        return path
    here = prepare("onnx", None)
    if here.onnx_model is None or here.onnx_sha256 != choice.onnx_sha256:
        raise ModelError(
            f"the ONNX model prepared on this machine ({here.onnx_sha256 or 'none'}) is not "
            f"the one this run uses ({choice.onnx_sha256}): install the same versions everywhere"
        )
    return Path(here.onnx_model)


def jittered(chip: NDArray[np.uint8], count: int) -> NDArray[np.uint8]:
    """``count`` slightly moved, scaled, rotated and mirrored copies of a chip.

    Like dlib's jitter_image, but seeded from the chip's own pixels, so the same
    face always gets the same copies whatever process or order it runs in.
    """
    from PIL import Image

    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(chip.tobytes()).digest()[:8]))
    image = Image.fromarray(chip)
    size = chip.shape[0]
    copies = [chip]
    for _ in range(count - 1):
        angle = rng.uniform(-3.0, 3.0)
        scale = rng.uniform(0.95, 1.05)
        shift = rng.uniform(-0.02, 0.02, size=2) * size
        moved = image.rotate(angle, resample=Image.Resampling.BILINEAR, translate=tuple(shift))
        crop = size / scale
        offset = (size - crop) / 2
        moved = moved.transform(
            (size, size),
            Image.Transform.EXTENT,
            (offset, offset, offset + crop, offset + crop),
            resample=Image.Resampling.BILINEAR,
        )
        copy = np.asarray(moved)
        copies.append(copy[:, ::-1] if rng.random() < 0.5 else copy)
    return np.stack(copies)


class AveragingEncoder:
    """Averages descriptors over jittered copies and/or the mirror image of each chip."""

    def __init__(self, inner: Encoder, jitters: int, mirror: bool) -> None:
        self.inner = inner
        self.jitters = jitters
        self.mirror = mirror

    def encode(self, chips: NDArray[np.uint8]) -> NDArray[np.float64]:
        if len(chips) == 0:
            return self.inner.encode(chips)
        groups = [jittered(c, self.jitters) if self.jitters > 1 else c[None] for c in chips]
        if self.mirror:
            groups = [np.concatenate([g, g[:, :, ::-1]]) for g in groups]
        flat = np.concatenate(groups)
        descriptors = self.inner.encode(np.ascontiguousarray(flat))
        per_chip = len(groups[0])
        averaged: NDArray[np.float64] = descriptors.reshape(len(chips), per_chip, -1).mean(axis=1)
        return averaged
