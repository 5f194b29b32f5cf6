"""What a worker process knows of itself: where it runs, for the error messages it writes."""

from __future__ import annotations

# Set in a remote worker process: where it runs, for its error messages.
_worker_label: str | None = None


def set_worker_label(label: str | None) -> None:
    """Name this process in the per-item error messages it produces (a remote worker)."""
    global _worker_label
    _worker_label = label


def on_worker(message: str) -> str:
    """A per-item error message, naming the worker when it ran on a remote one."""
    return message if _worker_label is None else f"{message} (on worker {_worker_label})"
