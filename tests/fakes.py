"""A fake face finder for tests of plumbing: no detector, no landmarks, no descriptor model.

``FakeFaces.install`` replaces the pipeline's face-finding step (``encode.photo``'s
``faces_in_file`` and ``faces_in_working_copy``:
working copy -> faces) for runs in this process (``-j 1``, as CliRunner tests run;
worker processes of ``-j 2`` would still use the real models). Images are still
opened and decoded for real, so unreadable files fail exactly as they do without
the fake, and the cache and the library still see every result.

A photo's faces follow from its bytes:

* a flat image (every pixel alike, like tiny-blank.png) has no face;
* otherwise it shows the people ``show`` says (by content, so copies agree), or one
  face of its own, a person nobody else is;
* each face gets a box (side by side, left to right), ``landmarks`` points in it,
  and a 128-d unit embedding: the person's direction plus a little noise seeded
  by the photo, so two photos of one person are about 0.34 apart (copies of one
  photo 0.0), and two people about 1.4.

The repo's photos of Obama and Biden (``CAST``) show them, as the real models find.
A video frame's faces follow from its pixels (one face each, a person of its own).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from facematch.encode import engines
from facematch.encode.engines import EngineChoice
from facematch.encode.faces import FaceSettings
from facematch.encode.photo import load_working
from facematch.models import dlib_files as models
from facematch.records import Face, FaceBox
from facematch.run import tasks
from facematch.store.cache import file_digest

DATA = Path(__file__).parent / "data"

OBAMA, BIDEN = "Barack Obama", "Joe Biden"
#: Who the repo's test photos show, as the real models see them (faces left to right).
CAST: dict[str, tuple[str, ...]] = {
    "obama.jpg": (OBAMA,),
    "obama2.jpg": (OBAMA,),
    "obama3.jpg": (OBAMA,),
    "obama_small.jpg": (OBAMA,),
    "obama_exif_rotated.jpg": (OBAMA,),
    "obama_partial_face.jpg": (OBAMA,),
    "obama_partial_face2.jpg": (OBAMA,),
    "biden.jpg": (BIDEN,),
    "two_people.jpg": (BIDEN, OBAMA),
}

#: How far a photo's face is from its person's direction: two photos of one person
#: are then about NOISE * sqrt(2) / sqrt(1 + NOISE**2) = 0.34 apart.
NOISE = 0.25
#: A working copy whose grey levels vary less than this (standard deviation) has no face.
FLAT = 1.0


def unit_vector(seed: str) -> NDArray[np.float64]:
    """A random 128-d unit vector, always the same for one seed."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8]))
    vector = rng.standard_normal(128)
    unit: NDArray[np.float64] = vector / np.linalg.norm(vector)
    return unit


@dataclass
class FakeFaces:
    """Deterministic faces from an image's bytes; see the module's docstring."""

    #: file digest -> the people its faces show, left to right (() for none).
    shows: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: The paths of the photos (and videos, once per frame) faces were made for, in order.
    encoded: list[str] = field(default_factory=list)

    def show(self, path: str | Path, *people: str) -> None:
        """The photo at ``path``, and any copy of it, shows these people (none: no face)."""
        self.shows[file_digest(str(path))] = people

    def people_in(self, path: str | Path) -> tuple[str, ...]:
        """The people a photo shows: declared, or one of its own (its digest)."""
        digest = file_digest(str(path))
        return self.shows.get(digest, (digest,))

    def faces(
        self,
        height: int,
        width: int,
        people: Iterable[str],
        photo: str,
        landmarks: int = 68,
    ) -> list[Face]:
        """Faces of ``people`` side by side in a ``height`` x ``width`` photo."""
        people = list(people)
        found = []
        column = width / max(1, len(people))
        side = max(1, int(min(column, height) / 2))
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(photo.encode()).digest()[:8]))
        shift = rng.integers(0, side // 8 + 1, size=2)  # where the faces sit, by photo
        for i, person in enumerate(people):
            top = int((height - side) / 2 + shift[0])
            left = int(column * i + (column - side) / 2 + shift[1])
            box = FaceBox(top, min(left + side, width), min(top + side, height), left)
            points = tuple(
                (left + (k + 1) * side // (landmarks + 1), top + (k * 7919 % side))
                for k in range(landmarks)
            )
            direction = unit_vector(person) + NOISE * unit_vector(f"{photo}/{i}")
            found.append(Face(box, points, direction / np.linalg.norm(direction)))
        return found

    def faces_in_file(
        self, path: str, settings: FaceSettings, encoder: Callable[[], object]
    ) -> list[Face]:
        """Stands in for ``encode.photo.faces_in_file`` (as the worker tasks call it): the
        image is decoded for real (a bad file fails as before), the faces are fake."""
        self.encoded.append(path)
        small, full_size = load_working(path, settings)
        if float(small.std()) < FLAT:
            return []
        return self.faces(*full_size, self.people_in(path), file_digest(path), settings.landmarks)

    def faces_in_working_copy(
        self,
        small: NDArray[np.uint8],
        full_size: tuple[int, int],
        load_full: Callable[[], NDArray[np.uint8]],
        settings: FaceSettings,
        encoder: Callable[[], object],
    ) -> list[Face]:
        """Stands in for ``encode.photo.faces_in_working_copy`` (video frames): one face
        of a person unique to the frame's pixels."""
        self.encoded.append("<frame>")
        if float(small.std()) < FLAT:
            return []
        photo = hashlib.sha256(small.tobytes()).hexdigest()
        return self.faces(*full_size, (photo,), photo, settings.landmarks)

    def install(self, monkeypatch: pytest.MonkeyPatch, cache_home: Path) -> None:
        """Fake the face-finding step and the engine in this process, until the test ends.

        The engine is never prepared (no ONNX conversion); asking for it, or for
        dlib's landmark, descriptor or CNN models, fails the test. The default
        encoding cache moves to ``cache_home``, so that no fake face ever reaches
        the cache the session's real runs share.
        """
        for name, people in CAST.items():
            self.show(DATA / name, *people)

        def prepare(requested: str, cache_dir: Path | None) -> EngineChoice:
            return EngineChoice("dlib" if requested == "dlib" else "onnx")

        def refuse(what: str) -> Callable[..., None]:
            def refused(*args: object, **kwargs: object) -> None:
                raise AssertionError(f"fake_faces: {what} was asked for")

            return refused

        monkeypatch.setattr(tasks, "faces_in_file", self.faces_in_file)
        monkeypatch.setattr(tasks, "faces_in_working_copy", self.faces_in_working_copy)
        monkeypatch.setattr(engines, "prepare", prepare)
        monkeypatch.setattr(engines, "encoder", refuse("the descriptor engine"))
        for model in ("dlib_face_encoder", "shape_predictor", "cnn_detector"):
            monkeypatch.setattr(models, model, refuse(f"dlib's {model}"))
        monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
