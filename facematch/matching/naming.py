"""Faces -> names: each face against the known people's gallery, and a video's frames
joined into appearances."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from facematch.matching import calibration
from facematch.matching.appearances import appearances
from facematch.matching.gallery import Gallery, Nearest
from facematch.records import (
    EncodedVideo,
    Face,
    FaceMatch,
    FrameFaces,
    VideoResult,
)


def match_face(gallery: Gallery, face: Face, tolerance: float, all_matches: bool) -> FaceMatch:
    """Name a face: the nearest person within tolerance, and every one with ``all_matches``."""
    return match_faces(gallery, [face], tolerance, all_matches)[0]


def match_faces(
    gallery: Gallery,
    faces: Sequence[Face],
    tolerance: float,
    all_matches: bool,
    local: bool = False,
) -> list[FaceMatch]:
    """``match_face`` for the faces of one photo or frame (one batch through the index).

    ``local``: adapt the tolerance to each face's neighbourhood (``--tolerance auto``).
    Anyone is in a photo once, so a person named on two or more of its faces is at
    best right for one: every one of those names is marked uncertain (in a crowd of
    strangers who look alike to the descriptor, the stranger chance, measured on
    portraits, runs low).
    """
    if not faces:
        return []
    embeddings = np.array([face.embedding for face in faces], dtype=np.float64)
    found = gallery.nearest(embeddings, tolerance, all_matches, local)
    named = [_named(gallery, face, near) for face, near in zip(faces, found, strict=True)]
    counts = Counter(face.name for face in named if face.name is not None)
    return [
        replace(face, uncertain=True) if face.name is not None and counts[face.name] > 1 else face
        for face in named
    ]


def _named(gallery: Gallery, face: Face, near: Nearest) -> FaceMatch:
    """One face's row: its name (if any), the nearest people and how sure the name is."""
    name = near.within[0].name if near.within else None
    chance = None
    if near.best is not None:
        chance = calibration.stranger_chance(near.best.distance, len(gallery.embeddings))
    return FaceMatch(
        box=face.box,
        name=name,
        distance=near.best.distance if near.best else None,
        matches=near.within,
        runner_up=near.runner_up,
        known_face=gallery.nearest_photo(face.embedding, near.best.name) if near.best else None,
        tolerance=near.tolerance,
        nearest=near.best,
        stranger_chance=chance,
        uncertain=name is not None and chance is not None and calibration.uncertain(chance),
    )


def match_video(
    video: EncodedVideo,
    gallery: Gallery,
    tolerance: float,
    all_matches: bool,
    fps: float,
    per_frame: bool = False,
    local: bool = False,
) -> VideoResult:
    """Match every face of every sampled frame as a photo's, then join them into ranges."""
    named = [
        FrameFaces(s.time, tuple(match_faces(gallery, s.faces, tolerance, all_matches, local)))
        for s in video.samples
    ]
    if per_frame:
        return VideoResult(
            video.path, video.status, video.error, video.duration, fps, frames=tuple(named)
        )
    ranges = appearances([(f.time, f.faces) for f in named], 1.0 / fps, video.duration)
    return VideoResult(video.path, video.status, video.error, video.duration, fps, tuple(ranges))
