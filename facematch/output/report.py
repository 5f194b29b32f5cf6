"""The HTML report of a run: one self-contained page to check the answers by eye.

For matching (``Report``): a summary on top, then per image each face's crop
beside a crop of the known photo it is nearest to, with the distance, the
tolerance and the runner-up; unknown faces, images without faces and
unreadable files are listed too; per video, its time ranges, each with a crop
of its best sample (``--per-frame`` rows: a count of frames and faces only).
For clustering (``write_cluster_report``): a summary, then one section per
person with the crops of their faces, and the unclustered faces and
unreadable files in sections of their own. Both read rows only, never match
or cluster again, and share the crops, the page and its filter. The page
needs no network: crops are small JPEG ``data:`` URIs (or files in an assets
folder for big runs), styles and the person filter are inline. Every name and
path is escaped.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from facematch.errors import ImageError
from facematch.matching.appearances import clock
from facematch.output.pictures import (
    COLOURS,
    Kind,
    classify,
    crop,
    image_bytes,
    nearest_name,
    write_atomically,
)
from facematch.output.text import printable
from facematch.records import (
    Appearance,
    ClusterCounts,
    FaceBox,
    FaceMatch,
    ImageResult,
    KnownFace,
    VideoResult,
)
from facematch.sources.images import open_upright

if TYPE_CHECKING:
    from facematch.records import FaceRow as ClusterFace

log = logging.getLogger("facematch")

# Crops are at most this many px on a side, JPEG at this quality: about 3-5 KB.
CROP_SIDE = 112
CROP_QUALITY = 75
# Past this many bytes of inline crops, a page loads slowly in a browser (and
# some refuse to open it): the crops are written as files instead.
INLINE_LIMIT = 20_000_000
UNKNOWN_FILTER = "?unknown"
UNCLUSTERED_FILTER = "?unclustered"


def default_assets(page: Path) -> Path:
    """Where a report's crops go when they are too large to be inline: beside the page."""
    return page.with_name(page.stem + "_files")


@dataclass
class Crops:
    """Face crops as JPEG bytes, placed when the page is written: inline, or files in a folder."""

    images: list[bytes] = field(default_factory=list)

    def keep(self, image: Image.Image) -> int:
        """Keep a crop (at most ``CROP_SIDE`` px already); returns its key."""
        self.images.append(image_bytes(image, "JPEG", CROP_QUALITY))
        return len(self.images) - 1

    def sources(self, destination: Path, assets: Path | None) -> list[str]:
        """Each crop's ``src``: ``data:`` URIs, or files in ``assets`` (or beside the page
        when the inline crops would pass ``INLINE_LIMIT``)."""
        inline = sum(len(c) for c in self.images) * 4 // 3
        if assets is None and inline > INLINE_LIMIT:
            assets = default_assets(destination)
            log.warning(
                "the report's crops come to %.0f MB, over the %.0f MB inline limit; "
                "writing them to %s",
                inline / 1e6,
                INLINE_LIMIT / 1e6,
                printable(str(assets)),
            )
        if assets is None:
            return ["data:image/jpeg;base64," + base64.b64encode(c).decode() for c in self.images]
        base = os.path.relpath(assets, destination.parent)
        sources = []
        for number, data in enumerate(self.images):
            name = f"crop-{number:06d}.jpg"
            write_atomically(assets / name, data, private=True)
            sources.append(urllib.parse.quote(f"{base}/{name}".replace(os.sep, "/")))
        return sources


@dataclass(frozen=True)
class ReportFace:
    index: int
    face: FaceMatch
    kind: Kind
    crop: int | None  # a key of Report.crops
    known_crop: int | None


@dataclass(frozen=True)
class ImageRow:
    result: ImageResult
    faces: tuple[ReportFace, ...]


@dataclass(frozen=True)
class VideoRow:
    result: VideoResult
    crops: tuple[int | None, ...]  # per range, a key of Report.crops


@dataclass
class Report:
    """Collects match rows and crops, then writes the page on ``close()``."""

    destination: Path
    tolerance: float | None
    assets: Path | None = None
    title: str = "facematch report"
    images: list[ImageRow] = field(default_factory=list)
    videos: list[VideoRow] = field(default_factory=list)
    crops: Crops = field(default_factory=Crops)
    _known: dict[tuple[str, FaceBox], int | None] = field(default_factory=dict)
    _video_crops: dict[int, int] = field(default_factory=dict)

    def add(self, result: ImageResult, image: Image.Image | None) -> None:
        faces = []
        for index, face in enumerate(result.faces):
            piece = None if image is None else self.crops.keep(crop(image, face.box, CROP_SIDE))
            known = self._known_crop(face.known_face) if face.known_face else None
            faces.append(ReportFace(index, face, classify(face, self.tolerance), piece, known))
        self.images.append(ImageRow(result, tuple(faces)))

    def add_frame(self, result: VideoResult, time: float, image: Image.Image) -> None:
        for index, appearance in enumerate(result.appearances):
            if appearance.time == time:
                piece = crop(image, appearance.box, CROP_SIDE)
                self._video_crops[index] = self.crops.keep(piece)

    def add_video(self, result: VideoResult) -> None:
        crops = tuple(self._video_crops.get(i) for i in range(len(result.appearances)))
        self.videos.append(VideoRow(result, crops))
        self._video_crops = {}

    def _known_crop(self, known: KnownFace) -> int | None:
        key = (known.path, known.box)
        if key not in self._known:
            try:
                photo = open_upright(known.path)[0]
            except ImageError as exc:
                log.error("%s: no crop for the report: %s", printable(known.path), exc)
                self._known[key] = None
            else:
                self._known[key] = self.crops.keep(crop(photo, known.box, CROP_SIDE))
        return self._known[key]

    def close(self) -> None:
        sources = self.crops.sources(self.destination, self.assets)
        page = render_page(self.title, self.images, sources, self.tolerance, self.videos)
        write_atomically(self.destination, page.encode("utf-8"), private=True)


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


def _face_row(row: ReportFace, path: str, sources: list[str], tolerance: float | None) -> str:
    face = row.face
    known = face.known_face
    name = face.name if face.name is not None else "unknown"
    nearest = nearest_name(face)
    if face.name is None and nearest is not None and face.distance is not None:
        name += f" (nearest: {nearest} {face.distance:.3f})"
    if face.uncertain:
        name += " (uncertain)"
    runner_up = face.runner_up
    cells = [
        _img(sources, row.crop, f"face {row.index + 1} of {path}"),
        _img(sources, row.known_crop, f"known photo {known.path}" if known else ""),
        f'<span class="tag {row.kind}">{row.kind}</span> {_text(name)}',
        _distance(face.distance) if face.name is not None else "",
        _distance(face.tolerance if face.tolerance is not None else tolerance),
        _chance(face.stranger_chance) if face.name is not None else "",
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
            for h in (
                "face",
                "known photo",
                "person",
                "distance",
                "tolerance",
                "stranger chance",
                "runner-up",
                "from",
            )
        )
        body = "".join(_face_row(f, result.path, sources, tolerance) for f in row.faces)
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    parts.append("</section>")
    return "".join(parts)


def _chance(chance: float | None) -> str:
    """A stranger's chance as a percentage, with the precision it has."""
    if chance is None:
        return ""
    return f"{100 * chance:.2g}%"


def _range_row(appearance: Appearance, crop_key: int | None, path: str, sources: list[str]) -> str:
    kind = "unknown" if appearance.name is None else "named"
    name = appearance.name if appearance.name is not None else "unknown_person"
    shown = name
    if appearance.uncertain:
        kind, shown = "ambiguous", f"{name} (uncertain)"
    cells = [
        _img(sources, crop_key, f"best sample of {name} in {path}"),
        f'<span class="tag {kind}">{kind}</span> {_text(shown)}',
        clock(appearance.start),
        clock(appearance.end),
        str(appearance.samples),
        _distance(appearance.distance),
        clock(appearance.time),
    ]
    tds = "".join(f"<td>{cell}</td>" for cell in cells)
    key = _text(f"={name}" if appearance.name is not None else UNKNOWN_FILTER)
    return f'<tr class="face {kind}" data-filter="{key}">{tds}</tr>'


def _video_section(row: VideoRow, sources: list[str]) -> str:
    result = row.result
    path = _text(result.path)
    parts = [f'<section class="image video {result.status}">', f"<h2>{path} (video)</h2>"]
    if result.status == "error":
        parts.append(f'<p class="error">unreadable: {_text(result.error or "")}</p>')
    elif result.frames is not None:
        faces = sum(len(f.faces) for f in result.frames)
        parts.append(
            f'<p class="note">{len(result.frames)} sampled frames, {faces} faces '
            "(per-frame rows are not shown here; --annotate draws them)</p>"
        )
    elif not result.appearances:
        parts.append('<p class="note">no face found</p>')
    else:
        head = "".join(
            f"<th>{h}</th>"
            for h in ("best sample", "person", "from", "to", "samples", "distance", "best at")
        )
        body = "".join(
            _range_row(a, key, result.path, sources)
            for a, key in zip(result.appearances, row.crops, strict=True)
        )
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
section.person h2,section.unreadable h2{font:600 1.2em system-ui,sans-serif;margin:1.2em 0 .2em}
.note{margin:.2em 0 .6em;color:#444}.faces{display:flex;flex-wrap:wrap;gap:.8em}
figure.face{margin:0;width:112px}figure.face img{margin:0 auto}
figcaption{font:.7em/1.3 monospace;color:#555;word-break:break-all;margin-top:.2em}
"""

SCRIPT = """
const choice = document.getElementById("filter");
choice.addEventListener("change", () => {
  const wanted = choice.value;
  for (const face of document.querySelectorAll("main [data-filter]")) {
    face.hidden = wanted !== "" && face.dataset.filter !== wanted;
  }
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = wanted !== "" && !section.querySelector("[data-filter]:not([hidden])");
  }
});
"""


def _tag_style() -> str:
    rules = []
    for kind, (colour, ink) in COLOURS.items():
        rules.append(f".tag.{kind}{{background:rgb{colour};color:rgb{ink}}}")
    return "\n".join(rules)


def render_page(
    title: str,
    images: list[ImageRow],
    sources: list[str],
    tolerance: float | None,
    videos: Sequence[VideoRow] = (),
) -> str:
    """The whole page as text. A video's ranges count as its faces; people are found in either."""
    faces = [f for image in images for f in image.faces]
    ranges = [a for video in videos for a in video.result.appearances]
    people = Counter(f.face.name for f in faces if f.face.name is not None)
    people.update(a.name for a in ranges if a.name is not None)
    kinds = Counter(f.kind for f in faces)
    statuses = Counter(image.result.status for image in images)
    unknown = sum(1 for f in faces if f.face.name is None)
    uncertain_ranges = sum(a.uncertain for a in ranges)
    summary = [
        ("images", str(len(images))),
        ("faces", str(len(faces))),
        ("people found", str(len(people))),
        ("named faces", str(len(faces) - unknown)),
        ("unknown faces", str(unknown)),
        ("ambiguous faces", str(kinds["ambiguous"])),
        ("uncertain names", str(sum(f.face.uncertain for f in faces) + uncertain_ranges)),
        ("images without faces", str(statuses["no_faces"])),
        ("unreadable files", str(statuses["error"])),
    ]
    if videos:
        unknown += sum(1 for a in ranges if a.name is None)
        unreadable = sum(1 for video in videos if video.result.status == "error")
        summary[2:2] = [("videos", str(len(videos))), ("video ranges", str(len(ranges)))]
        summary.append(("unreadable videos", str(unreadable)))
    if tolerance is not None:
        summary.append(("tolerance", f"{tolerance:g}"))
    options = [("=" + name, f"{name} ({people[name]})") for name in sorted(people)]
    if unknown:
        options.append((UNKNOWN_FILTER, f"unknown faces ({unknown})"))
    sections = "\n".join(_image_section(image, sources, tolerance) for image in images)
    if videos:
        sections += "\n" + "\n".join(_video_section(video, sources) for video in videos)
    return _page(title, summary, options, sections)


def _page(
    title: str, summary: list[tuple[str, str]], options: list[tuple[str, str]], sections: str
) -> str:
    """The page around its sections: the summary cards, the filter menu, the styles, the script.

    ``options`` are (filter key, label) pairs; a face (an element with ``data-filter``)
    shows while its ``data-filter`` is the key chosen, a section while a face in it shows.
    """
    summary_html = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in summary)
    choices = ['<option value="">everyone</option>']
    choices += [f'<option value="{_text(key)}">{_text(text)}</option>' for key, text in options]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<link rel="icon" href="data:,">
<title>{_text(title)}</title>
<style>{STYLE}{_tag_style()}</style></head>
<body><h1>{_text(title)}</h1>
<dl id="summary">{summary_html}</dl>
<p><label>Show <select id="filter">{"".join(choices)}</select></label></p>
<main>
{sections}
</main>
<script>{SCRIPT}</script>
</body></html>
"""


# --- clustering ------------------------------------------------------------------------

NAMED_BY = {
    "user": "named by you",
    "xmp": "named in the photos' XMP",
    "known": "named from the known folder",
    "none": "not named",
}
PERSON_TAG: dict[str, Kind] = {"user": "named", "xmp": "named", "known": "named", "none": "face"}


def write_cluster_report(
    destination: Path,
    rows: Sequence[ClusterFace],
    unreadable: Sequence[tuple[str, str]] = (),
    assets: Path | None = None,
    title: str = "facematch people",
) -> None:
    """The page of a cluster run: a section per person with their face crops, from the rows.

    ``unreadable`` are (path, reason) pairs of the files the run could not read. Each
    photo is decoded once; a photo gone since it was indexed has no crops (logged).
    """
    crops = Crops()
    pieces: list[int | None] = [None] * len(rows)
    by_path: dict[str, list[int]] = {}
    for number, row in enumerate(rows):
        by_path.setdefault(row.path, []).append(number)
    for path, numbers in by_path.items():
        try:
            photo = open_upright(path)[0]
        except ImageError as exc:
            log.error("%s: no crop for the report: %s", printable(path), exc)
            continue
        for number in numbers:
            pieces[number] = crops.keep(crop(photo, rows[number].box, CROP_SIDE))
    sources = crops.sources(destination, assets)
    page = render_cluster_page(title, rows, pieces, sources, unreadable)
    write_atomically(destination, page.encode("utf-8"), private=True)


def render_cluster_page(
    title: str,
    rows: Sequence[ClusterFace],
    pieces: Sequence[int | None],
    sources: list[str],
    unreadable: Sequence[tuple[str, str]] = (),
) -> str:
    """The whole cluster page as text: people by number, then the unclustered faces."""
    groups: dict[int | None, list[int]] = {}
    for number, row in enumerate(rows):
        groups.setdefault(row.person, []).append(number)
    people = sorted(p for p in groups if p is not None)
    loose = groups.get(None, [])
    folder = _common_folder([r.path for r in rows])
    counts = ClusterCounts.of(rows)
    summary = [
        ("photos with faces", str(counts.photos)),
        ("faces", str(counts.faces)),
        ("people", str(counts.people)),
        ("named people", str(counts.named)),
        ("unclustered faces", str(counts.unclustered)),
        ("unreadable files", str(len(unreadable))),
    ]
    options = []
    sections = []
    for person in people:
        members = groups[person]
        first = rows[members[0]]
        label = first.person_label
        heading = label if first.name is None else f"{first.name} ({label})"
        options.append(("=" + label, f"{heading}: {len(members)}"))
        kind = PERSON_TAG[first.named_by]
        sections.append(
            _person_section(
                heading,
                f'<span class="tag {kind}">{NAMED_BY[first.named_by]}</span>',
                "=" + label,
                members,
                rows,
                pieces,
                sources,
                folder,
            )
        )
    if loose:
        options.append((UNCLUSTERED_FILTER, f"unclustered faces: {len(loose)}"))
        tag = '<span class="tag unknown">in no group</span>'
        sections.append(
            _person_section(
                "unclustered", tag, UNCLUSTERED_FILTER, loose, rows, pieces, sources, folder
            )
        )
    if unreadable:
        items = "".join(
            f"<li><code>{_text(path)}</code>: {_text(reason)}</li>" for path, reason in unreadable
        )
        sections.append(
            f'<section class="unreadable"><h2>unreadable files</h2>'
            f'<ul class="error">{items}</ul></section>'
        )
    intro = f'<p class="note">photos under <code>{_text(folder)}</code></p>' if folder else ""
    return _page(title, summary, options, intro + "\n".join(sections))


def _common_folder(paths: Sequence[str]) -> str:
    """The folder all ``paths`` are in, or "" (none, or relative and absolute ones mixed)."""
    try:
        return os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else ""
    except ValueError:
        return ""


def _person_section(
    heading: str,
    tag: str,
    key: str,
    members: Sequence[int],
    rows: Sequence[ClusterFace],
    pieces: Sequence[int | None],
    sources: list[str],
    folder: str,
) -> str:
    count = f"{len(members)} face" + ("" if len(members) == 1 else "s")
    parts = [
        f'<section class="{"person unclustered" if key == UNCLUSTERED_FILTER else "person"}">',
        f"<h2>{_text(heading)}</h2>",
        f'<p class="note">{tag} {count}</p><div class="faces">',
    ]
    for number in members:
        row = rows[number]
        shown = os.path.relpath(row.path, folder) if folder else row.path
        alt = f"face {row.face} of {shown}"
        parts.append(
            f'<figure class="face" data-filter="{_text(key)}">'
            f"{_img(sources, pieces[number], alt)}"
            f'<figcaption title="{_text(row.path)}">{_text(shown)}'
            f"<br>face {row.face}</figcaption></figure>"
        )
    parts.append("</div></section>")
    return "".join(parts)
