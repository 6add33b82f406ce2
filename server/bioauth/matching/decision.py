"""The vocabulary of a decision, from the policy up to the token: one set of words, one value.

The policy (``bioauth.matching.policy``) answers with a ``Verdict``; the service records it as it
is (audit row, token claims) and the API maps these members onto the proto's ``Decision``,
``DecisionReason`` and ``ScoreBand`` with one table each (``bioauth.api.convert``). The values are
the lower-case words that tokens and audit rows already hold, so they must never change.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Decision", "DecisionReason", "ScoreBand", "Verdict", "no_usable_probe"]


class Decision(enum.StrEnum):
    APPROVE = "approve"
    DECLINE = "decline"
    NO_MATCH = "no_match"
    AMBIGUOUS = "ambiguous"
    RETRY = "retry"


class DecisionReason(enum.StrEnum):
    """Why a decision is not an approval."""

    SCORE_BELOW_THRESHOLD = "score_below_threshold"
    NO_CANDIDATE = "no_candidate"
    RUNNER_UP_TOO_CLOSE = "runner_up_too_close"
    NO_USABLE_PROBE = "no_usable_probe"
    MORE_FRAMES_NEEDED = "more_frames_needed"
    NO_OPERATING_POINT = "no_operating_point"
    EMPTY_GALLERY = "empty_gallery"
    QUALITY_TOO_LOW = "quality_too_low"
    SESSION_BUDGET_SPENT = "session_budget_spent"
    """Authenticate: the session's frames or seconds ran out with no usable frame."""


class ScoreBand(enum.StrEnum):
    """Where the score fell among the calibrated points, relative to the one used; never a
    raw score."""

    VERY_HIGH = "very_high"
    HIGH = "high"
    LOW = "low"
    VERY_LOW = "very_low"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One decision, 1:1 or 1:N, before a token or an audit row exists."""

    decision: Decision
    reason: DecisionReason | None
    """None exactly on approval."""
    band: ScoreBand | None = None
    """None when no operating point could be applied."""
    operating_point: str = ""
    """The point decided at; empty when none could be applied."""
    enrolment_images: int = 0
    """The comparison mode: images fused on each side, both 0 when no mode was reached."""
    probe_images: int = 0
    subject_id: str = ""
    """The verified subject (1:1, any decision) or the matched one (1:N approvals only)."""


def no_usable_probe(subject_id: str = "") -> Verdict:
    """Every probe crop was rejected: ask for better ones, decide nothing."""
    return Verdict(Decision.RETRY, DecisionReason.NO_USABLE_PROBE, subject_id=subject_id)
