"""The XMP packet inside a JPEG or PNG file: found, and replaced without touching the pixels.

A JPEG keeps its XMP in an APP1 segment after the identifier
``http://ns.adobe.com/xap/1.0/``; a PNG in an ``iTXt`` chunk whose keyword is
``XML:com.adobe.xmp``. Replacing one rewrites the segments or chunks before the
image data and copies the compressed image data byte for byte: nothing is decoded
or encoded again. Anything this cannot do safely (a damaged file, extended XMP
split over several JPEG segments, a packet over a segment's 64 KB) is a
MetadataError saying so, and the file is left as it was.
"""

from __future__ import annotations

import zlib

from facematch.errors import MetadataError

JPEG_START = b"\xff\xd8"
XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"
EXTENDED_ID = b"http://ns.adobe.com/xmp/extension/\x00"
APP0, APP1, SOS, EOI = 0xE0, 0xE1, 0xDA, 0xD9
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
MAX_SEGMENT = 0xFFFF  # a segment's length field counts itself

PNG_START = b"\x89PNG\r\n\x1a\n"
PNG_KEYWORD = b"XML:com.adobe.xmp"
# A compressed iTXt packet is inflated only up to this (a zip bomb is refused).
MAX_INFLATED = 16 * 1024 * 1024

EMBEDDED_FORMATS = ("JPEG", "PNG")


def kind_of(data: bytes) -> str | None:
    """``JPEG`` or ``PNG`` by the file's first bytes; None for any other file."""
    if data.startswith(JPEG_START):
        return "JPEG"
    if data.startswith(PNG_START):
        return "PNG"
    return None


def embedded_xmp(data: bytes) -> bytes | None:
    """The XMP packet inside a JPEG or PNG file's bytes, or None."""
    kind = kind_of(data)
    if kind == "JPEG":
        segments, _ = _jpeg_segments(data)
        for marker, segment in segments:
            if marker == APP1 and segment[4:].startswith(XMP_ID):
                return segment[4 + len(XMP_ID) :]
        return None
    if kind == "PNG":
        for kind_name, body in _png_chunks(data):
            if kind_name == b"iTXt" and body.startswith(PNG_KEYWORD + b"\x00"):
                return _itxt_text(body)
        return None
    raise MetadataError("XMP is written inside JPEG and PNG files only; use a sidecar")


def with_xmp(data: bytes, packet: bytes) -> bytes:
    """The file's bytes with its XMP packet replaced by ``packet`` (or added)."""
    kind = kind_of(data)
    if kind == "JPEG":
        return _jpeg_with_xmp(data, packet)
    if kind == "PNG":
        return _png_with_xmp(data, packet)
    raise MetadataError("XMP is written inside JPEG and PNG files only; use a sidecar")


# --- JPEG --------------------------------------------------------------------------------


def _jpeg_segments(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The segments before the image data (marker, whole segment), and where it starts."""
    segments: list[tuple[int, bytes]] = []
    i = len(JPEG_START)
    while True:
        if i + 2 > len(data):
            raise MetadataError("damaged JPEG: it ends before its image data")
        if data[i] != 0xFF:
            raise MetadataError("damaged JPEG: no marker where one should be")
        marker = data[i + 1]
        if marker == 0xFF:  # a fill byte
            i += 1
            continue
        if marker in (SOS, EOI):
            return segments, i
        if marker in STANDALONE:
            segments.append((marker, data[i : i + 2]))
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2 or i + 2 + length > len(data):
            raise MetadataError("damaged JPEG: a segment runs past the end of the file")
        segments.append((marker, data[i : i + 2 + length]))
        i += 2 + length


def _jpeg_with_xmp(data: bytes, packet: bytes) -> bytes:
    segments, start = _jpeg_segments(data)
    payload = XMP_ID + packet
    if len(payload) + 2 > MAX_SEGMENT:
        raise MetadataError(
            f"XMP of {len(packet) // 1024} KB does not fit in a JPEG segment (64 KB); use a sidecar"
        )
    segment = bytes([0xFF, APP1]) + (len(payload) + 2).to_bytes(2, "big") + payload
    kept: list[bytes] = []
    placed = False
    for marker, old in segments:
        if marker == APP1 and old[4:].startswith(EXTENDED_ID):
            raise MetadataError("the JPEG holds extended XMP (over 64 KB); use a sidecar")
        if marker == APP1 and old[4:].startswith(XMP_ID):
            if not placed:
                kept.append(segment)
                placed = True
            continue
        kept.append(old)
    if not placed:  # after the JFIF and Exif segments, which must come first
        at = 0
        while at < len(segments) and segments[at][0] in (APP0, APP1):
            at += 1
        kept.insert(at, segment)
    return JPEG_START + b"".join(kept) + data[start:]


# --- PNG ---------------------------------------------------------------------------------


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Every chunk up to ``IEND``: its type and its body."""
    return [(kind, raw[8:-4]) for kind, raw in _png_raw_chunks(data)]


def _png_raw_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Every chunk up to ``IEND``: its type and its bytes as they are in the file."""
    chunks = []
    i = len(PNG_START)
    while i < len(data):
        if i + 12 > len(data):
            raise MetadataError("damaged PNG: a chunk runs past the end of the file")
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        if i + 12 + length > len(data):
            raise MetadataError("damaged PNG: a chunk runs past the end of the file")
        chunks.append((kind, data[i : i + 12 + length]))
        i += 12 + length
        if kind == b"IEND":
            break
    return chunks


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return len(body).to_bytes(4, "big") + kind + body + crc.to_bytes(4, "big")


def _itxt_text(body: bytes) -> bytes:
    """The text of an iTXt chunk (keyword, flag, method, language, translated keyword, text)."""
    rest = body[len(PNG_KEYWORD) + 1 :]
    if len(rest) < 2:
        raise MetadataError("damaged PNG: a short XMP chunk")
    compressed, rest = rest[0], rest[2:]
    parts = rest.split(b"\x00", 2)
    if len(parts) < 3:
        raise MetadataError("damaged PNG: a malformed XMP chunk")
    text = parts[2]
    if not compressed:
        return text
    inflater = zlib.decompressobj()
    try:
        inflated = inflater.decompress(text, MAX_INFLATED)
    except zlib.error:
        raise MetadataError("damaged PNG: its compressed XMP cannot be inflated") from None
    if inflater.unconsumed_tail:
        raise MetadataError("the PNG's compressed XMP inflates past 16 MB (refused)")
    return inflated


def _png_with_xmp(data: bytes, packet: bytes) -> bytes:
    chunks = _png_raw_chunks(data)
    body = PNG_KEYWORD + b"\x00" + b"\x00\x00" + b"\x00" + b"\x00" + packet
    out = [PNG_START]
    placed = False
    end = len(PNG_START)
    for kind, raw in chunks:
        end += len(raw)
        if kind == b"iTXt" and raw[8:].startswith(PNG_KEYWORD + b"\x00"):
            if not placed:
                out.append(_chunk(b"iTXt", body))
                placed = True
            continue
        if kind == b"IDAT" and not placed:  # before the pixels, where readers look first
            out.append(_chunk(b"iTXt", body))
            placed = True
        out.append(raw)  # every other chunk byte for byte
    if not placed:
        raise MetadataError("damaged PNG: no image data")
    return b"".join(out) + data[end:]
