"""From measured comparisons to the calibration file, and the held-out test of the procedure.

Committed thresholds are calibrated on all folds. Whether the procedure can be trusted on faces
it never saw is checked separately: calibrate on four folds, count false matches on the fifth
(only pairs of people of the held fold), for each of the five rotations, and pool the counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bioauth.evaluation.rates import rule_of_three, supports, threshold_at_fmr
from bioauth.evaluation.scoresets import ScoreSet
from bioauth.matching.fusion import FusionRule
from bioauth.matching.operating_points import (
    Calibration,
    ComparisonMode,
    ModeCalibration,
    OperatingPoint,
    point_name,
)
from bioauth.matching.scores import Metric

__all__ = ["HeldOut", "build_calibration", "calibrate_mode", "held_out"]

HELD_OUT_TOLERANCE = 3.0
"""Pooled held-out FMR may be at most this many times the target (the issue's check)."""


def calibrate_mode(
    scores: ScoreSet, targets: tuple[float, ...], dataset: str, margin: float | None
) -> ModeCalibration:
    """The points ``scores`` supports (loosest first); the others are listed as unsupported."""
    impostor = np.sort(scores.impostor)
    points: list[OperatingPoint] = []
    unsupported: list[str] = []
    for target in sorted(targets, reverse=True):
        if not supports(len(impostor), target) or len(scores.genuine) == 0:
            unsupported.append(point_name(target))
            continue
        threshold = threshold_at_fmr(impostor, target)
        false_matches = int(np.searchsorted(impostor, threshold, side="right"))
        points.append(
            OperatingPoint(
                name=point_name(target),
                threshold=threshold,
                target_fmr=target,
                measured_fmr=false_matches / len(impostor),
                measured_fnmr=float(np.count_nonzero(scores.genuine > threshold))
                / len(scores.genuine),
                impostor_comparisons=len(impostor),
                genuine_comparisons=len(scores.genuine),
                dataset=dataset,
            )
        )
    return ModeCalibration(
        points=tuple(points), identify_margin=margin, unsupported=tuple(unsupported)
    )


def build_calibration(
    *,
    model_id: str,
    model_sha256: str,
    metric: Metric,
    rule: FusionRule,
    dataset: str,
    modes: dict[ComparisonMode, ModeCalibration],
) -> Calibration:
    return Calibration(
        schema_version=1,
        model_id=model_id,
        model_sha256=model_sha256,
        metric=metric,
        fusion_rule=rule,
        dataset=dataset,
        generated_by="bioauth eval lfw --descriptors model",
        modes={mode.key: modes[mode] for mode in sorted(modes)},
    )


@dataclass(frozen=True)
class HeldOut:
    """Pooled held-out counts of one target in one mode over the fold rotations."""

    mode: str
    target_fmr: float
    rotations: int
    impostors: int
    false_matches: int
    genuine: int
    false_non_matches: int
    fmr: float | None
    fmr_upper_if_zero: float | None
    fnmr: float | None
    passed: bool | None
    note: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def held_out(
    scores: ScoreSet,
    subject_fold: npt.NDArray[np.int32],
    mode: ComparisonMode,
    target: float,
) -> HeldOut:
    """Calibrate on the other folds, count on the held fold, pool over every rotation."""
    folds = sorted({int(f) for f in subject_fold})
    impostors = false_matches = genuine = false_non = 0
    used = 0
    skipped: list[int] = []
    for fold in folds:
        calibration = scores.restrict(subject_fold != fold)
        test = scores.restrict(subject_fold == fold)
        if not supports(len(calibration.impostor), target) or len(test.impostor) == 0:
            skipped.append(fold)
            continue
        threshold = threshold_at_fmr(np.sort(calibration.impostor), target)
        impostors += len(test.impostor)
        false_matches += int(np.count_nonzero(test.impostor <= threshold))
        genuine += len(test.genuine)
        false_non += int(np.count_nonzero(test.genuine > threshold))
        used += 1
    note = f"rotations without support on the calibration folds: {skipped}" if skipped else ""
    if used == 0 or impostors == 0:
        return HeldOut(mode.key, target, 0, 0, 0, 0, 0, None, None, None, None, note or "no data")
    fmr = false_matches / impostors
    upper = rule_of_three(impostors) if false_matches == 0 else None
    judged = upper if upper is not None else fmr
    if upper is not None and upper > HELD_OUT_TOLERANCE * target:
        # No false match, but too few held-out comparisons to bound the rate: no verdict.
        note = (note + "; " if note else "") + "too few held-out impostors to bound the FMR"
        return HeldOut(
            mode.key,
            target,
            used,
            impostors,
            0,
            genuine,
            false_non,
            fmr,
            upper,
            false_non / genuine if genuine else None,
            None,
            note,
        )
    return HeldOut(
        mode.key,
        target,
        used,
        impostors,
        false_matches,
        genuine,
        false_non,
        fmr,
        upper,
        false_non / genuine if genuine else None,
        judged <= HELD_OUT_TOLERANCE * target,
        note,
    )
