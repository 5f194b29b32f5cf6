"""Box maths, in one place: clip, grow, scale, overlap, and joining the boxes of several passes.

Boxes are ``FaceBox`` (top, right, bottom, left) in image pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

from facematch.records import FaceBox

#: Two boxes overlapping this much (intersection over union) are one face.
SAME_FACE_IOU = 0.3


def trim_box(box: FaceBox, height: int, width: int) -> FaceBox:
    """Clip a box to the image, as face_recognition's ``_trim_css_to_bounds`` does."""
    return FaceBox(
        max(box.top, 0), min(box.right, width), min(box.bottom, height), max(box.left, 0), box.roll
    )


def grow_box(box: FaceBox, share: float, width: int, height: int) -> FaceBox:
    """The box grown by ``share`` of its size on every side, within the image."""
    grow_x = round((box.right - box.left) * share)
    grow_y = round((box.bottom - box.top) * share)
    return FaceBox(
        max(0, box.top - grow_y),
        min(width, box.right + grow_x),
        min(height, box.bottom + grow_y),
        max(0, box.left - grow_x),
    )


def scale_box(box: FaceBox, factor: float) -> FaceBox:
    """Every edge multiplied by ``factor`` and rounded (a box on a resized copy)."""
    top, right, bottom, left = (round(v * factor) for v in box.css())
    return FaceBox(top, right, bottom, left, box.roll)


def shift_box(box: FaceBox, down: int, right: int) -> FaceBox:
    """The box moved ``down`` and ``right`` pixels (a box on a crop: minus its corner)."""
    return FaceBox(box.top + down, box.right + right, box.bottom + down, box.left + right, box.roll)


def iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    width = min(a.right, b.right) - max(a.left, b.left)
    height = min(a.bottom, b.bottom) - max(a.top, b.top)
    if width <= 0 or height <= 0:
        return 0.0
    shared = width * height
    return shared / (a.area + b.area - shared)


def unite(found: Sequence[Sequence[FaceBox]]) -> list[FaceBox]:
    """Boxes of several passes, a face found twice kept once (from the earlier pass)."""
    united: list[FaceBox] = []
    for boxes in found:
        united += [b for b in boxes if all(iou(b, u) < SAME_FACE_IOU for u in united)]
    return united


def reach(box: FaceBox, found: Sequence[Sequence[FaceBox]]) -> FaceBox:
    """The box enclosing ``box`` and every box of any pass that is the same face.

    Passes disagree most on faces cut by the frame (one box stops at the edge of
    what it saw, a mirrored pass sees the whole face): the face is described from
    its first box, and covered out to the farthest reach of all of them.
    """
    same = [b for boxes in found for b in boxes if iou(b, box) >= SAME_FACE_IOU]
    return FaceBox(
        min([box.top, *(b.top for b in same)]),
        max([box.right, *(b.right for b in same)]),
        max([box.bottom, *(b.bottom for b in same)]),
        min([box.left, *(b.left for b in same)]),
    )
