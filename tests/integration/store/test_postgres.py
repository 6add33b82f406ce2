"""PostgreSQL specifics: failing closed when the server is away, migrations under concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from bioauth.errors import StoreUnavailable
from bioauth.store.migrations import load_migrations
from bioauth.store.postgres import PostgresTemplateStore
from bioauth.store.protocol import AuditEntry
from tests.integration.store.conftest import PgSchema
from tests.integration.store.helpers import now

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_an_unreachable_server_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable):
        await PostgresTemplateStore.open(
            f"postgresql://postgres@127.0.0.1:{_closed_port()}/x", command_timeout_s=2
        )


async def test_an_unmigrated_schema_is_refused_with_the_command_to_run(pg_schema: PgSchema) -> None:
    with pytest.raises(StoreUnavailable, match="bioauth db migrate"):
        await PostgresTemplateStore.open(pg_schema.dsn, migrate=False)


async def test_concurrent_migrators_apply_each_migration_once(pg_schema: PgSchema) -> None:
    """Replicas starting together queue on the advisory lock; one applies, the others see it done."""
    stores = await asyncio.gather(
        *(
            PostgresTemplateStore.open(pg_schema.dsn, migrate=False, verify_schema=False)
            for _ in range(3)
        )
    )
    try:
        applied = await asyncio.gather(*(s.migrate() for s in stores))
        assert sorted(applied) == [[], [], [m.version for m in load_migrations("postgresql")]]
    finally:
        for store in stores:
            await store.close()


async def test_a_terminated_connection_fails_closed_then_recovers(pg_schema: PgSchema) -> None:
    """Connections killed by the server surface as StoreUnavailable, never as a wrong answer."""
    store = await PostgresTemplateStore.open(
        pg_schema.dsn + "&application_name=bioauth-victim", max_size=1, min_size=1
    )
    try:
        await store.append_audit(AuditEntry("bank-a", "verify", now()))
        admin = await pg_schema.connect()
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'bioauth-victim'"
            )
        finally:
            await admin.close()
        # The pool notices on use; the call fails closed, or already runs on a fresh connection.
        with contextlib.suppress(StoreUnavailable):
            await store.append_audit(AuditEntry("bank-a", "verify", now()))
        await store.append_audit(AuditEntry("bank-a", "verify", now()))
        assert (await store.verify_audit_chain("bank-a")).ok
    finally:
        await store.close()
