"""Locate and load the dlib model files, lazily and once per process.

The model files ship in the ``face-recognition-models`` package, whose
``__init__`` imports ``pkg_resources`` (gone from setuptools-free venvs), so we
find the package directory with ``importlib.util.find_spec`` and never run
that ``__init__``.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

from facematch.errors import ModelError

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
    """dlib's HOG frontal face detector."""
    return _dlib().get_frontal_face_detector()


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
