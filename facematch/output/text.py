"""Text that is safe to print: file names can hold anything a file system allows.

A POSIX file name is bytes. Python hands us the bytes that are not UTF-8 as
lone surrogates (``surrogateescape``), which no UTF-8 stream can write, and a
name may also hold terminal control sequences. Every format and every message
shows such a character as a ``\\xNN`` escape (the byte's value), the same way
everywhere, so output always encodes, parses and never drives the terminal.
"""

from __future__ import annotations

import re

# C0 and C1 control characters, DEL, and lone surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# A spreadsheet runs a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as surrogateescape keeps it
        return f"\\x{code - 0xDC00:02x}"
    if code >= 0xD800:
        return f"\\u{code:04x}"
    return f"\\x{code:02x}"


def printable(text: str) -> str:
    """``text`` with undecodable bytes and control characters written as ``\\xNN``."""
    return _UNSAFE.sub(_escape, text)


def spreadsheet_safe(cell: str) -> str:
    """A CSV text cell that a spreadsheet shows as text, never runs as a formula.

    Cells starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return get
    a leading apostrophe, as OWASP recommends against CSV injection.
    """
    cell = printable(cell)
    return "'" + cell if cell.startswith(_FORMULA_START) else cell
