"""Column lists, SQL fragments, row-to-record conversion and the dialect-free checks of an
enrolment or opt-out, shared by both backends (each keeps only its own SQL and driver calls)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from bioauth.crypto.envelope import SealedTemplate
from bioauth.errors import AlreadyExists, FailedPrecondition, InvalidInput, NotFound
from bioauth.store.audit import decode_details
from bioauth.store.protocol import (
    AuditEntry,
    AuditRecord,
    Consent,
    Enrolment,
    EnrolOutcome,
    SubjectExists,
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

TEMPLATE_COLUMNS_T = ", ".join("t." + c.strip() for c in TEMPLATE_COLUMNS.split(","))
"""``TEMPLATE_COLUMNS`` qualified by the alias ``t``, for queries that join."""

ENROLLED = (
    "EXISTS (SELECT 1 FROM subjects s WHERE s.tenant_id = t.tenant_id "
    "AND s.subject_id = t.subject_id AND s.status = 'enrolled')"
)
# A subject in the 1:N gallery: enrolled, and its newest consent allows 1:N and is not withdrawn.
GALLERY_SUBJECT = (
    "s.status = 'enrolled' AND (SELECT c.identification AND c.withdrawn_at IS NULL "
    "FROM consents c WHERE c.tenant_id = s.tenant_id AND c.subject_id = s.subject_id "
    "ORDER BY c.id DESC LIMIT 1) IS TRUE"
)
GALLERY = (
    "EXISTS (SELECT 1 FROM subjects s WHERE s.tenant_id = t.tenant_id "  # noqa: S608
    f"AND s.subject_id = t.subject_id AND {GALLERY_SUBJECT})"
)
"""A template ``t`` whose subject is in the 1:N gallery."""

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


def replayed_enrolment(
    e: Enrolment, stored_digest: bytes, stored_response: bytes, subject: SubjectRecord | None
) -> EnrolOutcome:
    """The answer to a retried enrolment whose idempotency key is already stored: the first
    answer again, unless the key was used for a different request or its subject is gone."""
    if stored_digest != e.request_digest:
        raise AlreadyExists("idempotency key already used for a different enrolment")
    if subject is None:
        raise NotFound("subject of the earlier enrolment is gone")
    return EnrolOutcome(subject=subject, response=stored_response, replayed=True)


def check_live_subject(existing: SubjectRecord, e: Enrolment) -> None:
    """A live subject already under the enrolment's reference may only gain templates when it
    is the same subject, still enrolled, under the same key."""
    if existing.status is not SubjectStatus.ENROLLED:
        raise FailedPrecondition("subject has opted out or is opting out")
    if (existing.subject_id, existing.key_id) != (e.subject_id, e.key_id):
        raise SubjectExists("this external reference is enrolled under another subject id")


def opt_out_to_complete(subject: SubjectRecord | None) -> bool:
    """Whether completing the opt-out has work to do (False: already done, so a retry is a
    no-op); an unknown subject or one not marked pending first is refused."""
    if subject is None:
        raise NotFound("no such subject")
    if subject.status is SubjectStatus.OPTED_OUT:
        return False
    if subject.status is not SubjectStatus.OPT_OUT_PENDING:
        raise FailedPrecondition("opt-out must be marked pending before it completes")
    return True
