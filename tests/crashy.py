"""Work functions for the pool tests: some items kill the process that runs them.

A fast stand-in for an image that crashes native code (pure plumbing: what
the pool does when a worker dies does not depend on faces).
"""

from __future__ import annotations

import ctypes
import os
import signal
import time


def square_or_die(item: int) -> int:
    """``item`` squared; -9 kills its process with SIGKILL, -11 with a real segfault."""
    if item == -9:
        os.kill(os.getpid(), signal.SIGKILL)
    if item == -11:
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    time.sleep(0.01)
    return item * item


def parent_and_self(_: int) -> tuple[int, int]:
    """The worker's pid and its parent's, to find the workers from outside."""
    return os.getpid(), os.getppid()
