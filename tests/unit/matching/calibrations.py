"""Constructed calibrations for the policy tests: thresholds chosen by hand, not measured."""

from __future__ import annotations

from bioauth.matching.fusion import FusionRule
from bioauth.matching.operating_points import Calibration, ModeCalibration, OperatingPoint

SHA = "ab" * 32


def point(target: float, threshold: float) -> OperatingPoint:
    exponent = {1e-3: "-3", 1e-4: "-4", 1e-5: "-5", 1e-6: "-6"}[target]
    return OperatingPoint(
        name=f"fmr_1e{exponent}",
        threshold=threshold,
        target_fmr=target,
        measured_fmr=target / 2,
        measured_fnmr=0.1,
        impostor_comparisons=10_000_000,
        genuine_comparisons=1000,
        dataset="constructed",
    )


def mode(*points: OperatingPoint, margin: float | None = 0.05) -> ModeCalibration:
    return ModeCalibration(points=points, identify_margin=margin)


def calibration(**modes: ModeCalibration) -> Calibration:
    return Calibration(
        schema_version=1,
        model_id="test-model",
        model_sha256=SHA,
        metric="euclidean",
        fusion_rule=FusionRule.MEAN_L2_NORMALISED,
        dataset="constructed",
        generated_by="tests",
        modes=modes,
    )


def standard() -> Calibration:
    """e1p1 with four points, e3p1 with three (other thresholds), e3p3 with one; nothing else."""
    return calibration(
        e1p1=mode(point(1e-3, 0.50), point(1e-4, 0.45), point(1e-5, 0.40), point(1e-6, 0.35)),
        e3p1=mode(point(1e-3, 0.40), point(1e-4, 0.36), point(1e-5, 0.33), margin=0.04),
        e3p3=mode(point(1e-3, 0.30), margin=0.03),
    )
