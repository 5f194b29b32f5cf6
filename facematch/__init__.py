"""facematch: match known people in unknown photos.

The public API. ``import facematch as face_recognition`` runs code written for
face_recognition 1.3.0 (same functions, parameters, defaults and return
values; ``load_image_file`` also applies the EXIF orientation). Nothing heavy
is imported and no model is loaded until a function is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_image_file": "facematch.api",
    "face_locations": "facematch.api",
    "batch_face_locations": "facematch.api",
    "face_landmarks": "facematch.api",
    "face_encodings": "facematch.api",
    "face_distance": "facematch.api",
    "compare_faces": "facematch.api",
    "Face": "facematch.records",
    "FaceBox": "facematch.records",
    "FaceSettings": "facematch.encode.faces",
    "Gallery": "facematch.matching.gallery",
    "Match": "facematch.records",
    "Pipeline": "facematch.run.pipeline",
    "Library": "facematch.store.library",
    "LibraryError": "facematch.errors",
    "KnownPeople": "facematch.run.pipeline",
    "ImageResult": "facematch.records",
    "VideoResult": "facematch.records",
    "Appearance": "facematch.records",
    "FaceMatch": "facematch.records",
    "build_gallery": "facematch.run.pipeline",
    "match": "facematch.run.pipeline",
    "FacematchError": "facematch.errors",
    "UsageError": "facematch.errors",
    "NoKnownFacesError": "facematch.errors",
    "ModelError": "facematch.errors",
    "ImageError": "facematch.errors",
}

__all__ = [
    "Appearance",
    "Face",
    "FaceBox",
    "FaceMatch",
    "FaceSettings",
    "FacematchError",
    "Gallery",
    "ImageError",
    "ImageResult",
    "KnownPeople",
    "Library",
    "LibraryError",
    "Match",
    "ModelError",
    "NoKnownFacesError",
    "Pipeline",
    "UsageError",
    "VideoResult",
    "__version__",
    "batch_face_locations",
    "build_gallery",
    "compare_faces",
    "face_distance",
    "face_encodings",
    "face_landmarks",
    "face_locations",
    "load_image_file",
    "match",
]

if TYPE_CHECKING:
    from facematch.api import (
        batch_face_locations,
        compare_faces,
        face_distance,
        face_encodings,
        face_landmarks,
        face_locations,
        load_image_file,
    )
    from facematch.encode.faces import FaceSettings
    from facematch.errors import (
        FacematchError,
        ImageError,
        LibraryError,
        ModelError,
        NoKnownFacesError,
        UsageError,
    )
    from facematch.matching.gallery import Gallery
    from facematch.records import (
        Appearance,
        Face,
        FaceBox,
        FaceMatch,
        ImageResult,
        Match,
        VideoResult,
    )
    from facematch.run.pipeline import KnownPeople, Pipeline, build_gallery, match
    from facematch.store.library import Library


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'facematch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
