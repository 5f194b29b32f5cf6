"""How likely a stranger is to fall within tolerance of somebody, and ``--tolerance auto``.

dlib's 0.6 was tuned to decide whether two faces are the same person. A
gallery search makes one such decision per known face, so a stranger's chance
of being named grows with the gallery: with ``n`` known faces it is
``1 - (1 - F(t))**n``, where ``F(t)`` is the chance that two different people's
faces are within ``t``. We model ``F`` as a normal distribution of
different-person distances, fitted on the shared labelled photos by
``benchmarks/calibrate.py`` (figures in the README).

``auto_tolerance`` picks the largest tolerance, never above 0.6, that keeps a
stranger's chance of being named at ``STRANGER_RATE``: 0.6 for galleries of up
to about a dozen faces, lower as the gallery grows.
"""

from __future__ import annotations

from statistics import NormalDist

# Different-person distances, default settings, measured by benchmarks/calibrate.py.
DIFFERENT_MEAN = 0.8566
DIFFERENT_SD = 0.0891
STRANGER_RATE = 0.02
MAX_TOLERANCE = 0.6
# Warn when a stranger's chance of being named exceeds this.
WARN_RATE = 0.10

_DIFFERENT = NormalDist(DIFFERENT_MEAN, DIFFERENT_SD)


def stranger_match_rate(tolerance: float, known_faces: int) -> float:
    """Estimated chance that a stranger is within ``tolerance`` of one of ``known_faces``."""
    per_face = _DIFFERENT.cdf(tolerance)
    return 1.0 - (1.0 - per_face) ** max(known_faces, 1)


def auto_tolerance(known_faces: int, rate: float = STRANGER_RATE) -> float:
    """The tolerance that keeps a stranger's chance of being named at ``rate``."""
    per_face = 1.0 - (1.0 - rate) ** (1.0 / max(known_faces, 1))
    return min(MAX_TOLERANCE, round(_DIFFERENT.inv_cdf(per_face), 4))
