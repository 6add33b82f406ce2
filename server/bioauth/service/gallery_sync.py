"""Keeping this replica's 1:N galleries in step with the other replicas (PostgreSQL only).

Each replica holds its tenants' galleries in memory; PostgreSQL is the one source of truth. A
replica that enrols or opts someone out updates its own gallery at once; every other replica
learns of it through the change feed (``bioauth.store.notify``, ``bioauth.store.change_feed``):
a NOTIFY wakes the follower, which reads the gallery changes after its per-tenant watermark in
the audit chain and makes the gallery agree with the store about each changed subject. The same
catch-up runs after a reconnection (the connection dropped, PostgreSQL restarted, the network was
cut) and, unless switched off, every ``catch_up_interval_s``, so a lost notification costs at most
that long, and a lost connection costs only the time to reconnect, never a restart.

Changes are applied one at a time, in audit order, by one task: a later opt-out is never overtaken
by an earlier enrolment still decrypting. Applying a change re-reads the subject's current state
(``refresh_gallery_subject``), so applying one twice, or after a newer one, is harmless; the
watermark moves past a change only once it is applied.

Start-up order matters: ``mark`` reads the watermarks (and starts listening) *before* the gallery
is loaded from the store, and ``start`` then catches up from them, so nothing committed between
the load's read and the first notification is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable, Sequence

from bioauth.config import GallerySyncSettings, Settings
from bioauth.crypto.provider import KeyProvider
from bioauth.errors import DecryptionFailed, DependencyError, StoreUnavailable
from bioauth.matching.gallery import TenantGalleries
from bioauth.observability.logging import get_logger, pseudonym
from bioauth.service.templates import refresh_gallery_subject
from bioauth.store.change_feed import ChangeFeed, SubjectChange
from bioauth.store.notify import GalleryChange
from bioauth.store.protocol import TemplateStore

__all__ = ["GallerySync", "SyncState", "open_gallery_sync"]

_LOGGER = get_logger(__name__)
_PAGE = 500

FeedOpener = Callable[[Callable[[GalleryChange], None], Callable[[], None]], Awaitable[ChangeFeed]]
"""Opens a change feed with (on_change, on_lost) callbacks."""


class SyncState(enum.StrEnum):
    UNOPENED = "unopened"
    MARKED = "marked"
    FOLLOWING = "following"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class GallerySync:
    """Follows the store's gallery changes for ``tenant_ids``; ``mark``, ``start``, ``close``."""

    def __init__(
        self,
        *,
        open_feed: FeedOpener,
        settings: GallerySyncSettings,
        store: TemplateStore,
        keys: KeyProvider,
        galleries: TenantGalleries,
        tenant_ids: Sequence[str],
        model_id: str,
    ) -> None:
        self._open_feed = open_feed
        self._settings = settings
        self._store = store
        self._keys = keys
        self._galleries = galleries
        self._tenant_ids = tuple(tenant_ids)
        self._model_id = model_id
        self._watermarks: dict[str, int] = {}
        self._feed: ChangeFeed | None = None
        self._generation = 0
        self._wake = asyncio.Event()
        self._dirty: set[str] = set()
        self._lost = False
        self._task: asyncio.Task[None] | None = None
        self.state = SyncState.UNOPENED
        self.reconnections = 0
        """How many times the feed was opened again after being lost (for tests and metrics)."""

    @property
    def watermarks(self) -> dict[str, int]:
        """Per tenant, the audit sequence number up to which every gallery change is applied."""
        return dict(self._watermarks)

    async def mark(self) -> None:
        """Open the feed and read the watermarks; call before loading the galleries."""
        if self.state is not SyncState.UNOPENED:
            raise RuntimeError(f"mark() on a {self.state.value} gallery sync")
        self._feed = await self._connect()
        try:
            self._watermarks = await self._feed.heads(self._tenant_ids)
        except BaseException:
            await self._drop_feed()
            raise
        self.state = SyncState.MARKED

    async def start(self) -> None:
        """Follow from the watermarks in a background task (the galleries are loaded by now)."""
        if self.state is not SyncState.MARKED:
            raise RuntimeError(f"start() on a {self.state.value} gallery sync")
        self.state = SyncState.FOLLOWING
        self._dirty.update(self._tenant_ids)  # catch up on what the load may have missed
        self._wake.set()
        self._task = asyncio.create_task(self._run(), name="gallery-sync")

    async def close(self) -> None:
        """Stop following and close the feed; idempotent."""
        if self.state is SyncState.CLOSED:
            return
        self.state = SyncState.CLOSED
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._drop_feed()

    # --- the follower task ---------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = self._settings.reconnect_min_s
        while True:
            try:
                if self._feed is None:
                    self.state = SyncState.RECONNECTING
                    self._feed = await self._connect()
                    self.reconnections += 1
                    self._dirty.update(self._tenant_ids)  # whatever happened while away
                    self._wake.set()
                    self.state = SyncState.FOLLOWING
                    _LOGGER.info("gallery_sync_reconnected", reconnections=self.reconnections)
                await self._follow(self._feed)
            except Exception as exc:
                # The store, its connection or the key provider failed: start over on a fresh
                # connection after a pause; the watermarks keep what is already applied.
                if isinstance(exc, DependencyError):
                    _LOGGER.warning(
                        "gallery_sync_interrupted",
                        error=type(exc).__name__,
                        detail=exc.message,
                        retry_in_s=backoff,
                    )
                else:
                    _LOGGER.error("gallery_sync_failed", retry_in_s=backoff, exc_info=exc)
                await self._drop_feed()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._settings.reconnect_max_s)
                continue
            backoff = self._settings.reconnect_min_s

    async def _follow(self, feed: ChangeFeed) -> None:
        """Apply changes as they are announced; return never, raise when the feed is lost."""
        interval = self._settings.catch_up_interval_s
        next_catch_up = time.monotonic() + interval if interval > 0 else None
        while True:
            if self._lost:
                raise StoreUnavailable("the gallery change feed's connection was lost")
            if self._wake.is_set():
                self._wake.clear()
                tenants, self._dirty = self._dirty, set()
                await self._catch_up(feed, sorted(tenants))
                continue
            wait_s = self._settings.probe_interval_s
            if next_catch_up is not None:
                wait_s = min(wait_s, max(0.0, next_catch_up - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._wake.wait()
            if self._wake.is_set() or self._lost:
                continue
            if next_catch_up is not None and time.monotonic() >= next_catch_up:
                next_catch_up = time.monotonic() + interval
                self._dirty.update(self._tenant_ids)
                self._wake.set()
                continue
            await feed.probe()

    async def _catch_up(self, feed: ChangeFeed, tenant_ids: Sequence[str]) -> None:
        heads = await feed.heads(tenant_ids)
        for tenant_id in tenant_ids:
            head = heads[tenant_id]
            while self._watermarks.get(tenant_id, 0) < head:
                after = self._watermarks.get(tenant_id, 0)
                page = await feed.changes(tenant_id, after, head, limit=_PAGE)
                for change in _last_per_subject(page):
                    await self._apply(tenant_id, change.subject_id)
                # A short page holds every change up to the head; a full one may not.
                self._watermarks[tenant_id] = page[-1].seq if len(page) == _PAGE else head

    async def _apply(self, tenant_id: str, subject_id: str) -> None:
        subject = await self._store.get_subject_by_id(tenant_id, subject_id)
        gallery = self._galleries.get(tenant_id)
        if subject is None:
            gallery.remove(subject_id)
            return
        try:
            await refresh_gallery_subject(
                self._store, self._keys, self._galleries, subject, self._model_id
            )
        except DecryptionFailed:
            # A damaged record must not stall every later change; this subject cannot be
            # identified until re-enrolled, and the log says so.
            gallery.remove(subject_id)
            _LOGGER.error("gallery_subject_unreadable", subject=pseudonym(subject_id))

    # --- the feed ------------------------------------------------------------------------------

    async def _connect(self) -> ChangeFeed:
        self._generation += 1
        generation = self._generation
        self._lost = False

        def on_change(change: GalleryChange) -> None:
            if change.tenant_id in self._tenant_ids and change.seq > self._watermarks.get(
                change.tenant_id, 0
            ):
                self._dirty.add(change.tenant_id)
                self._wake.set()

        def on_lost() -> None:
            if generation == self._generation and self.state is not SyncState.CLOSED:
                self._lost = True
                self._wake.set()

        return await self._open_feed(on_change, on_lost)

    async def _drop_feed(self) -> None:
        feed, self._feed = self._feed, None
        self._generation += 1  # a late termination callback of the old feed is ignored
        if feed is not None:
            await feed.close()


def _last_per_subject(page: Sequence[SubjectChange]) -> list[SubjectChange]:
    """Each subject once, at its last change in the page (applying re-reads its current state)."""
    last: dict[str, SubjectChange] = {}
    for change in page:
        last.pop(change.subject_id, None)
        last[change.subject_id] = change
    return list(last.values())


async def open_gallery_sync(
    settings: Settings,
    *,
    store: TemplateStore,
    keys: KeyProvider,
    galleries: TenantGalleries,
    model_id: str,
) -> GallerySync | None:
    """The follower for the configured tenants, marked and ready to ``start`` once the galleries
    are loaded; None when the store is not PostgreSQL (one process owns an SQLite file, there is
    nobody to follow) or following is switched off."""
    if store.backend != "postgresql" or not settings.gallery_sync.enabled:
        return None
    dsn = settings.gallery_sync.listen_url or settings.store.url
    timeout_s = settings.store.command_timeout_s

    async def open_feed(
        on_change: Callable[[GalleryChange], None], on_lost: Callable[[], None]
    ) -> ChangeFeed:
        return await ChangeFeed.connect(
            dsn, on_change=on_change, on_lost=on_lost, timeout_s=timeout_s
        )

    sync = GallerySync(
        open_feed=open_feed,
        settings=settings.gallery_sync,
        store=store,
        keys=keys,
        galleries=galleries,
        tenant_ids=[t.id for t in settings.tenants],
        model_id=model_id,
    )
    await sync.mark()
    return sync
