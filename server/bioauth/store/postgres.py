"""The production template store: PostgreSQL through an asyncpg pool.

Every query is parameterised; asyncpg prepares each one on first use per connection and keeps it
in its statement cache, so the request path runs prepared statements. Every state change runs in
one transaction with its audit row. The audit chain of a tenant is serialised by a row lock on
its head (``audit_heads``), so different tenants never wait for each other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg

from bioauth.crypto.envelope import SealedTemplate
from bioauth.errors import AlreadyExists, NotFound, StoreUnavailable
from bioauth.store import _rows
from bioauth.store._pg_errors import translated
from bioauth.store._pg_migrate import apply_migrations, current_version
from bioauth.store._refs import DEV_KEY, RefDigester
from bioauth.store.audit import GENESIS_HASH, chain_hash, encode_details, verify_chain
from bioauth.store.migrations import require_current
from bioauth.store.notify import notify_gallery_change
from bioauth.store.protocol import (
    AuditEntry,
    AuditRecord,
    AuditVerification,
    Enrolment,
    EnrolOutcome,
    SubjectExists,
    SubjectKey,
    SubjectRecord,
    SubjectStatus,
    WrappedKeyUpdate,
)

__all__ = ["PostgresTemplateStore"]

T = TypeVar("T")
Conn = Any  # asyncpg.Connection or a pool proxy; asyncpg ships no usable type hints
_AUDIT_PAGE = 1000
_ENROLMENT_RACE_RETRIES = 2


def _parse(value: Any) -> datetime:
    moment: datetime = value
    return moment.astimezone(UTC)


async def _subject(conn: Conn, where: str, *args: Any) -> SubjectRecord | None:
    row = await conn.fetchrow(f"SELECT {_rows.SUBJECT_COLUMNS} FROM subjects WHERE {where}", *args)  # noqa: S608
    if row is None:
        return None
    consent = await conn.fetchrow(
        f"SELECT {_rows.CONSENT_COLUMNS} FROM consents "  # noqa: S608
        "WHERE tenant_id = $1 AND subject_id = $2 ORDER BY id DESC LIMIT 1",
        row[0],
        row[1],
    )
    return _rows.subject_from_row(row, _rows.consent_from_row(consent, _parse), _parse)


async def _by_id(conn: Conn, tenant_id: str, subject_id: str) -> SubjectRecord | None:
    return await _subject(conn, "tenant_id = $1 AND subject_id = $2", tenant_id, subject_id)


async def _ensure_tenant(conn: Conn, tenant_id: str) -> None:
    await conn.execute("INSERT INTO tenants (id) VALUES ($1) ON CONFLICT DO NOTHING", tenant_id)


async def _append_audit(conn: Conn, entry: AuditEntry) -> AuditRecord:
    await _ensure_tenant(conn, entry.tenant_id)
    await conn.execute(
        "INSERT INTO audit_heads (tenant_id, seq, row_hash) VALUES ($1, 0, $2) "
        "ON CONFLICT DO NOTHING",
        entry.tenant_id,
        GENESIS_HASH,
    )
    head = await conn.fetchrow(
        "SELECT seq, row_hash FROM audit_heads WHERE tenant_id = $1 FOR UPDATE", entry.tenant_id
    )
    seq, prev = int(head[0]) + 1, bytes(head[1])
    row_hash = chain_hash(prev, entry, seq)
    await conn.execute(
        f"INSERT INTO audit_log ({_rows.AUDIT_COLUMNS}) "  # noqa: S608
        "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
        entry.tenant_id, seq, prev, row_hash, entry.at, entry.operation, entry.subject_id,
        entry.decision, entry.score_band, entry.operating_point, entry.model_id,
        entry.token_jti, encode_details(entry.details),
    )  # fmt: skip
    await conn.execute(
        "UPDATE audit_heads SET seq = $2, row_hash = $3 WHERE tenant_id = $1",
        entry.tenant_id,
        seq,
        row_hash,
    )
    await notify_gallery_change(conn, entry, seq)  # delivered to every replica on commit
    return AuditRecord(entry=entry, seq=seq, prev_hash=prev, row_hash=row_hash)


# The subject a reference names: the live one if any, else the most recent that opted out.
_BY_REF = (
    "tenant_id = $1 AND external_ref_digest = $2 "
    "ORDER BY status = 'opted_out', updated_at DESC, created_at DESC LIMIT 1"
)


async def _backfill_refs(conn: Conn, refs: RefDigester) -> int:
    """Digest the references of rows written before the digest column existed; check the key."""
    rows = await conn.fetch(
        "SELECT tenant_id, subject_id, external_ref FROM subjects "
        "WHERE external_ref_digest IS NULL AND external_ref IS NOT NULL FOR UPDATE"
    )
    await conn.executemany(
        "UPDATE subjects SET external_ref_digest = $3 WHERE tenant_id = $1 AND subject_id = $2",
        [(r[0], r[1], refs.digest(r[0], r[2])) for r in rows],
    )
    await _check_ref_key(conn, refs)
    return len(rows)


async def _check_ref_key(conn: Conn, refs: RefDigester) -> None:
    sample = await conn.fetchrow(
        "SELECT tenant_id, external_ref, external_ref_digest FROM subjects "
        "WHERE external_ref IS NOT NULL AND external_ref_digest IS NOT NULL LIMIT 1"
    )
    if sample is not None:
        refs.check_sample(sample[0], sample[1], sample[2])


async def _enroll(conn: Conn, e: Enrolment, ref_digest: bytes) -> EnrolOutcome:
    await _ensure_tenant(conn, e.tenant_id)
    prior = await conn.fetchrow(
        "SELECT request_digest, response, subject_id FROM enrolments "
        "WHERE tenant_id = $1 AND idempotency_key = $2",
        e.tenant_id,
        e.idempotency_key,
    )
    if prior is not None:
        subject = await _by_id(conn, e.tenant_id, prior[2])
        return _rows.replayed_enrolment(e, bytes(prior[0]), bytes(prior[1]), subject)
    # An opted-out subject under the same reference does not block a new enrolment.
    existing = await _subject(
        conn,
        "tenant_id = $1 AND external_ref_digest = $2 AND status <> 'opted_out' FOR UPDATE",
        e.tenant_id,
        ref_digest,
    )
    if existing is None:
        await conn.execute(
            f"INSERT INTO subjects ({_rows.SUBJECT_COLUMNS}, updated_at, external_ref_digest) "  # noqa: S608
            "VALUES ($1,$2,$3,$4,$5,$6,$6,$7)",
            e.tenant_id, e.subject_id, e.external_ref, SubjectStatus.ENROLLED.value, e.key_id,
            e.created_at, ref_digest,
        )  # fmt: skip
    else:
        _rows.check_live_subject(existing, e)
    c = e.consent
    await conn.execute(
        f"INSERT INTO consents (tenant_id, subject_id, {_rows.CONSENT_COLUMNS}) "  # noqa: S608
        "VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        e.tenant_id, e.subject_id, c.policy_version, c.consented_at, c.channel, c.purpose,
        c.identification, c.withdrawn_at,
    )  # fmt: skip
    await conn.executemany(
        f"INSERT INTO templates ({_rows.TEMPLATE_COLUMNS}) "  # noqa: S608
        "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
        [
            (t.template_id, t.tenant_id, t.subject_id, t.model_id, t.format_version, t.nonce,
             t.ciphertext, t.wrapped_key, t.key_id, t.key_version, t.quality, t.created_at)
            for t in e.templates
        ],
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO enrolments (tenant_id, idempotency_key, request_digest, response, "
        "subject_id, created_at) VALUES ($1,$2,$3,$4,$5,$6)",
        e.tenant_id, e.idempotency_key, e.request_digest, e.response, e.subject_id, e.created_at,
    )  # fmt: skip
    await _append_audit(conn, e.audit)
    subject = await _by_id(conn, e.tenant_id, e.subject_id)
    assert subject is not None
    return EnrolOutcome(subject=subject, response=e.response, replayed=False)


async def _mark_pending(
    conn: Conn, tenant_id: str, subject_id: str, audit: AuditEntry
) -> SubjectRecord:
    subject = await _subject(
        conn, "tenant_id = $1 AND subject_id = $2 FOR UPDATE", tenant_id, subject_id
    )
    if subject is None:
        raise NotFound("no such subject")
    if subject.status is not SubjectStatus.ENROLLED:
        return subject
    await conn.execute(
        "UPDATE subjects SET status = $3, updated_at = $4 WHERE tenant_id = $1 AND subject_id = $2",
        tenant_id, subject_id, SubjectStatus.OPT_OUT_PENDING.value, audit.at,
    )  # fmt: skip
    await conn.execute(
        "UPDATE consents SET withdrawn_at = $3 "
        "WHERE tenant_id = $1 AND subject_id = $2 AND withdrawn_at IS NULL",
        tenant_id, subject_id, audit.at,
    )  # fmt: skip
    # A replayed enrolment must not answer "enrolled" for someone who left.
    await conn.execute(
        "DELETE FROM enrolments WHERE tenant_id = $1 AND subject_id = $2", tenant_id, subject_id
    )
    await _append_audit(conn, audit)
    updated = await _by_id(conn, tenant_id, subject_id)
    assert updated is not None
    return updated


async def _complete(conn: Conn, tenant_id: str, subject_id: str, audit: AuditEntry) -> int:
    subject = await _subject(
        conn, "tenant_id = $1 AND subject_id = $2 FOR UPDATE", tenant_id, subject_id
    )
    if not _rows.opt_out_to_complete(subject):
        return 0
    status = await conn.execute(
        "DELETE FROM templates WHERE tenant_id = $1 AND subject_id = $2", tenant_id, subject_id
    )
    await conn.execute(
        "DELETE FROM enrolments WHERE tenant_id = $1 AND subject_id = $2", tenant_id, subject_id
    )
    await conn.execute(
        "UPDATE subjects SET status = $3, external_ref = NULL, updated_at = $4 "
        "WHERE tenant_id = $1 AND subject_id = $2",
        tenant_id, subject_id, SubjectStatus.OPTED_OUT.value, audit.at,
    )  # fmt: skip
    await _append_audit(conn, audit)
    return int(str(status).split()[-1])


class PostgresTemplateStore:
    """``TemplateStore`` on PostgreSQL. Open with ``await PostgresTemplateStore.open(dsn)``."""

    def __init__(self, pool: Any, *, external_ref_key: bytes = DEV_KEY) -> None:
        self._pool = pool
        self._refs = RefDigester(external_ref_key)
        self._closed = False

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        migrate: bool = True,
        verify_schema: bool = True,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout_s: float = 5.0,
        external_ref_key: bytes = DEV_KEY,
    ) -> PostgresTemplateStore:
        """Open the pool and migrate, or check the schema is current; ``external_ref_key`` must
        be the key the reference digests were written with (another is ``StoreUnavailable``)."""
        refs = RefDigester(external_ref_key)
        with translated():
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                command_timeout=command_timeout_s,
                timeout=command_timeout_s,
            )
        store = cls(pool, external_ref_key=external_ref_key)
        try:
            if migrate:
                await store.migrate()
            elif verify_schema:
                require_current(await store.schema_version(), "postgresql")
                await store._read(lambda c: _check_ref_key(c, refs))
        except BaseException:
            await store.close()
            raise
        return store

    @property
    def backend(self) -> str:
        return "postgresql"

    async def _tx(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        if self._closed:
            raise StoreUnavailable("PostgreSQL store is closed")
        with translated():
            async with self._pool.acquire() as conn, conn.transaction():
                return await fn(conn)

    async def _read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        if self._closed:
            raise StoreUnavailable("PostgreSQL store is closed")
        with translated():
            async with self._pool.acquire() as conn:
                return await fn(conn)

    async def migrate(self) -> list[int]:
        """Apply pending migrations, then fill in missing reference digests (every time, so a
        crash between the two is healed by the next start)."""
        applied = await self._read(apply_migrations)
        await self._tx(lambda c: _backfill_refs(c, self._refs))
        return applied

    async def schema_version(self) -> int:
        return await self._read(current_version)

    async def enroll(self, enrolment: Enrolment) -> EnrolOutcome:
        _rows.check_enrolment(enrolment)
        if self._closed:
            raise StoreUnavailable("PostgreSQL store is closed")
        digest = self._refs.digest(enrolment.tenant_id, enrolment.external_ref)
        for attempt in range(_ENROLMENT_RACE_RETRIES + 1):
            with translated():
                try:
                    async with self._pool.acquire() as conn, conn.transaction():
                        return await _enroll(conn, enrolment, digest)
                except asyncpg.UniqueViolationError as exc:
                    constraint = exc.constraint_name or ""
                    if constraint == "enrolments_pkey" and attempt < _ENROLMENT_RACE_RETRIES:
                        continue  # a concurrent replay committed first: the retry reads its outcome
                    if constraint.startswith("subjects_"):
                        raise SubjectExists("another enrolment created this subject first") from exc
                    if constraint == "templates_pkey":
                        raise AlreadyExists("template id already stored") from exc
                    raise
        raise AssertionError("unreachable")

    async def get_subject(self, tenant_id: str, external_ref: str) -> SubjectRecord | None:
        digest = self._refs.digest(tenant_id, external_ref)
        return await self._read(lambda c: _subject(c, _BY_REF, tenant_id, digest))

    async def get_subject_by_id(self, tenant_id: str, subject_id: str) -> SubjectRecord | None:
        return await self._read(lambda c: _by_id(c, tenant_id, subject_id))

    async def list_templates(self, tenant_id: str, subject_id: str) -> list[SealedTemplate]:
        rows = await self._read(
            lambda c: c.fetch(
                f"SELECT {_rows.TEMPLATE_COLUMNS_T} FROM templates t "  # noqa: S608
                f"WHERE t.tenant_id = $1 AND t.subject_id = $2 AND {_rows.ENROLLED} "
                "ORDER BY t.created_at, t.template_id",
                tenant_id,
                subject_id,
            )
        )
        return [_rows.template_from_row(r, _parse) for r in rows]

    async def _template_page(
        self, where: str, args: tuple[Any, ...], after: str, limit: int
    ) -> list[SealedTemplate]:
        n = len(args)
        rows = await self._read(
            lambda c: c.fetch(
                f"SELECT {_rows.TEMPLATE_COLUMNS_T} FROM templates t "  # noqa: S608
                f"WHERE {where} AND t.template_id > ${n + 1} ORDER BY t.template_id LIMIT ${n + 2}",
                *args,
                after,
                limit,
            )
        )
        return [_rows.template_from_row(r, _parse) for r in rows]

    async def iter_identification_templates(
        self, tenant_id: str, *, batch_size: int = 1000
    ) -> AsyncIterator[list[SealedTemplate]]:
        after = ""
        while page := await self._template_page(
            f"t.tenant_id = $1 AND {_rows.GALLERY}", (tenant_id,), after, batch_size
        ):
            yield page
            after = page[-1].template_id

    async def count_identification_subjects(self, tenant_id: str) -> int:
        value = await self._read(
            lambda c: c.fetchval(
                f"SELECT count(*) FROM subjects s WHERE s.tenant_id = $1 AND {_rows.GALLERY_SUBJECT}",  # noqa: S608
                tenant_id,
            )
        )
        return int(value)

    async def mark_opt_out_pending(
        self, tenant_id: str, subject_id: str, *, audit: AuditEntry
    ) -> SubjectRecord:
        return await self._tx(lambda c: _mark_pending(c, tenant_id, subject_id, audit))

    async def complete_opt_out(self, tenant_id: str, subject_id: str, *, audit: AuditEntry) -> int:
        return await self._tx(lambda c: _complete(c, tenant_id, subject_id, audit))

    async def list_pending_opt_outs(self, *, limit: int = 100) -> list[SubjectRecord]:
        async def run(c: Conn) -> list[SubjectRecord]:
            keys = await c.fetch(
                "SELECT tenant_id, subject_id FROM subjects WHERE status = 'opt_out_pending' "
                "ORDER BY updated_at LIMIT $1",
                limit,
            )
            found = [await _by_id(c, k[0], k[1]) for k in keys]
            return [s for s in found if s is not None]

        return await self._read(run)

    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        encode_details(entry.details)
        return await self._tx(lambda c: _append_audit(c, entry))

    async def read_audit(
        self, tenant_id: str, *, after_seq: int = 0, limit: int = 1000
    ) -> list[AuditRecord]:
        rows = await self._read(
            lambda c: c.fetch(
                f"SELECT {_rows.AUDIT_COLUMNS} FROM audit_log "  # noqa: S608
                "WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                tenant_id,
                after_seq,
                limit,
            )
        )
        return [_rows.audit_from_row(r, _parse) for r in rows]

    async def verify_audit_chain(self, tenant_id: str) -> AuditVerification:
        async def page(after: int) -> list[AuditRecord]:
            return await self.read_audit(tenant_id, after_seq=after, limit=_AUDIT_PAGE)

        async def head() -> tuple[int, bytes] | None:
            row = await self._read(
                lambda c: c.fetchrow(
                    "SELECT seq, row_hash FROM audit_heads WHERE tenant_id = $1", tenant_id
                )
            )
            return None if row is None else (int(row[0]), bytes(row[1]))

        return await verify_chain(tenant_id, page, head)

    async def audit_tenants(self) -> list[str]:
        rows = await self._read(lambda c: c.fetch("SELECT tenant_id FROM audit_heads ORDER BY 1"))
        return [r[0] for r in rows]

    async def iter_subject_keys(self, *, batch_size: int = 500) -> AsyncIterator[list[SubjectKey]]:
        after = ("", "")
        while True:
            tenant_after, subject_after = after
            rows = await self._read(
                lambda c: c.fetch(
                    "SELECT tenant_id, subject_id, key_id FROM subjects "
                    "WHERE status = 'enrolled' AND (tenant_id, subject_id) > ($1, $2) "
                    "ORDER BY tenant_id, subject_id LIMIT $3",
                    tenant_after,  # noqa: B023 (awaited before the loop moves on)
                    subject_after,  # noqa: B023
                    batch_size,
                )
            )
            if not rows:
                return
            yield [SubjectKey(tenant_id=r[0], subject_id=r[1], key_id=r[2]) for r in rows]
            after = (rows[-1][0], rows[-1][1])

    async def iter_wrapped_keys_for_rewrap(
        self, *, batch_size: int = 500
    ) -> AsyncIterator[list[SealedTemplate]]:
        after = ""
        while page := await self._template_page(_rows.ENROLLED, (), after, batch_size):
            yield page
            after = page[-1].template_id

    async def update_wrapped_keys(self, updates: Sequence[WrappedKeyUpdate]) -> int:
        if not updates:
            return 0
        columns = (
            [u.template_id for u in updates],
            [u.old.blob for u in updates],
            [u.old.key_id for u in updates],
            [u.old.version for u in updates],
            [u.new.blob for u in updates],
            [u.new.key_id for u in updates],
            [u.new.version for u in updates],
        )
        status = await self._tx(
            lambda c: c.execute(
                "UPDATE templates AS t SET wrapped_key = u.new_blob, key_id = u.new_key_id, "
                "key_version = u.new_version FROM unnest($1::text[], $2::bytea[], $3::text[], "
                "$4::int[], $5::bytea[], $6::text[], $7::int[]) "
                "AS u(template_id, old_blob, old_key_id, old_version, new_blob, new_key_id, "
                "new_version) WHERE t.template_id = u.template_id AND t.wrapped_key = u.old_blob "
                "AND t.key_id = u.old_key_id AND t.key_version = u.old_version",
                *columns,
            )
        )
        return int(str(status).split()[-1])

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with translated():
            await self._pool.close()
