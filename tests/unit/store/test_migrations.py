"""Migration files: numbered without gaps, same versions for both backends, SQLite splitting."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bioauth.errors import StoreUnavailable
from bioauth.store._sqlite_migrate import _statements, apply_migrations, current_version
from bioauth.store.migrations import load_migrations


def test_both_backends_have_the_same_numbered_migrations() -> None:
    sqlite = load_migrations("sqlite")
    postgres = load_migrations("postgresql")
    assert [m.version for m in sqlite] == list(range(1, len(sqlite) + 1))
    assert [(m.version, m.name) for m in sqlite] == [(m.version, m.name) for m in postgres]
    assert all(len(m.checksum) == 64 for m in sqlite + postgres)


def test_sqlite_statements_keep_trigger_bodies_whole() -> None:
    sql = "-- c\nCREATE TABLE a (x INT);\nCREATE TRIGGER t BEFORE DELETE ON a\nBEGIN\n  SELECT 1;\n  SELECT 2;\nEND;\n"
    assert list(_statements(sql)) == [
        "-- c\nCREATE TABLE a (x INT);",
        "CREATE TRIGGER t BEFORE DELETE ON a\nBEGIN\n  SELECT 1;\n  SELECT 2;\nEND;",
    ]


def test_sqlite_migrations_apply_once_and_refuse_an_edited_history(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.sqlite3", isolation_level=None)
    try:
        assert apply_migrations(conn) == [m.version for m in load_migrations("sqlite")]
        assert apply_migrations(conn) == []
        assert current_version(conn) == len(load_migrations("sqlite"))
        conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        with pytest.raises(StoreUnavailable, match="edited"):
            current_version(conn)
        original = load_migrations("sqlite")[0].checksum
        conn.execute("UPDATE schema_migrations SET checksum = ? WHERE version = 1", (original,))
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'x', 'now')")
        with pytest.raises(StoreUnavailable, match="newer"):
            apply_migrations(conn)
    finally:
        conn.close()
