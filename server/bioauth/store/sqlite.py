"""The embedded template store: one SQLite file in WAL mode with ``secure_delete`` on.

Suited to one server process (plus admin commands run beside it). Every operation is one
synchronous function on one connection, run in a thread (``bioauth.store._sqlite_conn``).
After an opt-out the WAL is checkpointed and truncated so the deleted rows' old page images do
not wait in it; the copies that matter anyway (backups, snapshots) are unreadable once the subject
key is destroyed.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bioauth.crypto.envelope import SealedTemplate
from bioauth.errors import AlreadyExists, NotFound, StoreUnavailable
from bioauth.store import _rows
from bioauth.store._refs import DEV_KEY, RefDigester
from bioauth.store._sqlite_conn import SqliteConnections
from bioauth.store._sqlite_migrate import apply_migrations, current_version
from bioauth.store.audit import (
    GENESIS_HASH,
    canonical_time,
    chain_hash,
    encode_details,
    verify_chain,
)
from bioauth.store.migrations import require_current
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

__all__ = ["SqliteTemplateStore"]

_AUDIT_PAGE = 1000


def _t(at: datetime) -> str:
    return canonical_time(at)


def _parse(value: Any) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _subject(conn: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> SubjectRecord | None:
    query = f"SELECT {_rows.SUBJECT_COLUMNS} FROM subjects WHERE {where}"  # noqa: S608
    row = conn.execute(query, args).fetchone()
    if row is None:
        return None
    consent = conn.execute(
        f"SELECT {_rows.CONSENT_COLUMNS} FROM consents "  # noqa: S608
        "WHERE tenant_id = ? AND subject_id = ? ORDER BY id DESC LIMIT 1",
        (row[0], row[1]),
    ).fetchone()
    return _rows.subject_from_row(row, _rows.consent_from_row(consent, _parse), _parse)


def _by_id(conn: sqlite3.Connection, tenant_id: str, subject_id: str) -> SubjectRecord | None:
    return _subject(conn, "tenant_id = ? AND subject_id = ?", (tenant_id, subject_id))


def _ensure_tenant(conn: sqlite3.Connection, tenant_id: str) -> None:
    conn.execute("INSERT OR IGNORE INTO tenants (id) VALUES (?)", (tenant_id,))


def _append_audit(conn: sqlite3.Connection, entry: AuditEntry) -> AuditRecord:
    _ensure_tenant(conn, entry.tenant_id)
    head = conn.execute(
        "SELECT seq, row_hash FROM audit_heads WHERE tenant_id = ?", (entry.tenant_id,)
    ).fetchone()
    seq, prev = (int(head[0]) + 1, bytes(head[1])) if head else (1, GENESIS_HASH)
    row_hash = chain_hash(prev, entry, seq)
    conn.execute(
        f"INSERT INTO audit_log ({_rows.AUDIT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
        (
            entry.tenant_id, seq, prev, row_hash, _t(entry.at), entry.operation, entry.subject_id,
            entry.decision, entry.score_band, entry.operating_point, entry.model_id,
            entry.token_jti, encode_details(entry.details),
        ),
    )  # fmt: skip
    conn.execute(
        "INSERT INTO audit_heads (tenant_id, seq, row_hash) VALUES (?, ?, ?) "
        "ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq, row_hash = excluded.row_hash",
        (entry.tenant_id, seq, row_hash),
    )
    return AuditRecord(entry=entry, seq=seq, prev_hash=prev, row_hash=row_hash)


def _insert_template(conn: sqlite3.Connection, t: SealedTemplate) -> None:
    conn.execute(
        f"INSERT INTO templates ({_rows.TEMPLATE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
        (
            t.template_id, t.tenant_id, t.subject_id, t.model_id, t.format_version, t.nonce,
            t.ciphertext, t.wrapped_key, t.key_id, t.key_version, t.quality, _t(t.created_at),
        ),
    )  # fmt: skip


# The subject a reference names: the live one if any, else the most recent that opted out.
_BY_REF = (
    "tenant_id = ? AND external_ref_digest = ? "
    "ORDER BY status = 'opted_out', updated_at DESC, created_at DESC LIMIT 1"
)
_LIVE_BY_REF = "tenant_id = ? AND external_ref_digest = ? AND status <> 'opted_out'"


def _backfill_refs(conn: sqlite3.Connection, refs: RefDigester) -> int:
    """Digest the references of rows written before the digest column existed; check the key."""
    rows = conn.execute(
        "SELECT tenant_id, subject_id, external_ref FROM subjects "
        "WHERE external_ref_digest IS NULL AND external_ref IS NOT NULL"
    ).fetchall()
    for tenant_id, subject_id, external_ref in rows:
        conn.execute(
            "UPDATE subjects SET external_ref_digest = ? WHERE tenant_id = ? AND subject_id = ?",
            (refs.digest(tenant_id, external_ref), tenant_id, subject_id),
        )
    _check_ref_key(conn, refs)
    return len(rows)


def _check_ref_key(conn: sqlite3.Connection, refs: RefDigester) -> None:
    sample = conn.execute(
        "SELECT tenant_id, external_ref, external_ref_digest FROM subjects "
        "WHERE external_ref IS NOT NULL AND external_ref_digest IS NOT NULL LIMIT 1"
    ).fetchone()
    if sample is not None:
        refs.check_sample(sample[0], sample[1], sample[2])


def _enroll(conn: sqlite3.Connection, e: Enrolment, ref_digest: bytes) -> EnrolOutcome:
    _ensure_tenant(conn, e.tenant_id)
    prior = conn.execute(
        "SELECT request_digest, response, subject_id FROM enrolments "
        "WHERE tenant_id = ? AND idempotency_key = ?",
        (e.tenant_id, e.idempotency_key),
    ).fetchone()
    if prior is not None:
        subject = _by_id(conn, e.tenant_id, prior[2])
        return _rows.replayed_enrolment(e, bytes(prior[0]), bytes(prior[1]), subject)
    # An opted-out subject under the same reference does not block a new enrolment.
    existing = _subject(conn, _LIVE_BY_REF, (e.tenant_id, ref_digest))
    if existing is None:
        try:
            conn.execute(
                f"INSERT INTO subjects ({_rows.SUBJECT_COLUMNS}, updated_at, external_ref_digest) "  # noqa: S608
                "VALUES (?,?,?,?,?,?,?,?)",
                (e.tenant_id, e.subject_id, e.external_ref, SubjectStatus.ENROLLED.value,
                 e.key_id, _t(e.created_at), _t(e.created_at), ref_digest),
            )  # fmt: skip
        except sqlite3.IntegrityError as exc:
            raise SubjectExists("subject id already taken") from exc
    else:
        _rows.check_live_subject(existing, e)
    c = e.consent
    conn.execute(
        f"INSERT INTO consents (tenant_id, subject_id, {_rows.CONSENT_COLUMNS}) "  # noqa: S608
        "VALUES (?,?,?,?,?,?,?,?)",
        (e.tenant_id, e.subject_id, c.policy_version, _t(c.consented_at), c.channel, c.purpose,
         int(c.identification), None if c.withdrawn_at is None else _t(c.withdrawn_at)),
    )  # fmt: skip
    try:
        for template in e.templates:
            _insert_template(conn, template)
    except sqlite3.IntegrityError as exc:
        raise AlreadyExists("template id already stored") from exc
    conn.execute(
        "INSERT INTO enrolments (tenant_id, idempotency_key, request_digest, response, "
        "subject_id, created_at) VALUES (?,?,?,?,?,?)",
        (e.tenant_id, e.idempotency_key, e.request_digest, e.response, e.subject_id,
         _t(e.created_at)),
    )  # fmt: skip
    _append_audit(conn, e.audit)
    subject = _by_id(conn, e.tenant_id, e.subject_id)
    assert subject is not None
    return EnrolOutcome(subject=subject, response=e.response, replayed=False)


def _mark_pending(
    conn: sqlite3.Connection, tenant_id: str, subject_id: str, audit: AuditEntry
) -> SubjectRecord:
    subject = _by_id(conn, tenant_id, subject_id)
    if subject is None:
        raise NotFound("no such subject")
    if subject.status is not SubjectStatus.ENROLLED:
        return subject
    at = _t(audit.at)
    conn.execute(
        "UPDATE subjects SET status = ?, updated_at = ? WHERE tenant_id = ? AND subject_id = ?",
        (SubjectStatus.OPT_OUT_PENDING.value, at, tenant_id, subject_id),
    )
    conn.execute(
        "UPDATE consents SET withdrawn_at = ? "
        "WHERE tenant_id = ? AND subject_id = ? AND withdrawn_at IS NULL",
        (at, tenant_id, subject_id),
    )
    # A replayed enrolment must not answer "enrolled" for someone who left.
    conn.execute(
        "DELETE FROM enrolments WHERE tenant_id = ? AND subject_id = ?", (tenant_id, subject_id)
    )
    _append_audit(conn, audit)
    updated = _by_id(conn, tenant_id, subject_id)
    assert updated is not None
    return updated


def _complete(conn: sqlite3.Connection, tenant_id: str, subject_id: str, audit: AuditEntry) -> int:
    subject = _by_id(conn, tenant_id, subject_id)
    if not _rows.opt_out_to_complete(subject):
        return 0
    deleted = conn.execute(
        "DELETE FROM templates WHERE tenant_id = ? AND subject_id = ?", (tenant_id, subject_id)
    ).rowcount
    conn.execute(
        "DELETE FROM enrolments WHERE tenant_id = ? AND subject_id = ?", (tenant_id, subject_id)
    )
    conn.execute(
        "UPDATE subjects SET status = ?, external_ref = NULL, updated_at = ? "
        "WHERE tenant_id = ? AND subject_id = ?",
        (SubjectStatus.OPTED_OUT.value, _t(audit.at), tenant_id, subject_id),
    )
    _append_audit(conn, audit)
    return int(deleted)


class SqliteTemplateStore:
    """``TemplateStore`` on one SQLite file."""

    def __init__(
        self,
        path: Path,
        *,
        readers: int = 2,
        busy_timeout_s: float = 5.0,
        external_ref_key: bytes = DEV_KEY,
    ) -> None:
        self._db = SqliteConnections(path, readers=readers, busy_timeout_s=busy_timeout_s)
        self._refs = RefDigester(external_ref_key)

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        migrate: bool = True,
        verify_schema: bool = True,
        readers: int = 2,
        busy_timeout_s: float = 5.0,
        external_ref_key: bytes = DEV_KEY,
    ) -> SqliteTemplateStore:
        """Open (creating the file 0600) and migrate, or check the schema is current.

        ``verify_schema=False`` skips the check (only ``bioauth db migrate`` wants that).
        ``external_ref_key`` must be the key the store's reference digests were written with
        (``StoreSettings.external_ref_key``); another one is refused with ``StoreUnavailable``.
        """
        store = cls(
            path,
            readers=readers,
            busy_timeout_s=busy_timeout_s,
            external_ref_key=external_ref_key,
        )
        await store._db.open()
        try:
            if migrate:
                await store.migrate()
            elif verify_schema:
                require_current(await store.schema_version(), "sqlite")
                await store._db.read(lambda conn: _check_ref_key(conn, store._refs))
        except BaseException:
            await store.close()
            raise
        return store

    @property
    def backend(self) -> str:
        return "sqlite"

    @property
    def path(self) -> Path:
        return self._db.path

    async def migrate(self) -> list[int]:
        """Apply pending migrations, then fill in missing reference digests (every time, so a
        crash between the two is healed by the next start)."""
        applied = await self._db.write_raw(apply_migrations)
        await self._db.write(lambda conn: _backfill_refs(conn, self._refs))
        return applied

    async def schema_version(self) -> int:
        return await self._db.read(current_version)

    async def enroll(self, enrolment: Enrolment) -> EnrolOutcome:
        _rows.check_enrolment(enrolment)
        digest = self._refs.digest(enrolment.tenant_id, enrolment.external_ref)
        return await self._db.write(lambda conn: _enroll(conn, enrolment, digest))

    async def get_subject(self, tenant_id: str, external_ref: str) -> SubjectRecord | None:
        digest = self._refs.digest(tenant_id, external_ref)
        return await self._db.read(lambda conn: _subject(conn, _BY_REF, (tenant_id, digest)))

    async def get_subject_by_id(self, tenant_id: str, subject_id: str) -> SubjectRecord | None:
        return await self._db.read(lambda conn: _by_id(conn, tenant_id, subject_id))

    async def list_templates(self, tenant_id: str, subject_id: str) -> list[SealedTemplate]:
        def run(conn: sqlite3.Connection) -> list[SealedTemplate]:
            rows = conn.execute(
                f"SELECT {_rows.TEMPLATE_COLUMNS} FROM templates t "  # noqa: S608
                "WHERE t.tenant_id = ? AND t.subject_id = ? AND EXISTS (SELECT 1 FROM subjects s "
                "WHERE s.tenant_id = t.tenant_id AND s.subject_id = t.subject_id "
                "AND s.status = 'enrolled') ORDER BY t.created_at, t.template_id",
                (tenant_id, subject_id),
            ).fetchall()
            return [_rows.template_from_row(r, _parse) for r in rows]

        return await self._db.read(run)

    async def iter_identification_templates(
        self, tenant_id: str, *, batch_size: int = 1000
    ) -> AsyncIterator[list[SealedTemplate]]:
        after = ""
        while True:
            page = await self._db.read(
                functools.partial(
                    _template_page, where=f"t.tenant_id = ? AND {_rows.GALLERY}", args=(tenant_id,),
                    after=after, limit=batch_size,
                )
            )  # fmt: skip
            if not page:
                return
            yield page
            after = page[-1].template_id

    async def count_identification_subjects(self, tenant_id: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                f"SELECT count(*) FROM subjects s WHERE s.tenant_id = ? AND {_rows.GALLERY_SUBJECT}",  # noqa: S608
                (tenant_id,),
            ).fetchone()
            return int(row[0])

        return await self._db.read(run)

    async def mark_opt_out_pending(
        self, tenant_id: str, subject_id: str, *, audit: AuditEntry
    ) -> SubjectRecord:
        return await self._db.write(lambda conn: _mark_pending(conn, tenant_id, subject_id, audit))

    async def complete_opt_out(self, tenant_id: str, subject_id: str, *, audit: AuditEntry) -> int:
        deleted = await self._db.write(lambda conn: _complete(conn, tenant_id, subject_id, audit))
        # Best effort: a busy reader only delays the truncation to a later checkpoint.
        with contextlib.suppress(StoreUnavailable):
            await self._db.write_raw(
                lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            )
        return deleted

    async def list_pending_opt_outs(self, *, limit: int = 100) -> list[SubjectRecord]:
        def run(conn: sqlite3.Connection) -> list[SubjectRecord]:
            keys = conn.execute(
                "SELECT tenant_id, subject_id FROM subjects WHERE status = 'opt_out_pending' "
                "ORDER BY updated_at LIMIT ?",
                (limit,),
            ).fetchall()
            found = [_by_id(conn, t, s) for t, s in keys]
            return [s for s in found if s is not None]

        return await self._db.read(run)

    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        encode_details(entry.details)  # refuse bad details before taking the write lock
        return await self._db.write(lambda conn: _append_audit(conn, entry))

    async def read_audit(
        self, tenant_id: str, *, after_seq: int = 0, limit: int = 1000
    ) -> list[AuditRecord]:
        def run(conn: sqlite3.Connection) -> list[AuditRecord]:
            rows = conn.execute(
                f"SELECT {_rows.AUDIT_COLUMNS} FROM audit_log "  # noqa: S608
                "WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (tenant_id, after_seq, limit),
            ).fetchall()
            return [_rows.audit_from_row(r, _parse) for r in rows]

        return await self._db.read(run)

    async def verify_audit_chain(self, tenant_id: str) -> AuditVerification:
        async def page(after: int) -> list[AuditRecord]:
            return await self.read_audit(tenant_id, after_seq=after, limit=_AUDIT_PAGE)

        async def head() -> tuple[int, bytes] | None:
            row = await self._db.read(
                lambda conn: conn.execute(
                    "SELECT seq, row_hash FROM audit_heads WHERE tenant_id = ?", (tenant_id,)
                ).fetchone()
            )
            return None if row is None else (int(row[0]), bytes(row[1]))

        return await verify_chain(tenant_id, page, head)

    async def audit_tenants(self) -> list[str]:
        rows = await self._db.read(
            lambda conn: conn.execute("SELECT tenant_id FROM audit_heads ORDER BY 1").fetchall()
        )
        return [r[0] for r in rows]

    async def iter_subject_keys(self, *, batch_size: int = 500) -> AsyncIterator[list[SubjectKey]]:
        after = ("", "")
        while True:
            page = await self._db.read(
                functools.partial(_subject_key_page, after=after, limit=batch_size)
            )
            if not page:
                return
            yield page
            after = (page[-1].tenant_id, page[-1].subject_id)

    async def iter_wrapped_keys_for_rewrap(
        self, *, batch_size: int = 500
    ) -> AsyncIterator[list[SealedTemplate]]:
        after = ""
        while True:
            page = await self._db.read(
                functools.partial(
                    _template_page, where=_rows.ENROLLED, args=(), after=after, limit=batch_size
                )
            )
            if not page:
                return
            yield page
            after = page[-1].template_id

    async def update_wrapped_keys(self, updates: Sequence[WrappedKeyUpdate]) -> int:
        if not updates:
            return 0
        params = [
            (
                u.new.blob,
                u.new.key_id,
                u.new.version,
                u.template_id,
                u.old.key_id,
                u.old.version,
                u.old.blob,
            )
            for u in updates
        ]

        def run(conn: sqlite3.Connection) -> int:
            cursor = conn.executemany(
                "UPDATE templates SET wrapped_key = ?, key_id = ?, key_version = ? "
                "WHERE template_id = ? AND key_id = ? AND key_version = ? AND wrapped_key = ?",
                params,
            )
            return int(cursor.rowcount)

        return await self._db.write(run)

    async def close(self) -> None:
        await self._db.close()


def _template_page(
    conn: sqlite3.Connection, *, where: str, args: tuple[Any, ...], after: str, limit: int
) -> list[SealedTemplate]:
    rows = conn.execute(
        f"SELECT {_rows.TEMPLATE_COLUMNS_T} FROM templates t "  # noqa: S608
        f"WHERE {where} AND t.template_id > ? ORDER BY t.template_id LIMIT ?",
        (*args, after, limit),
    ).fetchall()
    return [_rows.template_from_row(r, _parse) for r in rows]


def _subject_key_page(
    conn: sqlite3.Connection, *, after: tuple[str, str], limit: int
) -> list[SubjectKey]:
    rows = conn.execute(
        "SELECT tenant_id, subject_id, key_id FROM subjects "
        "WHERE status = 'enrolled' AND (tenant_id, subject_id) > (?, ?) "
        "ORDER BY tenant_id, subject_id LIMIT ?",
        (*after, limit),
    ).fetchall()
    return [SubjectKey(tenant_id=t, subject_id=s, key_id=k) for t, s, k in rows]
