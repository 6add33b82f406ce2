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
from bioauth.matching.decision import Verdict
from bioauth.matching.gallery import TenantGalleries
from bioauth.matching.operating_points import Calibration
from bioauth.service.identify import decide_identify
from bioauth.store.protocol import SubjectRecord, TemplateStore

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
        verdict = policy.verify(
            self._enrolment,
            probes,
            self._calibration,
            self._point,
            more_frames_possible=not final,
            subject_id=self._subject_id,
        )
        return Decided(verdict)

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
    ) -> None:
        self._tenant = tenant
        self._store = store
        self._galleries = galleries
        self._calibration = calibration

    @property
    def subject_id(self) -> str:
        return ""

    async def decide(
        self, probes: npt.NDArray[np.float32], *, final: bool, deadline: float | None
    ) -> Decided:
        verdict, external_ref = await decide_identify(
            probes,
            tenant=self._tenant,
            store=self._store,
            galleries=self._galleries,
            calibration=self._calibration,
            deadline=deadline,
            more_frames_possible=not final,
        )
        return Decided(verdict, external_ref)

    def close(self) -> None:
        return None
