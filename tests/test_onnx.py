"""The ONNX conversion of dlib's face recognition ResNet gives dlib's descriptors.

Real faces from tests/data, aligned with both landmark models, are encoded by
dlib and by ONNX Runtime; the two must agree to float rounding (< 1e-5
Euclidean; in practice about 1e-6). Broken model files must fail cleanly.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dlib
import numpy as np
import onnx
import pytest
from PIL import Image

from facematch.encode.onnx_encoder import (
    OnnxEncoder,
    ensure_onnx_model,
    reference_chips,
    verify_against_dlib,
)
from facematch.errors import ModelError
from facematch.models import dlib_files as models
from facematch.models.resnet_onnx import CONVERTER_VERSION, build_model, convert

DATA = Path(__file__).parent / "data"
TBBT = DATA / "people" / "tbbt"
PHOTOS = [
    DATA / "obama.jpg",
    DATA / "obama2.jpg",
    DATA / "biden.jpg",
    DATA / "two_people.jpg",
    TBBT / "amy" / "amy1.png",
    TBBT / "bernadette" / "bernadette2.png",
    TBBT / "howard" / "howard3.png",
    TBBT / "leonard" / "leonard4.png",
    TBBT / "penny" / "penny5.png",
    TBBT / "raj" / "raj1.png",
]
FACES_IN_PHOTOS = 11  # two_people.jpg has two

TOLERANCE = 1e-5
"""Largest Euclidean distance allowed between ONNX and dlib descriptors."""


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "recognition.onnx"
    convert(models.model_path("recognition"), path)
    return path


@pytest.fixture(scope="module")
def encoder(onnx_model: Path) -> OnnxEncoder:
    return OnnxEncoder(onnx_model)


@pytest.fixture(scope="module")
def dlib_encoder() -> Any:
    return dlib.face_recognition_model_v1(str(models.model_path("recognition")))


@pytest.fixture(scope="module")
def detections() -> list[tuple[np.ndarray, Any]]:
    """Every (image, face box) in PHOTOS, found once for both alignments."""
    detector = dlib.get_frontal_face_detector()
    found = []
    for path in PHOTOS:
        image = np.asarray(Image.open(path).convert("RGB"))
        found += [(image, box) for box in detector(image, 1)]
    return found


@pytest.fixture(scope="module")
def face_chips(detections: list[tuple[np.ndarray, Any]]) -> dict[int, np.ndarray]:
    """150x150 chips aligned by the 5- and the 68-point landmark models."""
    chips = {}
    for points in (5, 68):
        predictor = dlib.shape_predictor(str(models.model_path(f"landmarks_{points}")))
        chips[points] = np.stack(
            [
                dlib.get_face_chip(image, predictor(image, box), 150, 0.25)
                for image, box in detections
            ]
        )
    return chips


def dlib_descriptors(dlib_encoder: Any, chips: np.ndarray) -> np.ndarray:
    return np.array([np.asarray(d) for d in dlib_encoder.compute_face_descriptor(list(chips))])


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=1)


def test_every_photo_yields_its_faces(face_chips: dict[int, np.ndarray]) -> None:
    assert len(face_chips[5]) == len(face_chips[68]) == FACES_IN_PHOTOS


@pytest.mark.parametrize("points", [5, 68])
def test_real_faces_match_dlib(
    points: int, face_chips: dict[int, np.ndarray], encoder: OnnxEncoder, dlib_encoder: Any
) -> None:
    chips = face_chips[points]
    ours = encoder.encode(chips)
    assert ours.shape == (len(chips), 128)
    assert ours.dtype == np.float64
    assert distances(ours, dlib_descriptors(dlib_encoder, chips)).max() < TOLERANCE


def _mirrored(chips: np.ndarray) -> np.ndarray:
    return chips[:, :, ::-1].copy()


def _dark(chips: np.ndarray) -> np.ndarray:
    return (chips * 0.2).astype(np.uint8)


def _noisy(chips: np.ndarray) -> np.ndarray:
    noise = np.random.default_rng(7).normal(0, 25, chips.shape)
    return np.clip(chips + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("alter", [_mirrored, _dark, _noisy], ids=["mirrored", "dark", "noisy"])
def test_altered_faces_match_dlib(
    alter: Any, face_chips: dict[int, np.ndarray], encoder: OnnxEncoder, dlib_encoder: Any
) -> None:
    chips = alter(face_chips[5])
    ours = encoder.encode(chips)
    assert distances(ours, dlib_descriptors(dlib_encoder, chips)).max() < TOLERANCE


@pytest.mark.parametrize("value", [0, 128, 255])
def test_blank_chips_match_dlib(value: int, encoder: OnnxEncoder, dlib_encoder: Any) -> None:
    chips = np.full((1, 150, 150, 3), value, dtype=np.uint8)
    ours = encoder.encode(chips)
    assert distances(ours, dlib_descriptors(dlib_encoder, chips)).max() < TOLERANCE


def test_batch_sizes_agree(face_chips: dict[int, np.ndarray], encoder: OnnxEncoder) -> None:
    chips = np.concatenate([face_chips[5], face_chips[68]])
    assert len(chips) > 16  # so batches of 16 include a partial one
    by_size = {
        size: np.concatenate(
            [encoder.encode(chips[start : start + size]) for start in range(0, len(chips), size)]
        )
        for size in (1, 7, 16)
    }
    assert distances(by_size[1], by_size[7]).max() < 1e-6
    assert distances(by_size[1], by_size[16]).max() < 1e-6
    assert distances(by_size[16], encoder.encode(chips)).max() == 0


def test_two_threads_agree_with_one(onnx_model: Path, face_chips: dict[int, np.ndarray]) -> None:
    chips = face_chips[5]
    one = OnnxEncoder(onnx_model, threads=1).encode(chips)
    two = OnnxEncoder(onnx_model, threads=2).encode(chips)
    assert distances(one, two).max() < 1e-6


def test_empty_batch(encoder: OnnxEncoder) -> None:
    assert encoder.encode(np.zeros((0, 150, 150, 3), dtype=np.uint8)).shape == (0, 128)


@pytest.mark.parametrize(
    "chips",
    [np.zeros((1, 150, 150, 3), np.float32), np.zeros((1, 100, 100, 3), np.uint8)],
    ids=["float", "wrong-size"],
)
def test_encode_rejects_other_inputs(chips: np.ndarray, encoder: OnnxEncoder) -> None:
    with pytest.raises(ValueError, match="uint8 chips"):
        encoder.encode(chips)


def test_verify_against_dlib(encoder: OnnxEncoder, dlib_encoder: Any) -> None:
    assert len(reference_chips()) >= 3
    assert verify_against_dlib(encoder, dlib_encoder) < TOLERANCE


def test_encoder_rejects_a_broken_onnx_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load the ONNX model"):
        OnnxEncoder(broken)


def test_model_takes_uint8_chips_in_any_batch(onnx_model: Path) -> None:
    graph = onnx.load(str(onnx_model)).graph
    (chips,) = graph.input
    (descriptors,) = graph.output
    assert chips.name == "chips"
    assert chips.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in chips.type.tensor_type.shape.dim] == [
        "batch",
        150,
        150,
        3,
    ]
    assert descriptors.name == "descriptors"
    assert descriptors.type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_ensure_onnx_model_builds_once(tmp_path: Path) -> None:
    dat = models.model_path("recognition")
    first = ensure_onnx_model(tmp_path, dat)
    digest = hashlib.sha256(dat.read_bytes()).hexdigest()[:16]
    assert first.parent == tmp_path / "models"
    assert digest in first.name
    assert first.name.endswith(f"c{CONVERTER_VERSION}.onnx")
    built_at = first.stat().st_mtime_ns

    started = time.perf_counter()
    second = ensure_onnx_model(tmp_path, dat)
    assert time.perf_counter() - started < 1.0
    assert second == first
    assert second.stat().st_mtime_ns == built_at
    assert list((tmp_path / "models").iterdir()) == [first]  # no temporary files left


def test_ensure_onnx_model_survives_a_race(tmp_path: Path) -> None:
    dat = models.model_path("recognition")
    with ThreadPoolExecutor(max_workers=2) as pool:
        paths = list(pool.map(lambda _: ensure_onnx_model(tmp_path, dat), range(2)))
    assert paths[0] == paths[1]
    assert list((tmp_path / "models").iterdir()) == [paths[0]]
    onnx.checker.check_model(str(paths[0]))


def _truncated(dat: bytes) -> bytes:
    return dat[: len(dat) // 2]


def _last_bytes_missing(dat: bytes) -> bytes:
    return dat[:-3]


def _trailing_garbage(dat: bytes) -> bytes:
    return dat + b"\x01\x02"


def _empty(dat: bytes) -> bytes:
    return b""


def _random(dat: bytes) -> bytes:
    return np.random.default_rng(3).integers(0, 256, 100_000, dtype=np.uint8).tobytes()


def _shape_predictor(dat: bytes) -> bytes:
    return models.model_path("landmarks_5").read_bytes()


def _other_dnn(dat: bytes) -> bytes:
    """dlib's CNN face detector: a valid dlib network, but not this one."""
    return models.model_path("cnn_detector").read_bytes()


@pytest.mark.parametrize(
    "corrupt",
    [
        _truncated,
        _last_bytes_missing,
        _trailing_garbage,
        _empty,
        _random,
        _shape_predictor,
        _other_dnn,
    ],
    ids=lambda corrupt: corrupt.__name__.strip("_"),
)
def test_converter_rejects_broken_files(corrupt: Any, tmp_path: Path) -> None:
    bad = tmp_path / "model.dat"
    bad.write_bytes(corrupt(models.model_path("recognition").read_bytes()))
    with pytest.raises(ModelError) as caught:
        build_model(bad)
    message = str(caught.value)
    assert str(bad) in message
    assert "\n" not in message


def test_failed_conversion_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "model.dat"
    bad.write_bytes(_truncated(models.model_path("recognition").read_bytes()))
    target = tmp_path / "out" / "model.onnx"
    target.parent.mkdir()
    with pytest.raises(ModelError):
        convert(bad, target)
    assert list(target.parent.iterdir()) == []


def test_missing_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read"):
        build_model(tmp_path / "absent.dat")
