"""Column lists and row-to-record conversion shared by both backends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from bioauth.crypto.envelope import SealedTemplate
from bioauth.errors import InvalidInput
from bioauth.store.audit import decode_details
from bioauth.store.protocol import (
    AuditEntry,
    AuditRecord,
    Consent,
    Enrolment,
    SubjectRecord,
    SubjectStatus,
)

TEMPLATE_COLUMNS = (
    "template_id, tenant_id, subject_id, model_id, format_version, nonce, ciphertext, "
    "wrapped_key, key_id, key_version, quality, created_at"
)
SUBJECT_COLUMNS = "tenant_id, subject_id, external_ref, status, key_id, created_at"
CONSENT_COLUMNS = "policy_version, consented_at, channel, purpose, identification, withdrawn_at"
AUDIT_COLUMNS = (
    "tenant_id, seq, prev_hash, row_hash, at, operation, subject_id, decision, score_band, "
    "operating_point, model_id, token_jti, details"
)

TimeIn = Callable[[Any], datetime]


def template_from_row(row: Sequence[Any], parse_time: TimeIn) -> SealedTemplate:
    return SealedTemplate(
        template_id=row[0],
        tenant_id=row[1],
        subject_id=row[2],
        model_id=row[3],
        format_version=int(row[4]),
        nonce=bytes(row[5]),
        ciphertext=bytes(row[6]),
        wrapped_key=bytes(row[7]),
        key_id=row[8],
        key_version=int(row[9]),
        quality=float(row[10]),
        created_at=parse_time(row[11]),
    )


def consent_from_row(row: Sequence[Any] | None, parse_time: TimeIn) -> Consent | None:
    if row is None:
        return None
    return Consent(
        policy_version=row[0],
        consented_at=parse_time(row[1]),
        channel=row[2],
        purpose=row[3],
        identification=bool(row[4]),
        withdrawn_at=None if row[5] is None else parse_time(row[5]),
    )


def subject_from_row(
    row: Sequence[Any], consent: Consent | None, parse_time: TimeIn
) -> SubjectRecord:
    return SubjectRecord(
        tenant_id=row[0],
        subject_id=row[1],
        external_ref=row[2],
        status=SubjectStatus(row[3]),
        key_id=row[4],
        created_at=parse_time(row[5]),
        consent=consent,
    )


def audit_from_row(row: Sequence[Any], parse_time: TimeIn) -> AuditRecord:
    entry = AuditEntry(
        tenant_id=row[0],
        at=parse_time(row[4]),
        operation=row[5],
        subject_id=row[6],
        decision=row[7],
        score_band=row[8],
        operating_point=row[9],
        model_id=row[10],
        token_jti=row[11],
        details=decode_details(row[12]),
    )
    return AuditRecord(
        entry=entry, seq=int(row[1]), prev_hash=bytes(row[2]), row_hash=bytes(row[3])
    )


def check_enrolment(enrolment: Enrolment) -> None:
    """Refuse an enrolment whose parts disagree, before anything is written."""
    if not enrolment.templates:
        raise InvalidInput("an enrolment needs at least one template", field="templates")
    if enrolment.audit.tenant_id != enrolment.tenant_id:
        raise InvalidInput("audit entry belongs to another tenant", field="audit")
    for template in enrolment.templates:
        if (template.tenant_id, template.subject_id, template.key_id) != (
            enrolment.tenant_id,
            enrolment.subject_id,
            enrolment.key_id,
        ):
            raise InvalidInput("template sealed for another subject or key", field="templates")
