"""The bridge between the matching policy's outcomes and the service's verdicts.

The policy (``bioauth.matching.policy``) names its enums as the proto does, upper case; the service
and the token use lower-case values. Members are matched by name, so a new policy member without a
service counterpart fails loudly here instead of becoming some other decision.
"""

from __future__ import annotations

from bioauth.errors import FailedPrecondition, InternalError
from bioauth.matching import policy
from bioauth.matching.operating_points import Calibration, ComparisonMode
from bioauth.service.decisions import Verdict
from bioauth.service.domain import Decision, DecisionReason, ScoreBand

__all__ = ["from_identify", "from_verify", "no_usable_probe", "require_calibration"]


def _decision(value: policy.Decision) -> Decision:
    try:
        return Decision[value.name]
    except KeyError as exc:
        raise InternalError(f"policy decision {value.name} has no service counterpart") from exc


def _reason(value: policy.DecisionReason | None) -> DecisionReason | None:
    if value is None:
        return None
    try:
        return DecisionReason[value.name]
    except KeyError as exc:
        raise InternalError(f"policy reason {value.name} has no service counterpart") from exc


def _band(value: policy.ScoreBand | None) -> ScoreBand | None:
    return None if value is None else ScoreBand[value.name]


def _mode(mode: ComparisonMode | None) -> tuple[int, int]:
    return (0, 0) if mode is None else (mode.enrolment_images, mode.probe_images)


def from_verify(outcome: policy.VerifyOutcome, subject_id: str) -> Verdict:
    return _verdict(outcome, subject_id)


def from_identify(outcome: policy.IdentifyOutcome) -> Verdict:
    return _verdict(outcome, outcome.subject_id or "")


def _verdict(outcome: policy.VerifyOutcome | policy.IdentifyOutcome, subject_id: str) -> Verdict:
    enrolment_images, probe_images = _mode(outcome.mode)
    return Verdict(
        decision=_decision(outcome.decision),
        reason=_reason(outcome.reason),
        band=_band(outcome.band),
        operating_point=outcome.operating_point or "",
        enrolment_images=enrolment_images,
        probe_images=probe_images,
        subject_id=subject_id,
    )


def require_calibration(calibration: Calibration | None, model_id: str) -> Calibration:
    """Decisions need calibrated points; without them the server refuses rather than guess."""
    if calibration is None:
        raise FailedPrecondition(
            f"model {model_id} has no calibrated operating points on this server "
            "(calibration.json beside the manifest; `bioauth eval lfw` writes it)"
        )
    return calibration


def no_usable_probe(subject_id: str = "") -> Verdict:
    """Every probe crop was rejected: ask for better ones, decide nothing."""
    return Verdict(
        decision=Decision.RETRY,
        reason=DecisionReason.NO_USABLE_PROBE,
        band=None,
        operating_point="",
        enrolment_images=0,
        probe_images=0,
        subject_id=subject_id,
    )
