"""Face regions in XMP, read: MWG's, Microsoft Photo's and ACDSee's, in a sidecar or the
photo itself.

Photo managers keep the people of a photo as regions in its XMP: MWG's
``mwg-rs:Regions`` (Immich, digiKam, Lightroom, PhotoPrism, Picasa read it),
Microsoft Photo's ``MP:RegionInfo`` (digiKam writes it beside MWG, Windows reads
it) and ACDSee's ``acdsee-rs:Regions`` (ACDSee's own, laid out like MWG's). All
give a region's place as fractions of the image *as stored*, before
the EXIF orientation turns it upright; facematch's boxes are in upright pixels,
so :func:`upright_box` and :func:`stored_area` map between the two for all
eight orientations (the same turns Pillow's ``exif_transpose`` makes).

XMP is RDF/XML written by many tools in several equivalent forms: a struct's
fields as child elements, as attributes, or inside a nested ``rdf:Description``.
:func:`fields` reads them all alike. Parsing goes through ``defusedxml`` with
DTDs refused outright (XMP never has one), so entity expansion ("billion
laughs") and external entities cannot reach the parser's expansion at all; a
file that is not XMP is a :class:`MetadataError` with a one-line reason.
"""

from __future__ import annotations

import io
import math
import os
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from facematch.errors import ImageError, MetadataError
from facematch.records import Area, FaceBox, FaceRegion, PhotoRegions, RegionFace

NS: dict[str, str] = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xml": "http://www.w3.org/XML/1998/namespace",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "mwg-rs": "http://www.metadataworkinggroup.com/schemas/regions/",
    "stDim": "http://ns.adobe.com/xap/1.0/sType/Dimensions#",
    "stArea": "http://ns.adobe.com/xmp/sType/Area#",
    "MP": "http://ns.microsoft.com/photo/1.2/",
    "MPRI": "http://ns.microsoft.com/photo/1.2/t/RegionInfo#",
    "MPReg": "http://ns.microsoft.com/photo/1.2/t/Region#",
    "acdsee-rs": "http://ns.acdsee.com/regions/",
    "acdsee-stArea": "http://ns.acdsee.com/sType/Area#",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    # facematch's own: what it added to the keyword lists, so that it can take back
    # exactly that. A ``.invalid`` host (RFC 2606) can never be anyone else's.
    "facematch": "http://ns.facematch.invalid/xmp/1.0/",
}

# What marks a region as facematch's: ``Extensions/xmp:CreatorTool`` (MWG's way of
# carrying any other property inside a region).
CREATOR = "facematch"

# Sidecars and packets larger than this are refused unread (XMP of photos is kilobytes).
MAX_XMP_BYTES = 16 * 1024 * 1024
# Two regions this close (intersection over union of their areas) are the same face.
SAME_FACE_IOU = 0.5

TURNED = frozenset({5, 6, 7, 8})
ORIENTATION_TAG = 0x0112


def q(prefix: str, name: str) -> str:
    """ElementTree's name of ``prefix:name``: ``{uri}name``."""
    return f"{{{NS[prefix]}}}{name}"


RDF = q("rdf", "RDF")
DESCRIPTION = q("rdf", "Description")
LI = q("rdf", "li")
ARRAYS = frozenset({q("rdf", "Bag"), q("rdf", "Seq"), q("rdf", "Alt")})
RESOURCE = q("rdf", "resource")
MWG_REGIONS = q("mwg-rs", "Regions")
MP_REGION_INFO = q("MP", "RegionInfo")
ACDSEE_REGIONS = q("acdsee-rs", "Regions")


# --- parsing ---------------------------------------------------------------------------


@dataclass
class XmpDocument:
    """A parsed XMP packet: its element tree, and the prefix it used for each namespace."""

    root: ET.Element
    prefixes: dict[str, str]

    @property
    def rdf(self) -> ET.Element:
        found = self.root if self.root.tag == RDF else self.root.find(f".//{RDF}")
        assert found is not None  # parse_xmp and new_document make sure of it
        return found


def new_document() -> XmpDocument:
    """An empty XMP packet: ``x:xmpmeta`` holding an empty ``rdf:RDF``."""
    root = ET.Element(q("x", "xmpmeta"))
    ET.SubElement(root, RDF)
    return XmpDocument(root, {})


def parse_xmp(data: bytes | str) -> XmpDocument:
    """Parse an XMP packet or sidecar safely; MetadataError says why it is not XMP."""
    import defusedxml
    import defusedxml.ElementTree as SafeET

    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_XMP_BYTES:
        raise MetadataError(f"XMP of {len(data) / 2**20:.0f} MB, over the 16 MB limit")
    data = data.rstrip(b"\x00 \t\r\n")
    prefixes: dict[str, str] = {}
    try:
        events = SafeET.iterparse(io.BytesIO(data), events=("start-ns",), forbid_dtd=True)
        for _, (prefix, uri) in events:
            prefixes.setdefault(uri, prefix)
        root: ET.Element = events.root  # type: ignore[attr-defined]
    except defusedxml.DTDForbidden:
        raise MetadataError("XML with a DTD (refused: XMP never has one)") from None
    except defusedxml.DefusedXmlException as exc:
        raise MetadataError(f"unsafe XML refused: {type(exc).__name__}") from None
    except ET.ParseError as exc:
        raise MetadataError(f"not well-formed XML: {exc}") from None
    if root.tag != RDF and root.find(f".//{RDF}") is None:
        raise MetadataError("not XMP: no rdf:RDF element")
    return XmpDocument(root, prefixes)


# --- RDF's forms, read alike -------------------------------------------------------------


def fields(node: ET.Element) -> Iterator[tuple[str, ET.Element | str]]:
    """The fields of a struct (or the properties of an ``rdf:Description``), in order.

    A field is an attribute (a simple value), a child element, or either of those
    on an ``rdf:Description`` nested inside; RDF's own attributes are not fields.
    """
    for key, value in node.attrib.items():
        if not key.startswith(f"{{{NS['rdf']}}}") and not key.startswith(f"{{{NS['xml']}}}"):
            yield key, value
    for child in node:
        if child.tag == DESCRIPTION:
            yield from fields(child)
        else:
            yield child.tag, child


def first_fields(node: ET.Element) -> dict[str, ET.Element | str]:
    """A struct's fields by name; the first of each name when one is repeated."""
    found: dict[str, ET.Element | str] = {}
    for key, value in fields(node):
        found.setdefault(key, value)
    return found


def properties(doc: XmpDocument) -> Iterator[tuple[ET.Element, str, ET.Element | str]]:
    """Every top-level property: the ``rdf:Description`` holding it, its name, its value."""
    for description in doc.rdf.findall(DESCRIPTION):
        for key, value in fields(description):
            yield description, key, value


def items(value: ET.Element | str | None) -> list[ET.Element]:
    """The ``rdf:li`` items of an array property (Bag, Seq or Alt); none for anything else."""
    if not isinstance(value, ET.Element):
        return []
    for child in value:
        if child.tag in ARRAYS:
            return child.findall(LI)
        if child.tag == DESCRIPTION:
            return items(child)
    return []


def text(value: ET.Element | str | None) -> str | None:
    """A simple value's text, stripped; a language alternative's first; None if empty."""
    if value is None:
        return None
    if isinstance(value, ET.Element):
        if RESOURCE in value.attrib:
            value = value.attrib[RESOURCE]
        elif len(value):
            alternatives = items(value)
            return text(alternatives[0]) if alternatives else None
        else:
            value = value.text or ""
    return value.strip() or None


def number(value: ET.Element | str | None) -> float | None:
    """A finite number, or None."""
    word = text(value)
    try:
        result = float(word) if word is not None else math.nan
    except ValueError:
        return None
    return result if math.isfinite(result) else None


# --- regions ---------------------------------------------------------------------------


def centred_area(area: ET.Element | str | None, prefix: str, what: str) -> Area | str:
    """An area struct (``x``, ``y`` its centre, ``w``, ``h``, fields of the namespace
    ``prefix``) as an Area, or why it is not one: ``what`` names the region in the reason."""
    if not isinstance(area, ET.Element):
        return f"{what} without an Area"
    box = first_fields(area)
    unit = text(box.get(q(prefix, "unit")))
    if unit is not None and unit.lower() != "normalized":
        return f"{what} in {unit!r} units, not normalized"
    found = [number(box.get(q(prefix, key))) for key in ("x", "y", "w", "h")]
    if any(v is None for v in found):
        return f"{what} without numbers for x, y, w and h"
    x, y, w, h = (float(v or 0.0) for v in found)
    if w <= 0 or h <= 0:
        return f"{what} of no size"
    return Area(x, y, w, h)


def mwg_region(li: ET.Element) -> FaceRegion | str:
    """One item of an MWG ``RegionList``, or why it is not a usable region."""
    struct = first_fields(li)
    area = centred_area(struct.get(q("mwg-rs", "Area")), "stArea", "a region")
    if isinstance(area, str):
        return area
    extensions = struct.get(q("mwg-rs", "Extensions"))
    tool = (
        text(first_fields(extensions).get(q("xmp", "CreatorTool")))
        if isinstance(extensions, ET.Element)
        else None
    )
    kind = text(struct.get(q("mwg-rs", "Type"))) or "Face"
    name = text(struct.get(q("mwg-rs", "Name")))
    return FaceRegion(name, area, "mwg", tool == CREATOR, kind)


def acdsee_region(li: ET.Element) -> FaceRegion | str:
    """One item of ACDSee's ``RegionList``, or why it is not a usable region.

    Its place is ``DLYArea`` (the area ACDSee shows: drawn by hand, or its detector's
    made rectangular), else ``ALGArea`` (its detector's own); both are laid out as MWG's
    ``Area`` is, in ACDSee's namespace ``acdsee-stArea`` (ExifTool's ``acdsee.config``).
    """
    struct = first_fields(li)
    shown = struct.get(q("acdsee-rs", "DLYArea"))
    if shown is None:
        shown = struct.get(q("acdsee-rs", "ALGArea"))
    area = centred_area(shown, "acdsee-stArea", "an ACDSee region")
    if isinstance(area, str):
        return area
    kind = text(struct.get(q("acdsee-rs", "Type"))) or "Face"
    name = text(struct.get(q("acdsee-rs", "Name")))
    return FaceRegion(name, area, "acdsee", kind=kind)


def mp_region(li: ET.Element) -> FaceRegion | str:
    """One item of Microsoft Photo's ``Regions``, or why it is not a usable region."""
    struct = first_fields(li)
    rectangle = text(struct.get(q("MPReg", "Rectangle")))
    if rectangle is None:
        return "a Microsoft region without a Rectangle"
    parts = rectangle.split(",")
    found = [number(part) for part in parts]
    if len(found) != 4 or any(v is None for v in found):
        return f"a Microsoft region's Rectangle is not 'x, y, w, h': {rectangle[:40]!r}"
    left, top, w, h = (float(v or 0.0) for v in found)
    if w <= 0 or h <= 0:
        return "a Microsoft region of no size"
    name = text(struct.get(q("MPReg", "PersonDisplayName")))
    return FaceRegion(name, Area(left + w / 2, top + h / 2, w, h), "mp")


def mwg_dimensions(regions: ET.Element) -> tuple[float, float] | None:
    """MWG's ``AppliedToDimensions`` (width, height), when given and sane."""
    dims = first_fields(regions).get(q("mwg-rs", "AppliedToDimensions"))
    if not isinstance(dims, ET.Element):
        return None
    given = first_fields(dims)
    w, h = number(given.get(q("stDim", "w"))), number(given.get(q("stDim", "h")))
    return (w, h) if w and h and w > 0 and h > 0 else None


def mwg_items(regions: ET.Element) -> list[ET.Element]:
    return items(first_fields(regions).get(q("mwg-rs", "RegionList")))


def mp_items(info: ET.Element) -> list[ET.Element]:
    return items(first_fields(info).get(q("MPRI", "Regions")))


def acdsee_items(regions: ET.Element) -> list[ET.Element]:
    return items(first_fields(regions).get(q("acdsee-rs", "RegionList")))


def overlap(a: Area, b: Area) -> float:
    """Intersection over union of two areas."""
    width = min(a.x + a.w / 2, b.x + b.w / 2) - max(a.x - a.w / 2, b.x - b.w / 2)
    height = min(a.y + a.h / 2, b.y + b.h / 2) - max(a.y - a.h / 2, b.y - b.h / 2)
    inter = max(0.0, width) * max(0.0, height)
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def same_face(a: FaceRegion, b: FaceRegion) -> bool:
    """Two regions of one face: the same name (any case) over much the same area."""
    return (a.name or "").casefold() == (b.name or "").casefold() and (
        overlap(a.area, b.area) >= SAME_FACE_IOU
    )


@dataclass(frozen=True)
class DocumentRegions:
    """The named face regions of one XMP document, and those it has that cannot be used."""

    regions: tuple[FaceRegion, ...]
    skipped: tuple[str, ...]
    has_regions: bool


def named_faces(doc: XmpDocument) -> DocumentRegions:
    """The named face regions of a document, by Immich's rules.

    MWG regions count only under an ``AppliedToDimensions``; regions with no
    name, and regions of another ``Type`` (Pet, Focus, BarCode), are not
    people and are passed over without a word; malformed ones are reported.
    A Microsoft or ACDSee region that repeats an MWG one (digiKam writes MWG and
    Microsoft regions of each face), or one another, counts once.
    """
    mwg: list[FaceRegion | str] = []
    others: list[FaceRegion | str] = []
    skipped: list[str] = []
    present = False
    for _, key, value in properties(doc):
        if not isinstance(value, ET.Element):
            continue
        if key == MWG_REGIONS:
            present = True
            listed = [mwg_region(li) for li in mwg_items(value)]
            named = [r for r in listed if not isinstance(r, FaceRegion) or r.name]
            if named and mwg_dimensions(value) is None:
                skipped.append(
                    f"{len(named)} MWG region(s) without AppliedToDimensions (not used, as "
                    "Immich does)"
                )
                continue
            mwg += named
        elif key == MP_REGION_INFO:
            present = True
            others += [mp_region(li) for li in mp_items(value)]
        elif key == ACDSEE_REGIONS:
            present = True
            others += [acdsee_region(li) for li in acdsee_items(value)]
    found: list[FaceRegion] = []
    for region in mwg + others:  # MWG's first: the others count where they add a face
        if isinstance(region, str):
            skipped.append(region)
        elif (
            region.name
            and region.kind.casefold() == "face"
            and not any(same_face(region, other) for other in found)
        ):
            found.append(region)
    return DocumentRegions(tuple(found), tuple(skipped), present)


# --- geometry: stored and upright ----------------------------------------------------------


def _upright_point(u: float, v: float, orientation: int) -> tuple[float, float]:
    """Where a point of the stored image (fractions) is once turned upright."""
    return {
        2: (1 - u, v),
        3: (1 - u, 1 - v),
        4: (u, 1 - v),
        5: (v, u),
        6: (1 - v, u),
        7: (1 - v, 1 - u),
        8: (v, 1 - u),
    }.get(orientation, (u, v))


def _stored_point(x: float, y: float, orientation: int) -> tuple[float, float]:
    """Where a point of the upright image (fractions) is in the stored image."""
    return {
        2: (1 - x, y),
        3: (1 - x, 1 - y),
        4: (x, 1 - y),
        5: (y, x),
        6: (y, 1 - x),
        7: (1 - y, 1 - x),
        8: (1 - y, x),
    }.get(orientation, (x, y))


def upright_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """The (width, height) of a stored image once turned upright."""
    return (height, width) if orientation in TURNED else (width, height)


def upright_box(area: Area, width: int, height: int, orientation: int) -> FaceBox:
    """An area of the stored image (``width`` x ``height``) as a box in upright pixels."""
    up_width, up_height = upright_size(width, height, orientation)
    corners = [
        _upright_point(area.x - area.w / 2, area.y - area.h / 2, orientation),
        _upright_point(area.x + area.w / 2, area.y + area.h / 2, orientation),
    ]
    xs = [min(max(x, 0.0), 1.0) * up_width for x, _ in corners]
    ys = [min(max(y, 0.0), 1.0) * up_height for _, y in corners]
    return FaceBox(round(min(ys)), round(max(xs)), round(max(ys)), round(min(xs)))


def stored_area(box: FaceBox, width: int, height: int, orientation: int) -> Area:
    """A box in upright pixels as an area of the stored image (``width`` x ``height``).

    The box is first kept inside the picture: a region never reaches past its edges.
    """
    up_width, up_height = upright_size(width, height, orientation)

    def inside(value: float, size: int) -> float:
        return min(max(value / size, 0.0), 1.0)

    corners = [
        _stored_point(inside(box.left, up_width), inside(box.top, up_height), orientation),
        _stored_point(inside(box.right, up_width), inside(box.bottom, up_height), orientation),
    ]
    us = sorted(u for u, _ in corners)
    vs = sorted(v for _, v in corners)
    return Area((us[0] + us[1]) / 2, (vs[0] + vs[1]) / 2, us[1] - us[0], vs[1] - vs[0])


# --- photos and their sidecars ------------------------------------------------------------


@dataclass(frozen=True)
class PhotoInfo:
    """What tagging needs of a photo, from its header alone: the stored size, the EXIF
    orientation facematch turns it by, its format and its embedded XMP packet."""

    width: int
    height: int
    orientation: int
    format: str | None
    xmp: bytes | None

    @property
    def upright(self) -> tuple[int, int]:
        return upright_size(self.width, self.height, self.orientation)


def photo_info(path: str) -> PhotoInfo:
    """Read a photo's header (no pixels are decoded); ImageError says why it cannot be."""
    from PIL import Image

    from facematch.sources.images import heif_available, open_regular, suffix_needs_heif

    if suffix_needs_heif(Path(path)) and not heif_available():
        raise ImageError("HEIC/HEIF/AVIF needs the optional extra: pip install 'facematch[heic]'")
    try:
        with warnings.catch_warnings(), open_regular(path) as stream:
            warnings.simplefilter("ignore")
            with Image.open(stream) as image:
                orientation = image.getexif().get(ORIENTATION_TAG, 1)
                packet = image.info.get("xmp")
                if packet is None and hasattr(image, "tag_v2"):  # TIFF on older Pillow
                    packet = image.tag_v2.get(700)
                width, height = image.size
                kind = image.format
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError("too many pixels to be a photo (decompression bomb?)") from None
    except (OSError, SyntaxError, ValueError, EOFError, TypeError) as exc:
        reason = str(exc).strip() or type(exc).__name__
        if "cannot identify image file" in reason:
            reason = "not an image, or a format Pillow cannot read"
        raise ImageError(reason) from None
    if isinstance(packet, str):
        packet = packet.encode("utf-8")
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = 1
    return PhotoInfo(width, height, orientation, kind, packet if packet else None)


SIDECAR_NAMES = ("photo.jpg.xmp", "photo.xmp")


def sidecar_path(path: str, name: str = SIDECAR_NAMES[0]) -> str:
    """The sidecar of ``path`` in the form ``name`` names: ``photo.jpg.xmp`` or ``photo.xmp``."""
    if name == "photo.xmp":
        return os.path.splitext(path)[0] + ".xmp"
    return path + ".xmp"


def existing_sidecars(path: str) -> list[str]:
    """The sidecars of a photo that exist: ``photo.jpg.xmp`` first, then ``photo.xmp``
    (each also as ``.XMP``)."""
    found = []
    for form in SIDECAR_NAMES:
        base = sidecar_path(path, form)
        for candidate in (base, base[:-4] + ".XMP"):
            if candidate not in found and os.path.isfile(candidate):
                found.append(candidate)
    return found


def read_sidecar(path: str) -> bytes:
    """A sidecar's bytes; MetadataError when it cannot be read or is too large."""
    from facematch.sources.images import open_regular

    try:
        with open_regular(path) as stream:
            if os.fstat(stream.fileno()).st_size > MAX_XMP_BYTES:
                raise MetadataError(f"{path}: over the 16 MB limit of an XMP sidecar")
            return stream.read(MAX_XMP_BYTES + 1)
    except ImageError as exc:
        raise MetadataError(f"{path}: {exc}") from None
    except OSError as exc:
        raise MetadataError(f"{path}: {exc.strerror or exc}") from None


def photo_regions(path: str) -> PhotoRegions:
    """The named face regions of a photo, as boxes in upright pixels; never raises.

    A sidecar (``photo.jpg.xmp``, then ``photo.xmp``) that has regions wins over the
    XMP inside the photo, as photo managers read them; a sidecar that cannot be read
    is an error, not a reason to fall back silently.
    """
    try:
        info = photo_info(path)
        sources: list[tuple[str, bytes]] = [(s, read_sidecar(s)) for s in existing_sidecars(path)]
        if info.xmp is not None:
            sources.append(("embedded", info.xmp))
        for where, data in sources:
            try:
                found = named_faces(parse_xmp(data))
            except MetadataError as exc:
                raise MetadataError(f"{where}: {exc}") from None
            if found.has_regions:
                return _as_boxes(path, where, found, info)
        return PhotoRegions(path, xmp=sources[0][0] if sources else None)
    except (ImageError, MetadataError) as exc:
        return PhotoRegions(path, error=str(exc))


def _as_boxes(path: str, where: str, found: DocumentRegions, info: PhotoInfo) -> PhotoRegions:
    faces = tuple(
        RegionFace(
            region.name or "",
            upright_box(region.area, info.width, info.height, info.orientation),
            region.source,
        )
        for region in found.regions
    )
    return PhotoRegions(path, faces, where, skipped=found.skipped)


def names_in(regions: Sequence[RegionFace]) -> list[str]:
    """The distinct names of some regions, in order."""
    return list(dict.fromkeys(r.name for r in regions))
