"""The template store: sealed templates, subjects, consent and the hash-chained audit log.

Backends: SQLite (embedded default) and PostgreSQL (asyncpg), behind ``TemplateStore``; build the
configured one with ``bioauth.store.factory.open_store``.
"""

from bioauth.store.protocol import (
    AuditEntry,
    AuditRecord,
    AuditVerification,
    Consent,
    Enrolment,
    EnrolOutcome,
    SubjectExists,
    SubjectKey,
    SubjectRecord,
    SubjectStatus,
    TemplateStore,
    WrappedKeyUpdate,
    new_subject_id,
)

__all__ = [
    "AuditEntry",
    "AuditRecord",
    "AuditVerification",
    "Consent",
    "EnrolOutcome",
    "Enrolment",
    "SubjectExists",
    "SubjectKey",
    "SubjectRecord",
    "SubjectStatus",
    "TemplateStore",
    "WrappedKeyUpdate",
    "new_subject_id",
]
