"""Which backend should compute the cloak's gradients? Side by side, one core, one process.

    nice -n 10 python -m benchmarks.speed.bench_gradient_backends [--rounds 5]

For a batch of 6 chips (one cloak step) it times, interleaved, the median
CPU seconds of:

- ONNX Runtime's forward pass (the engine facematch encodes with; no gradient);
- JAX: the forward pass, and forward plus backward (the gradient the cloak needs),
  through facematch.privacy.cloak's interpreter of the ONNX graph;
- numpy: a forward pass over the same graph (im2col windows and einsum). A
  backward pass in numpy needs two more products of the same size per
  convolution (input and weight gradients, the latter not needed here: one),
  so forward plus backward costs at least twice this forward pass.

All outputs are checked against ONNX Runtime (largest absolute difference).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

if __name__ == "__main__":  # one thread, set before numpy and JAX load (not on import)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from benchmarks import harness
from facematch.models import dlib_files as models
from facematch.models.resnet_onnx import build_model
from facematch.privacy.cloak import gradients as cloak


def numpy_forward(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    graph = model.graph
    constants, nodes = cloak.graph_parts(model)

    def run(chips: np.ndarray) -> np.ndarray:
        values: dict[str, Any] = dict(constants)
        values[graph.input[0].name] = chips
        for op, inputs, output, attrs in nodes:
            args = [values[k] for k in inputs]
            x = args[0]
            if op == "Conv":
                pads, strides, weights = attrs["pads"], attrs["strides"], args[1]
                k = weights.shape[2]
                padded = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
                windows = sliding_window_view(padded, (k, k), axis=(2, 3))
                windows = windows[:, :, :: strides[0], :: strides[1]]
                y = np.einsum("nchwij,ocij->nohw", windows, weights, optimize=True)
                y = y + args[2].reshape(1, -1, 1, 1) if len(args) > 2 else y
            elif op in ("MaxPool", "AveragePool"):
                k, s = attrs["kernel_shape"][0], attrs["strides"][0]
                windows = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
                y = windows.max(axis=(4, 5)) if op == "MaxPool" else windows.mean(axis=(4, 5))
            elif op == "Transpose":
                y = np.ascontiguousarray(np.transpose(x, attrs["perm"]))
            else:
                y = cloak._apply(np, _NumpyLax, op, args, attrs)
            values[output] = y
        return np.asarray(values[graph.output[0].name])

    return run


class _NumpyLax:
    """Nothing of lax is needed for the operators left to cloak._apply."""


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_rounds(parser, 5)
    args = parser.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import onnxruntime

    model = build_model(models.model_path("recognition"))
    chips = np.random.default_rng(0).integers(0, 256, (6, 150, 150, 3)).astype(np.uint8)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    reference = session.run(None, {"chips": chips})[0]
    network = cloak._interpreter(model)
    forward = jax.jit(network)
    gradient = jax.jit(jax.grad(lambda x: jnp.sum(network(x) ** 2)))
    floats = chips.astype(np.float32)
    by_numpy = numpy_forward(model)
    checks = {
        "jax": np.abs(np.asarray(forward(floats)) - reference).max(),
        "numpy": np.abs(by_numpy(floats) - reference).max(),
    }
    gradient(floats).block_until_ready()
    candidates = {
        "onnxruntime forward": lambda: session.run(None, {"chips": chips}),
        "jax forward": lambda: forward(floats).block_until_ready(),
        "jax forward+backward": lambda: gradient(floats).block_until_ready(),
        "numpy forward": lambda: by_numpy(floats),
    }
    times = harness.interleaved(candidates, args.rounds)  # load changes hit every one alike
    harness.table_header("backend", "CPU s per 6 chips (median)", "vs jax forward+backward")
    base = float(np.median(times["jax forward+backward"]))
    for name, values in times.items():
        value = float(np.median(values))
        harness.table_row(name, f"{value:.3f}", f"{value / base:.2f}x")
    jax_diff, numpy_diff = checks["jax"], checks["numpy"]
    print(f"\nlargest difference to ONNX Runtime: jax {jax_diff:.1e}, numpy {numpy_diff:.1e}")


if __name__ == "__main__":
    main()
