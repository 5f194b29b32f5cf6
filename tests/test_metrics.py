"""facematch.evaluate.metrics on hand-made distance sets whose answers are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facematch.evaluate.metrics import (
    OpenSet,
    accuracy_at,
    best_threshold,
    equal_error_rate,
    kfold_accuracy,
    min_different_pairs,
    open_set,
    pair_counts,
    rank1,
    roc_auc,
    roc_curve,
    tar_at_far,
    tolerance_for_far,
)

NAN = math.nan
INF = math.inf


def pairs(same: list[float], different: list[float]) -> tuple[list[float], list[bool]]:
    """Distances and flags, same pairs first."""
    return same + different, [True] * len(same) + [False] * len(different)


def mann_whitney(distances: np.ndarray, same: np.ndarray) -> float:
    """Brute force: P(same distance < different distance), ties 1/2, NaN worst."""
    d = np.where(np.isnan(distances), np.inf, distances)
    s, o = d[same], d[~same]
    wins = (s[:, None] < o[None, :]).sum() + 0.5 * (s[:, None] == o[None, :]).sum()
    return float(wins / (s.size * o.size))


# Same pairs all closer than every different pair.
SEPARABLE = pairs([0.1, 0.2, 0.3, 0.4], [0.7, 0.8, 0.9, 1.0])
# Same pairs all farther than every different pair.
INVERTED = pairs([0.7, 0.8, 0.9, 1.0], [0.1, 0.2, 0.3, 0.4])
# One overlap each way: same 0.5 beyond different 0.4; sorted: s s s d s d d d.
OVERLAP = pairs([0.1, 0.2, 0.3, 0.5], [0.4, 0.6, 0.7, 0.8])


# --------------------------------------------------------------------------- ROC


def test_roc_points_of_separable_set() -> None:
    roc = roc_curve(*SEPARABLE)
    assert roc.thresholds.tolist() == [-INF, 0.1, 0.2, 0.3, 0.4, 0.7, 0.8, 0.9, 1.0]
    assert roc.tar.tolist() == [0, 0.25, 0.5, 0.75, 1, 1, 1, 1, 1]
    assert roc.far.tolist() == [0, 0, 0, 0, 0, 0.25, 0.5, 0.75, 1]
    assert roc.frr.tolist() == [1, 0.75, 0.5, 0.25, 0, 0, 0, 0, 0]
    assert roc.counts == (4, 4, 0, 0)


def test_roc_ties_switch_together_and_auc_counts_ties_half() -> None:
    # same 0.2 ties with different 0.2; the two same pairs at 0.5 tie with each other
    d = [0.5, 0.2, 0.7, 0.5, 0.2]
    s = [True, True, False, True, False]
    roc = roc_curve(d, s)
    assert roc.thresholds.tolist() == [-INF, 0.2, 0.5, 0.7]
    assert roc.accepted_same.tolist() == [0, 1, 3, 3]
    assert roc.accepted_different.tolist() == [0, 1, 1, 2]
    assert roc.tar.tolist() == pytest.approx([0, 1 / 3, 1, 1], abs=1e-15)
    assert roc.far.tolist() == [0, 0.5, 0.5, 1]
    # trapezoids: (0,0)-(.5,1/3) = 1/12, vertical = 0, (.5,1)-(1,1) = 1/2  -> 7/12
    # Mann-Whitney: tie .5 + win 1 (0.2 vs 0.7) + 2 x (lose 0, win 1) = 3.5 / 6
    assert roc_auc(roc) == pytest.approx(7 / 12, abs=1e-15)


def test_roc_arrays_are_read_only() -> None:
    roc = roc_curve(*SEPARABLE)
    with pytest.raises(ValueError):
        roc.tar[0] = 1.0


def test_roc_needs_both_kinds_and_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="both kinds"):
        roc_curve([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="infinite"):
        roc_curve([0.1, INF], [True, False])
    with pytest.raises(ValueError, match="2 distances but 3"):
        roc_curve([0.1, 0.2], [True, False, True])
    with pytest.raises(ValueError, match="booleans"):
        roc_curve([0.1, 0.2], [1, 2])


# --------------------------------------------------------------------------- AUC / EER


def test_separable_set_has_auc_1_and_eer_0() -> None:
    roc = roc_curve(*SEPARABLE)
    assert roc_auc(roc) == 1.0
    eer, threshold = equal_error_rate(roc)
    assert eer == 0.0
    assert threshold == 0.4  # first point where FAR == FRR == 0


def test_inverted_set_has_auc_0_and_eer_1() -> None:
    roc = roc_curve(*INVERTED)
    assert roc_auc(roc) == 0.0
    # FAR reaches 1 at 0.4 while FRR is still 1
    assert equal_error_rate(roc) == (1.0, 0.4)


def test_one_overlap_each_way_gives_eer_quarter_on_a_roc_point() -> None:
    roc = roc_curve(*OVERLAP)
    # at 0.4: 3 of 4 same accepted (FRR .25), 1 of 4 different accepted (FAR .25)
    assert equal_error_rate(roc) == (0.25, 0.4)
    # Mann-Whitney: 15 of 16 (same, different) orderings right, the 0.5/0.4 one wrong
    assert roc_auc(roc) == 15 / 16


def test_eer_interpolates_between_roc_points() -> None:
    # at 0.3: FAR 0, FRR .25; at 0.4 two different pairs switch: FAR .5, FRR .25.
    # FAR - FRR goes -.25 -> +.25, so they meet halfway: EER .25, threshold 0.35.
    roc = roc_curve(*pairs([0.1, 0.2, 0.3, 0.6], [0.4, 0.4, 0.7, 0.8]))
    eer, threshold = equal_error_rate(roc)
    assert eer == 0.25
    assert threshold == pytest.approx(0.35, abs=1e-15)


def test_eer_from_the_minus_inf_start_reports_the_first_distance() -> None:
    # everything tied at 0.5: the curve jumps from (FAR 0, FRR 1) to (FAR 1, FRR 0)
    roc = roc_curve(*pairs([0.5, 0.5], [0.5, 0.5]))
    assert equal_error_rate(roc) == (0.5, 0.5)
    assert roc_auc(roc) == 0.5


def test_eer_when_missing_same_pairs_keep_frr_above_far() -> None:
    # 2 of 3 same pairs have no distance (FRR >= 2/3 everywhere);
    # 1 of 2 different pairs has none (FAR <= 1/2 everywhere): no crossing.
    roc = roc_curve(*pairs([0.1, NAN, NAN], [0.2, NAN]))
    eer, threshold = equal_error_rate(roc)
    assert eer == pytest.approx(2 / 3, abs=1e-15)
    assert threshold == 0.2


def test_missing_distances_are_errors_and_counted() -> None:
    d, s = pairs([0.1, NAN], [0.5, NAN])
    assert pair_counts(d, s) == (2, 2, 1, 1)
    assert pair_counts(d, s).missing == 2
    roc = roc_curve(d, s)
    assert roc.counts == (2, 2, 1, 1)
    assert roc.thresholds.tolist() == [-INF, 0.1, 0.5]
    assert roc.tar.tolist() == [0, 0.5, 0.5]  # missing same pair: rejected, still counted
    assert roc.far.tolist() == [0, 0, 0.5]  # missing different pair: rejected, still counted
    # (0,.5)-(.5,.5) = .25 ; (.5,.5)-(1,1) = .375 ; Mann-Whitney: (1 + 1 + 0 + .5) / 4
    assert roc_auc(roc) == 0.625
    # the missing same pair is wrong at every threshold, the missing different one right
    for threshold in (-INF, 0.0, 0.3, 1.0, 100.0, INF):
        assert accuracy_at(d, s, threshold) <= 0.75
    assert accuracy_at(d, s, 0.3) == 0.75


def test_none_means_missing() -> None:
    roc = roc_curve([0.1, None, 0.5, None], [True, True, False, False])
    assert roc.counts == (2, 2, 1, 1)
    assert accuracy_at([0.1, None, 0.5, None], [1, 1, 0, 0], 0.3) == 0.75


@pytest.mark.parametrize("seed", range(20))
def test_auc_is_mann_whitney_on_random_sets_with_ties_and_missing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    same = rng.random(n) < 0.5
    same[0], same[1] = True, False
    d = np.round(rng.random(n) + np.where(same, 0.0, 0.3), 1)  # coarse: many ties
    d[rng.random(n) < 0.15] = np.nan
    assert roc_auc(roc_curve(d, same)) == pytest.approx(mann_whitney(d, same), abs=1e-12)


# --------------------------------------------------------------------------- TAR at FAR


def test_min_different_pairs_rule() -> None:
    assert min_different_pairs(0.1) == 10
    assert min_different_pairs(0.001) == 1000
    assert min_different_pairs(0.3) == 4
    assert min_different_pairs(1.0) == 1
    for bad in (0.0, -0.1, 1.5, NAN):
        with pytest.raises(ValueError):
            min_different_pairs(bad)


def test_tar_at_far_is_none_when_too_few_different_pairs() -> None:
    same = [0.1, 0.2]
    roc9 = roc_curve(*pairs(same, [0.5 + i / 100 for i in range(9)]))
    assert tar_at_far(roc9, 0.1) is None
    roc10 = roc_curve(*pairs(same, [0.5 + i / 100 for i in range(10)]))
    assert tar_at_far(roc10, 0.1) == (1.0, 0.5)  # one false accept allowed: 0.5


def test_tar_at_far_picks_best_tar_within_target() -> None:
    # 10 different pairs; same pairs interleaved
    same = [0.1, 0.3, 0.45, 0.6, 0.9]
    different = [0.4, 0.5, 0.55, 0.7, 0.75, 0.8, 0.85, 0.95, 0.96, 0.97]
    roc = roc_curve(*pairs(same, different))
    assert tar_at_far(roc, 0.1) == (0.6, 0.45)  # FAR .1 at 0.4..0.45, TAR 3/5
    assert tar_at_far(roc, 0.2) == (0.6, 0.5)  # FAR .2 at 0.5
    assert tar_at_far(roc, 0.3) == (0.8, 0.6)  # FAR .3 from 0.55 to 0.6
    assert tar_at_far(roc, 1.0) == (1.0, 0.97)


def test_tar_at_far_when_the_closest_pair_is_already_too_many_false_accepts() -> None:
    roc = roc_curve(*pairs([0.5], [0.1] * 2 + [0.9] * 8))
    assert tar_at_far(roc, 0.1) == (0.0, -INF)


# --------------------------------------------------------------------------- thresholds


def test_accuracy_at_any_threshold_between_classes_is_1() -> None:
    for threshold in (0.4, 0.45, 0.55, 0.6999):
        assert accuracy_at(*SEPARABLE, threshold) == 1.0
    assert accuracy_at(*SEPARABLE, 0.7) == 7 / 8  # inclusive: 0.7 accepted
    assert accuracy_at(*SEPARABLE, 0.0) == 0.5


def test_best_threshold_is_the_midpoint_of_the_gap() -> None:
    threshold, accuracy = best_threshold(*SEPARABLE)
    assert threshold == pytest.approx(0.55, abs=1e-15)
    assert accuracy == 1.0
    # ties: accept up to 0.3 or up to 0.5 (7 of 8 right); midpoint 0.55 beats 0.35
    threshold, accuracy = best_threshold(*OVERLAP)
    assert threshold == pytest.approx(0.55, abs=1e-15)
    assert accuracy == 0.875


def test_best_threshold_tie_break_prefers_closest_to_dlib_default() -> None:
    # two equally good gaps: midpoints 0.25 and 0.7; 0.7 is closer to 0.6
    d, s = [0.2, 0.3, 0.65, 0.75], [True, False, True, False]
    threshold, accuracy = best_threshold(d, s)
    assert threshold == pytest.approx(0.7, abs=1e-15)
    assert accuracy == 0.75
    assert best_threshold(d, s, prefer=0.2) == (0.25, 0.75)
    # midpoints 0.5 and 0.9: 0.5 is closer
    d, s = [0.4, 0.6, 0.8, 1.0], [True, False, True, False]
    assert best_threshold(d, s) == (0.5, 0.75)


def test_best_threshold_degenerate_sets() -> None:
    assert best_threshold([0.3, 0.5], [False, False]) == (-INF, 1.0)
    assert best_threshold([0.3, 0.5], [True, True]) == (INF, 1.0)
    assert best_threshold([NAN, 0.5], [True, False]) == (-INF, 0.5)


def test_best_threshold_between_adjacent_floats_stays_below_the_upper() -> None:
    a = 0.5
    b = float(np.nextafter(a, 1.0))
    threshold, accuracy = best_threshold([a, b], [True, False])
    assert (threshold, accuracy) == (a, 1.0)
    assert accuracy_at([a, b], [True, False], threshold) == 1.0


# --------------------------------------------------------------------------- k-fold


def separable_interleaved(n: int) -> tuple[list[float], list[bool]]:
    """n pairs alternating same/different: same in [0.1, 0.5], different in [0.7, 1.1]."""
    d = [0.1 + 0.4 * i / n if i % 2 == 0 else 0.7 + 0.4 * i / n for i in range(n)]
    return d, [i % 2 == 0 for i in range(n)]


def test_kfold_on_separable_set_is_perfect() -> None:
    assert kfold_accuracy(*separable_interleaved(20)) == (1.0, 0.0)
    assert kfold_accuracy(*separable_interleaved(37), folds=5) == (1.0, 0.0)


def test_kfold_needs_two_pairs_per_fold() -> None:
    assert kfold_accuracy(*separable_interleaved(19)) is None
    assert kfold_accuracy(*separable_interleaved(9), folds=5) is None
    with pytest.raises(ValueError):
        kfold_accuracy(*separable_interleaved(20), folds=1)


def test_kfold_one_outlier_costs_its_fold_half() -> None:
    d, s = separable_interleaved(20)
    d[0] = 1.5  # a same pair farther than everything, in fold 0 (pairs 0 and 1)
    # folds 1..9 perfect; fold 0: outlier rejected, its different pair right -> 0.5
    # mean = 9.5 / 10; std = sqrt((0.45^2 + 9 * 0.05^2) / 10) = 0.15
    mean, std = kfold_accuracy(d, s) or (NAN, NAN)
    assert mean == pytest.approx(0.95, abs=1e-12)
    assert std == pytest.approx(0.15, abs=1e-12)


def test_kfold_folds_are_contiguous_in_given_order() -> None:
    # 20 pairs: the first two (fold 0) are both wrong for any threshold the other
    # folds choose; contiguous folds put them together -> one fold at 0.
    d, s = separable_interleaved(20)
    d[0], d[1] = 1.5, 0.05
    mean, std = kfold_accuracy(d, s) or (NAN, NAN)
    assert mean == pytest.approx(0.9, abs=1e-12)
    assert std == pytest.approx(0.3, abs=1e-12)


# --------------------------------------------------------------------------- tolerance for FAR


def test_tolerance_for_far_hand_made() -> None:
    same = [0.1, 0.2, 0.3, 0.45]
    different = [0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    d, s = pairs(same, different)
    # one false accept allowed (0.4); next distance is 0.5 -> midpoint of 0.45 and 0.5
    tolerance, tar, far = tolerance_for_far(d, s, 0.1) or (NAN, NAN, NAN)
    assert tolerance == pytest.approx(0.475, abs=1e-15)
    assert (tar, far) == (1.0, 0.1)
    assert tolerance_for_far(d, s, 0.05) is None  # 10 < 20 different pairs
    assert tolerance_for_far(d, s, 1.0) == (INF, 1.0, 1.0)


def test_tolerance_for_far_when_nothing_can_be_accepted() -> None:
    d, s = pairs([0.5], [0.1] * 2 + [0.9] * 8)
    assert tolerance_for_far(d, s, 0.1) == (-INF, 0.0, 0.0)


@pytest.mark.parametrize("seed", range(200))
def test_tolerance_for_far_honours_target_on_its_data(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    n_same, n_diff = (int(v) for v in rng.integers(1, 80, size=2))
    same = np.array([True] * n_same + [False] * n_diff)
    shift = float(rng.uniform(-0.3, 0.5))  # from inverted to well separated
    d = np.round(rng.normal(np.where(same, 0.45, 0.45 + shift), 0.12), 2)  # ties at 0.01
    d[rng.random(d.size) < 0.1] = np.nan
    target = float(rng.uniform(0.005, 1.0))
    result = tolerance_for_far(d, same, target)
    if result is None:
        assert n_diff < math.ceil(1 / target - 1e-9)
        return
    tolerance, tar, far = result
    with np.errstate(invalid="ignore"):
        accepted = d <= tolerance
    assert np.count_nonzero(accepted & ~same) / n_diff == far
    assert np.count_nonzero(accepted & same) / n_same == tar
    assert far <= target
    # and it is the largest such: accepting the next distinct distance breaks the target
    above = d[~np.isnan(d) & (d > tolerance)]
    if above.size:
        with np.errstate(invalid="ignore"):
            next_accepted = d <= above.min()
        assert np.count_nonzero(next_accepted & ~same) / n_diff > target


# --------------------------------------------------------------------------- open set


# probes x people, tolerance 0.6
MATRIX_A = [
    [0.30, 0.70, 0.90],  # person 0: nearest 0 at .30       -> correct
    [0.50, 0.55, 0.80],  # person 1: nearest 0 at .50        -> wrong_person
    [0.80, 0.90, 0.70],  # person 2: nearest 2 at .70 > .6   -> missed
    [NAN, NAN, NAN],  # stranger, no face                    -> no_face_stranger
]
TRUTH_A = [0, 1, 2, -1]

MATRIX_B = [
    [0.70, 0.80, 0.90],  # stranger, nearest .70 > .6        -> stranger_rejected
    [0.90, 0.60, 0.80],  # stranger, nearest 1 at .60 (<=)   -> stranger_accepted
    [NAN, NAN, NAN],  # person 0, no face                    -> no_face_known
    [NAN, 0.20, 0.50],  # person 1; no distance to person 0  -> correct
]
TRUTH_B = [-1, -1, 0, 1]


def test_open_set_counts_matrix_a() -> None:
    result = open_set(MATRIX_A, TRUTH_A, 0.6)
    assert result == OpenSet(
        correct=1,
        wrong_person=1,
        missed=1,
        no_face_known=0,
        stranger_rejected=0,
        stranger_accepted=0,
        no_face_stranger=1,
    )
    assert (result.known, result.strangers, result.total, result.no_face) == (3, 1, 4, 1)
    assert result.accuracy == 0.5  # correct + no-face stranger


def test_open_set_counts_matrix_b() -> None:
    result = open_set(MATRIX_B, TRUTH_B, 0.6)
    assert result == OpenSet(
        correct=1,
        wrong_person=0,
        missed=0,
        no_face_known=1,
        stranger_rejected=1,
        stranger_accepted=1,
        no_face_stranger=0,
    )
    assert result.accuracy == 0.5  # correct + stranger_rejected


def test_open_set_tolerance_moves_probes_between_counts() -> None:
    loose = open_set(MATRIX_A, TRUTH_A, 0.75)  # probe 2 now named, correctly
    assert (loose.correct, loose.wrong_person, loose.missed) == (2, 1, 0)
    assert loose.accuracy == 0.75
    tight = open_set(MATRIX_A, TRUTH_A, 0.2)  # nobody named
    assert (tight.correct, tight.wrong_person, tight.missed) == (0, 0, 3)
    assert tight.accuracy == 0.25


def test_rank1() -> None:
    assert rank1(MATRIX_A, TRUTH_A) == pytest.approx(2 / 3, abs=1e-15)  # probe 1 wrong
    assert rank1(MATRIX_B, TRUTH_B) == 0.5  # the no-face probe is wrong


def test_identification_input_checks() -> None:
    with pytest.raises(ValueError, match=r"\[-1, 2\]"):
        open_set(MATRIX_A, [0, 1, 3, -1], 0.6)
    with pytest.raises(ValueError, match="4 probes"):
        open_set(MATRIX_A, [0, 1, 2], 0.6)
    with pytest.raises(ValueError, match="no probe whose person"):
        rank1(MATRIX_A, [-1, -1, -1, -1])
    with pytest.raises(ValueError, match="no people"):
        open_set(np.zeros((2, 0)), [-1, -1], 0.6)
