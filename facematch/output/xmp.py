"""Face regions in XMP, written: named faces into a photo's sidecar (or the photo itself).

For each confidently named face, facematch writes

- an MWG region (``mwg-rs:Regions``: ``AppliedToDimensions`` in pixels, and per
  face ``Area`` x/y = centre, w/h, normalised, ``Type`` Face, ``Name``), which
  Immich, digiKam, Lightroom, PhotoPrism and Picasa read, marked as facematch's
  by ``Extensions/xmp:CreatorTool`` = facematch;
- a Microsoft Photo region (``MP:RegionInfo/MPRI:Regions``: ``MPReg:Rectangle``
  "x, y, w, h" from the top left, normalised, ``MPReg:PersonDisplayName``), as
  digiKam writes beside MWG and Windows reads;
- the name in the keyword lists: ``Iptc4xmpExt:PersonInImage``, ``dc:subject``,
  ``digiKam:TagsList`` (``People/<Name>``) and ``lr:hierarchicalSubject``
  (``People|<Name>``); what facematch added is listed under ``facematch:Added``,
  so that a later run takes back exactly that and nothing a person or tool put.

Everything else in the XMP is kept as it was: other tools' regions (their
elements copied as they are), ratings, keywords, any namespace. A later run
replaces only facematch's own regions; a named face that another tool's region
already covers is left to that region. Coordinates are those of the image as
stored: the EXIF orientation facematch turns a photo by is undone.
"""

from __future__ import annotations

import copy
import os
import re
import stat
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from facematch.errors import ImageError, MetadataError
from facematch.files import atomic_file, write_failure
from facematch.output import embed
from facematch.output.text import printable
from facematch.records import Area, FaceBox, FaceRegion, ImageResult, TaggedFace, TagResult
from facematch.sources.xmp import (
    CREATOR,
    DESCRIPTION,
    LI,
    MP_REGION_INFO,
    MWG_REGIONS,
    NS,
    SAME_FACE_IOU,
    XmpDocument,
    existing_sidecars,
    first_fields,
    items,
    mp_items,
    mp_region,
    mwg_dimensions,
    mwg_items,
    mwg_region,
    new_document,
    overlap,
    parse_xmp,
    photo_info,
    q,
    read_sidecar,
    sidecar_path,
    stored_area,
    text,
)

DIGITS = 6
PACKET_ID = "W5M0MpCehiHzreSzNTczkc9d"
# Room left in a packet inside a file, so that other tools can edit it in place.
PADDING = 2048
RESOURCE_TYPE = {q("rdf", "parseType"): "Resource"}
ADDED = q("facematch", "Added")


@dataclass(frozen=True)
class KeywordList:
    """One of the keyword lists a name goes into, and how the name is written there."""

    property: str
    array: str
    value: Callable[[str], str]
    record: str  # the field of ``facematch:Added`` listing what facematch added here


KEYWORD_LISTS = (
    KeywordList(q("Iptc4xmpExt", "PersonInImage"), "Bag", str, q("facematch", "PersonInImage")),
    KeywordList(q("dc", "subject"), "Bag", str, q("facematch", "subject")),
    KeywordList(q("digiKam", "TagsList"), "Seq", "People/{}".format, q("facematch", "TagsList")),
    KeywordList(
        q("lr", "hierarchicalSubject"),
        "Bag",
        "People|{}".format,
        q("facematch", "hierarchicalSubject"),
    ),
)

# Characters XML 1.0 cannot hold at all; they are left out of names written.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# --- merging -------------------------------------------------------------------------------


@dataclass
class Merged:
    """What merging named faces into a document did to it."""

    written: list[TaggedFace] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: int = 0
    covered: int = 0
    changed: bool = False


def _key(region: FaceRegion | TaggedFace) -> tuple[str, tuple[float, ...]]:
    """A region as compared between runs: its name and its area to the digits written."""
    a = region.area
    return (region.name or "", tuple(round(v, DIGITS) for v in (a.x, a.y, a.w, a.h)))


def _top_level(doc: XmpDocument, name: str) -> list[tuple[ET.Element, ET.Element]]:
    """The (``rdf:Description``, element) of each top-level property ``name``."""
    return [
        (description, child)
        for description in doc.rdf.findall(DESCRIPTION)
        for child in description
        if child.tag == name
    ]


def _home(doc: XmpDocument) -> ET.Element:
    """The ``rdf:Description`` new properties go into: the first, or a new one."""
    found = doc.rdf.find(DESCRIPTION)
    if found is None:
        found = ET.SubElement(doc.rdf, DESCRIPTION, {q("rdf", "about"): ""})
    return found


def _leaf(parent: ET.Element, tag: str, value: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = value
    return element


def _number(value: float) -> str:
    return f"{value:.{DIGITS}f}"


def _mwg_item(face: TaggedFace) -> ET.Element:
    li = ET.Element(LI, RESOURCE_TYPE)
    area = ET.SubElement(li, q("mwg-rs", "Area"), RESOURCE_TYPE)
    for key, value in zip(
        "xywh", (face.area.x, face.area.y, face.area.w, face.area.h), strict=True
    ):
        _leaf(area, q("stArea", key), _number(value))
    _leaf(area, q("stArea", "unit"), "normalized")
    _leaf(li, q("mwg-rs", "Name"), face.name)
    _leaf(li, q("mwg-rs", "Type"), "Face")
    extensions = ET.SubElement(li, q("mwg-rs", "Extensions"), RESOURCE_TYPE)
    _leaf(extensions, q("xmp", "CreatorTool"), CREATOR)
    return li


def mp_rectangle(area: Area) -> str:
    """Microsoft's ``Rectangle``: left, top, width, height, normalised."""
    values = (area.x - area.w / 2, area.y - area.h / 2, area.w, area.h)
    return ", ".join(_number(max(v, 0.0)) for v in values)


def _mp_item(face: TaggedFace) -> ET.Element:
    li = ET.Element(LI, RESOURCE_TYPE)
    _leaf(li, q("MPReg", "Rectangle"), mp_rectangle(face.area))
    _leaf(li, q("MPReg", "PersonDisplayName"), face.name)
    return li


def _struct(
    tag: str, kept: Iterable[ET.Element], bag: str, entries: list[ET.Element]
) -> ET.Element:
    """A struct property holding ``kept`` fields and a Bag field ``bag`` of ``entries``."""
    element = ET.Element(tag, RESOURCE_TYPE)
    element.extend(kept)
    listing = ET.SubElement(ET.SubElement(element, bag), q("rdf", "Bag"))
    listing.extend(entries)
    return element


def _other_fields(struct: ET.Element, known: set[str]) -> list[ET.Element]:
    """A struct's fields other than ``known``, as elements (an attribute becomes one)."""
    found = []
    for key, value in first_fields(struct).items():
        if key in known:
            continue
        if isinstance(value, ET.Element):
            found.append(copy.deepcopy(value))
        else:
            found.append(ET.Element(key))
            found[-1].text = value
    return found


def merge(doc: XmpDocument, faces: Sequence[TaggedFace], width: int, height: int) -> Merged:
    """Put ``faces`` into ``doc`` as facematch's regions and keywords, replacing its earlier
    ones and keeping everyone else's. ``width`` x ``height``: the image as stored."""
    merged = Merged()
    home = _home(doc)
    old_ours: list[FaceRegion] = []
    others: list[tuple[ET.Element, FaceRegion | str]] = []
    kept_fields: list[ET.Element] = []
    old_dimensions: tuple[float, float] | None = None
    for description, element in _top_level(doc, MWG_REGIONS):
        home = description
        old_dimensions = old_dimensions or mwg_dimensions(element)
        kept_fields += _other_fields(
            element, {q("mwg-rs", "AppliedToDimensions"), q("mwg-rs", "RegionList")}
        )
        for li in mwg_items(element):
            region = mwg_region(li)
            if isinstance(region, FaceRegion) and region.ours:
                old_ours.append(region)
            else:
                others.append((li, region))
        description.remove(element)
    mp_others: list[tuple[ET.Element, FaceRegion | str]] = []
    mp_fields: list[ET.Element] = []
    mp_home = home
    old_keys = {_key(r) for r in old_ours}
    for description, element in _top_level(doc, MP_REGION_INFO):
        mp_home = description
        mp_fields += _other_fields(element, {q("MPRI", "Regions")})
        for li in mp_items(element):
            region = mp_region(li)
            mine = isinstance(region, FaceRegion) and _twin(region, old_keys)
            if not mine:
                mp_others.append((li, region))
        description.remove(element)

    # Only a person named by someone else keeps a face: not a camera's focus area, a
    # pet, nor a face region nobody named.
    foreign = [
        r
        for _, r in others + mp_others
        if isinstance(r, FaceRegion) and r.name and r.kind.casefold() == "face"
    ]
    for face in faces:
        if any(overlap(face.area, r.area) >= SAME_FACE_IOU for r in foreign):
            merged.covered += 1
        else:
            merged.written.append(face)
    merged.kept = len(others) + len(mp_others)
    new_keys = [_key(f) for f in merged.written]
    merged.removed = [r.name or "" for r in old_ours if _key(r) not in new_keys]
    merged.changed = sorted(new_keys) != sorted(_key(r) for r in old_ours)
    if others or merged.written:
        dimensions = ET.Element(q("mwg-rs", "AppliedToDimensions"), RESOURCE_TYPE)
        _leaf(dimensions, q("stDim", "w"), str(width))
        _leaf(dimensions, q("stDim", "h"), str(height))
        _leaf(dimensions, q("stDim", "unit"), "pixel")
        entries = [li for li, _ in others] + [_mwg_item(f) for f in merged.written]
        regions = _struct(
            MWG_REGIONS, [dimensions, *kept_fields], q("mwg-rs", "RegionList"), entries
        )
        home.append(regions)
        merged.changed |= merged.written != [] and old_dimensions != (width, height)
    if mp_others or merged.written:
        entries = [li for li, _ in mp_others] + [_mp_item(f) for f in merged.written]
        mp_home.append(_struct(MP_REGION_INFO, mp_fields, q("MPRI", "Regions"), entries))
    merged.changed |= _keywords(doc, [f.name for f in merged.written])
    return merged


def _twin(region: FaceRegion, ours: set[tuple[str, tuple[float, ...]]]) -> bool:
    """Whether a Microsoft region repeats one of facematch's MWG regions (it wrote both)."""
    name, area = _key(region)
    return any(
        name == other_name
        and all(abs(a - b) <= 2 * 10**-DIGITS for a, b in zip(area, other, strict=True))
        for other_name, other in ours
    )


def _keywords(doc: XmpDocument, names: Sequence[str]) -> bool:
    """Add the names to the keyword lists and take back what facematch added before and
    no longer names; record what facematch added. Returns whether anything changed."""
    before: dict[str, list[str]] = {}
    for description, element in _top_level(doc, ADDED):
        for key, value in first_fields(element).items():
            before[key] = [t for li in items(value) if (t := text(li)) is not None]
        description.remove(element)
    record = ET.Element(ADDED, RESOURCE_TYPE)
    changed = False
    for kind in KEYWORD_LISTS:
        wanted = list(dict.fromkeys(kind.value(n) for n in names))
        ours_before = set(before.get(kind.record, ()))
        found = _top_level(doc, kind.property)
        array = next((items(element) for _, element in found), [])
        present = {text(li) for li in array}
        mine = [v for v in wanted if v in ours_before and v in present]
        took_back = False
        for li in array:
            word = text(li)
            if word in ours_before and word not in wanted:
                _parent_of(found[0][1], li).remove(li)
                took_back = True
        for value in wanted:
            if value not in present:
                _add_item(doc, kind, found, value)
                mine.append(value)
                changed = True
        if took_back and not items(found[0][1]):  # facematch took back the last value
            found[0][0].remove(found[0][1])
        changed |= took_back
        if mine:
            bag = ET.SubElement(ET.SubElement(record, kind.record), q("rdf", "Bag"))
            for value in mine:
                _leaf(bag, LI, value)
    if len(record):
        _home(doc).append(record)
    return changed


def _parent_of(root: ET.Element, child: ET.Element) -> ET.Element:
    for element in root.iter():
        if child in list(element):
            return element
    raise ValueError("not a descendant")  # cannot happen: child came from root's items


def _add_item(
    doc: XmpDocument, kind: KeywordList, found: list[tuple[ET.Element, ET.Element]], value: str
) -> None:
    if not found:
        element = ET.SubElement(_home(doc), kind.property)
        ET.SubElement(element, q("rdf", kind.array))
        found.append((_home(doc), element))
    element = found[0][1]
    array = next(
        (c for c in element.iter() if c.tag in {q("rdf", "Bag"), q("rdf", "Seq"), q("rdf", "Alt")}),
        None,
    )
    if array is None:  # a simple value where a list belongs: keep it as the first item
        array = ET.Element(q("rdf", kind.array))
        if element.text and element.text.strip():
            _leaf(array, LI, element.text.strip())
        element.text = None
        element.append(array)
    _leaf(array, LI, value)


# --- writing the XML -----------------------------------------------------------------------


class _Prefixes:
    """One prefix per namespace: the usual one, else the document's own, else a new one."""

    def __init__(self, found: dict[str, str]) -> None:
        self.by_uri = {uri: prefix for prefix, uri in NS.items()}
        taken = set(self.by_uri.values())
        for uri, prefix in found.items():
            if uri not in self.by_uri and prefix and prefix not in taken:
                self.by_uri[uri] = prefix
                taken.add(prefix)
        self.taken = taken

    def __call__(self, uri: str) -> str:
        if uri not in self.by_uri:
            number = len(self.taken)
            while f"ns{number}" in self.taken:
                number += 1
            self.by_uri[uri] = f"ns{number}"
            self.taken.add(f"ns{number}")
        return self.by_uri[uri]


def _uri(name: str) -> str | None:
    return name[1:].partition("}")[0] if name.startswith("{") else None


def _uris(element: ET.Element, deep: bool) -> list[str]:
    """The namespaces of an element's name and attributes (and its descendants': ``deep``)."""
    found: dict[str, None] = {}
    for node in element.iter() if deep else [element]:
        for name in [node.tag, *node.attrib]:
            uri = _uri(name) if isinstance(name, str) else None
            if uri is not None and uri != NS["xml"]:
                found[uri] = None
    return list(found)


def serialise(doc: XmpDocument, padding: int = 0) -> bytes:
    """The document as an XMP packet (``<?xpacket?>`` around it), UTF-8.

    Each ``rdf:Description`` declares the namespaces used inside it, as ExifTool
    and Exiv2 write them. ``padding``: whitespace before the packet's end, room for
    editing it in place inside a file.
    """
    prefixes = _Prefixes(doc.prefixes)
    ET.indent(doc.root, space=" ")
    out: list[str] = [f'<?xpacket begin="\ufeff" id="{PACKET_ID}"?>\n']
    _write(doc.root, set(), prefixes, out)
    out.append("\n")
    if padding:
        line = " " * 99 + "\n"
        out.append(line * (padding // len(line)))
    out.append('<?xpacket end="w"?>')
    return "".join(out).encode("utf-8")


def _write(element: ET.Element, scope: set[str], prefixes: _Prefixes, out: list[str]) -> None:
    def name(qualified: str) -> str:
        uri = _uri(qualified)
        if uri is None:
            return qualified
        local = qualified.partition("}")[2]
        return f"xml:{local}" if uri == NS["xml"] else f"{prefixes(uri)}:{local}"

    new = [u for u in _uris(element, deep=element.tag == DESCRIPTION) if u not in scope]
    parts = [name(element.tag)]
    parts += [f"xmlns:{prefixes(u)}={quoteattr(u)}" for u in new]
    parts += [f"{name(k)}={quoteattr(v)}" for k, v in element.attrib.items()]
    if len(element) == 0 and not element.text:
        out.append(f"<{' '.join(parts)}/>")
    else:
        out.append(f"<{' '.join(parts)}>")
        if element.text:
            out.append(escape(element.text))
        inner = scope | set(new)
        for child in element:
            _write(child, inner, prefixes, out)
        out.append(f"</{parts[0]}>")
    if element.tail:
        out.append(escape(element.tail))


# --- one photo -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TagOptions:
    """Where ``facematch tag`` writes: the sidecar's form, or inside the photo; or nowhere."""

    sidecar_name: str = "photo.jpg.xmp"
    in_file: bool = False
    dry_run: bool = False


def clean_name(name: str) -> str:
    """A name as XML can hold it: characters XML 1.0 forbids are left out."""
    return NOT_XML.sub("", name).strip()


class Tagger:
    """Writes the regions of each matched photo; one per run (it refuses two photos one
    sidecar, as ``photo.jpg`` and ``photo.png`` would share ``photo.xmp``)."""

    def __init__(self, options: TagOptions) -> None:
        self.options = options
        self.targets: dict[str, str] = {}
        self.uncertain = 0
        # Photos whose sidecar in the other form (photo.xmp for photo.jpg.xmp) was merged.
        self.other_form = 0
        # Photos written --in-file that have a sidecar, which photo managers may read instead.
        self.sidecar_beside = 0

    def __call__(self, result: ImageResult) -> TagResult:
        uncertain = sum(1 for f in result.faces if f.name is not None and f.uncertain)
        self.uncertain += uncertain
        if result.status == "error":
            return TagResult(result.path, "error", error=result.error, uncertain=uncertain)
        named = [
            (clean_name(f.name), f.box)
            for f in result.faces
            if f.name is not None and not f.uncertain and clean_name(f.name)
        ]
        return self.tag(result.path, named, uncertain)

    def tag(self, path: str, named: Sequence[tuple[str, FaceBox]], uncertain: int = 0) -> TagResult:
        """Write (or with ``dry_run`` plan) the regions of one photo; never raises."""
        options = self.options
        target = path if options.in_file else sidecar_path(path, options.sidecar_name)
        try:
            key = os.path.realpath(target)
            if self.targets.setdefault(key, path) != path:
                raise MetadataError(
                    f"{printable(target)} is the sidecar of {printable(self.targets[key])} too; "
                    "use --sidecar-name photo.jpg.xmp"
                )
            return self._tag(path, target, named, uncertain)
        except (ImageError, MetadataError) as exc:
            return TagResult(path, "error", target, str(exc), uncertain=uncertain)
        except OSError as exc:
            message = write_failure(exc, printable(target))
            return TagResult(path, "error", target, message, uncertain=uncertain)

    def _tag(
        self, path: str, target: str, named: Sequence[tuple[str, FaceBox]], uncertain: int
    ) -> TagResult:
        options = self.options
        info = photo_info(path)
        faces = [
            TaggedFace(name, box, stored_area(box, info.width, info.height, info.orientation))
            for name, box in named
        ]
        original: bytes | None = None
        if options.in_file:
            if info.format not in embed.EMBEDDED_FORMATS:
                raise MetadataError(
                    f"XMP is written inside JPEG and PNG files only (this is {info.format}); "
                    "leave out --in-file for a sidecar"
                )
            original = Path(os.path.realpath(path)).read_bytes()
            existing = embed.embedded_xmp(original)
            exists = True
            self.sidecar_beside += bool(existing_sidecars(path))
        else:
            exists = os.path.lexists(target)
            other = [s for s in existing_sidecars(path) if s != target]
            if exists:
                existing = read_sidecar(target)
            elif other:  # what another tool keeps there must not vanish from view
                self.other_form += 1
                existing = read_sidecar(other[0])
            else:
                existing = info.xmp
        try:
            doc = parse_xmp(existing) if existing else new_document()
        except MetadataError as exc:
            where = "the XMP inside the photo" if options.in_file or not exists else target
            raise MetadataError(f"{printable(where)}: {exc}") from None
        merged = merge(doc, faces, info.width, info.height)
        done = TagResult(
            path,
            "unchanged",
            target,
            faces=tuple(merged.written),
            removed=tuple(merged.removed),
            kept=merged.kept,
            covered=merged.covered,
            uncertain=uncertain,
        )
        if not merged.changed:
            return done if exists else replace(done, status="skipped")
        if options.dry_run:
            return replace(done, status="would_write")
        if original is not None:
            packet = serialise(doc, PADDING)
            try:
                data = embed.with_xmp(original, packet)
            except MetadataError:
                data = embed.with_xmp(original, serialise(doc))  # without the padding
            _write_file(os.path.realpath(path), data)
        else:
            _write_file(target, serialise(doc) + b"\n")
        return replace(done, status="written")


def _write_file(path: str, data: bytes) -> None:
    """Write a file whole or not at all, keeping the mode of the one it replaces."""
    try:
        mode: int | None = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    with atomic_file(Path(path), mode=mode) as stream:
        stream.write(data)
