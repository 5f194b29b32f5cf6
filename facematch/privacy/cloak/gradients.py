"""The one place JAX is used: the descriptor's gradient through dlib's ResNet as an ONNX graph."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facematch.encode.faces import (
    CHIP_SIZE,
)
from facematch.errors import UsageError
from facematch.privacy.cloak.alignment import bilinear_chips
from facematch.privacy.cloak.levels import (
    EXTRA_MESSAGE,
    KERNEL_TAPS,
    FloatImage,
)


def jax_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("jax") is not None


def require_extra() -> None:
    """Fail with a one-line message naming the extra when JAX is missing."""
    if not jax_available():
        raise UsageError(EXTRA_MESSAGE)


def _load_jax(compile_cache: str | None = None) -> Any:
    """JAX on one CPU thread per process (parallelism comes from worker processes).

    With ``compile_cache``, compiled graphs are kept there across runs: compiling
    the gradient costs several CPU seconds, as much as cloaking a face.
    """
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
    import jax

    config: Any = jax.config
    if compile_cache is not None:
        config.update("jax_compilation_cache_dir", compile_cache)
        config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return jax


@functools.cache
def _graph_function(compile_cache: str | None = None) -> Callable[..., Any]:
    """The jitted loss-and-gradient of the canvas -> descriptors -> distances computation.

    Built once per process from the ONNX graph of dlib's ResNet. One graph for every
    face: a large face's canvas is a reduced copy, where the blurs standing in for the
    adversary's transforms are identities, and those cost next to nothing beside the
    network (a second graph cost 2.7 s to compile).
    """
    jax = _load_jax(compile_cache)
    import jax.numpy as jnp

    from facematch.models import dlib_files as models
    from facematch.models.resnet_onnx import build_model

    run_network = _interpreter(build_model(models.model_path("recognition")))

    def blur(chips: Any, kernels: Any) -> Any:
        # chips (N, 150, 150, 3), kernels (N, taps): separable Gaussian, edges repeated.
        half = KERNEL_TAPS // 2
        padded = jnp.pad(chips, ((0, 0), (half, half), (half, half), (0, 0)), mode="edge")
        rows = jnp.stack([padded[:, j : j + CHIP_SIZE] for j in range(KERNEL_TAPS)], axis=1)
        by_rows = jnp.einsum("nj,njhwc->nhwc", kernels, rows)
        cols = jnp.stack([by_rows[:, :, j : j + CHIP_SIZE] for j in range(KERNEL_TAPS)], axis=1)
        return jnp.einsum("nj,njhwc->nhwc", kernels, cols)

    def loss(
        delta: Any,
        base: Any,
        valid: Any,
        real: Any,
        kernels: Any,
        transforms: Any,
        targets: Any,
    ) -> Any:
        x = jnp.clip(base + delta * valid, 0.0, 255.0)
        chips = bilinear_chips(jnp, x, transforms)
        differentiable = blur(chips, kernels)
        seen = differentiable + jax.lax.stop_gradient(real - differentiable)
        descriptors = run_network(seen)
        distances = jnp.sqrt(jnp.sum((descriptors - targets) ** 2, axis=1) + 1e-12)
        return -jnp.mean(distances), distances

    return jax.jit(jax.value_and_grad(loss, has_aux=True))  # type: ignore[no-any-return]


def descriptor_gradient(
    delta: FloatImage,
    base: FloatImage,
    valid: FloatImage,
    real: FloatImage,
    kernels: FloatImage,
    transforms: FloatImage,
    targets: FloatImage,
    compile_cache: str | None = None,
) -> tuple[NDArray[np.float32], FloatImage]:
    """Distances of each sample's descriptor to its target, and the gradient of their
    mean with respect to ``delta`` (the direction that brings them closer)."""
    (_, distances), gradient = _graph_function(compile_cache)(
        delta, base, valid, real, kernels, transforms, targets
    )
    return np.asarray(distances), np.asarray(gradient)


def graph_parts(
    model: Any,
) -> tuple[dict[str, Any], list[tuple[str, list[str], str, dict[str, Any]]]]:
    """An ONNX graph's constants by name, and its nodes as (op, inputs, output, attributes)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes = [
        (
            n.op_type,
            list(n.input),
            n.output[0],
            {a.name: helper.get_attribute_value(a) for a in n.attribute},
        )
        for n in graph.node
    ]
    return constants, nodes


def _interpreter(model: Any) -> Callable[[Any], Any]:
    """A JAX function computing the ONNX graph on float (N, 150, 150, 3) pixel values.

    It knows exactly the operator types onnx_convert emits; anything else is an error.
    """
    import jax.numpy as jnp
    from jax import lax

    graph = model.graph
    constants, nodes = graph_parts(model)
    input_name, output_name = graph.input[0].name, graph.output[0].name

    def run(chips: Any) -> Any:
        values: dict[str, Any] = dict(constants)
        values[input_name] = chips
        for op, inputs, output, attrs in nodes:
            args = [values[name] for name in inputs]
            values[output] = _apply(jnp, lax, op, args, attrs)
        return values[output_name]

    return run


def _apply(jnp: Any, lax: Any, op: str, args: list[Any], attrs: dict[str, Any]) -> Any:
    """One ONNX node (the 15 operator types of the converted ResNet)."""
    x = args[0]
    if op == "Cast":
        return x.astype(jnp.float32)
    if op in ("Sub", "Div", "Mul", "Add"):
        ops = {"Sub": jnp.subtract, "Div": jnp.divide, "Mul": jnp.multiply, "Add": jnp.add}
        return ops[op](x, args[1])
    if op == "Relu":
        return jnp.maximum(x, 0.0)
    if op == "Transpose":
        return jnp.transpose(x, attrs["perm"])
    if op == "Conv":
        pads, strides = attrs["pads"], attrs["strides"]
        out = lax.conv_general_dilated(
            x,
            args[1],
            strides,
            [(pads[0], pads[2]), (pads[1], pads[3])],
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
        )
        return out + args[2].reshape(1, -1, 1, 1) if len(args) > 2 else out
    if op in ("MaxPool", "AveragePool"):
        window = (1, 1, *attrs["kernel_shape"])
        strides = (1, 1, *attrs["strides"])
        if op == "MaxPool":
            return lax.reduce_window(x, -jnp.inf, lax.max, window, strides, "VALID")
        total = lax.reduce_window(x, 0.0, lax.add, window, strides, "VALID")
        return total / math.prod(attrs["kernel_shape"])
    if op == "GlobalAveragePool":
        return x.mean(axis=(2, 3), keepdims=True)
    if op == "Pad":
        pads = [int(p) for p in np.asarray(args[1])]
        half = len(pads) // 2
        return jnp.pad(x, [(pads[d], pads[d + half]) for d in range(half)])
    if op == "Flatten":
        return x.reshape(x.shape[0], -1)
    if op == "MatMul":
        return x @ args[1]
    if op == "Identity":
        return x
    raise ValueError(f"the cloak's ONNX interpreter has no operator {op}")


def network_function() -> Callable[[NDArray[np.float32]], NDArray[np.float32]]:
    """Descriptors of float chips through the JAX interpreter (to check it against ONNX Runtime)."""
    jax = _load_jax()

    from facematch.models import dlib_files as models
    from facematch.models.resnet_onnx import build_model

    run = jax.jit(_interpreter(build_model(models.model_path("recognition"))))
    return lambda chips: np.asarray(run(chips))
