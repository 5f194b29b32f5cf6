"""Named faces of sampled frames -> who appears in a video, and when (time ranges).

Consecutive samples of the same person join into one range; a person missing
from up to ``MAX_GAP_SAMPLES`` samples in a row (a turned head, a blink of the
detector, a cut away and back) does not end it. Faces that match nobody form
``unknown_person`` ranges (name None) the same way. A range runs from its
first sample to one sample interval after its last (the last sample stands
for the time until the next one), never past the end of the video.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from facematch.records import Appearance

if TYPE_CHECKING:
    from facematch.records import FaceMatch

# Two missed samples (2 s at the default 1 sample a second) do not end a range:
# measured on the ground-truth videos (docs/measurements/video.md), a detector miss rarely
# lasts longer, and people shown apart are usually further apart than that.
MAX_GAP_SAMPLES = 2


@dataclass
class _Open:
    """A range still open: when it began and was last seen, and its best sample."""

    start: float
    last: float
    index: int
    samples: int
    best: FaceMatch  # nearest to the person; for unknown faces, the largest
    time: float  # when the best sample was taken

    def closed(self, name: str | None, interval: float, duration: float | None) -> Appearance:
        end = self.last + interval
        if duration is not None:
            end = max(self.last, min(end, duration))
        known = name is not None
        return Appearance(
            name,
            self.start,
            end,
            self.samples,
            self.best.distance if known else None,
            self.time,
            self.best.box,
            self.best.stranger_chance if known else None,
            self.best.uncertain,
        )


def _better(candidate: FaceMatch, known: bool, current: FaceMatch) -> bool:
    if known:
        assert candidate.distance is not None and current.distance is not None
        return candidate.distance < current.distance
    return candidate.box.area > current.box.area


def appearances(
    frames: Sequence[tuple[float, Sequence[FaceMatch]]],
    interval: float,
    duration: float | None = None,
    max_gap: int = MAX_GAP_SAMPLES,
) -> list[Appearance]:
    """Time ranges per person from (time, named faces) of frames sampled every ``interval`` s.

    Ranges are sorted by name (unknown faces last), then start.
    """
    open_ranges: dict[str | None, _Open] = {}
    done: list[Appearance] = []
    for index, (time, faces) in enumerate(frames):
        for name in list(open_ranges):
            if index - open_ranges[name].index > max_gap + 1:
                done.append(open_ranges.pop(name).closed(name, interval, duration))
        for face in faces:
            name = face.name
            known = name is not None
            current = open_ranges.get(name)
            if current is None:
                open_ranges[name] = _Open(time, time, index, 1, face, time)
                continue
            if current.index != index:
                current.samples += 1
                current.index, current.last = index, time
            if _better(face, known, current.best):
                current.best, current.time = face, time
    done.extend(r.closed(name, interval, duration) for name, r in open_ranges.items())
    return sorted(done, key=lambda a: (a.name is None, a.name or "", a.start))


def clock(seconds: float) -> str:
    """Seconds as ``HH:MM:SS.mmm``."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"
