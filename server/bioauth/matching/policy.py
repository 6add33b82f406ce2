"""The decision policy: calibrated operating points in, a decision out, never a raw score.

Pure functions over the calibration file (``bioauth.matching.operating_points``); the service
layer computes distances and the API layer maps these enums onto the proto's ``Decision``,
``DecisionReason`` and ``ScoreBand`` (same member names without the prefix).

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

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy.typing as npt

from bioauth.errors import InvalidInput
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
    "Decision",
    "DecisionReason",
    "IdentifyOutcome",
    "ScoreBand",
    "VerifyOutcome",
    "choose_verify_mode",
    "decide_identify",
    "decide_verify",
    "identify_point",
    "max_gallery_size",
    "score_band",
    "verify",
]


class Decision(enum.Enum):
    """Proto ``Decision`` without the ``DECISION_`` prefix."""

    APPROVE = "APPROVE"
    DECLINE = "DECLINE"
    NO_MATCH = "NO_MATCH"
    AMBIGUOUS = "AMBIGUOUS"
    RETRY = "RETRY"


class DecisionReason(enum.Enum):
    """Proto ``DecisionReason`` without the ``DECISION_REASON_`` prefix (the policy's subset)."""

    SCORE_BELOW_THRESHOLD = "SCORE_BELOW_THRESHOLD"
    NO_CANDIDATE = "NO_CANDIDATE"
    RUNNER_UP_TOO_CLOSE = "RUNNER_UP_TOO_CLOSE"
    MORE_FRAMES_NEEDED = "MORE_FRAMES_NEEDED"
    NO_OPERATING_POINT = "NO_OPERATING_POINT"
    EMPTY_GALLERY = "EMPTY_GALLERY"


class ScoreBand(enum.Enum):
    """Proto ``ScoreBand`` without the ``SCORE_BAND_`` prefix."""

    VERY_HIGH = "VERY_HIGH"
    HIGH = "HIGH"
    LOW = "LOW"
    VERY_LOW = "VERY_LOW"


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    """A 1:1 decision. ``reason`` is None exactly on approval; ``band`` and ``operating_point``
    are None when no point could be applied."""

    decision: Decision
    reason: DecisionReason | None
    band: ScoreBand | None
    operating_point: str | None
    mode: ComparisonMode


@dataclass(frozen=True, slots=True)
class Candidate:
    """One gallery entry close to the probe, as the 1:N gallery returns it."""

    subject_id: str
    distance: float
    enrolment_images: int
    """How many enrolment images were fused into this subject's template (1 to 3)."""


@dataclass(frozen=True, slots=True)
class IdentifyOutcome:
    """A 1:N decision; ``subject_id`` is set only on approval."""

    decision: Decision
    reason: DecisionReason | None
    band: ScoreBand | None
    operating_point: str | None
    mode: ComparisonMode | None
    subject_id: str | None = None


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
    calibration: Calibration, mode: ComparisonMode, point: str, more_frames_possible: bool
) -> VerifyOutcome:
    richer = _richer_modes(calibration, mode) if more_frames_possible else []
    if any(m.point(point) is not None for m in richer):
        return VerifyOutcome(Decision.RETRY, DecisionReason.MORE_FRAMES_NEEDED, None, None, mode)
    return VerifyOutcome(Decision.DECLINE, DecisionReason.NO_OPERATING_POINT, None, None, mode)


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
) -> VerifyOutcome:
    """1:1 at the tenant's named point in ``mode``.

    A mode where the point is not calibrated is refused: RETRY (MORE_FRAMES_NEEDED) when more
    probe frames can still come and a mode with more frames holds the point, else DECLINE with
    NO_OPERATING_POINT.
    """
    if not math.isfinite(distance) or distance < 0:
        raise InvalidInput(f"distance must be finite and >= 0, got {distance}")
    calibrated = calibration.mode(mode)
    used = None if calibrated is None else calibrated.point(point)
    if calibrated is None or used is None:
        return _refuse_verify(calibration, mode, point, more_frames_possible)
    band = score_band(distance, used, calibrated)
    if distance <= used.threshold:
        return VerifyOutcome(Decision.APPROVE, None, band, used.name, mode)
    return VerifyOutcome(
        Decision.DECLINE, DecisionReason.SCORE_BELOW_THRESHOLD, band, used.name, mode
    )


def verify(
    enrolment: npt.ArrayLike,
    probes: npt.ArrayLike,
    calibration: Calibration,
    point: str,
    *,
    more_frames_possible: bool = False,
) -> VerifyOutcome:
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
        return _refuse_verify(calibration, at_hand, point, more_frames_possible)
    distance = fused_distance(
        left[: mode.enrolment_images],
        right[: mode.probe_images],
        calibration.fusion_rule,
        calibration.metric,
    )
    return decide_verify(distance, mode, calibration, point)


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
) -> IdentifyOutcome:
    """1:N over the gallery's closest candidates (any order; the best two matter).

    ``gallery_size`` counts the subjects searched (only those who consented to 1:N). The mode is
    the best candidate's enrolment images against ``probe_images``.
    """
    if not 0 < fpir_target < 1:
        raise InvalidInput(f"fpir_target must be in (0, 1), got {fpir_target}")
    if gallery_size < 0:
        raise InvalidInput(f"gallery_size must be >= 0, got {gallery_size}")
    if gallery_size == 0:
        return IdentifyOutcome(Decision.NO_MATCH, DecisionReason.EMPTY_GALLERY, None, None, None)
    if not candidates:
        return IdentifyOutcome(Decision.NO_MATCH, DecisionReason.NO_CANDIDATE, None, None, None)
    ranked = sorted(candidates, key=lambda c: c.distance)
    best = ranked[0]
    mode = ComparisonMode(best.enrolment_images, min(probe_images, MAX_IMAGES_PER_SIDE))
    used = identify_point(calibration, mode, gallery_size, fpir_target)
    calibrated = calibration.mode(mode)
    if used is None or calibrated is None:
        richer = _richer_modes(calibration, mode) if more_frames_possible else []
        if any(gallery_size <= max_gallery_size(p, fpir_target) for m in richer for p in m.points):
            return IdentifyOutcome(
                Decision.RETRY, DecisionReason.MORE_FRAMES_NEEDED, None, None, mode
            )
        return IdentifyOutcome(
            Decision.NO_MATCH, DecisionReason.NO_OPERATING_POINT, None, None, mode
        )
    band = score_band(best.distance, used, calibrated)
    if best.distance > used.threshold:
        return IdentifyOutcome(
            Decision.NO_MATCH, DecisionReason.NO_CANDIDATE, band, used.name, mode
        )
    margin = calibrated.identify_margin
    if margin is None:
        # An uncalibrated margin would let a look-alike through unchecked: refuse the mode.
        return IdentifyOutcome(
            Decision.NO_MATCH, DecisionReason.NO_OPERATING_POINT, None, None, mode
        )
    if len(ranked) > 1 and ranked[1].distance - best.distance < margin:
        return IdentifyOutcome(
            Decision.AMBIGUOUS, DecisionReason.RUNNER_UP_TOO_CLOSE, band, used.name, mode
        )
    return IdentifyOutcome(Decision.APPROVE, None, band, used.name, mode, best.subject_id)
