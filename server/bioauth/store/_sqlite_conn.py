"""SQLite connections for an async server: one writer, a few readers, all work in threads.

Each store operation is one plain function run start to finish in a worker thread on one
connection, so a transaction never interleaves with another task's statements (which is what
happens when coroutines share one connection across awaits). Writes are serialised by an
``asyncio.Lock`` in this process and by ``BEGIN IMMEDIATE`` across processes (the CLI may rewrap
while the server runs); WAL lets readers go on during a write.

A connection is returned only when its thread is finished with it, even if the awaiting task was
cancelled meanwhile: otherwise the next user would share a connection still mid-transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from bioauth.errors import BioauthError, InternalError, StoreUnavailable

__all__ = ["SqliteConnections"]

T = TypeVar("T")


def _configure(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    # secure_delete: freed pages are overwritten, so a deleted row does not linger in the file.
    for pragma in (
        "PRAGMA foreign_keys = ON",
        "PRAGMA secure_delete = ON",
        f"PRAGMA busy_timeout = {int(busy_timeout_ms)}",
        "PRAGMA synchronous = FULL",
    ):
        conn.execute(pragma)


def _translate(exc: sqlite3.Error) -> BioauthError:
    if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return InternalError("SQLite misuse in the store")
    return StoreUnavailable(f"SQLite store unavailable: {exc.__class__.__name__}: {exc}")


class SqliteConnections:
    """The writer, the readers and the threads they run in."""

    def __init__(self, path: Path, *, readers: int = 2, busy_timeout_s: float = 5.0) -> None:
        self._path = path
        self._readers_n = max(1, readers)
        self._busy_ms = int(busy_timeout_s * 1000)
        self._executor: ThreadPoolExecutor | None = None
        self._writer: sqlite3.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._readers: asyncio.Queue[sqlite3.Connection] = asyncio.Queue()
        self._all: list[sqlite3.Connection] = []
        self._closed = False

    @property
    def path(self) -> Path:
        return self._path

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=self._readers_n + 1, thread_name_prefix="bioauth-sqlite"
        )
        loop = asyncio.get_running_loop()
        try:
            self._writer = await loop.run_in_executor(self._executor, self._connect, True)
            for _ in range(self._readers_n):
                conn = await loop.run_in_executor(self._executor, self._connect, False)
                self._readers.put_nowait(conn)
        except sqlite3.Error as exc:
            await self.close()
            raise _translate(exc) from exc
        except OSError as exc:
            await self.close()
            raise StoreUnavailable(f"SQLite store unavailable: {exc}") from exc

    def _connect(self, writer: bool) -> sqlite3.Connection:
        if writer:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
        conn = sqlite3.connect(
            self._path,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # used by one thread at a time, never concurrently
            timeout=self._busy_ms / 1000,
        )
        self._all.append(conn)
        _configure(conn, self._busy_ms)
        if writer:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreUnavailable(f"SQLite refused WAL mode (got {mode!r})")
        return conn

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT`` on the writer."""

        def tx(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        await self._write_lock.acquire()
        writer = self._writer
        if writer is None or self._closed:
            self._write_lock.release()
            raise StoreUnavailable("SQLite store is closed")
        return await self._run(tx, writer, self._write_lock.release)

    async def write_raw(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the writer with no transaction around it (migrations manage their own)."""
        await self._write_lock.acquire()
        writer = self._writer
        if writer is None or self._closed:
            self._write_lock.release()
            raise StoreUnavailable("SQLite store is closed")
        return await self._run(fn, writer, self._write_lock.release)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreUnavailable("SQLite store is closed")
        conn = await self._readers.get()
        return await self._run(fn, conn, lambda: self._readers.put_nowait(conn))

    async def _run(
        self,
        fn: Callable[[sqlite3.Connection], T],
        conn: sqlite3.Connection,
        release: Callable[[], None],
    ) -> T:
        assert self._executor is not None
        try:
            future = asyncio.get_running_loop().run_in_executor(self._executor, fn, conn)
        except BaseException:
            release()
            raise

        def done(fut: asyncio.Future[T]) -> None:
            release()
            if fut.cancelled():
                return
            fut.exception()  # retrieved here so a cancelled caller leaves no "never retrieved"

        future.add_done_callback(done)
        try:
            return await asyncio.shield(future)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    async def close(self) -> None:
        """Wait for running work, then close every connection; idempotent."""
        if self._closed:
            return
        self._closed = True
        async with self._write_lock:
            executor, self._executor = self._executor, None
            if executor is not None:
                await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
            self._writer = None
