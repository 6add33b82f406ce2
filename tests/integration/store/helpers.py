"""Enrolling through the store the way the service does: key, seal, one atomic write."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from bioauth.crypto.envelope import SealedTemplate, seal_template
from bioauth.crypto.provider import KeyProvider
from bioauth.store.protocol import (
    AuditEntry,
    Consent,
    Enrolment,
    EnrolOutcome,
    TemplateStore,
    new_subject_id,
)

MODEL_ID = "dlib_resnet_v1"


def now() -> datetime:
    return datetime.now(UTC)


def consent(*, identification: bool = True) -> Consent:
    return Consent(
        policy_version="2026-01",
        consented_at=now(),
        channel="terminal",
        purpose="payment authentication",
        identification=identification,
    )


async def seal_all(
    provider: KeyProvider,
    tenant_id: str,
    subject_id: str,
    key_id: str,
    vectors: Sequence[npt.NDArray[np.floating]],
) -> list[SealedTemplate]:
    return [
        await seal_template(
            provider,
            tenant_id=tenant_id,
            subject_id=subject_id,
            template_id=uuid.uuid4().hex,
            model_id=MODEL_ID,
            key=key_id,
            embedding=vector,
            quality=0.9,
        )
        for vector in vectors
    ]


def enrolment(
    tenant_id: str,
    external_ref: str,
    subject_id: str,
    key_id: str,
    templates: Sequence[SealedTemplate],
    *,
    identification: bool = True,
    idempotency_key: str | None = None,
    digest: bytes | None = None,
) -> Enrolment:
    key = idempotency_key or uuid.uuid4().hex
    return Enrolment(
        tenant_id=tenant_id,
        external_ref=external_ref,
        subject_id=subject_id,
        key_id=key_id,
        consent=consent(identification=identification),
        templates=list(templates),
        idempotency_key=key,
        request_digest=digest or hashlib.sha256(key.encode()).digest(),
        response=b"response:" + key.encode(),
        audit=AuditEntry(
            tenant_id=tenant_id,
            operation="enroll",
            at=now(),
            subject_id=subject_id,
            model_id=MODEL_ID,
            details={"templates": len(templates)},
        ),
        created_at=now(),
    )


async def enroll_new(
    store: TemplateStore,
    provider: KeyProvider,
    tenant_id: str,
    external_ref: str,
    vectors: Sequence[npt.NDArray[np.floating]],
    *,
    identification: bool = True,
) -> tuple[EnrolOutcome, list[SealedTemplate]]:
    """A new subject: fresh pseudonymous id, its own key, sealed templates, one write."""
    subject_id = new_subject_id()
    key = await provider.create_subject_key(tenant_id, subject_id)
    sealed = await seal_all(provider, tenant_id, subject_id, key.key_id, vectors)
    outcome = await store.enroll(
        enrolment(
            tenant_id, external_ref, subject_id, key.key_id, sealed, identification=identification
        )
    )
    return outcome, sealed
