"""What one Authenticate session compares its frames against, and how it decides each time.

A session decides again after every accepted frame, with the frames it keeps (at most three, the
most the calibration fuses), in the comparison mode the policy picks for them: the same rule and
thresholds as a Verify or Identify call with those frames. Until the session's budget is spent
the policy is told more frames may come, so a point calibrated only for fused frames answers
RETRY rather than declining; with the final frame it gives its final answer.

A verify target holds the subject's decrypted templates for the session's life only (at most its
budget in seconds) and drops them when the session closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from bioauth.config import TenantSettings
from bioauth.matching import policy
from bioauth.matching.fusion import fuse_embeddings
from bioauth.matching.gallery import TenantGalleries
from bioauth.matching.operating_points import Calibration
from bioauth.service import _policy
from bioauth.service._deadline import within
from bioauth.service.decisions import Verdict
from bioauth.service.domain import Decision, DecisionReason
from bioauth.service.identify import best_two
from bioauth.store.protocol import SubjectRecord, SubjectStatus, TemplateStore

__all__ = ["Decided", "IdentifyTarget", "SessionTarget", "VerifyTarget"]


@dataclass(frozen=True, slots=True)
class Decided:
    verdict: Verdict
    external_ref: str = ""
    """Identify approvals only: the matched subject's reference (the account to charge)."""


class SessionTarget(Protocol):
    @property
    def subject_id(self) -> str:
        """The verified subject (verify), or empty (identify)."""
        ...

    async def decide(
        self, probes: npt.NDArray[np.float32], *, final: bool, deadline: float | None
    ) -> Decided: ...

    def close(self) -> None: ...


class VerifyTarget:
    """1:1 against one subject's templates, at the tenant's named point."""

    def __init__(
        self,
        subject: SubjectRecord,
        enrolment: npt.NDArray[np.float32],
        calibration: Calibration,
        point: str,
    ) -> None:
        self._subject_id = subject.subject_id
        self._enrolment: npt.NDArray[np.float32] | None = enrolment
        self._calibration = calibration
        self._point = point

    @property
    def subject_id(self) -> str:
        return self._subject_id

    async def decide(
        self, probes: npt.NDArray[np.float32], *, final: bool, deadline: float | None
    ) -> Decided:
        if self._enrolment is None:
            raise RuntimeError("the session is closed")
        outcome = policy.verify(
            self._enrolment,
            probes,
            self._calibration,
            self._point,
            more_frames_possible=not final,
        )
        return Decided(_policy.from_verify(outcome, self._subject_id))

    def close(self) -> None:
        self._enrolment = None  # decrypted templates live no longer than the session


class IdentifyTarget:
    """1:N over the tenant's gallery, at the point its size allows."""

    def __init__(
        self,
        *,
        tenant: TenantSettings,
        store: TemplateStore,
        galleries: TenantGalleries,
        calibration: Calibration,
        margin_override: float | None,
    ) -> None:
        self._tenant = tenant
        self._store = store
        self._galleries = galleries
        self._calibration = calibration
        self._margin_override = margin_override

    @property
    def subject_id(self) -> str:
        return ""

    async def decide(
        self, probes: npt.NDArray[np.float32], *, final: bool, deadline: float | None
    ) -> Decided:
        gallery = self._galleries.get(self._tenant.id)
        size = len(gallery)
        candidates: list[policy.Candidate] = []
        if size:
            results = await within(deadline, gallery.search_async(self._query(probes)), "search")
            candidates = best_two(results)
        outcome = policy.decide_identify(
            candidates,
            len(probes),
            size,
            self._calibration,
            self._tenant.identify_fpir_target,
            more_frames_possible=not final,
            margin_override=self._margin_override,
        )
        verdict = _policy.from_identify(outcome)
        if verdict.decision is not Decision.APPROVE:
            return Decided(verdict)
        # The gallery may lag the store by a moment (another replica's opt-out): the store has
        # the last word before anyone is charged.
        subject = await within(
            deadline,
            self._store.get_subject_by_id(self._tenant.id, verdict.subject_id),
            "subject look-up",
        )
        if subject is None or not _searchable(subject) or subject.external_ref is None:
            gallery.remove(verdict.subject_id)
            return Decided(_no_candidate(verdict))
        return Decided(verdict, subject.external_ref)

    def _query(self, probes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """One fused vector under a template rule (the gallery's rows are fused the same way),
        every frame otherwise."""
        rule = self._calibration.fusion_rule
        if rule.fuses_embeddings:
            return fuse_embeddings(probes, rule).astype(np.float32)[None, :]
        return probes

    def close(self) -> None:
        return None


def _searchable(subject: SubjectRecord) -> bool:
    consent = subject.consent
    return (
        subject.status is SubjectStatus.ENROLLED
        and consent is not None
        and consent.identification
        and consent.withdrawn_at is None
    )


def _no_candidate(verdict: Verdict) -> Verdict:
    return Verdict(
        decision=Decision.NO_MATCH,
        reason=DecisionReason.NO_CANDIDATE,
        band=None,
        operating_point=verdict.operating_point,
        enrolment_images=verdict.enrolment_images,
        probe_images=verdict.probe_images,
    )
