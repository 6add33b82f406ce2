"""1:1 verification: is the person in the probe crops the holder of this subject reference?

The subject is looked up first (an unknown or opted-out subject costs no inference), the probes
are embedded through the batcher, the subject's templates are decrypted only for this comparison,
and the policy decides at the operating point the tenant's settings name, in the richest comparison
mode it has calibrated for the images at hand.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bioauth.config import TenantSettings
from bioauth.crypto.provider import KeyProvider
from bioauth.matching import policy
from bioauth.matching.decision import no_usable_probe
from bioauth.matching.operating_points import Calibration, require_calibration
from bioauth.service.decisions import DecisionRecorder
from bioauth.service.domain import AuthorizationOutcome, FaceInput, Operation, Transaction
from bioauth.service.face_embedder import FaceEmbedder
from bioauth.service.templates import enrolled_subject, open_enrolment
from bioauth.store.protocol import TemplateStore

__all__ = ["VerifyService"]


class VerifyService:
    """The verification use case; transport-independent."""

    def __init__(
        self,
        *,
        store: TemplateStore,
        keys: KeyProvider,
        embedder: FaceEmbedder,
        calibration: Calibration | None,
        recorder: DecisionRecorder,
    ) -> None:
        self._store = store
        self._keys = keys
        self._embedder = embedder
        self._calibration = calibration
        self._recorder = recorder

    async def verify(
        self,
        tenant: TenantSettings,
        external_ref: str,
        probes: Sequence[FaceInput],
        transaction: Transaction,
        *,
        deadline: float | None,
    ) -> AuthorizationOutcome:
        """Decide and record; ``NotFound`` for a subject this tenant does not know,
        ``FailedPrecondition`` for one who opted out or has no template of the serving model."""
        subject = await enrolled_subject(self._store, tenant.id, external_ref, deadline)
        calibration = require_calibration(self._calibration, self._embedder.model_id)
        model_id = self._embedder.model_id
        outcomes = tuple(await self._embedder.embed_all(probes, deadline=deadline))
        usable = [o.embedding for o in outcomes if o.embedding is not None]
        if not usable:
            verdict = no_usable_probe(subject.subject_id)
        else:
            enrolment = await open_enrolment(self._store, self._keys, subject, model_id, deadline)
            verdict = policy.verify(
                enrolment,
                np.stack(usable),
                calibration,
                tenant.verify_operating_point,
                subject_id=subject.subject_id,
            )
            del enrolment  # decrypted templates live no longer than the comparison
        return await self._recorder.record(
            tenant=tenant,
            operation=Operation.VERIFY,
            verdict=verdict,
            transaction=transaction,
            model_id=model_id,
            probes=outcomes,
            deadline=deadline,
        )
