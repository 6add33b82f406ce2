"""The decision policy on constructed calibrations and scores."""

from __future__ import annotations

import numpy as np
import pytest

from bioauth.matching.decision import Decision, DecisionReason, ScoreBand, Verdict
from bioauth.matching.operating_points import ComparisonMode
from bioauth.matching.policy import (
    Candidate,
    choose_verify_mode,
    decide_identify,
    decide_verify,
    identify_point,
    max_gallery_size,
    verify,
)
from tests.support.calibration import calibration, mode, point, standard

E1P1 = ComparisonMode(1, 1)
E3P1 = ComparisonMode(3, 1)
E3P3 = ComparisonMode(3, 3)


def _mode(verdict: Verdict) -> ComparisonMode:
    return ComparisonMode(verdict.enrolment_images, verdict.probe_images)


def test_each_mode_decides_at_its_own_threshold() -> None:
    """The same distance passes fmr_1e-4 in e1p1 (0.45) and fails it in e3p1 (0.36)."""
    cal = standard()
    single = decide_verify(0.40, E1P1, cal, "fmr_1e-4")
    fused = decide_verify(0.40, E3P1, cal, "fmr_1e-4")
    assert (single.decision, single.operating_point) == (Decision.APPROVE, "fmr_1e-4")
    assert single.reason is None
    assert (fused.decision, fused.reason) == (
        Decision.DECLINE,
        DecisionReason.SCORE_BELOW_THRESHOLD,
    )
    assert _mode(fused) == E3P1


def test_threshold_is_inclusive() -> None:
    """A distance exactly at the threshold matches (the calibration counts it as a match)."""
    assert decide_verify(0.45, E1P1, standard(), "fmr_1e-4").decision is Decision.APPROVE


def test_uncalibrated_mode_is_refused() -> None:
    """e2p2 has no calibration at all: no threshold is borrowed from another mode."""
    outcome = decide_verify(0.01, ComparisonMode(2, 2), standard(), "fmr_1e-4")
    assert (outcome.decision, outcome.reason) == (
        Decision.DECLINE,
        DecisionReason.NO_OPERATING_POINT,
    )
    assert outcome.operating_point == ""
    assert outcome.band is None


def test_point_missing_in_mode_is_refused() -> None:
    """e3p3 supports only fmr_1e-3; fmr_1e-4 there is refused even for a perfect score."""
    outcome = decide_verify(0.0, E3P3, standard(), "fmr_1e-4")
    assert outcome.reason is DecisionReason.NO_OPERATING_POINT


def test_uncalibrated_mode_asks_for_frames_when_a_richer_mode_has_the_point() -> None:
    """e3p2 is not calibrated but e3p3 holds fmr_1e-3: with frames still to come, RETRY."""
    outcome = decide_verify(
        0.1, ComparisonMode(3, 2), standard(), "fmr_1e-3", more_frames_possible=True
    )
    assert (outcome.decision, outcome.reason) == (Decision.RETRY, DecisionReason.MORE_FRAMES_NEEDED)
    closed = decide_verify(0.1, ComparisonMode(3, 2), standard(), "fmr_1e-3")
    assert closed.reason is DecisionReason.NO_OPERATING_POINT


def test_unknown_point_name_is_refused_everywhere() -> None:
    outcome = decide_verify(0.0, E1P1, standard(), "fmr_1e-9")
    assert outcome.reason is DecisionReason.NO_OPERATING_POINT


def test_score_bands_follow_the_calibrated_points() -> None:
    cal = standard()
    bands = [decide_verify(d, E1P1, cal, "fmr_1e-4").band for d in (0.30, 0.42, 0.48, 0.60)]
    assert bands == [ScoreBand.VERY_HIGH, ScoreBand.HIGH, ScoreBand.LOW, ScoreBand.VERY_LOW]


def test_choose_verify_mode_takes_the_richest_mode_holding_the_point() -> None:
    cal = standard()
    assert choose_verify_mode(cal, "fmr_1e-4", 3, 3) == E3P1
    assert choose_verify_mode(cal, "fmr_1e-3", 3, 3) == E3P3
    assert choose_verify_mode(cal, "fmr_1e-4", 2, 3) == E1P1
    assert choose_verify_mode(cal, "fmr_1e-6", 3, 3) == E1P1
    assert choose_verify_mode(cal, "fmr_1e-9", 3, 3) is None


def test_verify_from_embeddings_fuses_the_chosen_mode() -> None:
    """Three enrolment images and one probe decide in e3p1 with e3p1's threshold."""
    rng = np.random.default_rng(7)
    base = rng.normal(size=16)
    enrolment = np.stack([base + rng.normal(scale=0.01, size=16) for _ in range(3)])
    same = (base + rng.normal(scale=0.01, size=16))[None, :]
    other = rng.normal(size=(1, 16))
    cal = standard()
    approved = verify(enrolment, same, cal, "fmr_1e-4")
    assert (approved.decision, _mode(approved)) == (Decision.APPROVE, E3P1)
    declined = verify(enrolment, other, cal, "fmr_1e-4")
    assert declined.decision is Decision.DECLINE
    refused = verify(enrolment, same, cal, "fmr_1e-9", more_frames_possible=True)
    assert refused.reason is DecisionReason.NO_OPERATING_POINT


def test_verify_names_its_subject_whatever_it_decides() -> None:
    """The audit row of a 1:1 decision names the subject asked about, approval or not."""
    rng = np.random.default_rng(7)
    enrolment = rng.normal(size=(1, 16))
    cal = standard()
    approved = verify(enrolment, enrolment, cal, "fmr_1e-4", subject_id="sub-1")
    declined = verify(enrolment, rng.normal(size=(1, 16)), cal, "fmr_1e-4", subject_id="sub-1")
    refused = verify(enrolment, enrolment, cal, "fmr_1e-9", subject_id="sub-1")
    assert [v.decision for v in (approved, declined, refused)] == [
        Decision.APPROVE,
        Decision.DECLINE,
        Decision.DECLINE,
    ]
    assert {v.subject_id for v in (approved, declined, refused)} == {"sub-1"}


def _candidates(*distances: float, enrolment_images: int = 1) -> list[Candidate]:
    return [Candidate(f"s{i}", d, enrolment_images) for i, d in enumerate(distances)]


@pytest.mark.parametrize(
    ("gallery", "expected"),
    [(1, "fmr_1e-3"), (10, "fmr_1e-4"), (11, "fmr_1e-5"), (100, "fmr_1e-5"), (1000, "fmr_1e-6")],
)
def test_gallery_growth_moves_to_stricter_points(gallery: int, expected: str) -> None:
    """With an FPIR target of 1e-3, N * FMR <= 1e-3 picks the loosest point that still fits."""
    chosen = identify_point(standard(), E1P1, gallery, 1e-3)
    assert chosen is not None
    assert chosen.name == expected


def test_identify_uses_the_gallery_point() -> None:
    """0.42 passes fmr_1e-4 (0.45) at N=10 but not fmr_1e-5 (0.40) at N=100."""
    cal = standard()
    small = decide_identify(_candidates(0.42, 0.9), 1, 10, cal, 1e-3)
    assert (small.decision, small.subject_id, small.operating_point) == (
        Decision.APPROVE,
        "s0",
        "fmr_1e-4",
    )
    large = decide_identify(_candidates(0.42, 0.9), 1, 100, cal, 1e-3)
    assert (large.decision, large.reason, large.operating_point) == (
        Decision.NO_MATCH,
        DecisionReason.NO_CANDIDATE,
        "fmr_1e-5",
    )
    assert large.subject_id == ""


def test_gallery_beyond_every_point_retries_then_refuses() -> None:
    """e3p1's strictest point is 1e-5: at N=1000 and target 1e-3 it needs 1e-6. With frames to
    come it asks for them only if a richer mode can serve; here e3p3 cannot (1e-3 only)."""
    cal = standard()
    cands = _candidates(0.01, 0.9, enrolment_images=3)
    refused = decide_identify(cands, 1, 1000, cal, 1e-3, more_frames_possible=True)
    assert (refused.decision, refused.reason) == (
        Decision.NO_MATCH,
        DecisionReason.NO_OPERATING_POINT,
    )
    assert refused.subject_id == ""


def test_gallery_beyond_every_point_retries_when_more_frames_fit() -> None:
    cal = calibration(
        e1p1=mode(point(1e-3, 0.5)),
        e1p2=mode(point(1e-3, 0.45), point(1e-4, 0.4)),
    )
    cands = _candidates(0.01, 0.9)
    retry = decide_identify(cands, 1, 10, cal, 1e-3, more_frames_possible=True)
    assert (retry.decision, retry.reason) == (Decision.RETRY, DecisionReason.MORE_FRAMES_NEEDED)
    final = decide_identify(cands, 1, 10, cal, 1e-3, more_frames_possible=False)
    assert final.reason is DecisionReason.NO_OPERATING_POINT
    fused = decide_identify(cands, 2, 10, cal, 1e-3)
    assert (fused.decision, fused.operating_point) == (Decision.APPROVE, "fmr_1e-4")


def test_runner_up_within_margin_is_ambiguous() -> None:
    cal = standard()  # e1p1 margin 0.05
    ambiguous = decide_identify(_candidates(0.30, 0.34), 1, 10, cal, 1e-3)
    assert (ambiguous.decision, ambiguous.reason) == (
        Decision.AMBIGUOUS,
        DecisionReason.RUNNER_UP_TOO_CLOSE,
    )
    assert ambiguous.subject_id == ""
    clear = decide_identify(_candidates(0.30, 0.36), 1, 10, cal, 1e-3)
    assert clear.decision is Decision.APPROVE


def test_margin_is_judged_on_the_two_best_in_any_order() -> None:
    cands = [Candidate("far", 0.9, 1), Candidate("b", 0.33, 1), Candidate("a", 0.30, 1)]
    assert decide_identify(cands, 1, 10, standard(), 1e-3).decision is Decision.AMBIGUOUS


def test_an_uncalibrated_margin_refuses_the_mode() -> None:
    """Without a calibrated margin a look-alike would go unchecked: no operating point."""
    cal = calibration(e1p1=mode(point(1e-3, 0.5), margin=None))
    cands = _candidates(0.30, 0.6)
    assert decide_identify(cands, 1, 1, cal, 1e-3).reason is DecisionReason.NO_OPERATING_POINT
    calibrated = calibration(e1p1=mode(point(1e-3, 0.5), margin=0.1))
    assert decide_identify(cands, 1, 1, calibrated, 1e-3).decision is Decision.APPROVE


def test_empty_gallery_and_no_candidates() -> None:
    cal = standard()
    assert decide_identify([], 1, 0, cal, 1e-3).reason is DecisionReason.EMPTY_GALLERY
    assert decide_identify([], 1, 5, cal, 1e-3).reason is DecisionReason.NO_CANDIDATE


def test_identify_mode_comes_from_the_best_candidate() -> None:
    """A 3-image template is judged at e3p1's threshold (0.36 for 1e-4), not e1p1's."""
    cands = [Candidate("fused", 0.40, 3), Candidate("single", 0.8, 1)]
    outcome = decide_identify(cands, 1, 10, standard(), 1e-3)
    assert _mode(outcome) == E3P1
    assert outcome.reason is DecisionReason.NO_CANDIDATE


def test_max_gallery_size() -> None:
    assert max_gallery_size(point(1e-4, 0.4), 1e-3) == 10
    assert max_gallery_size(point(1e-6, 0.4), 1e-2) == 10_000
