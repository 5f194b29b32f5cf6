"""ONNX Runtime, imported with its telemetry off.

On Linux onnxruntime ships a telemetry client that, on import, writes a
device id and an event database under ``$XDG_CACHE_HOME/Microsoft/DeveloperTools``.
It reads ``ORT_DISABLE_TELEMETRY`` once, when first imported, and only "1"
turns it off, so every import in facematch goes through :func:`onnxruntime`,
in the main process and in each worker alike.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any


def onnxruntime() -> ModuleType:
    """The onnxruntime module, with ``ORT_DISABLE_TELEMETRY=1`` set before its first import."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    import onnxruntime as module

    loaded: ModuleType = module
    return loaded


def session_options(threads: int) -> Any:
    """Options of a CPU session on ``threads`` intra-op threads, quiet but for errors.

    One graph branch at a time: parallelism comes from intra-op threads or from
    running several worker processes, never from both at once unasked.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    module = onnxruntime()
    options = module.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = module.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return options
