"""The descriptor engines inside the pipeline: ONNX by default, dlib on request or as fallback."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import run

from facematch.encode import engines, onnx_encoder
from facematch.encode.faces import DlibEncoder, FaceSettings, find_faces
from facematch.models import dlib_files as models
from facematch.sources.images import load_rgb
from facematch.store.cache import EncodingCache

DATA = Path(__file__).parent / "data"


def test_onnx_is_the_default_engine_and_is_verified_once(tmp_path: Path) -> None:
    choice = engines.prepare(engines.default_engine(), tmp_path)
    assert choice.name == "onnx" and choice.onnx_model is not None
    model = Path(choice.onnx_model)
    assert model.parent == tmp_path / "models"
    sha256, difference = model.with_name(model.name + ".verified").read_text().split()
    assert sha256 == choice.onnx_sha256 == hashlib.sha256(model.read_bytes()).hexdigest()
    assert float(difference) < engines.MAX_ENGINE_DIFFERENCE


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


def test_a_model_that_no_longer_loads_falls_back_to_dlib(
    data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The run checks only the model's bytes; a worker that cannot build the session
    (a broken onnxruntime, say) describes faces with dlib: the same embeddings."""
    broken = tmp_path / "models" / "broken.onnx"
    broken.parent.mkdir()
    broken.write_bytes(b"not an onnx model")
    sha256 = hashlib.sha256(broken.read_bytes()).hexdigest()
    choice = engines.EngineChoice("onnx", str(broken), sha256)
    image = load_rgb(data / "obama.jpg")
    settings = FaceSettings()
    found = find_faces(image, settings, engines.encoder(choice, 1, 1, settings.mirror))
    ref = find_faces(image, settings, engines.encoder(engines.EngineChoice("dlib"), 1, 1, True))
    assert "using dlib's descriptor engine" in caplog.text
    assert len(found) == len(ref) == 1
    assert np.array_equal(found[0].embedding, ref[0].embedding)


def test_cached_entries_are_shared_across_engines(
    known_files: Path, data: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    args = (known_files, data / "obama2.jpg", "--cache-dir", cache, "-j", "1", "--format", "json")
    dlib_run = run(*args, "--engine", "dlib")
    stored = EncodingCache(cache)
    engines_used = {
        json.loads(row[0])["engine"]
        for row in stored._connect().execute("SELECT faces FROM entries")  # type: ignore[union-attr]
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


@pytest.fixture(scope="module")
def genuine_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model converted here and now, to compare stored ones with."""
    return onnx_encoder.ensure_onnx_model(
        tmp_path_factory.mktemp("genuine"), models.model_path("recognition")
    )


def tampered(genuine: Path, target: Path) -> Path:
    """A copy of the genuine model with some weights zeroed: it loads, but is not dlib's network."""
    payload = bytearray(genuine.read_bytes())
    middle = len(payload) // 2
    payload[middle : middle + 4096] = bytes(4096)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(bytes(payload))
    difference = onnx_encoder.verify_against_dlib(
        onnx_encoder.OnnxEncoder(target), models.dlib_face_encoder()
    )
    assert difference > engines.MAX_ENGINE_DIFFERENCE
    return target


def plant(folder: Path, genuine: Path, marker: str | None = None) -> Path:
    """A tampered model where facematch keeps its model in ``folder``, marked as verified."""
    planted = tampered(genuine, folder / "models" / genuine.name)
    if marker is None:
        marker = hashlib.sha256(planted.read_bytes()).hexdigest() + " 0.000e+00\n"
    planted.with_name(planted.name + ".verified").write_text(marker)
    return planted


def assert_gives_dlib_embeddings(choice: engines.EngineChoice) -> None:
    """The chosen model, read from disk now, encodes a real face as dlib does."""
    assert choice.name == "onnx" and choice.onnx_model is not None
    image = load_rgb(DATA / "obama.jpg")
    settings = FaceSettings(mirror=False)
    ours = find_faces(image, settings, onnx_encoder.OnnxEncoder(Path(choice.onnx_model)))
    ref = find_faces(image, settings, DlibEncoder())
    assert len(ours) == len(ref) == 1
    assert np.linalg.norm(ours[0].embedding - ref[0].embedding) < engines.MAX_ENGINE_DIFFERENCE


def assert_private_folder(folder: Path) -> None:
    info = os.lstat(folder)
    assert stat.S_ISDIR(info.st_mode)
    assert info.st_uid == os.geteuid()
    assert stat.S_IMODE(info.st_mode) & 0o077 == 0, oct(info.st_mode)


def test_a_model_planted_in_the_shared_temp_folder_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, genuine_model: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    planted = plant(tmp_path / "facematch", genuine_model, "0.000e+00\n")
    choice = engines.prepare("onnx", None)
    assert_gives_dlib_embeddings(choice)
    model = Path(str(choice.onnx_model))
    assert model != planted
    assert_private_folder(model.parent.parent)
    assert_private_folder(model.parent)
    assert stat.S_IMODE(model.stat().st_mode) == 0o600


def test_a_stored_model_that_is_not_the_verified_one_is_converted_again(
    tmp_path: Path, genuine_model: Path
) -> None:
    cache = tmp_path / "cache"
    first = engines.prepare("onnx", cache)
    model = Path(str(first.onnx_model))
    tampered(genuine_model, model)  # replaced after it was verified; its marker stays
    again = engines.prepare("onnx", cache)
    assert_gives_dlib_embeddings(again)
    assert model.read_bytes() == genuine_model.read_bytes()


@pytest.mark.parametrize("kind", ["open to all", "a link"])
def test_a_temp_folder_that_is_not_ours_alone_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, genuine_model: Path, kind: str
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ours = tmp_path / f"facematch-{os.geteuid()}"
    if kind == "a link":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        ours.symlink_to(elsewhere)
    else:
        ours.mkdir()
        ours.chmod(0o777)
    planted = plant(ours, genuine_model)
    choice = engines.prepare("onnx", None)
    assert_gives_dlib_embeddings(choice)
    model = Path(str(choice.onnx_model))
    assert not model.is_relative_to(ours) and model != planted.resolve()
    assert_private_folder(model.parent.parent)


@pytest.mark.parametrize("target_exists", [False, True], ids=["dangling", "to a file"])
def test_the_marker_is_not_written_through_a_link(
    tmp_path: Path, genuine_model: Path, target_exists: bool
) -> None:
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    target = tmp_path / "not-facematch.txt"
    if target_exists:
        target.write_text("someone else's file\n")
    marker = cache / "models" / (genuine_model.name + ".verified")
    marker.symlink_to(target)
    choice = engines.prepare("onnx", cache)
    assert_gives_dlib_embeddings(choice)
    assert not marker.is_symlink() and marker.is_file()
    assert target.read_text() == "someone else's file\n" if target_exists else not target.exists()


TELEMETRY_RUN = """
import json, multiprocessing, os, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from facematch.run.pipeline import Pipeline
from facematch.run.tasks import EncodeTask, encode_image

data, cache = Path(sys.argv[1]), Path(sys.argv[2])
with Pipeline(jobs=2, cache_dir=cache) as pipeline:  # forkserver workers
    encoded = pipeline.encode([str(data / "obama.jpg"), str(data / "biden.jpg")])
    faces = [len(e.faces) for e in encoded]
    engine = pipeline.engine
main = os.environ.get("ORT_DISABLE_TELEMETRY")
os.environ["ORT_DISABLE_TELEMETRY"] = "0"  # a spawned worker starts without our setting
task = EncodeTask(str(data / "obama2.jpg"), pipeline.settings, engine)
with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
    faces.append(len(pool.submit(encode_image, task).result().faces))
    worker = pool.submit(os.getenv, "ORT_DISABLE_TELEMETRY").result()
print(json.dumps({"engine": engine.name, "faces": faces, "main": main, "worker": worker}))
"""


@pytest.mark.slow
def test_onnx_runtime_telemetry_is_off_in_the_main_process_and_in_workers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True)
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "ORT_DISABLE_TELEMETRY": "0",  # "0" leaves it on; facematch must say "1"
    }
    done = subprocess.run(
        [sys.executable, "-c", TELEMETRY_RUN, str(DATA), str(tmp_path / "cache")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == {"engine": "onnx", "faces": [1, 1, 1], "main": "1", "worker": "1"}
    assert not [p for p in home.rglob("*") if p.name == "Microsoft"]
