"""Time one face descriptor: dlib against the ONNX Runtime conversion.

    python -m benchmarks.speed.bench_descriptor [--rounds 7] [--chips 16]

Real face chips from tests/data go through every configuration once per round,
in a rotating order, so all configurations see the same machine noise. Shared
machines are noisy: trust the speed-ups (each measured within one round, side by
side with dlib) more than the absolute times.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlib
import numpy as np
from PIL import Image

from benchmarks import harness
from benchmarks.harness import REPO, WALL
from facematch.encode.onnx_encoder import OnnxEncoder, ensure_onnx_model
from facematch.models import dlib_files as models
from facematch.models import runtime

TEST_DATA = REPO / "tests" / "data"


@dataclass(frozen=True)
class Config:
    """One way of computing descriptors; ``encode`` takes a batch of chips."""

    engine: str
    threads: int
    batch: int
    encode: Callable[[np.ndarray], Any]


def face_chips(count: int) -> np.ndarray:
    """``count`` aligned 150x150 chips of real faces (5-point alignment, as dlib's examples)."""
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models.model_path("landmarks_5")))
    chips: list[np.ndarray] = []
    for path in sorted([*TEST_DATA.glob("*.jpg"), *(TEST_DATA / "people").rglob("*.png")]):
        image = np.asarray(Image.open(path).convert("RGB"))
        for box in detector(image, 1):
            chips.append(dlib.get_face_chip(image, predictor(image, box), 150, 0.25))
            if len(chips) == count:
                return np.stack(chips)
    raise SystemExit(f"only {len(chips)} faces found in tests/data, {count} wanted")


def configs(onnx_path: Path) -> list[Config]:
    dlib_model = dlib.face_recognition_model_v1(str(models.model_path("recognition")))
    result = [
        Config("dlib", 1, batch, lambda chips: dlib_model.compute_face_descriptor(list(chips)))
        for batch in (1, 16)
    ]
    for threads in (1, 2):
        encoder = OnnxEncoder(onnx_path, threads=threads)
        result += [Config("onnx", threads, batch, encoder.encode) for batch in (1, 16)]
    return result


def seconds_per_face(config: Config, chips: np.ndarray) -> float:
    def encode_all() -> None:
        for start in range(0, len(chips), config.batch):
            config.encode(chips[start : start + config.batch])

    return harness.measure(encode_all, WALL)[0] / len(chips)


def measure(all_configs: list[Config], chips: np.ndarray, rounds: int) -> list[list[float]]:
    """times[round][config]; the starting configuration rotates from round to round."""
    for config in all_configs:  # warm-up: first-call allocations, lazy initialisation
        config.encode(chips[: config.batch])
    times = []
    for round_index in range(rounds):
        this_round = [0.0] * len(all_configs)
        for step in range(len(all_configs)):
            index = (round_index + step) % len(all_configs)
            this_round[index] = seconds_per_face(all_configs[index], chips)
        times.append(this_round)
        print(f"  round {round_index + 1}/{rounds} done", file=sys.stderr)
    return times


def report(all_configs: list[Config], times: list[list[float]]) -> None:
    """Median time per face, and the median of the per-round speed-ups over dlib
    at the same batch size."""
    baseline = {c.batch: i for i, c in enumerate(all_configs) if c.engine == "dlib"}
    print(f"{'engine':<6} {'threads':>7} {'batch':>5} {'ms/face':>9} {'vs dlib':>8}")
    for index, config in enumerate(all_configs):
        median_ms = 1000 * statistics.median(t[index] for t in times)
        speedup = statistics.median(t[baseline[config.batch]] / t[index] for t in times)
        print(
            f"{config.engine:<6} {config.threads:>7} {config.batch:>5} "
            f"{median_ms:>9.1f} {speedup:>7.1f}x"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_rounds(parser, 7, "rounds (at least 5)")
    parser.add_argument("--chips", type=int, default=16, help="faces timed per round")
    args = parser.parse_args(argv)
    if args.rounds < 5:
        parser.error("use at least 5 rounds: single timings on shared machines mislead")

    onnxruntime = runtime.onnxruntime()  # telemetry off, as in facematch itself
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())  # before we add ours
    chips = face_chips(args.chips)
    with tempfile.TemporaryDirectory() as cache_dir:
        conversion, onnx_path = harness.measure(
            lambda: ensure_onnx_model(Path(cache_dir), models.model_path("recognition")), WALL
        )
        all_configs = configs(onnx_path)
        times = measure(all_configs, chips, args.rounds)

    print(
        f"{len(chips)} real face chips x {args.rounds} rounds, interleaved; "
        f"{os.cpu_count()} CPUs, load average before start {load}"
    )
    print(
        f"dlib {dlib.__version__}, onnxruntime {onnxruntime.__version__}; "
        f"conversion took {conversion:.1f} s; other work on the machine skews 2-thread rows most"
    )
    report(all_configs, times)


if __name__ == "__main__":
    main()
