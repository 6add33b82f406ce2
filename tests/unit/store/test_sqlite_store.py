"""SQLite specifics: file settings, refusing a stale schema, cancellation never leaks a connection."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bioauth.config import StoreSettings
from bioauth.errors import InvalidInput, StoreUnavailable
from bioauth.store.audit import GENESIS_HASH
from bioauth.store.factory import open_store, sqlite_path
from bioauth.store.migrations import load_migrations
from bioauth.store.protocol import AuditEntry
from bioauth.store.sqlite import SqliteTemplateStore


async def test_file_is_private_in_wal_mode_with_secure_delete(tmp_path: Path) -> None:
    """0600 file, WAL journal, secure_delete and foreign keys on every connection."""
    path = tmp_path / "sub" / "db.sqlite3"
    store = await SqliteTemplateStore.open(path)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        pragmas = await store._db.read(
            lambda conn: [
                conn.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "secure_delete", "foreign_keys")
            ]
        )
        assert pragmas == ["wal", 1, 1]
    finally:
        await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreUnavailable):
        await store.get_subject("bank-a", "x")


async def test_a_store_not_migrated_is_refused_unless_asked_to_migrate(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with pytest.raises(StoreUnavailable, match="bioauth db migrate"):
        await SqliteTemplateStore.open(path, migrate=False)
    settings = StoreSettings(url=f"sqlite:///{path}", migrate_on_start=False)
    store = await open_store(settings, migrate=True)
    await store.close()
    store = await open_store(settings)
    assert await store.schema_version() == len(load_migrations("sqlite"))
    await store.close()


def test_store_urls() -> None:
    assert sqlite_path("sqlite:///var/x.sqlite3") == Path("var/x.sqlite3")
    assert sqlite_path("sqlite:////abs/x.sqlite3") == Path("/abs/x.sqlite3")
    assert sqlite_path("postgresql://h/db") is None
    with pytest.raises(InvalidInput):
        sqlite_path("sqlite:///")


async def test_unknown_url_scheme_is_refused() -> None:
    with pytest.raises(InvalidInput):
        await open_store(StoreSettings(url="mysql://h/db"))


async def test_cancelled_writes_leave_the_store_usable_and_the_chain_whole(tmp_path: Path) -> None:
    """Cancelling callers mid-write neither leaks the writer nor breaks the audit chain."""
    store = await SqliteTemplateStore.open(tmp_path / "db.sqlite3")
    try:
        tasks = [
            asyncio.create_task(store.append_audit(AuditEntry("bank-a", "verify", now())))
            for _ in range(30)
        ]
        await asyncio.sleep(0)
        for task in tasks[::2]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        record = await asyncio.wait_for(
            store.append_audit(AuditEntry("bank-a", "verify", now())), 5
        )
        result = await store.verify_audit_chain("bank-a")
        assert result.ok
        assert result.rows == record.seq
    finally:
        await store.close()


async def test_a_locked_database_reports_store_unavailable(tmp_path: Path) -> None:
    """Another process holding the write lock past the busy timeout fails closed, clearly."""
    path = tmp_path / "db.sqlite3"
    store = await SqliteTemplateStore.open(path, busy_timeout_s=0.2)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.append_audit(AuditEntry("bank-a", "verify", now()))
        blocker.execute("ROLLBACK")
        record = await store.append_audit(AuditEntry("bank-a", "verify", now()))
        assert record.seq == 1
        assert record.prev_hash == GENESIS_HASH
    finally:
        blocker.close()
        await store.close()


def now() -> datetime:
    return datetime.now(UTC)
