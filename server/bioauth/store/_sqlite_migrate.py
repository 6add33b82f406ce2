"""Applying SQLite migrations, each in its own ``BEGIN IMMEDIATE`` transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

from bioauth.store.audit import canonical_time
from bioauth.store.migrations import check_applied, load_migrations

__all__ = ["apply_migrations", "current_version"]

_CREATE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, "
    "applied_at TEXT NOT NULL)"
)


def _statements(sql: str) -> Iterator[str]:
    # executescript() would COMMIT our transaction first, so split on complete statements
    # (sqlite3.complete_statement understands trigger bodies with inner semicolons).
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            buffer = ""
            if statement.strip(";").strip():
                yield statement
    if buffer.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()
    ):
        raise RuntimeError("migration ends with an incomplete statement")


def _applied(conn: sqlite3.Connection) -> dict[int, str]:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if exists is None:
        return {}
    return {int(v): c for v, c in conn.execute("SELECT version, checksum FROM schema_migrations")}


def current_version(conn: sqlite3.Connection) -> int:
    applied = _applied(conn)
    check_applied(applied, load_migrations("sqlite"))
    return max(applied, default=0)


def apply_migrations(conn: sqlite3.Connection) -> list[int]:
    """Apply what is pending; safe to run from several processes at once."""
    done: list[int] = []
    for migration in load_migrations("sqlite"):
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_CREATE)
            applied = _applied(conn)
            check_applied(applied, load_migrations("sqlite"))
            if migration.version in applied:
                conn.execute("COMMIT")
                continue
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
                "VALUES (?, ?, ?, ?)",
                (
                    migration.version,
                    migration.name,
                    migration.checksum,
                    canonical_time(datetime.now(UTC)),
                ),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        done.append(migration.version)
    return done
