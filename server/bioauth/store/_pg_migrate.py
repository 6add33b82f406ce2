"""Applying PostgreSQL migrations under an advisory lock, all pending ones in one transaction."""

from __future__ import annotations

from typing import Any

from bioauth.store.migrations import check_applied, load_migrations

__all__ = ["apply_migrations", "current_version"]

# Any constant shared by every bioauth migrator: concurrent `bioauth db migrate` runs and
# starting replicas queue here instead of racing on CREATE TABLE.
_LOCK_KEY = 0x62696F61_75746831  # "bioauth1"

_CREATE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, "
    "applied_at timestamptz NOT NULL DEFAULT now())"
)


async def _applied(conn: Any) -> dict[int, str]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {int(r[0]): str(r[1]) for r in rows}


async def current_version(conn: Any) -> int:
    applied = await _applied(conn)
    check_applied(applied, load_migrations("postgresql"))
    return max(applied, default=0)


async def apply_migrations(conn: Any) -> list[int]:
    known = load_migrations("postgresql")
    done: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(_CREATE)
        applied = await _applied(conn)
        check_applied(applied, known)
        for migration in known:
            if migration.version in applied:
                continue
            await conn.execute(migration.sql)  # no arguments: simple protocol, many statements
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            done.append(migration.version)
    return done
