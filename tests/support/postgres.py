"""A fresh PostgreSQL database for one test session, dropped afterwards.

Talks to the server at ``BIOAUTH_TEST_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``,
trust authentication) and creates ``bioauth_test_<random>`` in it. When the server is not there the
tests skip with a how-to, or fail in CI.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tests.support.environment import missing

ADMIN_DSN = os.environ.get("BIOAUTH_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
_HOW = (
    "start PostgreSQL on 127.0.0.1:5432 with user postgres and trust authentication "
    "(for example `apt-get install -y postgresql && service postgresql start`), "
    "or point BIOAUTH_TEST_PG_DSN at a server where that user may CREATE DATABASE"
)


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run(sql: str) -> None:
    # In a thread of its own: the caller may be a fixture set up inside a running event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _admin(sql)).result()


@contextmanager
def fresh_database(prefix: str = "bioauth_test") -> Iterator[str]:
    """Create an empty database, yield its DSN, drop it (with any sessions left on it)."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    try:
        _run(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        missing(f"PostgreSQL at {ADMIN_DSN} ({exc.__class__.__name__}: {exc})", _HOW)
    try:
        yield _with_database(ADMIN_DSN, name)
    finally:
        _run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
