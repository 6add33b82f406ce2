"""``bioauth db migrate`` on a fresh database of each backend."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from bioauth.cli.main import main
from bioauth.store.migrations import load_migrations
from tests.integration.store.conftest import new_schema

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_db_migrate_applies_pending_migrations_once(
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if kind == "sqlite":
            url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        else:
            schema = await stack.enter_async_context(
                new_schema(request.getfixturevalue("pg_database"))
            )
            url = schema.dsn
        monkeypatch.setenv("BIOAUTH_STORE__URL", url)
        await _migrate_twice(capsys)


async def _migrate_twice(capsys: pytest.CaptureFixture[str]) -> None:
    latest = len(load_migrations("sqlite"))
    assert await asyncio.to_thread(main, ["db", "migrate"]) == 0
    applied = ", ".join(str(v) for v in range(1, latest + 1))
    assert f"applied {applied}; schema version {latest}" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["db", "migrate"]) == 0
    assert f"applied none pending; schema version {latest}" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["audit", "verify"]) == 0
    assert "no audit chains" in capsys.readouterr().out


async def test_db_migrate_reports_an_unreachable_store(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BIOAUTH_STORE__URL", "postgresql://postgres@127.0.0.1:1/none")
    monkeypatch.setenv("BIOAUTH_STORE__COMMAND_TIMEOUT_S", "2")
    assert await asyncio.to_thread(main, ["db", "migrate"]) == 1
    assert "PostgreSQL store unavailable" in capsys.readouterr().err
