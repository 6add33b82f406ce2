"""An opt-out whose key destruction fails stays pending, is retried, and is never reported done early."""

from __future__ import annotations

from typing import Any, cast

import pytest

from bioauth.crypto.local_provider import LocalKeyProvider
from bioauth.crypto.provider import KeyProvider
from bioauth.errors import KeyProviderUnavailable
from bioauth.service.opt_out import OptOutRetrier, OptOutService, OptOutState
from bioauth.store.protocol import AuditEntry, SubjectStatus, TemplateStore
from tests.integration.store.helpers import enroll_new, now
from tests.support.faces import Face
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


class FaultyKeys:
    """The real local provider behind a switch that makes destroy fail, or pretend to succeed."""

    def __init__(
        self, inner: LocalKeyProvider, *, failures: int = 0, pretend: bool = False
    ) -> None:
        self.inner = inner
        self.failures = failures
        self.pretend = pretend
        self.destroy_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def destroy_subject_key(self, key_id: str) -> None:
        self.destroy_calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise KeyProviderUnavailable("injected: key provider down")
        if not self.pretend:
            await self.inner.destroy_subject_key(key_id)


async def test_failed_key_destruction_leaves_the_opt_out_pending_then_the_retrier_finishes_it(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """PENDING while the provider fails (matching already stopped); DONE only after it succeeds."""
    keys = FaultyKeys(local_provider, failures=3)
    service = OptOutService(store, cast(KeyProvider, keys))
    outcome, _ = await enroll_new(store, local_provider, "bank-a", "card-1", [faces[0].descriptor])
    subject = outcome.subject

    result = await service.request("bank-a", external_ref="card-1")
    assert result.state is OptOutState.PENDING
    pending = await store.get_subject_by_id("bank-a", subject.subject_id)
    assert pending is not None
    assert pending.status is SubjectStatus.OPT_OUT_PENDING
    assert await store.list_templates("bank-a", subject.subject_id) == []  # no longer matched
    assert await local_provider.subject_key_exists(subject.key_id)
    # Asking again while pending retries and still does not claim success.
    assert (
        await service.request("bank-a", subject_id=subject.subject_id)
    ).state is OptOutState.PENDING

    retrier = OptOutRetrier(
        service, store, initial_backoff_s=0.01, max_backoff_s=0.05, idle_poll_s=5
    )
    await retrier.start()
    try:

        async def opted_out() -> bool:
            found = await store.get_subject_by_id("bank-a", subject.subject_id)
            return found is not None and found.status is SubjectStatus.OPTED_OUT

        await eventually(opted_out, "the retrier completed the opt-out", timeout_s=10)
    finally:
        await retrier.close()
    await retrier.close()  # idempotent
    assert keys.destroy_calls == 4
    assert not await local_provider.subject_key_exists(subject.key_id)
    operations = [r.entry.operation for r in await store.read_audit("bank-a")]
    assert operations == ["enroll", "opt_out.requested", "opt_out.completed"]
    assert (
        await service.request("bank-a", subject_id=subject.subject_id)
    ).state is OptOutState.DONE


async def test_a_key_that_survives_destroy_keeps_the_opt_out_pending(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """The provider is asked again after destroy; a key still there is not reported gone."""
    keys = FaultyKeys(local_provider, pretend=True)
    service = OptOutService(store, cast(KeyProvider, keys))
    outcome, _ = await enroll_new(store, local_provider, "bank-a", "card-1", [faces[0].descriptor])
    assert (await service.request("bank-a", external_ref="card-1")).state is OptOutState.PENDING
    assert [s.subject_id for s in await store.list_pending_opt_outs()] == [
        outcome.subject.subject_id
    ]
    keys.pretend = False
    retrier = OptOutRetrier(service, store, initial_backoff_s=0.01, max_backoff_s=0.05)
    assert await retrier.run_once() == 0
    assert await store.list_pending_opt_outs() == []


async def test_the_retrier_finishes_opt_outs_left_pending_by_a_crash(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """A subject marked pending before a restart is completed by the next retrier on start."""
    outcome, _ = await enroll_new(store, local_provider, "bank-a", "card-1", [faces[0].descriptor])
    sid = outcome.subject.subject_id
    await store.mark_opt_out_pending(
        "bank-a", sid, audit=AuditEntry("bank-a", "opt_out.requested", now(), sid)
    )
    retrier = OptOutRetrier(OptOutService(store, local_provider), store, idle_poll_s=5)
    await retrier.start()
    try:

        async def done() -> bool:
            return not await store.list_pending_opt_outs()

        await eventually(done, "the retrier finished the pending opt-out", timeout_s=10)
    finally:
        await retrier.close()
    assert not await local_provider.subject_key_exists(outcome.subject.key_id)
    assert (await store.verify_audit_chain("bank-a")).ok
