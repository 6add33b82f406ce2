"""Key rotation: new subject-key versions, then every data key re-wrapped under them.

Both run while the server keeps serving. ``rotate_subject_keys`` adds a version to each enrolled
subject's key; new enrolments wrap under it at once. ``rewrap_templates`` then walks the templates
in pages (each page a short read), asks the provider to re-wrap each data key to the newest
version (inside the provider where it can: Vault Transit; in memory for one call otherwise), and
writes a page's new wrapped keys in one transaction, each row only if it still holds the wrapped
key that was read (a concurrent opt-out or rewrap wins; nothing is overwritten blindly).

Readers never fail during this: a row holds either the old or the new wrapped key, and old
versions stay usable until ``retire_subject_key_versions`` is called, which ``rewrap_templates``
does only when asked and only for keys whose every template it moved.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from bioauth.crypto.envelope import SealedTemplate, wrap_aad
from bioauth.crypto.provider import KeyProvider, WrappedKey
from bioauth.errors import BioauthError, DecryptionFailed, NotFound
from bioauth.observability.logging import get_logger
from bioauth.store.protocol import SubjectKey, SubjectStatus, TemplateStore, WrappedKeyUpdate

__all__ = ["RewrapReport", "rewrap_templates", "rotate_subject_keys"]

_LOGGER = get_logger(__name__)
_Item = TypeVar("_Item")


@dataclass
class RewrapReport:
    """What a rewrap did; ``templates_per_s`` is what the benchmark reports."""

    seen: int = 0
    rewrapped: int = 0
    unchanged: int = 0
    conflicts: int = 0
    """Rows changed by someone else between read and write (left as they were)."""
    failed: int = 0
    """Wrapped keys the provider would not open although their subject is still enrolled
    (tampered row, wrong key): worth an operator's look."""
    opted_out: int = 0
    """Templates whose subject opted out while the pass ran (key already destroyed): expected."""
    retired_keys: int = 0
    elapsed_s: float = 0.0
    versions: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def templates_per_s(self) -> float:
        return self.seen / self.elapsed_s if self.elapsed_s > 0 else 0.0


async def _bounded(
    items: Sequence[_Item], limit: int, fn: Callable[[_Item], Awaitable[None]]
) -> None:
    """Run ``fn`` over ``items``, at most ``limit`` at once; the first bioauth error leaves as-is
    (not wrapped in an ExceptionGroup, so callers and the CLI see the typed error)."""
    semaphore = asyncio.Semaphore(limit)

    async def one(item: _Item) -> None:
        async with semaphore:
            await fn(item)

    try:
        async with asyncio.TaskGroup() as group:
            for item in items:
                group.create_task(one(item))
    except* BioauthError as errors:
        raise errors.exceptions[0] from None


async def rotate_subject_keys(
    store: TemplateStore, provider: KeyProvider, *, concurrency: int = 4, batch_size: int = 500
) -> int:
    """Add a version to every enrolled subject's key; returns how many keys were rotated."""
    rotated = 0

    async def rotate(key: SubjectKey) -> None:
        nonlocal rotated
        try:
            await provider.rotate_subject_key(key.key_id)
        except NotFound:
            return  # opted out between the read and the rotation
        rotated += 1

    async for page in store.iter_subject_keys(batch_size=batch_size):
        await _bounded(page, concurrency, rotate)
    _LOGGER.info("subject_keys_rotated", keys=rotated, provider=provider.name)
    return rotated


class _Pass:
    """State of one rewrap pass over the store."""

    def __init__(self, store: TemplateStore, provider: KeyProvider, report: RewrapReport) -> None:
        self.store = store
        self.provider = provider
        self.report = report
        self.lowest: dict[str, int] = {}  # key id -> lowest version left on its templates
        self.spoiled: set[str] = set()  # keys with a template we could not move: never retire

    def _note(self, wrapped: WrappedKey) -> None:
        self.lowest[wrapped.key_id] = min(
            self.lowest.get(wrapped.key_id, wrapped.version), wrapped.version
        )

    async def page(self, page: list[SealedTemplate], concurrency: int) -> list[WrappedKeyUpdate]:
        updates: list[WrappedKeyUpdate] = []

        async def one(template: SealedTemplate) -> None:
            aad = wrap_aad(
                tenant_id=template.tenant_id,
                subject_id=template.subject_id,
                template_id=template.template_id,
                model_id=template.model_id,
                format_version=template.format_version,
            )
            old = template.wrapped
            try:
                new = await self.provider.rewrap(old, aad)
            except DecryptionFailed:
                self.spoiled.add(old.key_id)
                subject = await self.store.get_subject_by_id(
                    template.tenant_id, template.subject_id
                )
                if subject is None or subject.status is not SubjectStatus.ENROLLED:
                    self.report.opted_out += 1
                else:
                    self.report.failed += 1
                return
            if new == old:
                self.report.unchanged += 1
                self._note(new)
            else:
                updates.append(WrappedKeyUpdate(template.template_id, old=old, new=new))

        await _bounded(page, concurrency, one)
        return updates

    def written(self, updates: list[WrappedKeyUpdate], count: int) -> None:
        self.report.rewrapped += count
        self.report.conflicts += len(updates) - count
        for update in updates:
            self._note(update.new)
        if count != len(updates):
            self.spoiled.update(u.old.key_id for u in updates)


async def rewrap_templates(
    store: TemplateStore,
    provider: KeyProvider,
    *,
    batch_size: int = 500,
    concurrency: int = 4,
    retire_old_versions: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> RewrapReport:
    """Re-wrap every enrolled template's data key to its subject key's newest version."""
    report = RewrapReport()
    started = clock()
    state = _Pass(store, provider, report)
    async for page in store.iter_wrapped_keys_for_rewrap(batch_size=batch_size):
        updates = await state.page(page, concurrency)
        state.written(updates, await store.update_wrapped_keys(updates))
        report.seen += len(page)
    if retire_old_versions:
        for key_id, version in state.lowest.items():
            if key_id in state.spoiled or version <= 1:
                continue
            await provider.retire_subject_key_versions(key_id, version)
            report.retired_keys += 1
    report.versions = state.lowest
    report.elapsed_s = clock() - started
    _LOGGER.info(
        "rewrap_finished",
        provider=provider.name,
        backend=store.backend,
        seen=report.seen,
        rewrapped=report.rewrapped,
        conflicts=report.conflicts,
        failed=report.failed,
        opted_out=report.opted_out,
        retired_keys=report.retired_keys,
        templates_per_s=round(report.templates_per_s, 1),
    )
    return report
