"""Verification and identification metrics for ``facematch evaluate`` (numpy only).

Conventions used by every function here
----------------------------------------
* A *pair* is two face images with a distance between their embeddings and a
  flag saying whether they show the same person.  Scores are distances: lower
  means more similar.
* A pair is **accepted** ("same person") when ``distance <= threshold``.
* A missing distance (``NaN``, or ``None`` in a list) means no face was found in
  one of the two images.  Such a pair is **never accepted**, at any threshold:
  a *same* pair without a distance is a false reject everywhere, a *different*
  pair without a distance is a correct reject.  Missing pairs always stay in
  the denominators; they are counted and reported (:class:`PairCounts`,
  :class:`Roc`), never dropped.  Infinite distances are rejected as input
  errors, so that "missing" has exactly one spelling.
* FAR (false accept rate) = accepted different pairs / all different pairs.
  TAR (true accept rate) = accepted same pairs / all same pairs.
  FRR (false reject rate) = 1 - TAR.

Definitions chosen
------------------
AUC
    Area under the ROC polyline (FAR on x, TAR on y) from (0, 0) through every
    ROC point to (1, 1), by the trapezoid rule.  The last segment to (1, 1)
    stands for "also accept the pairs without a distance".  This is exactly the
    Mann-Whitney probability that a random same pair has a smaller distance
    than a random different pair, ties counting 1/2, with a missing distance
    ranked worse than every real distance (and two missing distances tied).
    It is computed from integer counts, so it is exact up to one division.
EER
    FAR and FRR are interpolated linearly between consecutive ROC points; the
    EER is the value where they are equal.  The threshold reported is
    interpolated with the same weight between the two points' thresholds
    (the first point's threshold, when the lower point is the ``-inf`` start).
    If the pairs without a distance keep FRR above FAR even when every real
    distance is accepted, the curves never cross: the EER is then the FRR at
    the largest distance (which is ``min over thresholds of max(FAR, FRR)``)
    and the threshold is that largest distance.
TAR at FAR / tolerance for FAR: minimum set size
    A target FAR is measurable only when one false accept is still within it,
    i.e. there are at least ``ceil(1 / target_far)`` different pairs
    (:func:`min_different_pairs`).  With fewer, both functions return ``None``.
    This is the bare minimum for the number to mean anything, not a guarantee
    of statistical precision.
Best threshold
    Accuracy only changes at the distinct distances, so the candidates are the
    midpoints between adjacent distinct distances, plus ``-inf`` (accept no
    pair) and ``+inf`` (accept every pair that has a distance).  The most
    accurate candidate wins; ties go to the candidate closest to ``prefer``
    (0.6, dlib's default tolerance), then to the smaller one.
K-fold accuracy
    LFW style: pairs are split, in the order given, into ``folds`` contiguous
    folds whose sizes differ by at most one (``numpy.array_split``); for each
    fold the threshold is chosen by :func:`best_threshold` on the other folds
    and the accuracy measured on that fold.  The result is the mean and the
    population standard deviation (``ddof=0``) of the per-fold accuracies.
    ``None`` when there are fewer than ``2 * folds`` pairs.
Open-set identification
    A probe whose distance row is all ``NaN`` had no face found.  For a known
    probe that is an error; for a stranger (truth ``-1``) nobody is named,
    which is the right outcome for the user, so it counts as correct in the
    accuracy.  Both are also counted separately (``no_face_known``,
    ``no_face_stranger``).  Single ``NaN`` entries in a row with some real
    distances mean "no distance to that person" and are never the nearest.
    When two people are equally near, the lower person index is the nearest.
Clustering (:func:`clustering_scores`)
    Every face has a true person and a predicted group; group ``-1`` means "in no
    group", and each such face counts as a group of its own (so leaving a face out costs
    recall, never precision). BCubed precision is the mean over faces of the share of
    the face's group that is its person, recall the mean share of its person that is in
    its group; F is their harmonic mean. Pairwise precision is the share of pairs put in
    one group that are one person, recall the share of same-person pairs put in one
    group; with no such pairs the figure is 1 (nothing claimed, nothing missed).
    A group *mixes* people when its faces have more than one true person; a person is
    *split* when their faces that are in groups lie in more than one group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple, TypeAlias, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DLIB_TOLERANCE",
    "ClusteringScores",
    "Eer",
    "KFoldAccuracy",
    "OpenSet",
    "OperatingPoint",
    "PairCounts",
    "Roc",
    "ThresholdChoice",
    "ToleranceChoice",
    "accuracy_at",
    "best_threshold",
    "clustering_scores",
    "equal_error_rate",
    "kfold_accuracy",
    "min_different_pairs",
    "open_set",
    "pair_counts",
    "rank1",
    "roc_auc",
    "roc_curve",
    "tar_at_far",
    "tolerance_for_far",
]

DLIB_TOLERANCE = 0.6
"""dlib's default tolerance; :func:`best_threshold` breaks ties towards it."""

Distances: TypeAlias = ArrayLike | Sequence[float | None]
"""1-d distances; ``NaN`` or ``None`` marks a pair without a distance."""

FloatArray: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.int64]
BoolArray: TypeAlias = NDArray[np.bool_]
_A = TypeVar("_A", bound=NDArray[np.generic])


# --------------------------------------------------------------------------- results


class PairCounts(NamedTuple):
    """How many pairs of each kind, and how many of them have no distance."""

    n_same: int
    n_different: int
    missing_same: int
    missing_different: int

    @property
    def n_pairs(self) -> int:
        return self.n_same + self.n_different

    @property
    def missing(self) -> int:
        return self.missing_same + self.missing_different


@dataclass(frozen=True, eq=False)
class Roc:
    """ROC curve: one point per threshold, thresholds ascending.

    ``thresholds[0]`` is ``-inf`` (nothing accepted, FAR = TAR = 0); then every
    distinct real distance, where all pairs with that distance switch to
    accepted together.  Pairs without a distance are never accepted but are in
    the denominators, so the last point has ``far = 1 - missing_different /
    n_different`` and ``tar = 1 - missing_same / n_same``.  The arrays are
    read-only.
    """

    thresholds: FloatArray
    far: FloatArray
    tar: FloatArray
    accepted_same: IntArray
    accepted_different: IntArray
    counts: PairCounts

    @property
    def frr(self) -> FloatArray:
        """False reject rate, ``1 - tar``."""
        return 1.0 - self.tar


class Eer(NamedTuple):
    eer: float
    threshold: float


class OperatingPoint(NamedTuple):
    tar: float
    threshold: float


class ThresholdChoice(NamedTuple):
    threshold: float
    accuracy: float


class KFoldAccuracy(NamedTuple):
    mean: float
    std: float


class ToleranceChoice(NamedTuple):
    tolerance: float
    tar: float
    far: float


@dataclass(frozen=True)
class OpenSet:
    """Open-set identification outcome counts at one tolerance.

    Known probes (true person in the gallery) end in exactly one of
    ``correct``, ``wrong_person``, ``missed``, ``no_face_known``; strangers in
    exactly one of ``stranger_rejected``, ``stranger_accepted``,
    ``no_face_stranger``.
    """

    correct: int
    wrong_person: int
    missed: int
    no_face_known: int
    stranger_rejected: int
    stranger_accepted: int
    no_face_stranger: int

    @property
    def known(self) -> int:
        return self.correct + self.wrong_person + self.missed + self.no_face_known

    @property
    def strangers(self) -> int:
        return self.stranger_rejected + self.stranger_accepted + self.no_face_stranger

    @property
    def total(self) -> int:
        return self.known + self.strangers

    @property
    def no_face(self) -> int:
        return self.no_face_known + self.no_face_stranger

    @property
    def accuracy(self) -> float:
        """(correct + stranger_rejected + no_face_stranger) / all probes."""
        good = self.correct + self.stranger_rejected + self.no_face_stranger
        return good / self.total


# --------------------------------------------------------------------------- helpers


def _pairs(distances: Distances, same: ArrayLike) -> tuple[FloatArray, BoolArray]:
    """Validate and convert to (float64 distances with NaN, bool same)."""
    d = np.asarray(distances, dtype=np.float64)
    s_raw = np.asarray(same)
    if d.ndim != 1 or s_raw.ndim != 1:
        raise ValueError("distances and same must be 1-d")
    if d.shape != s_raw.shape:
        raise ValueError(f"{d.size} distances but {s_raw.size} same/different flags")
    if np.isinf(d).any():
        raise ValueError("infinite distance; use NaN for a pair without a distance")
    if s_raw.dtype == np.bool_:
        s: BoolArray = s_raw
    elif s_raw.size == 0 or (s_raw.dtype.kind in "iuf" and bool(np.isin(s_raw, (0, 1)).all())):
        s = s_raw.astype(np.bool_)
    else:
        raise ValueError("same must hold booleans (or 0/1)")
    return d, s


def _counts(d: FloatArray, s: BoolArray) -> PairCounts:
    missing = np.isnan(d)
    n_same = int(np.count_nonzero(s))
    return PairCounts(
        n_same=n_same,
        n_different=int(s.size) - n_same,
        missing_same=int(np.count_nonzero(missing & s)),
        missing_different=int(np.count_nonzero(missing & ~s)),
    )


def _sweep(d: FloatArray, s: BoolArray) -> tuple[FloatArray, IntArray, IntArray]:
    """Thresholds (-inf, then distinct real distances ascending) and, at each,
    the cumulative number of accepted same and accepted different pairs."""
    real = ~np.isnan(d)
    rd = d[real]
    rs = s[real]
    order = np.argsort(rd, kind="stable")
    rd = rd[order]
    rs = rs[order]
    zero = np.zeros(1, dtype=np.int64)
    if rd.size == 0:
        return np.full(1, -np.inf), zero, zero.copy()
    # index of the last pair of each run of equal distances
    last = np.flatnonzero(np.append(rd[1:] != rd[:-1], True))
    cum_same = np.cumsum(rs, dtype=np.int64)[last]
    cum_diff = np.cumsum(~rs, dtype=np.int64)[last]
    thresholds = np.concatenate((np.full(1, -np.inf), rd[last]))
    return (
        thresholds,
        np.concatenate((zero, cum_same)),
        np.concatenate((zero, cum_diff)),
    )


def _readonly(a: _A) -> _A:
    a.setflags(write=False)
    return a


def _midpoint(lo: float, hi: float) -> float:
    """A threshold in ``[lo, hi)``: the midpoint, or ``lo`` when ``lo`` and
    ``hi`` are so close (adjacent floats) that the midpoint rounds onto ``hi``;
    ``-inf``/``+inf`` at the open ends."""
    if math.isinf(lo):
        return lo
    if math.isinf(hi):
        return hi
    mid = 0.5 * (lo + hi)
    return mid if lo <= mid < hi else lo


def _check_target(target_far: float) -> None:
    if not 0.0 < target_far <= 1.0:
        raise ValueError(f"target_far must be in (0, 1], got {target_far!r}")


# --------------------------------------------------------------------------- verification


def pair_counts(distances: Distances, same: ArrayLike) -> PairCounts:
    """Count same/different pairs and those without a distance."""
    return _counts(*_pairs(distances, same))


def roc_curve(distances: Distances, same: ArrayLike) -> Roc:
    """ROC curve of a set of pairs; needs at least one same and one different pair."""
    d, s = _pairs(distances, same)
    counts = _counts(d, s)
    if counts.n_same == 0 or counts.n_different == 0:
        raise ValueError(
            f"a ROC needs both kinds of pairs ({counts.n_same} same, "
            f"{counts.n_different} different)"
        )
    thresholds, acc_same, acc_diff = _sweep(d, s)
    return Roc(
        thresholds=_readonly(thresholds),
        far=_readonly(acc_diff / counts.n_different),
        tar=_readonly(acc_same / counts.n_same),
        accepted_same=_readonly(acc_same),
        accepted_different=_readonly(acc_diff),
        counts=counts,
    )


def roc_auc(roc: Roc) -> float:
    """Trapezoid area under the ROC from (0, 0) to (1, 1) (module docstring: AUC).

    Equals the Mann-Whitney probability that a random same pair is closer than
    a random different pair, ties 1/2, missing distances worst.
    """
    n_same, n_diff = roc.counts.n_same, roc.counts.n_different
    a_s = [int(v) for v in roc.accepted_same] + [n_same]
    a_d = [int(v) for v in roc.accepted_different] + [n_diff]
    twice_area = sum((a_d[i + 1] - a_d[i]) * (a_s[i + 1] + a_s[i]) for i in range(len(a_s) - 1))
    return float(Fraction(twice_area, 2 * n_same * n_diff))


def equal_error_rate(roc: Roc) -> Eer:
    """Rate where FAR == FRR, linearly interpolated between ROC points.

    See the module docstring (EER) for the threshold reported and the case
    where the two curves never cross.
    """
    n_same, n_diff = roc.counts.n_same, roc.counts.n_different
    a_s = [int(v) for v in roc.accepted_same]
    a_d = [int(v) for v in roc.accepted_different]
    thr = [float(v) for v in roc.thresholds]
    # (FAR - FRR) * n_same * n_diff, exact; strictly increasing along the curve
    gap = [ad * n_same + as_ * n_diff - n_same * n_diff for as_, ad in zip(a_s, a_d, strict=True)]
    i = next((k for k, g in enumerate(gap) if g >= 0), None)
    if i is None:
        return Eer(float(Fraction(n_same - a_s[-1], n_same)), thr[-1])
    if gap[i] == 0:
        return Eer(float(Fraction(a_d[i], n_diff)), thr[i])
    # gap[0] < 0 always (FAR 0, FRR 1), so i >= 1
    alpha = Fraction(-gap[i - 1], gap[i] - gap[i - 1])
    eer = Fraction(a_d[i - 1], n_diff) + alpha * Fraction(a_d[i] - a_d[i - 1], n_diff)
    if math.isinf(thr[i - 1]):
        threshold = thr[i]
    else:
        threshold = thr[i - 1] + float(alpha) * (thr[i] - thr[i - 1])
    return Eer(float(eer), threshold)


def min_different_pairs(target_far: float) -> int:
    """Different pairs needed to measure ``target_far``: ``ceil(1 / target_far)``.

    With that many, a single false accept is still a FAR within the target.
    """
    _check_target(target_far)
    return math.ceil(1.0 / target_far - 1e-9)


def _best_index_for_far(roc: Roc, target_far: float) -> int | None:
    if roc.counts.n_different < min_different_pairs(target_far):
        return None
    # far is non-decreasing; last index whose FAR (as reported) is within target
    return int(np.searchsorted(roc.far, target_far, side="right")) - 1


def tar_at_far(roc: Roc, target_far: float) -> OperatingPoint | None:
    """Best TAR with FAR <= ``target_far``, and the ROC threshold (a distance) giving it.

    ``None`` when there are fewer than :func:`min_different_pairs` different
    pairs.  If even the smallest distance brings FAR over the target, the
    answer is TAR 0 at threshold ``-inf`` (accept nothing).
    """
    i = _best_index_for_far(roc, target_far)
    if i is None:
        return None
    return OperatingPoint(float(roc.tar[i]), float(roc.thresholds[i]))


def tolerance_for_far(
    distances: Distances, same: ArrayLike, target_far: float
) -> ToleranceChoice | None:
    """The tolerance to recommend for ``target_far``, with its TAR and FAR on these pairs.

    Among all thresholds whose FAR on these pairs is <= ``target_far`` this
    takes those accepting the most pairs, i.e. the range between the last
    acceptable distance and the next distinct distance, and returns its
    midpoint (robust, like :func:`best_threshold`).  It is ``+inf`` when
    every real distance can be accepted, ``-inf`` (TAR 0, FAR 0) when not
    even the smallest can.  ``None`` when there are fewer than
    :func:`min_different_pairs` different pairs.
    """
    roc = roc_curve(distances, same)
    i = _best_index_for_far(roc, target_far)
    if i is None:
        return None
    upper = float(roc.thresholds[i + 1]) if i + 1 < roc.thresholds.size else math.inf
    tolerance = _midpoint(float(roc.thresholds[i]), upper)
    return ToleranceChoice(tolerance, float(roc.tar[i]), float(roc.far[i]))


def accuracy_at(distances: Distances, same: ArrayLike, threshold: float) -> float:
    """Fraction of pairs decided right at ``threshold`` (accept when distance <= threshold).

    A pair without a distance is rejected: wrong if same, right if different.
    """
    d, s = _pairs(distances, same)
    if d.size == 0:
        raise ValueError("no pairs")
    if math.isnan(threshold):
        raise ValueError("threshold is NaN")
    with np.errstate(invalid="ignore"):
        accepted = d <= threshold  # NaN compares False: never accepted
    return int(np.count_nonzero(accepted == s)) / d.size


def best_threshold(
    distances: Distances, same: ArrayLike, *, prefer: float = DLIB_TOLERANCE
) -> ThresholdChoice:
    """Threshold maximizing accuracy, and that accuracy (module docstring: Best threshold)."""
    d, s = _pairs(distances, same)
    if d.size == 0:
        raise ValueError("no pairs")
    counts = _counts(d, s)
    thresholds, acc_same, acc_diff = _sweep(d, s)
    # candidate j accepts the pairs with the first j distinct distances (j = 0..k)
    correct = acc_same + (counts.n_different - acc_diff)
    uppers = np.append(thresholds[1:], np.inf)
    candidates = np.array(
        [_midpoint(float(lo), float(hi)) for lo, hi in zip(thresholds, uppers, strict=True)]
    )
    best = correct.max()
    tied = candidates[correct == best]  # ascending
    closeness = np.abs(tied - prefer)
    choice = float(tied[int(np.argmin(closeness))])  # argmin: first, i.e. smaller, on ties
    return ThresholdChoice(choice, int(best) / d.size)


def kfold_accuracy(distances: Distances, same: ArrayLike, folds: int = 10) -> KFoldAccuracy | None:
    """LFW-style k-fold accuracy: mean and population std over folds.

    Contiguous folds in the given order; threshold from :func:`best_threshold`
    on the other folds.  ``None`` with fewer than ``2 * folds`` pairs.
    """
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    d, s = _pairs(distances, same)
    if d.size < 2 * folds:
        return None
    accuracies = []
    for test in np.array_split(np.arange(d.size), folds):
        train = np.ones(d.size, dtype=np.bool_)
        train[test] = False
        threshold = best_threshold(d[train], s[train]).threshold
        accuracies.append(accuracy_at(d[test], s[test], threshold))
    acc = np.array(accuracies)
    return KFoldAccuracy(float(acc.mean()), float(acc.std()))


# --------------------------------------------------------------------------- identification


def _gallery(
    distance_matrix: ArrayLike, truth: ArrayLike
) -> tuple[BoolArray, IntArray, FloatArray, IntArray]:
    """(no_face, nearest person, nearest distance, truth) per probe."""
    dm = np.asarray(distance_matrix, dtype=np.float64)
    t = np.asarray(truth)
    if dm.ndim != 2:
        raise ValueError("the distance matrix must be 2-d (probes x people)")
    n_probes, n_people = dm.shape
    if n_people == 0:
        raise ValueError("the gallery has no people")
    if t.shape != (n_probes,):
        raise ValueError(f"{n_probes} probes but truth has shape {t.shape}")
    if t.size and t.dtype.kind not in "iu":
        raise ValueError("truth must hold integer person indices (-1 for a stranger)")
    t = t.astype(np.int64)
    truth_idx: IntArray = t
    if t.size and (t.min() < -1 or t.max() >= n_people):
        raise ValueError(f"truth indices must be in [-1, {n_people - 1}]")
    missing = np.isnan(dm)
    no_face: BoolArray = np.all(missing, axis=1)
    filled: FloatArray = np.where(missing, np.inf, dm)
    nearest: IntArray = np.argmin(filled, axis=1).astype(np.int64)
    nearest_distance: FloatArray = filled[np.arange(n_probes), nearest]
    return no_face, nearest, nearest_distance, truth_idx


def open_set(distance_matrix: ArrayLike, truth: ArrayLike, tolerance: float) -> OpenSet:
    """Open-set identification counts at ``tolerance`` (module docstring: Open-set).

    ``distance_matrix[p, k]`` is the smallest distance of probe ``p`` to person
    ``k``'s gallery photos; a row of ``NaN`` means no face in the probe.
    ``truth[p]`` is the probe's person index, or ``-1`` for a stranger.  The
    probe is named as its nearest person when that distance is <= tolerance.
    """
    if math.isnan(tolerance):
        raise ValueError("tolerance is NaN")
    no_face, nearest, nearest_distance, t = _gallery(distance_matrix, truth)
    if t.size == 0:
        raise ValueError("no probes")
    named = ~no_face & (nearest_distance <= tolerance)
    known = t >= 0
    stranger = ~known

    def n(mask: BoolArray) -> int:
        return int(np.count_nonzero(mask))

    return OpenSet(
        correct=n(known & named & (nearest == t)),
        wrong_person=n(known & named & (nearest != t)),
        missed=n(known & ~no_face & ~named),
        no_face_known=n(known & no_face),
        stranger_rejected=n(stranger & ~no_face & ~named),
        stranger_accepted=n(stranger & named),
        no_face_stranger=n(stranger & no_face),
    )


def rank1(distance_matrix: ArrayLike, truth: ArrayLike) -> float:
    """Closed-set rank-1 accuracy over probes whose person is in the gallery.

    No tolerance: right when the nearest person is the true one.  A probe
    with no face found counts as wrong.  Strangers (``-1``) are ignored.
    """
    no_face, nearest, _, t = _gallery(distance_matrix, truth)
    known = t >= 0
    if not known.any():
        raise ValueError("no probe whose person is in the gallery")
    right = known & ~no_face & (nearest == t)
    return int(np.count_nonzero(right)) / int(np.count_nonzero(known))


# --------------------------------------------------------------------------- clustering


@dataclass(frozen=True)
class ClusteringScores:
    """How a clustering compares with the truth (module docstring: Clustering)."""

    faces: int
    people: int
    groups: int
    unclustered: int
    bcubed_precision: float
    bcubed_recall: float
    pairwise_precision: float
    pairwise_recall: float
    mixed_groups: int
    split_people: int

    @property
    def bcubed_f(self) -> float:
        return _harmonic(self.bcubed_precision, self.bcubed_recall)

    @property
    def pairwise_f(self) -> float:
        return _harmonic(self.pairwise_precision, self.pairwise_recall)

    @property
    def mixed_share(self) -> float:
        """Share of groups holding more than one person (0 with no groups)."""
        return self.mixed_groups / self.groups if self.groups else 0.0


def _harmonic(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def clustering_scores(truth: ArrayLike, labels: ArrayLike) -> ClusteringScores:
    """Compare predicted groups with true people, one entry of each per face.

    ``truth``: any hashable person per face (ints or strings). ``labels``: predicted
    group per face, ``-1`` for a face in no group.
    """
    true_raw = np.asarray(truth)
    pred = np.asarray(labels, dtype=np.int64)
    if true_raw.ndim != 1 or pred.shape != true_raw.shape:
        raise ValueError("truth and labels must be 1-d with one entry per face")
    n = len(pred)
    _, person = np.unique(true_raw, return_inverse=True)
    person = person.reshape(-1)
    grouped = pred != -1
    # A face in no group is a group of its own: give it a fresh id past the real ones.
    group = pred.copy()
    group[~grouped] = pred.max(initial=-1) + 1 + np.arange(int((~grouped).sum()))
    _, group = np.unique(group, return_inverse=True)
    group = group.reshape(-1)
    cell_key = group.astype(np.int64) * (int(person.max(initial=0)) + 1) + person
    _, cell, cell_size = np.unique(cell_key, return_inverse=True, return_counts=True)
    group_size = np.bincount(group)
    person_size = np.bincount(person)
    together = cell_size[cell.reshape(-1)].astype(np.float64)
    if n:
        b_precision = float(np.mean(together / group_size[group]))
        b_recall = float(np.mean(together / person_size[person]))
    else:
        b_precision = b_recall = 1.0
    same_pairs = int((cell_size * (cell_size - 1) // 2).sum())
    group_pairs = int((group_size * (group_size - 1) // 2).sum())
    person_pairs = int((person_size * (person_size - 1) // 2).sum())
    in_groups = np.unique(cell_key[grouped])
    cell_group = in_groups // (int(person.max(initial=0)) + 1)
    cell_person = in_groups % (int(person.max(initial=0)) + 1)
    return ClusteringScores(
        faces=n,
        people=len(person_size),
        groups=len(np.unique(pred[grouped])),
        unclustered=int((~grouped).sum()),
        bcubed_precision=b_precision,
        bcubed_recall=b_recall,
        pairwise_precision=same_pairs / group_pairs if group_pairs else 1.0,
        pairwise_recall=same_pairs / person_pairs if person_pairs else 1.0,
        mixed_groups=int((np.bincount(cell_group) > 1).sum()) if len(cell_group) else 0,
        split_people=int((np.bincount(cell_person) > 1).sum()) if len(cell_person) else 0,
    )
