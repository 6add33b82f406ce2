"""Reference digests on a store that predates them: filled in at migrate, and the key is checked.

Migration 0003 adds the keyed digest of each subject's external reference; SQL cannot compute it,
so the store fills existing rows from Python when it migrates. These tests build a database at
schema version 2 by hand (as an older server left it), on both backends.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from bioauth.errors import StoreUnavailable
from bioauth.store import _pg_migrate, _sqlite_migrate
from bioauth.store.migrations import load_migrations
from bioauth.store.postgres import PostgresTemplateStore
from bioauth.store.protocol import SubjectStatus, TemplateStore
from bioauth.store.sqlite import SqliteTemplateStore
from tests.integration.store.conftest import BACKENDS, new_schema

pytestmark = pytest.mark.integration

_OLD_VERSION = 2
_KEY = b"a-production-like-secret-of-32-b"
_OTHER_KEY = b"another-secret-that-is-not-it-!!"
_T = "2026-01-01T00:00:00.000000+00:00"
_ROWS = [
    # tenant, subject, external_ref, status: one live subject, one that finished opting out.
    ("bank-a", "subj-live", "card-1", "enrolled"),
    ("bank-a", "subj-gone", None, "opted_out"),
]

Opener = Callable[[bytes, bool], Awaitable[TemplateStore]]


def _old_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(_sqlite_migrate._CREATE)
        for m in load_migrations("sqlite")[:_OLD_VERSION]:
            for statement in _sqlite_migrate._statements(m.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?, ?)",
                (m.version, m.name, m.checksum, _T),
            )
        conn.execute("INSERT INTO tenants VALUES ('bank-a')")
        for tenant, subject, ref, status in _ROWS:
            conn.execute(
                "INSERT INTO subjects (tenant_id, subject_id, external_ref, status, key_id, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 'k', ?, ?)",
                (tenant, subject, ref, status, _T, _T),
            )
    finally:
        conn.close()


async def _old_postgres(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_pg_migrate._CREATE)
        for m in load_migrations("postgresql")[:_OLD_VERSION]:
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                m.version,
                m.name,
                m.checksum,
            )
        await conn.execute("INSERT INTO tenants VALUES ('bank-a')")
        for tenant, subject, ref, status in _ROWS:
            await conn.execute(
                "INSERT INTO subjects (tenant_id, subject_id, external_ref, status, key_id, "
                "created_at, updated_at) VALUES ($1, $2, $3, $4, 'k', now(), now())",
                tenant,
                subject,
                ref,
                status,
            )
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
async def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens (key, migrate) a database that an older server left at schema version 2."""
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            path = tmp_path / "old.sqlite3"
            _old_sqlite(path)

            async def open_sqlite(key: bytes, migrate: bool) -> TemplateStore:
                return await SqliteTemplateStore.open(path, migrate=migrate, external_ref_key=key)

            yield open_sqlite
        else:
            schema = await stack.enter_async_context(
                new_schema(request.getfixturevalue("pg_database"))
            )
            await _old_postgres(schema.dsn)

            async def open_pg(key: bytes, migrate: bool) -> TemplateStore:
                return await PostgresTemplateStore.open(
                    schema.dsn, migrate=migrate, max_size=2, external_ref_key=key
                )

            yield open_pg


async def test_migrate_digests_existing_references_and_refuses_another_key(
    old_store: Opener,
) -> None:
    """The live subject is found by reference after migrating (its digest was back-filled);
    the subject that opted out before digests existed has nothing left to find it by. A store
    opened later under a different key is refused instead of silently missing every subject."""
    with pytest.raises(StoreUnavailable, match="bioauth db migrate"):
        await old_store(_KEY, False)
    store = await old_store(_KEY, True)
    try:
        assert await store.schema_version() == len(load_migrations("sqlite"))
        found = await store.get_subject("bank-a", "card-1")
        assert found is not None
        assert (found.subject_id, found.status) == ("subj-live", SubjectStatus.ENROLLED)
        gone = await store.get_subject_by_id("bank-a", "subj-gone")
        assert gone is not None
        assert gone.status is SubjectStatus.OPTED_OUT
        assert await store.migrate() == []  # the back-fill is idempotent
    finally:
        await store.close()
    for migrate in (True, False):
        with pytest.raises(StoreUnavailable, match="external_ref_key"):
            await old_store(_OTHER_KEY, migrate)
    again = await old_store(_KEY, False)
    try:
        assert await again.get_subject("bank-a", "card-1") is not None
    finally:
        await again.close()
