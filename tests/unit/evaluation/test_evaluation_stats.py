"""The evaluation's statistics on constructed distances, where the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from bioauth.evaluation.calibrate import calibrate_mode, held_out
from bioauth.evaluation.identification import identification
from bioauth.evaluation.protocol import best_threshold
from bioauth.evaluation.rates import (
    fnmr_at_targets,
    rule_of_three,
    supports,
    threshold_at_fmr,
)
from bioauth.evaluation.scoresets import ScoreSet, all_pairs, mode_groups, mode_pairs
from bioauth.matching.fusion import FusionRule
from bioauth.matching.operating_points import ComparisonMode


def _synthetic(subjects: int, per_subject: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Clustered embeddings: each subject a random centre, images scattered around it."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(subjects, 16))
    subject = np.repeat(np.arange(subjects, dtype=np.int32), per_subject)
    embeddings = centres[subject] + rng.normal(scale=0.35, size=(len(subject), 16))
    return embeddings, subject


def test_threshold_allows_floor_of_target_times_n() -> None:
    impostor = np.arange(1, 10_001, dtype=np.float64)  # 10,000 distinct distances
    threshold = threshold_at_fmr(impostor, 1e-3)
    assert np.count_nonzero(impostor <= threshold) == 10
    assert threshold < 11
    assert np.count_nonzero(impostor <= threshold_at_fmr(impostor, 1e-4)) == 1
    assert np.count_nonzero(impostor <= threshold_at_fmr(impostor, 5e-5)) == 0


def test_support_follows_the_rule_of_three() -> None:
    assert supports(3000, 1e-3)
    assert not supports(2999, 1e-3)
    assert supports(30_000, 1e-4)
    assert rule_of_three(30_000) == pytest.approx(1e-4)


def test_rates_count_errors_and_give_intervals() -> None:
    embeddings, subject = _synthetic(60, 4)
    scores = all_pairs(embeddings, subject, 60, FusionRule.MEAN_RAW, "euclidean")
    assert len(scores.genuine) == 60 * 6
    assert len(scores.impostor) == (240 * 239) // 2 - 360
    rates = fnmr_at_targets(scores, (1e-2, 1e-3, 1e-4, 1e-5), bootstrap=200)
    assert [r.supported for r in rates] == [True, True, False, False]
    loose = rates[0]
    assert loose.false_matches is not None
    assert loose.threshold is not None
    assert loose.fnmr is not None
    assert loose.false_matches <= 0.01 * loose.impostors
    assert loose.fnmr == pytest.approx(np.mean(scores.genuine > loose.threshold))
    assert loose.fnmr_ci is not None
    assert loose.fnmr_ci[0] <= loose.fnmr <= loose.fnmr_ci[1]
    stricter = rates[1].fnmr
    assert stricter is not None
    assert stricter >= loose.fnmr  # a stricter point misses more


def test_bootstrap_weighted_impostor_total_is_exact_for_unit_weights() -> None:
    embeddings, subject = _synthetic(10, 3)
    pairs = all_pairs(embeddings, subject, 10, FusionRule.MEAN_RAW, "euclidean")
    assert pairs.impostor_total(np.ones(10)) == len(pairs.impostor)
    fused = mode_pairs(
        embeddings, subject, 10, ComparisonMode(2, 1), FusionRule.MEAN_RAW, "euclidean"
    )
    assert fused.impostor_total(np.ones(10)) == len(fused.impostor)
    weights = np.zeros(10)
    weights[[0, 1]] = [2, 1]  # subject 0 twice, subject 1 once: 2 * (0-1 pairs)
    assert pairs.impostor_total(weights) == 2 * 9


def test_fusion_protocol_groups_follow_file_order() -> None:
    subject = np.asarray([0] * 7 + [1] * 3 + [2] * 1, dtype=np.int32)
    templates, probes = mode_groups(subject, 3, ComparisonMode(3, 2))
    assert templates == [(0, [0, 1, 2]), (1, [7, 8, 9])]
    assert probes == [(0, [3, 4]), (0, [5, 6])]


def test_calibration_points_and_unsupported_targets() -> None:
    embeddings, subject = _synthetic(80, 4)
    scores = all_pairs(embeddings, subject, 80, FusionRule.MEAN_L2_NORMALISED, "euclidean")
    mode = calibrate_mode(scores, (1e-3, 1e-4, 1e-5), "synthetic", 0.01)
    assert [p.name for p in mode.points] == ["fmr_1e-3", "fmr_1e-4"]
    assert mode.unsupported == ("fmr_1e-5",)
    for point in mode.points:
        assert point.measured_fmr <= point.target_fmr
        assert point.impostor_comparisons == len(scores.impostor)


def test_held_out_pools_rotations_and_refuses_a_verdict_on_thin_data() -> None:
    embeddings, subject = _synthetic(100, 4)
    scores = all_pairs(embeddings, subject, 100, FusionRule.MEAN_RAW, "euclidean")
    folds = (np.arange(100) % 5 + 1).astype(np.int32)
    result = held_out(scores, folds, ComparisonMode(1, 1), 1e-2)
    assert result.rotations == 5
    within = sum(len(scores.restrict(folds == f).impostor) for f in range(1, 6))
    assert result.impostors == within
    assert result.passed is not None
    thin = held_out(scores, folds, ComparisonMode(1, 1), 1e-5)  # no fold set supports 1e-5
    assert thin.passed is None
    assert thin.rotations == 0


def test_best_threshold_maximises_accuracy() -> None:
    distances = np.asarray([0.1, 0.2, 0.3, 0.7, 0.8, 0.25])
    genuine = np.asarray([True, True, True, False, False, False])
    threshold = best_threshold(distances, genuine)
    # Accepting up to 0.2 or up to 0.3 both get 5 of 6 right; the stricter one wins the tie.
    assert threshold == pytest.approx(0.225)
    accuracy = np.mean((distances <= threshold) == genuine)
    assert accuracy == pytest.approx(5 / 6)


def test_identification_finds_mates_and_calibrates_a_margin() -> None:
    embeddings, subject = _synthetic(400, 3, seed=5)
    result = identification(
        embeddings, subject, 400, ComparisonMode(1, 1), FusionRule.MEAN_L2_NORMALISED, "euclidean"
    )
    assert result.gallery_sizes == (200, 200)
    assert len(result.mated_best) == 400 * 2
    assert len(result.nonmated_best) == 400 * 3
    assert result.mated_correct.mean() > 0.9
    assert result.margin is not None
    assert result.margin >= 0
    figures = result.at_fpir(1e-2)
    assert figures["supported"]
    assert figures["fpir"] <= 1e-2
    assert figures["fnir_with_margin"] >= figures["fnir"]
    assert figures["fpir_with_margin"] <= figures["fpir"]


def test_restrict_keeps_only_pairs_inside_the_mask() -> None:
    embeddings, subject = _synthetic(6, 2)
    scores: ScoreSet = all_pairs(embeddings, subject, 6, FusionRule.MEAN_RAW, "euclidean")
    keep = np.asarray([True, True, True, False, False, False])
    inside = scores.restrict(keep)
    assert set(inside.genuine_subject.tolist()) <= {0, 1, 2}
    assert len(inside.impostor) == 3 * 4  # 3 subjects x 2 images: C(6,2) - 3 genuine
    assert inside.impostor_total(np.ones(6)) == len(inside.impostor)
