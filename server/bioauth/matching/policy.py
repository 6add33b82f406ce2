"""The decision policy: calibrated operating points in, a decision out, never a raw score.

Pure functions over the calibration file (``bioauth.matching.operating_points``): the service
layer computes distances, and every answer, 1:1 or 1:N, is one ``Verdict`` in the vocabulary of
``bioauth.matching.decision``, recorded and returned as it is.

1:1 (verify) decides at the tenant's named point *in the comparison mode at hand*: fusion moves
the score distributions, so every mode has its own threshold, and a mode where the point is not
calibrated is refused rather than given another mode's threshold.

1:N (identify) must keep the tenant's false-positive identification rate at its current gallery
size. A non-mated probe is compared with every enrolled subject, so the expected FPIR is about
N * FMR: the policy takes the loosest calibrated point whose target FMR satisfies
``N * target_fmr <= fpir_target``. When no calibrated point in the mode is strict enough it asks
for more frames if a fused mode with more frames has one (RETRY), and otherwise answers NO_MATCH
with NO_OPERATING_POINT. A best match that does not beat the runner-up by the mode's calibrated
margin is AMBIGUOUS: a look-alike never pays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy.typing as npt

from bioauth.errors import InvalidInput
from bioauth.matching.decision import Decision, DecisionReason, ScoreBand, Verdict
from bioauth.matching.fusion import as_embedding_group, fused_distance
from bioauth.matching.operating_points import (
    MAX_IMAGES_PER_SIDE,
    Calibration,
    ComparisonMode,
    ModeCalibration,
    OperatingPoint,
)

__all__ = [
    "Candidate",
    "choose_verify_mode",
    "decide_identify",
    "decide_verify",
    "identify_point",
    "max_gallery_size",
    "score_band",
    "verify",
]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One gallery entry close to the probe, as the 1:N gallery returns it."""

    subject_id: str
    distance: float
    enrolment_images: int
    """How many enrolment images were fused into this subject's template (1 to 3)."""


def _verdict(
    decision: Decision,
    reason: DecisionReason | None,
    mode: ComparisonMode | None,
    *,
    band: ScoreBand | None = None,
    used: OperatingPoint | None = None,
    subject_id: str = "",
) -> Verdict:
    return Verdict(
        decision=decision,
        reason=reason,
        band=band,
        operating_point="" if used is None else used.name,
        enrolment_images=0 if mode is None else mode.enrolment_images,
        probe_images=0 if mode is None else mode.probe_images,
        subject_id=subject_id,
    )


def score_band(distance: float, used: OperatingPoint, calibrated: ModeCalibration) -> ScoreBand:
    """Where ``distance`` falls among the mode's calibrated points, relative to the one used."""
    strictest = calibrated.points[-1]
    if distance <= strictest.threshold:
        return ScoreBand.VERY_HIGH
    if distance <= used.threshold:
        return ScoreBand.HIGH
    if any(distance <= point.threshold for point in calibrated.points):
        return ScoreBand.LOW
    return ScoreBand.VERY_LOW


def _richer_modes(calibration: Calibration, mode: ComparisonMode) -> list[ModeCalibration]:
    """Calibrated modes reached from ``mode`` by adding probe frames (same enrolment images)."""
    found: list[ModeCalibration] = []
    for frames in range(mode.probe_images + 1, MAX_IMAGES_PER_SIDE + 1):
        richer = calibration.mode(ComparisonMode(mode.enrolment_images, frames))
        if richer is not None:
            found.append(richer)
    return found


def _refuse_verify(
    calibration: Calibration,
    mode: ComparisonMode,
    point: str,
    more_frames_possible: bool,
    subject_id: str,
) -> Verdict:
    richer = _richer_modes(calibration, mode) if more_frames_possible else []
    if any(m.point(point) is not None for m in richer):
        return _verdict(
            Decision.RETRY, DecisionReason.MORE_FRAMES_NEEDED, mode, subject_id=subject_id
        )
    return _verdict(
        Decision.DECLINE, DecisionReason.NO_OPERATING_POINT, mode, subject_id=subject_id
    )


def choose_verify_mode(
    calibration: Calibration, point: str, enrolment_images: int, probe_images: int
) -> ComparisonMode | None:
    """The richest mode within the images at hand where ``point`` is calibrated, or None.

    More fused images give lower error at the same FMR, so the mode with the most images wins
    (probe frames first, then enrolment images, at equal totals); images beyond the chosen mode
    are left out rather than compared at a threshold measured for fewer.
    """
    enrolment_images = min(enrolment_images, MAX_IMAGES_PER_SIDE)
    probe_images = min(probe_images, MAX_IMAGES_PER_SIDE)
    usable = [
        mode
        for mode in ComparisonMode.all()
        if mode.enrolment_images <= enrolment_images
        and mode.probe_images <= probe_images
        and calibration.point(mode, point) is not None
    ]
    if not usable:
        return None
    return max(usable, key=lambda m: (m.enrolment_images + m.probe_images, m.probe_images))


def decide_verify(
    distance: float,
    mode: ComparisonMode,
    calibration: Calibration,
    point: str,
    *,
    more_frames_possible: bool = False,
    subject_id: str = "",
) -> Verdict:
    """1:1 at the tenant's named point in ``mode``, about ``subject_id`` (carried into the
    verdict whatever it decides, for the audit row).

    A mode where the point is not calibrated is refused: RETRY (MORE_FRAMES_NEEDED) when more
    probe frames can still come and a mode with more frames holds the point, else DECLINE with
    NO_OPERATING_POINT.
    """
    if not math.isfinite(distance) or distance < 0:
        raise InvalidInput(f"distance must be finite and >= 0, got {distance}")
    calibrated = calibration.mode(mode)
    used = None if calibrated is None else calibrated.point(point)
    if calibrated is None or used is None:
        return _refuse_verify(calibration, mode, point, more_frames_possible, subject_id)
    band = score_band(distance, used, calibrated)
    if distance <= used.threshold:
        return _verdict(Decision.APPROVE, None, mode, band=band, used=used, subject_id=subject_id)
    return _verdict(
        Decision.DECLINE,
        DecisionReason.SCORE_BELOW_THRESHOLD,
        mode,
        band=band,
        used=used,
        subject_id=subject_id,
    )


def verify(
    enrolment: npt.ArrayLike,
    probes: npt.ArrayLike,
    calibration: Calibration,
    point: str,
    *,
    more_frames_possible: bool = False,
    subject_id: str = "",
) -> Verdict:
    """1:1 from embeddings: pick the richest calibrated mode, fuse its images, decide.

    ``enrolment`` (k, d) and ``probes`` (m, d) are in enrolment and arrival order; the first
    images are the ones fused when more are given than the chosen mode uses.
    """
    left = as_embedding_group(enrolment, "enrolment")
    right = as_embedding_group(probes, "probes")
    mode = choose_verify_mode(calibration, point, len(left), len(right))
    if mode is None:
        at_hand = ComparisonMode(
            min(len(left), MAX_IMAGES_PER_SIDE), min(len(right), MAX_IMAGES_PER_SIDE)
        )
        return _refuse_verify(calibration, at_hand, point, more_frames_possible, subject_id)
    distance = fused_distance(
        left[: mode.enrolment_images],
        right[: mode.probe_images],
        calibration.fusion_rule,
        calibration.metric,
    )
    return decide_verify(distance, mode, calibration, point, subject_id=subject_id)


def max_gallery_size(point: OperatingPoint, fpir_target: float) -> int:
    """The largest gallery ``point`` serves while N * FMR stays at or under ``fpir_target``."""
    return math.floor(fpir_target / point.target_fmr * (1 + 1e-9))


def identify_point(
    calibration: Calibration, mode: ComparisonMode, gallery_size: int, fpir_target: float
) -> OperatingPoint | None:
    """The loosest point of ``mode`` keeping ``gallery_size * target_fmr <= fpir_target``."""
    calibrated = calibration.mode(mode)
    if calibrated is None:
        return None
    for point in calibrated.points:  # loosest first
        if gallery_size <= max_gallery_size(point, fpir_target):
            return point
    return None


def decide_identify(
    candidates: Sequence[Candidate],
    probe_images: int,
    gallery_size: int,
    calibration: Calibration,
    fpir_target: float,
    *,
    more_frames_possible: bool = False,
) -> Verdict:
    """1:N over the gallery's closest candidates (any order; the best two matter).

    ``gallery_size`` counts the subjects searched (only those who consented to 1:N). The mode is
    the best candidate's enrolment images against ``probe_images``; the verdict names the
    matched subject on approval only.
    """
    if not 0 < fpir_target < 1:
        raise InvalidInput(f"fpir_target must be in (0, 1), got {fpir_target}")
    if gallery_size < 0:
        raise InvalidInput(f"gallery_size must be >= 0, got {gallery_size}")
    if gallery_size == 0:
        return _verdict(Decision.NO_MATCH, DecisionReason.EMPTY_GALLERY, None)
    if not candidates:
        return _verdict(Decision.NO_MATCH, DecisionReason.NO_CANDIDATE, None)
    ranked = sorted(candidates, key=lambda c: c.distance)
    best = ranked[0]
    mode = ComparisonMode(best.enrolment_images, min(probe_images, MAX_IMAGES_PER_SIDE))
    used = identify_point(calibration, mode, gallery_size, fpir_target)
    calibrated = calibration.mode(mode)
    if used is None or calibrated is None:
        richer = _richer_modes(calibration, mode) if more_frames_possible else []
        if any(gallery_size <= max_gallery_size(p, fpir_target) for m in richer for p in m.points):
            return _verdict(Decision.RETRY, DecisionReason.MORE_FRAMES_NEEDED, mode)
        return _verdict(Decision.NO_MATCH, DecisionReason.NO_OPERATING_POINT, mode)
    band = score_band(best.distance, used, calibrated)
    if best.distance > used.threshold:
        return _verdict(Decision.NO_MATCH, DecisionReason.NO_CANDIDATE, mode, band=band, used=used)
    margin = calibrated.identify_margin
    if margin is None:
        # An uncalibrated margin would let a look-alike through unchecked: refuse the mode.
        return _verdict(Decision.NO_MATCH, DecisionReason.NO_OPERATING_POINT, mode)
    if len(ranked) > 1 and ranked[1].distance - best.distance < margin:
        return _verdict(
            Decision.AMBIGUOUS, DecisionReason.RUNNER_UP_TOO_CLOSE, mode, band=band, used=used
        )
    return _verdict(Decision.APPROVE, None, mode, band=band, used=used, subject_id=best.subject_id)
