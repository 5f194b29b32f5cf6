"""The descriptor engines inside the pipeline: ONNX by default, dlib on request or as fallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from facematch import engines, onnx_encoder
from facematch.cache import EncodingCache
from facematch.cli import main
from facematch.faces import DlibEncoder, FaceSettings, find_faces
from facematch.images import load_rgb


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_onnx_is_the_default_engine_and_is_verified_once(tmp_path: Path) -> None:
    choice = engines.prepare(engines.default_engine(), tmp_path)
    assert choice.name == "onnx" and choice.onnx_model is not None
    model = Path(choice.onnx_model)
    assert model.parent == tmp_path / "models"
    verified = model.with_name(model.name + ".verified")
    assert float(verified.read_text()) < engines.MAX_ENGINE_DIFFERENCE


def test_both_engines_give_the_same_embeddings_in_the_pipeline(data: Path, tmp_path: Path) -> None:
    image = load_rgb(data / "two_people.jpg")
    choice = engines.prepare("onnx", tmp_path)
    for settings in (FaceSettings(), FaceSettings(landmarks=5, mirror=False)):
        onnx = find_faces(image, settings, engines.encoder(choice, 1, 1, settings.mirror))
        ref = find_faces(
            image, settings, engines.encoder(engines.EngineChoice("dlib"), 1, 1, settings.mirror)
        )
        assert [f.box for f in onnx] == [f.box for f in ref]
        for a, b in zip(onnx, ref, strict=True):
            assert np.linalg.norm(a.embedding - b.embedding) < 1e-5


def test_cached_entries_are_shared_across_engines(
    known_files: Path, data: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    args = (known_files, data / "obama2.jpg", "--cache-dir", cache, "-j", "1", "--format", "json")
    dlib_run = run(*args, "--engine", "dlib")
    stored = EncodingCache(cache)
    engines_used = {
        json.loads(row[0])["engine"]
        for row in stored._connect().execute("SELECT faces FROM faces")  # type: ignore[union-attr]
    }
    assert engines_used == {"dlib"}
    onnx_run = run(*args, "--engine", "onnx")
    assert onnx_run.stdout == dlib_run.stdout
    assert stored.info()["entries"] == 3


def test_a_model_that_disagrees_with_dlib_falls_back_with_one_warning(
    known_files: Path, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_encoder, "verify_against_dlib", lambda *args: 0.5)
    result = run(known_files, data / "obama2.jpg", "--cache-dir", tmp_path / "c", "-j", "1")
    assert result.exit_code == 0
    assert result.stderr.count("ONNX engine unavailable") == 1
    assert result.stdout.strip().endswith("Barack Obama")
    assert not list((tmp_path / "c" / "models").glob("*.onnx"))


def test_averaging_is_deterministic(data: Path, tmp_path: Path) -> None:
    image = load_rgb(data / "obama.jpg")
    choice = engines.prepare("onnx", tmp_path)
    settings = FaceSettings(jitters=4)
    first = find_faces(image, settings, engines.AveragingEncoder(DlibEncoder(), 4, True))
    again = find_faces(image, settings, engines.encoder(choice, 1, 4, True))
    assert np.linalg.norm(first[0].embedding - again[0].embedding) < 1e-5


def test_a_damaged_stored_model_is_converted_again(tmp_path: Path) -> None:
    first = engines.prepare("onnx", tmp_path)
    assert first.onnx_model is not None
    model = Path(first.onnx_model)
    model.write_bytes(model.read_bytes()[:1000])
    again = engines.prepare("onnx", tmp_path)
    assert again == first
    assert model.stat().st_size > 20_000_000
