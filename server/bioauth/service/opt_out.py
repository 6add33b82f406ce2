"""Opt-out: the person withdraws consent and their templates become unrecoverable.

Order matters, and each step is safe to repeat:

1. In one transaction: the subject stops being matched (``opt_out_pending``), every consent is
   marked withdrawn, and an audit row says so. From here no verify or identify sees them.
2. The subject key is destroyed in the key provider, and the provider is asked again whether it
   is gone. This is the step that makes every copy (backups, WAL, replicas, snapshots) unreadable.
3. In one transaction: templates and wrapped keys are deleted, the subject is marked
   ``opted_out`` (its external reference cleared), and an audit row records completion.

If step 2 or 3 fails the subject stays pending, the caller hears ``PENDING`` (never ``DONE``), and
``OptOutRetrier`` repeats steps 2-3 with backoff until they succeed, across restarts too, because
the pending state lives in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bioauth.crypto.provider import KeyProvider
from bioauth.errors import DependencyError, InvalidInput, KeyProviderUnavailable, NotFound
from bioauth.observability.logging import get_logger, pseudonym
from bioauth.store.protocol import (
    OPT_OUT_COMPLETED,
    OPT_OUT_REQUESTED,
    AuditEntry,
    SubjectRecord,
    SubjectStatus,
    TemplateStore,
)

__all__ = ["OptOutResult", "OptOutRetrier", "OptOutService", "OptOutState"]

_LOGGER = get_logger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class OptOutState(enum.StrEnum):
    PENDING = "pending"
    """Matching stopped and consent withdrawn; key destruction or deletion still to finish."""
    DONE = "done"
    """Subject key destroyed (confirmed by the provider) and templates deleted."""


@dataclass(frozen=True)
class OptOutResult:
    tenant_id: str
    subject_id: str
    state: OptOutState


class OptOutService:
    """The opt-out use case; ``request`` is what the API and the CLI call."""

    def __init__(
        self,
        store: TemplateStore,
        provider: KeyProvider,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._store = store
        self._provider = provider
        self._clock = clock
        self._pending_listeners: list[Callable[[], None]] = []

    def add_pending_listener(self, listener: Callable[[], None]) -> None:
        """Called whenever an opt-out is left pending (the retrier wakes up early)."""
        self._pending_listeners.append(listener)

    async def request(
        self,
        tenant_id: str,
        *,
        external_ref: str | None = None,
        subject_id: str | None = None,
        channel: str = "",
    ) -> OptOutResult:
        """Opt the subject out, by the tenant's reference or the subject id.

        Raises ``NotFound`` for an unknown subject, and store errors when step 1 could not be
        recorded (nothing changed; the caller must retry). A subject whose opt-out already
        finished is ``DONE`` (by reference the store still finds it through the keyed digest).
        """
        if (external_ref is None) == (subject_id is None):
            raise InvalidInput("give exactly one of external_ref and subject_id", field="subject")
        if external_ref is not None:
            subject = await self._store.get_subject(tenant_id, external_ref)
        else:
            assert subject_id is not None
            subject = await self._store.get_subject_by_id(tenant_id, subject_id)
        if subject is None:
            raise NotFound("no such subject")
        if subject.status is SubjectStatus.OPTED_OUT:
            return OptOutResult(tenant_id, subject.subject_id, OptOutState.DONE)
        details: dict[str, str | int | float | bool | None] = (
            {"channel": channel} if channel else {}
        )
        subject = await self._store.mark_opt_out_pending(
            tenant_id,
            subject.subject_id,
            audit=AuditEntry(
                tenant_id=tenant_id,
                operation=OPT_OUT_REQUESTED,
                at=self._clock(),
                subject_id=subject.subject_id,
                details=details,
            ),
        )
        return await self.finish(subject)

    async def finish(self, subject: SubjectRecord) -> OptOutResult:
        """Steps 2 and 3 for a pending subject; ``PENDING`` if either could not be completed."""
        tenant_id, subject_id = subject.tenant_id, subject.subject_id
        if subject.status is SubjectStatus.OPTED_OUT:
            return OptOutResult(tenant_id, subject_id, OptOutState.DONE)
        try:
            await self._provider.destroy_subject_key(subject.key_id)
            if await self._provider.subject_key_exists(subject.key_id):
                raise KeyProviderUnavailable("subject key still present after destroy")
            await self._store.complete_opt_out(
                tenant_id,
                subject_id,
                audit=AuditEntry(
                    tenant_id=tenant_id,
                    operation=OPT_OUT_COMPLETED,
                    at=self._clock(),
                    subject_id=subject_id,
                    details={"key_destroyed": True, "provider": self._provider.name},
                ),
            )
        except DependencyError as exc:
            _LOGGER.warning(
                "opt_out_pending",
                subject=pseudonym(subject_id),
                tenant=tenant_id,
                error=exc.__class__.__name__,
                reason=exc.message,
            )
            for listener in self._pending_listeners:
                listener()
            return OptOutResult(tenant_id, subject_id, OptOutState.PENDING)
        _LOGGER.info("opt_out_done", subject=pseudonym(subject_id), tenant=tenant_id)
        return OptOutResult(tenant_id, subject_id, OptOutState.DONE)


class OptOutRetrier:
    """Finishes pending opt-outs in the background, with exponential backoff and jitter.

    ``start()`` launches one supervisor task that owns a ``TaskGroup``; ``close()`` stops it and
    waits. It reads the pending list from the store, so opt-outs left pending by a crash are
    picked up on the next start.
    """

    def __init__(
        self,
        service: OptOutService,
        store: TemplateStore,
        *,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        idle_poll_s: float = 60.0,
        batch: int = 100,
    ) -> None:
        if not 0 < initial_backoff_s <= max_backoff_s:
            raise ValueError(
                f"need 0 < initial_backoff_s <= max_backoff_s, got {initial_backoff_s}, {max_backoff_s}"
            )
        self._service = service
        self._store = store
        self._initial = initial_backoff_s
        self._max = max_backoff_s
        self._idle = idle_poll_s
        self._batch = batch
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        service.add_pending_listener(self.wake)

    def wake(self) -> None:
        """Run a pass now instead of at the end of the current wait."""
        self._wake.set()

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("OptOutRetrier already started")
        self._runner = asyncio.get_running_loop().create_task(self._supervise())

    async def _supervise(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._loop())

    async def run_once(self) -> int:
        """One pass: try every pending opt-out; return how many are still pending."""
        pending = await self._store.list_pending_opt_outs(limit=self._batch)
        left = 0
        for subject in pending:
            result = await self._service.finish(subject)
            left += result.state is OptOutState.PENDING
        return left

    async def _loop(self) -> None:
        backoff = self._initial
        while not self._stop.is_set():
            self._wake.clear()
            try:
                left = await self.run_once()
            except DependencyError as exc:
                _LOGGER.warning("opt_out_retrier_store_unreadable", error=exc.message)
                left = 1
            if left:
                delay = backoff * (0.5 + random.random() / 2)  # noqa: S311 (jitter, not crypto)
                backoff = min(backoff * 2, self._max)
            else:
                delay, backoff = self._idle, self._initial
            await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()

    async def close(self) -> None:
        """Stop after the current attempt; idempotent."""
        self._stop.set()
        self._wake.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner
