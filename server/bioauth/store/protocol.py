"""The template store's protocol and the plain records that cross it.

The store keeps only what the service layer needs and nothing it must not: templates arrive and
leave sealed (``bioauth.crypto.envelope.SealedTemplate``: ciphertext, nonce, wrapped data key), so
no backend ever sees an embedding. Subjects are known by the server's random pseudonymous id; the
tenant's own reference for the person (``external_ref``) is kept only while they are enrolled.
Each subject row also keeps a keyed digest of that reference for life (``bioauth.store._refs``),
so a look-up by reference still finds an opted-out subject's withdrawal without the store holding
the account number.

Every state change that matters for accountability (enrolment, opt-out) writes its audit row in
the same transaction as the change, so the audit log can never claim something the data does not
show, or miss something it does.

Backends: ``SqliteTemplateStore`` (embedded default) and ``PostgresTemplateStore`` (asyncpg). Both
pass the same contract tests (``tests/integration/store/test_contract.py``). Build one from settings
with ``bioauth.store.factory.open_store``.

Errors (``bioauth.errors``): ``StoreUnavailable`` when the database cannot be reached or is busy
beyond its timeout; ``AlreadyExists`` when an idempotency key is reused with other content;
``SubjectExists`` when a concurrent enrolment created the same person first; ``FailedPrecondition``
when the subject's state forbids the change; ``NotFound`` for an unknown subject.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from bioauth.crypto.envelope import SealedTemplate
from bioauth.crypto.provider import WrappedKey
from bioauth.errors import AlreadyExists

__all__ = [
    "ENROLL",
    "GALLERY_OPERATIONS",
    "OPT_OUT_COMPLETED",
    "OPT_OUT_REQUESTED",
    "AuditEntry",
    "AuditRecord",
    "AuditVerification",
    "Consent",
    "EnrolOutcome",
    "Enrolment",
    "JsonScalar",
    "SubjectExists",
    "SubjectKey",
    "SubjectRecord",
    "SubjectStatus",
    "TemplateStore",
    "WrappedKeyUpdate",
    "new_subject_id",
]

JsonScalar = str | int | float | bool | None
"""Audit ``details`` hold only scalars: no room for a vector or a blob to slip in."""


def new_subject_id() -> str:
    """A fresh pseudonymous subject id: 128 random bits, URL-safe, never derived from the person."""
    return secrets.token_urlsafe(16)


class SubjectStatus(enum.StrEnum):
    """Where a subject is in its life; only ``ENROLLED`` subjects are ever matched."""

    ENROLLED = "enrolled"
    OPT_OUT_PENDING = "opt_out_pending"
    OPTED_OUT = "opted_out"


class SubjectExists(AlreadyExists):
    """Another enrolment created this external reference first; re-read the subject and retry."""


@dataclass(frozen=True)
class Consent:
    """One consent given by the person (kept after opt-out as the record of consent and withdrawal)."""

    policy_version: str
    consented_at: datetime
    channel: str
    """How consent was collected (``terminal``, ``app``, ``branch``...)."""
    purpose: str
    identification: bool
    """Consent to 1:N identification (being searched for without presenting a card)."""
    withdrawn_at: datetime | None = None


@dataclass(frozen=True)
class SubjectRecord:
    """A subject as stored; ``consent`` is the latest consent record."""

    tenant_id: str
    subject_id: str
    external_ref: str | None
    """``None`` once opted out: the plaintext reference is gone with the templates (only its
    keyed digest remains, so the tenant can still look up the withdrawal by reference)."""
    status: SubjectStatus
    key_id: str
    created_at: datetime
    consent: Consent | None

    def __repr__(self) -> str:
        # external_ref identifies a person to the tenant: never in logs or reprs.
        return (
            f"SubjectRecord(tenant_id={self.tenant_id!r}, subject_id=<pseudonymous>, "
            f"status={self.status.value}, key_id=<...>)"
        )


@dataclass(frozen=True)
class AuditEntry:
    """What a caller asks to append to its tenant's audit chain. Never biometric data."""

    tenant_id: str
    operation: str
    at: datetime
    subject_id: str | None = None
    decision: str | None = None
    score_band: str | None = None
    operating_point: str | None = None
    model_id: str | None = None
    token_jti: str | None = None
    details: Mapping[str, JsonScalar] = field(default_factory=dict)


ENROLL = "enroll"
OPT_OUT_REQUESTED = "opt_out.requested"
OPT_OUT_COMPLETED = "opt_out.completed"
GALLERY_OPERATIONS = frozenset({ENROLL, OPT_OUT_REQUESTED, OPT_OUT_COMPLETED})
"""Audit operations (``AuditEntry.operation``) that change who is in a tenant's 1:N gallery; other
replicas learn of them from the audit chain. An operation added later that changes a subject's
templates or consent must be listed here, or other replicas will miss it."""


@dataclass(frozen=True)
class AuditRecord:
    """An audit row as stored: the entry plus its place and hashes in the tenant's chain."""

    entry: AuditEntry
    seq: int
    prev_hash: bytes
    row_hash: bytes


@dataclass(frozen=True)
class AuditVerification:
    """The result of walking one tenant's chain; ``bad_seq`` names the first row that fails."""

    tenant_id: str
    ok: bool
    rows: int
    bad_seq: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class Enrolment:
    """Everything one enrolment writes, atomically and idempotently on ``idempotency_key``.

    A new subject is created when no live (enrolled or opting-out) subject has ``external_ref``
    in the tenant, even if an opted-out one had it: a person may come back after leaving.
    Otherwise the templates are added to the existing subject, whose ``subject_id`` and
    ``key_id`` must match (read it first with ``get_subject`` and seal under its key); a subject
    still opting out refuses with ``FailedPrecondition``.
    """

    tenant_id: str
    external_ref: str
    subject_id: str
    key_id: str
    consent: Consent
    templates: Sequence[SealedTemplate]
    idempotency_key: str
    request_digest: bytes
    """Digest of the request's canonical content: a replay must carry the same one."""
    response: bytes
    """The service's encoded response, returned as-is to a replay of the same request."""
    audit: AuditEntry
    created_at: datetime

    def __repr__(self) -> str:
        return (
            f"Enrolment(tenant_id={self.tenant_id!r}, templates={len(self.templates)}, "
            f"idempotency_key=<...>)"
        )


@dataclass(frozen=True)
class EnrolOutcome:
    subject: SubjectRecord
    response: bytes
    replayed: bool
    """True when this was a replay of an enrolment already stored (nothing was written)."""


@dataclass(frozen=True)
class SubjectKey:
    """A subject key the store knows of (for rotation)."""

    tenant_id: str
    subject_id: str
    key_id: str


@dataclass(frozen=True)
class WrappedKeyUpdate:
    """Replace ``old`` by ``new`` on one template, only if the row still holds ``old``."""

    template_id: str
    old: WrappedKey
    new: WrappedKey


@runtime_checkable
class TemplateStore(Protocol):
    """Subjects, sealed templates, consent, enrolment idempotency and the audit chain."""

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql`` (for logs and benchmarks)."""
        ...

    async def migrate(self) -> list[int]:
        """Apply pending schema migrations; return the versions applied (empty when current)."""
        ...

    async def schema_version(self) -> int:
        """The newest migration applied (0 for an empty database)."""
        ...

    # --- enrolment and reads ------------------------------------------------------------------

    async def enroll(self, enrolment: Enrolment) -> EnrolOutcome:
        """Write subject, consent, templates, idempotency record and audit row in one transaction."""
        ...

    async def get_subject(self, tenant_id: str, external_ref: str) -> SubjectRecord | None:
        """The subject the tenant knows as ``external_ref``, found by its keyed digest, or ``None``.

        The live (enrolled or opting-out) subject wins; without one, the most recent subject
        that opted out under this reference (status ``OPTED_OUT``, withdrawn consent, no
        templates). Subjects that completed opt-out before digests existed are not found.
        """
        ...

    async def get_subject_by_id(self, tenant_id: str, subject_id: str) -> SubjectRecord | None: ...

    async def list_templates(self, tenant_id: str, subject_id: str) -> list[SealedTemplate]:
        """The subject's templates, oldest first; empty unless the subject is ``ENROLLED``."""
        ...

    def iter_identification_templates(
        self, tenant_id: str, *, batch_size: int = 1000
    ) -> AsyncIterator[list[SealedTemplate]]:
        """The 1:N gallery: templates of enrolled subjects whose current consent allows 1:N."""
        ...

    async def count_identification_subjects(self, tenant_id: str) -> int:
        """How many subjects the 1:N gallery holds (the operating point depends on it)."""
        ...

    # --- opt-out ------------------------------------------------------------------------------

    async def mark_opt_out_pending(
        self, tenant_id: str, subject_id: str, *, audit: AuditEntry
    ) -> SubjectRecord:
        """Stop matching the subject and record the withdrawal of consent, with its audit row.

        Idempotent: a subject already pending or opted out is returned unchanged and no row is
        written. ``NotFound`` if there is no such subject.
        """
        ...

    async def complete_opt_out(self, tenant_id: str, subject_id: str, *, audit: AuditEntry) -> int:
        """Delete the templates and wrapped keys, mark the subject opted out, append ``audit``.

        Call only after the subject key is destroyed in the provider. Returns the number of
        templates deleted (0 when already opted out). ``FailedPrecondition`` unless the subject is
        pending opt-out or opted out.
        """
        ...

    async def list_pending_opt_outs(self, *, limit: int = 100) -> list[SubjectRecord]:
        """Subjects whose opt-out is not finished yet, across tenants, oldest first."""
        ...

    # --- audit --------------------------------------------------------------------------------

    async def append_audit(self, entry: AuditEntry) -> AuditRecord: ...

    async def read_audit(
        self, tenant_id: str, *, after_seq: int = 0, limit: int = 1000
    ) -> list[AuditRecord]: ...

    async def verify_audit_chain(self, tenant_id: str) -> AuditVerification: ...

    async def audit_tenants(self) -> list[str]:
        """Tenants that have an audit chain."""
        ...

    # --- key rotation -------------------------------------------------------------------------

    def iter_subject_keys(self, *, batch_size: int = 500) -> AsyncIterator[list[SubjectKey]]:
        """Keys of enrolled subjects, in pages (rotation)."""
        ...

    def iter_wrapped_keys_for_rewrap(
        self, *, batch_size: int = 500
    ) -> AsyncIterator[list[SealedTemplate]]:
        """Templates of enrolled subjects in pages, each page a separate short read (rewrap)."""
        ...

    async def update_wrapped_keys(self, updates: Sequence[WrappedKeyUpdate]) -> int:
        """Swap wrapped keys in one transaction, each only where the row still holds ``old``."""
        ...

    async def close(self) -> None:
        """Close connections; idempotent."""
        ...
