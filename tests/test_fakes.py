"""The fake face finder (fakes.py) behaves as its tests of plumbing assume."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeFaces
from helpers import run

from facematch.encode import engines
from facematch.encode.faces import FaceSettings
from facematch.run.pipeline import Pipeline


def faces_of(*paths: Path, settings: FaceSettings | None = None) -> list[list[np.ndarray]]:
    with Pipeline(settings, jobs=1) as pipeline:
        return [[f.embedding for f in e.faces] for e in pipeline.encode([str(p) for p in paths])]


def test_faces_follow_the_bytes(fake_faces: FakeFaces, data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.png"
    shutil.copy(data / "alex-lacamoire.png", copy)
    stranger, same, blank, both, obama, obama2 = faces_of(
        data / "alex-lacamoire.png",
        copy,
        data / "tiny-blank.png",
        data / "two_people.jpg",
        data / "obama.jpg",
        data / "obama2.jpg",
    )
    assert blank == [] and len(both) == 2 and len(stranger) == len(same) == 1
    assert np.array_equal(stranger[0], same[0])  # copies of one photo
    assert all(np.linalg.norm(e) == pytest.approx(1.0) for e in [*stranger, *both])
    distance = np.linalg.norm(obama[0] - obama2[0])
    assert 0.25 < distance < 0.45  # one person in two photos
    assert np.linalg.norm(stranger[0] - obama[0]) > 1.0  # two people
    assert np.linalg.norm(both[1] - obama[0]) < 0.5  # Obama is on the right
    assert len(fake_faces.encoded) == 6


def test_show_declares_who_a_photo_shows(fake_faces: FakeFaces, data: Path) -> None:
    fake_faces.show(data / "alex-lacamoire.png", "A", "B", "A")
    fake_faces.show(data / "obama.jpg")
    (three, none) = faces_of(data / "alex-lacamoire.png", data / "obama.jpg")
    assert len(three) == 3 and none == []
    assert np.linalg.norm(three[0] - three[2]) < 0.5 < np.linalg.norm(three[0] - three[1])


def test_the_command_runs_without_any_model(
    fake_faces: FakeFaces, known_files: Path, unknown: Path
) -> None:
    result = run(known_files, unknown, "-j", "1", "--format", "csv", "--landmarks", "5")
    assert result.exit_code == 0, result.stderr
    rows = [(Path(r["path"]).name, r["name"]) for r in csv.DictReader(io.StringIO(result.stdout))]
    assert rows == [  # as the real models name them
        ("1-obama.jpg", "Barack Obama"),
        ("2-both.jpg", "Joe Biden"),
        ("2-both.jpg", "Barack Obama"),
        ("3-stranger.png", ""),
    ]
    assert sorted(Path(p).name for p in fake_faces.encoded) == sorted(
        ["Barack Obama.jpg", "Joe Biden.jpg", "1-obama.jpg", "2-both.jpg", "3-stranger.png"]
    )
    with pytest.raises(AssertionError, match="fake_faces"):
        engines.encoder(engines.EngineChoice("dlib"))
