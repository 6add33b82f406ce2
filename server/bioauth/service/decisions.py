"""Turning a policy verdict into the answer: a token for an approval, one audit row for every
decision.

The audit row is written before the answer leaves: a decision the audit log does not hold is never
returned (if the store cannot take the row, the request fails closed and the token, already signed,
is never shown). A token is signed only for an approval, and only through the key provider; when
the provider cannot sign, the request fails with ``KeyProviderUnavailable`` rather than answering
an approval without proof.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from bioauth.config import TenantSettings
from bioauth.crypto.tokens import ApprovalClaims, IssuedToken, TokenIssuer
from bioauth.errors import InternalError
from bioauth.matching.decision import Decision, Verdict
from bioauth.observability.logging import get_logger, pseudonym
from bioauth.service._deadline import within
from bioauth.service.domain import AuthorizationOutcome, Operation, SampleOutcome, Transaction
from bioauth.store.protocol import AuditEntry, TemplateStore

__all__ = ["DecisionRecorder"]

_LOGGER = get_logger(__name__)


class DecisionRecorder:
    """Signs approvals and appends the audit row of every decision."""

    def __init__(
        self,
        store: TemplateStore,
        issuer: TokenIssuer,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._issuer = issuer
        self._clock = clock

    async def record(
        self,
        *,
        tenant: TenantSettings,
        operation: Operation,
        verdict: Verdict,
        transaction: Transaction,
        model_id: str,
        probes: tuple[SampleOutcome, ...],
        external_ref: str = "",
        deadline: float | None,
    ) -> AuthorizationOutcome:
        """The outcome to return, once its audit row is stored."""
        decision_id = uuid.uuid4().hex
        issued: IssuedToken | None = None
        if verdict.decision is Decision.APPROVE:
            issued = await within(
                deadline,
                self._issuer.issue(self._claims(tenant, operation, verdict, transaction, model_id)),
                "token signing",
            )
        entry = AuditEntry(
            tenant_id=tenant.id,
            operation=operation.value,
            at=self._clock(),
            subject_id=verdict.subject_id or None,
            decision=verdict.decision.value,
            score_band=None if verdict.band is None else verdict.band.value,
            operating_point=verdict.operating_point or None,
            model_id=model_id,
            token_jti=None if issued is None else issued.jti,
            details={
                "decision_id": decision_id,
                "reason": None if verdict.reason is None else verdict.reason.value,
                "mode": f"e{verdict.enrolment_images}p{verdict.probe_images}",
                "probes": len(probes),
                "probes_rejected": sum(1 for p in probes if not p.accepted),
                "transaction_id": transaction.transaction_id,
                "txn": transaction.binding,
            },
        )
        await within(deadline, self._store.append_audit(entry), "audit write")
        _LOGGER.info(
            "decision",
            operation=operation.value,
            decision=verdict.decision.value,
            reason=None if verdict.reason is None else verdict.reason.value,
            subject=pseudonym(verdict.subject_id) if verdict.subject_id else None,
            operating_point=verdict.operating_point,
            decision_id=decision_id,
        )
        return AuthorizationOutcome(
            verdict=verdict,
            external_ref=external_ref,
            model_id=model_id,
            decision_id=decision_id,
            token="" if issued is None else issued.token,
            token_expires_at=None
            if issued is None
            else datetime.fromtimestamp(issued.expires_at, UTC),
            probes=probes,
        )

    @staticmethod
    def _claims(
        tenant: TenantSettings,
        operation: Operation,
        verdict: Verdict,
        transaction: Transaction,
        model_id: str,
    ) -> ApprovalClaims:
        if verdict.band is None or verdict.enrolment_images < 1 or verdict.probe_images < 1:
            raise InternalError("an approval without a score band or comparison mode")
        return ApprovalClaims(
            audience=tenant.token_audience,
            subject_id=verdict.subject_id,
            operation="verify" if operation is Operation.VERIFY else "identify",
            model_id=model_id,
            operating_point=verdict.operating_point,
            score_band=verdict.band.value,
            enrolment_images=verdict.enrolment_images,
            probe_images=verdict.probe_images,
            transaction_hash=transaction.binding,
        )
