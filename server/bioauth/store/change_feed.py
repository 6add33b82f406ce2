"""The 1:N gallery's change feed on PostgreSQL: one dedicated connection that LISTENs, and reads
which subjects changed after a given point of each tenant's audit chain.

The connection is not taken from the store's pool: LISTEN belongs to one session for as long as it
listens, and a pooled connection would be handed to other work. A lost connection is reported
through ``on_lost`` (asyncpg's termination callback) and by ``probe`` failing, which catches one
that died without a word (a network cut); either way the follower reconnects and catches up from
its watermarks, so nothing notified while it was away is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from bioauth.errors import StoreUnavailable
from bioauth.store._pg_errors import translated
from bioauth.store.notify import GALLERY_CHANNEL, GalleryChange, parse_gallery_notification
from bioauth.store.protocol import GALLERY_OPERATIONS

__all__ = ["APPLICATION_NAME", "ChangeFeed", "SubjectChange"]

APPLICATION_NAME = "bioauth-gallery-sync"
"""How the feed's connection shows in ``pg_stat_activity``."""
_OPERATIONS = sorted(GALLERY_OPERATIONS)


@dataclass(frozen=True, slots=True)
class SubjectChange:
    seq: int
    subject_id: str


class ChangeFeed:
    """Open with ``await ChangeFeed.connect(...)``; every method raises ``StoreUnavailable`` once
    the connection is gone."""

    def __init__(self, conn: Any, timeout_s: float) -> None:
        self._conn = conn
        self._timeout_s = timeout_s
        self._closed = False

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        on_change: Callable[[GalleryChange], None],
        on_lost: Callable[[], None],
        timeout_s: float = 5.0,
    ) -> ChangeFeed:
        """Connect and LISTEN; ``on_change`` and ``on_lost`` run on the event loop, must not
        block, and must not raise."""

        def notified(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            change = parse_gallery_notification(payload)
            if change is not None:
                on_change(change)

        with translated():
            conn = await asyncpg.connect(
                dsn,
                timeout=timeout_s,
                command_timeout=timeout_s,
                server_settings={"application_name": APPLICATION_NAME},
            )
        try:
            with translated():
                await conn.add_listener(GALLERY_CHANNEL, notified)
            conn.add_termination_listener(lambda _conn: on_lost())
        except BaseException:
            conn.terminate()
            raise
        return cls(conn, timeout_s)

    def _live(self) -> Any:
        if self._closed or self._conn.is_closed():
            raise StoreUnavailable("the gallery change feed's connection is closed")
        return self._conn

    async def heads(self, tenant_ids: Sequence[str]) -> dict[str, int]:
        """The newest audit sequence number of each tenant (0 for a tenant with no chain yet).

        Every change up to a head is committed and visible once the head is: the chain's row lock
        orders the commits.
        """
        with translated():
            rows = await self._live().fetch(
                "SELECT tenant_id, seq FROM audit_heads WHERE tenant_id = ANY($1::text[])",
                list(tenant_ids),
            )
        found: Mapping[str, int] = {r[0]: int(r[1]) for r in rows}
        return {t: found.get(t, 0) for t in tenant_ids}

    async def changes(
        self, tenant_id: str, after: int, upto: int, *, limit: int = 1000
    ) -> list[SubjectChange]:
        """Gallery changes of the tenant with ``after < seq <= upto``, oldest first, at most
        ``limit`` (page on with the last ``seq``)."""
        with translated():
            rows = await self._live().fetch(
                "SELECT seq, subject_id FROM audit_log "
                "WHERE tenant_id = $1 AND seq > $2 AND seq <= $3 AND subject_id IS NOT NULL "
                "AND operation = ANY($4::text[]) ORDER BY seq LIMIT $5",
                tenant_id,
                after,
                upto,
                _OPERATIONS,
                limit,
            )
        return [SubjectChange(int(r[0]), str(r[1])) for r in rows]

    async def probe(self) -> None:
        """A round trip, to notice a connection that died silently."""
        with translated():
            await self._live().fetchval("SELECT 1", timeout=self._timeout_s)

    async def close(self) -> None:
        """Close the connection (at once if it is already broken); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._conn.is_closed():
            return
        try:
            with translated():
                await self._conn.close(timeout=self._timeout_s)
        except StoreUnavailable:
            self._conn.terminate()
