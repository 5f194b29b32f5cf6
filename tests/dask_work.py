"""Work functions for the Dask tests, importable by the cluster's worker processes.

``encode_or_die_once`` is the real encoder, except that the first worker to
meet the chosen image kills itself (SIGKILL, as the OOM killer would), once.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import facematch
from facematch.records import Encoded
from facematch.run.tasks import EncodeTask, encode_image


def encode_or_die_once(task_and_marker: tuple[EncodeTask, str]) -> Encoded:
    """Encode the task; a task whose marker file does not exist yet creates it and dies."""
    task, marker = task_and_marker
    if marker and not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return encode_image(task)


def encode_failed(task_and_marker: tuple[EncodeTask, str], reason: str) -> Encoded:
    return Encoded(task_and_marker[0].path, error=reason)


def set_version(version: str) -> str:
    """Pretend this worker runs another facematch; returns the real version."""
    real = facematch.__version__
    facematch.__version__ = version
    return real
