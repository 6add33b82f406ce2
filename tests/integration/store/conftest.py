"""Fixtures for the store tests: both backends, key providers, the reference face descriptors."""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from bioauth.crypto.local_provider import LocalKeyProvider
from bioauth.crypto.provider import KeyProvider
from bioauth.store.postgres import PostgresTemplateStore
from bioauth.store.protocol import TemplateStore
from bioauth.store.sqlite import SqliteTemplateStore
from tests.support.faces import Face, face_set
from tests.support.openbao import OpenBaoServer, openbao_server  # noqa: F401
from tests.support.postgres import fresh_database
from tests.support.softhsm import SoftHsmToken, softhsm_token  # noqa: F401

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def faces() -> list[Face]:
    """The reference dlib descriptors standing in for embeddings (19 faces, 8 identities)."""
    return list(face_set())


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One fresh database for the session; each test gets its own schema inside it."""
    with fresh_database() as dsn:
        yield dsn


@dataclass(frozen=True)
class PgSchema:
    dsn: str
    """DSN whose connections use the schema (``search_path`` as a server setting)."""
    database_dsn: str
    schema: str

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn)


@contextlib.asynccontextmanager
async def new_schema(database_dsn: str) -> AsyncIterator[PgSchema]:
    """A private schema in the session database, dropped afterwards."""
    schema = "t_" + secrets.token_hex(6)
    admin = await asyncpg.connect(database_dsn)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield PgSchema(f"{database_dsn}?search_path={schema}", database_dsn, schema)
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


@pytest.fixture
async def pg_schema(pg_database: str) -> AsyncIterator[PgSchema]:
    async with new_schema(pg_database) as schema:
        yield schema


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TemplateStore]:
    """Each backend in turn, migrated and empty."""
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            opened: TemplateStore = await SqliteTemplateStore.open(tmp_path / "store.sqlite3")
        else:
            # getfixturevalue only for the sync session fixture: async ones cannot be pulled here
            schema = await stack.enter_async_context(
                new_schema(request.getfixturevalue("pg_database"))
            )
            opened = await PostgresTemplateStore.open(schema.dsn, max_size=4)
        stack.push_async_callback(opened.close)
        yield opened


@pytest.fixture
async def local_provider(tmp_path: Path) -> AsyncIterator[LocalKeyProvider]:
    provider = await LocalKeyProvider.open(tmp_path / "dev-keys.json")
    try:
        yield provider
    finally:
        await provider.close()


async def open_provider(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> KeyProvider:
    """A real provider of ``kind``: local file, SoftHSM2 token or OpenBao dev server."""
    if kind == "local":
        return await LocalKeyProvider.open(tmp_path / "dev-keys.json")
    if kind == "pkcs11":
        from bioauth.crypto.pkcs11_provider import Pkcs11KeyProvider

        token: SoftHsmToken = request.getfixturevalue("softhsm_token")
        return await Pkcs11KeyProvider.open(
            library=token.library,
            token_label=token.label,
            user_pin=token.user_pin,
            signing_key_label="bioauth-store-tests-signing",
        )
    from bioauth.crypto.vault_provider import VaultKeyProvider

    server: OpenBaoServer = request.getfixturevalue("openbao_server")
    return await VaultKeyProvider.open(url=server.url, token=server.token, mount=server.mount)


@dataclass
class Backend:
    """A migrated store plus raw access to its database, as an attacker or auditor would have."""

    kind: str
    store: TemplateStore
    sqlite_path: Path | None = None
    pg: PgSchema | None = None

    @property
    def url(self) -> str:
        """``store.url`` for settings (the CLI tests)."""
        if self.sqlite_path is not None:
            return f"sqlite:///{self.sqlite_path}"
        assert self.pg is not None
        return self.pg.dsn

    async def execute(self, sql: str, *args: object) -> None:
        """Run raw SQL written with ``?`` placeholders on a connection of its own."""
        if self.sqlite_path is not None:
            conn = sqlite3.connect(self.sqlite_path, isolation_level=None)
            try:
                conn.execute(sql, args)
            finally:
                conn.close()
            return
        assert self.pg is not None
        pg = await self.pg.connect()
        try:
            await pg.execute(_dollar(sql), *args)
        finally:
            await pg.close()

    async def fetch(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        if self.sqlite_path is not None:
            conn = sqlite3.connect(self.sqlite_path, isolation_level=None)
            try:
                return [tuple(r) for r in conn.execute(sql, args).fetchall()]
            finally:
                conn.close()
        assert self.pg is not None
        pg = await self.pg.connect()
        try:
            return [tuple(r) for r in await pg.fetch(_dollar(sql), *args)]
        finally:
            await pg.close()


def _dollar(sql: str) -> str:
    parts = sql.split("?")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Like ``store``, with the database itself within reach."""
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            path = tmp_path / "store.sqlite3"
            found = Backend("sqlite", await SqliteTemplateStore.open(path), sqlite_path=path)
        else:
            schema = await stack.enter_async_context(
                new_schema(request.getfixturevalue("pg_database"))
            )
            opened = await PostgresTemplateStore.open(schema.dsn, max_size=4)
            found = Backend("postgresql", opened, pg=schema)
        stack.push_async_callback(found.store.close)
        yield found
