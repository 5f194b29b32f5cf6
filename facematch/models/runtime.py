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


def onnxruntime() -> ModuleType:
    """The onnxruntime module, with ``ORT_DISABLE_TELEMETRY=1`` set before its first import."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    import onnxruntime as module

    loaded: ModuleType = module
    return loaded
