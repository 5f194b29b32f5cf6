"""Locate and load the dlib model files, lazily and once per process.

The model files ship in the ``face-recognition-models`` package, whose
``__init__`` imports ``pkg_resources`` (gone from setuptools-free venvs), so we
find the package directory with ``importlib.util.find_spec`` and never run
that ``__init__``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

from facematch.errors import ModelError

log = logging.getLogger("facematch")

MODEL_FILES = {
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
    "landmarks_5": "shape_predictor_5_face_landmarks.dat",
    "landmarks_68": "shape_predictor_68_face_landmarks.dat",
}


@functools.cache
def models_dir() -> Path:
    """The folder holding face-recognition-models' .dat files."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the face-recognition-models package is not installed: "
            "pip install face-recognition-models"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def model_path(name: str) -> Path:
    """Path of one model file by its short name (see MODEL_FILES)."""
    path = models_dir() / MODEL_FILES[name]
    if not path.is_file():
        raise ModelError(f"model file missing: {path} (reinstall face-recognition-models)")
    return path


def _dlib() -> Any:
    import dlib

    return dlib


@functools.cache
def hog_detector() -> Any:
    """dlib's HOG frontal face detector, from this user's saved copy when there is one.

    dlib builds it by decoding a compressed copy compiled into the library:
    0.8 s in every process that detects (each worker, each run). Loading the
    same detector saved to a file takes 2 ms, so the first process saves it
    (see ``saved_hog_detector``); the weights are dlib's own, so are the boxes.
    """
    from facematch import files as private

    try:
        return saved_hog_detector(private.private_temp_folder() / "models")
    except (OSError, RuntimeError) as exc:  # no writable temp folder, or dlib refused the file
        log.debug("saved HOG detector unusable (%s); building dlib's", exc)
        return _dlib().get_frontal_face_detector()


def saved_hog_detector(folder: Path) -> Any:
    """dlib's frontal face detector, loaded from ``folder``, saved there first if needed.

    The file is named by dlib's version; a ``.sha256`` marker beside it records
    the SHA-256 of the bytes written after they loaded back as the very same
    detector, and a file that does not match its marker is saved again.
    """

    dlib = _dlib()
    path = folder / f"frontal_face_detector-dlib{dlib.__version__}.svm"
    marker = path.with_name(path.name + ".sha256")
    with contextlib.suppress(OSError):
        payload = path.read_bytes()
        if hashlib.sha256(payload).hexdigest() == marker.read_text(encoding="ascii").strip():
            return dlib.fhog_object_detector(str(path))
    built = dlib.get_frontal_face_detector()
    try:
        _save_hog_detector(built, path, marker)
    except (OSError, RuntimeError) as exc:  # a read-only temp folder: build it every time
        log.debug("cannot save the HOG detector to %s (%s)", folder, exc)
    return built


def _save_hog_detector(built: Any, path: Path, marker: Path) -> None:
    """Save ``built`` to ``path`` with its SHA-256 in ``marker``, if it loads back as itself."""
    from facematch import files as private

    dlib = _dlib()
    private.make_private_folder(path.parent)
    temp = Path(tempfile.mkdtemp(prefix=".hog-", dir=path.parent))
    try:
        built.save(str(temp / path.name))
        payload = (temp / path.name).read_bytes()
        loaded = dlib.fhog_object_detector(str(temp / path.name))
        if pickle.dumps(loaded) != pickle.dumps(built):
            raise RuntimeError("the saved HOG detector does not load back as dlib's")
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    private.write_private(path, payload)
    private.write_private(marker, hashlib.sha256(payload).hexdigest().encode("ascii"))


@functools.cache
def cnn_detector() -> Any:
    """dlib's MMOD CNN face detector."""
    return _dlib().cnn_face_detection_model_v1(str(model_path("cnn_detector")))


@functools.cache
def shape_predictor(points: int) -> Any:
    """The 5- or 68-point landmark predictor."""
    if points not in (5, 68):
        raise ValueError(f"landmark model must be 5 or 68 points, not {points}")
    return _dlib().shape_predictor(str(model_path(f"landmarks_{points}")))


@functools.cache
def dlib_face_encoder() -> Any:
    """dlib's ResNet face recognition model (128-d descriptors)."""
    return _dlib().face_recognition_model_v1(str(model_path("recognition")))
