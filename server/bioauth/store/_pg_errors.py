"""Translating asyncpg's errors into bioauth's, once, at the adapter boundary."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg

from bioauth.errors import BioauthError, InternalError, StoreUnavailable

__all__ = ["translated"]

# The server refused for reasons a retry later may fix: resources, shutdown, conflicts, timeouts.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57", "58")


def _translate(exc: BaseException) -> BioauthError | None:
    if isinstance(exc, BioauthError):
        return None
    if isinstance(exc, asyncpg.exceptions.UndefinedTableError):
        return StoreUnavailable("PostgreSQL schema is missing: run `bioauth db migrate`")
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = str(getattr(exc, "sqlstate", "") or "")
        if sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES:
            return StoreUnavailable(
                f"PostgreSQL store unavailable ({sqlstate}): {exc.__class__.__name__}"
            )
        return InternalError(
            f"PostgreSQL refused a store query ({sqlstate}): {exc.__class__.__name__}"
        )
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        # Seen when the server killed a pooled connection mid-protocol ("cannot switch to
        # state ..."): the connection is unusable, a retry gets another one.
        return StoreUnavailable(f"PostgreSQL connection in an unknown state: {exc}")
    if isinstance(exc, asyncpg.InterfaceError | OSError | TimeoutError):
        return StoreUnavailable(f"PostgreSQL store unavailable: {exc.__class__.__name__}: {exc}")
    return None


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Wrap store work: asyncpg and socket errors leave as ``StoreUnavailable``/``InternalError``."""
    try:
        yield
    except Exception as exc:
        mapped = _translate(exc)
        if mapped is None:
            raise
        raise mapped from exc
