"""The HTML report of a run: one self-contained page to check the answers by eye.

A summary on top, then per image each face's crop beside a crop of the known
photo it is nearest to, with the distance, the tolerance and the runner-up;
unknown faces, images without faces and unreadable files are listed too. The
page needs no network: crops are small JPEG ``data:`` URIs (or files in an
assets folder for big runs), styles and the person filter are inline. Every
name and path is escaped.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from facematch.errors import ImageError
from facematch.faces import FaceBox
from facematch.gallery import KnownFace
from facematch.images import open_upright
from facematch.pipeline import FaceMatch, ImageResult
from facematch.render import (
    COLOURS,
    Kind,
    classify,
    crop,
    encode,
    nearest_name,
    write_atomically,
)
from facematch.text import printable

log = logging.getLogger("facematch")

# Crops are at most this many px on a side, JPEG at this quality: about 3-5 KB.
CROP_SIDE = 112
CROP_QUALITY = 75
# Past this many bytes of inline crops, a page loads slowly in a browser (and
# some refuse to open it): the crops are written as files instead.
INLINE_LIMIT = 20_000_000
UNKNOWN_FILTER = "?unknown"


@dataclass(frozen=True)
class FaceRow:
    index: int
    face: FaceMatch
    kind: Kind
    crop: int | None  # a key of Report.crops
    known_crop: int | None


@dataclass(frozen=True)
class ImageRow:
    result: ImageResult
    faces: tuple[FaceRow, ...]


@dataclass
class Report:
    """Collects rows and crops, then writes the page on ``close()``."""

    destination: Path
    tolerance: float | None
    assets: Path | None = None
    title: str = "facematch report"
    images: list[ImageRow] = field(default_factory=list)
    crops: list[bytes] = field(default_factory=list)
    _known: dict[tuple[str, FaceBox], int | None] = field(default_factory=dict)

    def add(self, result: ImageResult, image: Image.Image | None) -> None:
        faces = []
        for index, face in enumerate(result.faces):
            piece = None if image is None else self._keep(crop(image, face.box, CROP_SIDE))
            known = self._known_crop(face.known_face) if face.known_face else None
            faces.append(FaceRow(index, face, classify(face, self.tolerance), piece, known))
        self.images.append(ImageRow(result, tuple(faces)))

    def _keep(self, image: Image.Image) -> int:
        self.crops.append(encode(image, "JPEG", CROP_QUALITY))
        return len(self.crops) - 1

    def _known_crop(self, known: KnownFace) -> int | None:
        key = (known.path, known.box)
        if key not in self._known:
            try:
                photo = open_upright(known.path)[0]
            except ImageError as exc:
                log.error("%s: no crop for the report: %s", printable(known.path), exc)
                self._known[key] = None
            else:
                self._known[key] = self._keep(crop(photo, known.box, CROP_SIDE))
        return self._known[key]

    def close(self) -> None:
        inline = sum(len(c) for c in self.crops) * 4 // 3
        assets = self.assets
        if assets is None and inline > INLINE_LIMIT:
            assets = self.destination.with_name(self.destination.stem + "_files")
            log.warning(
                "the report's crops come to %.0f MB, over the %.0f MB inline limit; "
                "writing them to %s",
                inline / 1e6,
                INLINE_LIMIT / 1e6,
                printable(str(assets)),
            )
        sources = self._write_assets(assets) if assets is not None else self._data_uris()
        page = render_page(self.title, self.images, sources, self.tolerance)
        write_atomically(self.destination, page.encode("utf-8"))

    def _data_uris(self) -> list[str]:
        return ["data:image/jpeg;base64," + base64.b64encode(c).decode() for c in self.crops]

    def _write_assets(self, folder: Path) -> list[str]:
        base = os.path.relpath(folder, self.destination.parent)
        sources = []
        for number, data in enumerate(self.crops):
            name = f"crop-{number:06d}.jpg"
            write_atomically(folder / name, data)
            sources.append(urllib.parse.quote(f"{base}/{name}".replace(os.sep, "/")))
        return sources


def _text(value: str) -> str:
    return html.escape(printable(value), quote=True)


def _distance(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _filter_key(face: FaceMatch) -> str:
    return f"={face.name}" if face.name is not None else UNKNOWN_FILTER


def _img(sources: list[str], key: int | None, alt: str) -> str:
    if key is None:
        return '<span class="none">-</span>'
    return f'<img loading="lazy" src="{html.escape(sources[key])}" alt="{_text(alt)}">'


def _face_row(row: FaceRow, path: str, sources: list[str], tolerance: float | None) -> str:
    face = row.face
    known = face.known_face
    name = face.name if face.name is not None else "unknown"
    nearest = nearest_name(face)
    if face.name is None and nearest is not None and face.distance is not None:
        name += f" (nearest: {nearest} {face.distance:.3f})"
    runner_up = face.runner_up
    cells = [
        _img(sources, row.crop, f"face {row.index + 1} of {path}"),
        _img(sources, row.known_crop, f"known photo {known.path}" if known else ""),
        f'<span class="tag {row.kind}">{row.kind}</span> {_text(name)}',
        _distance(face.distance) if face.name is not None else "",
        _distance(tolerance),
        "" if runner_up is None else f"{_text(runner_up.name)} {_distance(runner_up.distance)}",
        "" if known is None else _text(known.path),
    ]
    tds = "".join(f"<td>{cell}</td>" for cell in cells)
    key = _text(_filter_key(face))
    return f'<tr class="face {row.kind}" data-filter="{key}">{tds}</tr>'


def _image_section(row: ImageRow, sources: list[str], tolerance: float | None) -> str:
    result = row.result
    path = _text(result.path)
    parts = [f'<section class="image {result.status}">', f"<h2>{path}</h2>"]
    if result.status == "error":
        parts.append(f'<p class="error">unreadable: {_text(result.error or "")}</p>')
    elif not row.faces:
        parts.append('<p class="note">no face found</p>')
    else:
        head = "".join(
            f"<th>{h}</th>"
            for h in ("face", "known photo", "person", "distance", "tolerance", "runner-up", "from")
        )
        body = "".join(_face_row(f, result.path, sources, tolerance) for f in row.faces)
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    parts.append("</section>")
    return "".join(parts)


STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.5em}h2{font-size:1em;font-family:monospace;word-break:break-all}
#summary{display:flex;flex-wrap:wrap;gap:.6em;margin:0 0 1em}#summary div{border:1px solid #ddd;
border-radius:.4em;padding:.3em .8em}#summary dt{font-size:.8em;color:#555}
#summary dd{margin:0;font-size:1.4em;font-weight:600}
table{border-collapse:collapse}td,th{padding:.3em .6em;border-bottom:1px solid #ddd;
text-align:left;vertical-align:middle}img{display:block;max-width:112px;max-height:112px}
.tag{padding:0 .4em;border-radius:.3em;font-size:.85em}.error{color:#b00}
section.image{margin:1.2em 0}td:last-child{font-family:monospace;font-size:.8em;color:#666}
"""

SCRIPT = """
const choice = document.getElementById("filter");
choice.addEventListener("change", () => {
  const wanted = choice.value;
  for (const row of document.querySelectorAll("tr.face")) {
    row.hidden = wanted !== "" && row.dataset.filter !== wanted;
  }
  for (const section of document.querySelectorAll("section.image")) {
    section.hidden = wanted !== "" && !section.querySelector("tr.face:not([hidden])");
  }
});
"""


def _tag_style() -> str:
    rules = []
    for kind, (colour, ink) in COLOURS.items():
        rules.append(f".tag.{kind}{{background:rgb{colour};color:rgb{ink}}}")
    return "\n".join(rules)


def render_page(
    title: str, images: list[ImageRow], sources: list[str], tolerance: float | None
) -> str:
    """The whole page as text."""
    faces = [f for image in images for f in image.faces]
    people = Counter(f.face.name for f in faces if f.face.name is not None)
    kinds = Counter(f.kind for f in faces)
    statuses = Counter(image.result.status for image in images)
    unknown = sum(1 for f in faces if f.face.name is None)
    summary = [
        ("images", str(len(images))),
        ("faces", str(len(faces))),
        ("people found", str(len(people))),
        ("named faces", str(len(faces) - unknown)),
        ("unknown faces", str(unknown)),
        ("ambiguous faces", str(kinds["ambiguous"])),
        ("images without faces", str(statuses["no_faces"])),
        ("unreadable files", str(statuses["error"])),
    ]
    if tolerance is not None:
        summary.append(("tolerance", f"{tolerance:g}"))
    summary_html = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in summary)
    options = ['<option value="">everyone</option>']
    for name in sorted(people):
        options.append(
            f'<option value="{_text("=" + name)}">{_text(name)} ({people[name]})</option>'
        )
    if unknown:
        options.append(f'<option value="{UNKNOWN_FILTER}">unknown faces ({unknown})</option>')
    sections = "\n".join(_image_section(image, sources, tolerance) for image in images)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<link rel="icon" href="data:,">
<title>{_text(title)}</title>
<style>{STYLE}{_tag_style()}</style></head>
<body><h1>{_text(title)}</h1>
<dl id="summary">{summary_html}</dl>
<p><label>Show <select id="filter">{"".join(options)}</select></label></p>
<main>
{sections}
</main>
<script>{SCRIPT}</script>
</body></html>
"""
