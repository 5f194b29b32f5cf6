"""How likely a stranger is to fall within tolerance of somebody, and ``--tolerance auto``.

dlib's 0.6 was tuned to decide whether two faces are the same person. A
gallery search makes one such decision per known face, so a stranger's chance
of being named grows with the gallery. Measured on lfw-dev (LFW's development
people, split by person into a tuning and a checking half:
``benchmarks/accuracy/sureness.py``), the chance that a stranger is within
``t`` of one of ``n`` known faces is

    1 - (1 - F(t)) ** (n ** STRANGER_EXPONENT)

where ``F`` is a normal distribution (``STRANGER_MEAN``, ``STRANGER_SD``):
the ``n`` decisions are not independent (a stranger near one face tends to be
near its look-alikes too), so they count as ``n ** 0.882`` independent ones.
Fitted on the tuning half's galleries of 1 to 300 people; how well it holds on
the checking half is in docs/measurements/sureness.md. Each face's
``stranger_chance`` is this at its distance: a name above ``UNCERTAIN_CHANCE``
is marked uncertain, and ``redact`` keeps a face clear only up to ``KEEP_CHANCE``.

``auto_tolerance`` is a curve: 0.6 for galleries of up to about a dozen faces
(face_recognition's answers), lower as the gallery grows (docs/guide/matching.md).
It was first fitted on the shared photo sets; on lfw-dev's open-set check it
names more people right than any curve re-fitted from the model above, so it
is kept (``benchmarks/accuracy/openset.py``; numbers in docs/measurements/accuracy.md).

``local_tolerances`` then adapts the auto tolerance to each face's neighbourhood,
as open-set identification systems normalise scores by the gallery: a face whose
nearest known people are closer than usual (it sits in a crowded part of face
space, where strangers also land near somebody) gets a tighter tolerance, a face
in a sparse part a looser one, never above 0.6. "Usual" is the gallery's own
median, so the rule needs no constant measured elsewhere.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

# The auto tolerance curve (the shared sets' different-person distances; see above).
CURVE_MEAN = 0.8566
CURVE_SD = 0.0891
CURVE_RATE = 0.03
MAX_TOLERANCE = 0.6

# A stranger's chance of being within a tolerance of somebody: lfw-dev fit
# (python -m benchmarks.accuracy.sureness --fit: the tuning half of lfw-dev, galleries of 1-300).
STRANGER_MEAN = 0.8828
STRANGER_SD = 0.1184
STRANGER_EXPONENT = 0.882
# Warn when a stranger's chance of being named exceeds this.
WARN_RATE = 0.10
# A name is uncertain when a stranger would come as close with a chance above this.
UNCERTAIN_CHANCE = 0.005
# ``redact`` keeps a named face clear only when a stranger's chance is at most this.
KEEP_CHANCE = 0.001

# Local adaptation of the auto tolerance (benchmarks/accuracy/openset.py).
LOCAL_PEOPLE = 5  # how many nearest other people describe a neighbourhood
LOCAL_WEIGHT = 0.75  # tolerance change per unit of neighbourhood distance
LOCAL_MIN_PEOPLE = 10  # smaller galleries keep the plain auto tolerance

_CURVE = NormalDist(CURVE_MEAN, CURVE_SD)
_STRANGER = NormalDist(STRANGER_MEAN, STRANGER_SD)


def stranger_match_rate(tolerance: float, known_faces: int) -> float:
    """Estimated chance that a stranger is within ``tolerance`` of one of ``known_faces``."""
    per_face = _STRANGER.cdf(tolerance)
    return float(1.0 - (1.0 - per_face) ** (max(known_faces, 1) ** STRANGER_EXPONENT))


def stranger_chance(distance: float, known_faces: int) -> float:
    """The chance that a stranger comes within ``distance`` of somebody in a gallery
    of ``known_faces``: how surprising a name at this distance would be if the face
    were nobody the gallery knows. Two significant digits (it is an estimate)."""
    return float(f"{stranger_match_rate(distance, known_faces):.2g}")


def uncertain(chance: float) -> bool:
    """Whether a name with this ``stranger_chance`` is to be marked uncertain."""
    return chance > UNCERTAIN_CHANCE


def auto_tolerance(known_faces: int, rate: float = CURVE_RATE) -> float:
    """The auto tolerance for a gallery of ``known_faces`` (0.6 up to about a dozen)."""
    per_face = 1.0 - (1.0 - rate) ** (1.0 / max(known_faces, 1))
    return min(MAX_TOLERANCE, round(_CURVE.inv_cdf(per_face), 4))


def local_tolerances(
    base: float,
    named_spread: NDArray[np.float64],
    face_spread: NDArray[np.float64],
    usual: float,
) -> NDArray[np.float64]:
    """Each face's tolerance: ``base`` moved by how crowded its neighbourhood is.

    ``named_spread``: for the person each face is nearest to, the mean distance
    from their photos to their ``LOCAL_PEOPLE`` nearest other known people;
    ``face_spread``: the face's mean distance to its ``LOCAL_PEOPLE`` nearest
    known people after the best; ``usual``: the gallery's median photo spread.
    """
    shift = 0.5 * (named_spread - usual) + 0.5 * (face_spread - usual)
    return np.minimum(base + LOCAL_WEIGHT * shift, MAX_TOLERANCE)
