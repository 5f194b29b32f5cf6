"""``python -m facematch``: the same as the ``facematch`` command."""

from facematch.cli import entry

entry()
