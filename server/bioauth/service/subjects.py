"""Subject look-up (status and consent, never biometric data) and opt-out.

Opt-out itself (withdrawal, crypto-shredding, deletion, retries) is ``bioauth.service.opt_out``;
this module adds what only the serving process can do: drop the subject from its in-memory 1:N
gallery the moment consent is withdrawn, whether the shredding finished or is still pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from bioauth.errors import NotFound
from bioauth.matching.gallery import TenantGalleries
from bioauth.service._deadline import within
from bioauth.service.domain import DeletionOutcome, SubjectView
from bioauth.service.opt_out import OptOutService, OptOutState
from bioauth.store.protocol import SubjectRecord, TemplateStore

__all__ = ["SubjectService"]


class SubjectService:
    """GetSubject and DeleteSubject; transport-independent."""

    def __init__(
        self,
        *,
        store: TemplateStore,
        opt_out: OptOutService,
        galleries: TenantGalleries,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._opt_out = opt_out
        self._galleries = galleries
        self._clock = clock

    async def get(
        self, tenant_id: str, external_ref: str, *, deadline: float | None
    ) -> SubjectView:
        """The subject the reference names: the live one, else the latest that opted out
        (status ``opted_out``, the consent with its ``withdrawn_at``, no templates); the store
        finds it by the reference's keyed digest, the plaintext being deleted at opt-out.
        ``NotFound`` for a reference this tenant never enrolled."""
        subject = await within(
            deadline, self._store.get_subject(tenant_id, external_ref), "subject look-up"
        )
        if subject is None:
            raise NotFound("no such subject for this tenant")
        templates = await within(
            deadline, self._store.list_templates(tenant_id, subject.subject_id), "template read"
        )
        return _view(subject, len(templates), tuple(sorted({t.model_id for t in templates})))

    async def delete(
        self, tenant_id: str, external_ref: str, *, deadline: float | None
    ) -> DeletionOutcome:
        """Opt the subject out. ``done`` is True only once the key provider confirmed the subject
        key is destroyed and the templates are deleted; otherwise the retrier finishes it.
        Repeating it after the opt-out completed answers ``done`` again, with the same
        withdrawal time."""
        subject = await within(
            deadline, self._store.get_subject(tenant_id, external_ref), "subject look-up"
        )
        if subject is None:
            raise NotFound("no such subject for this tenant")
        # Out of the gallery first: from here on this process never matches the person, even
        # if the rest of the opt-out is slow or fails.
        self._galleries.get(tenant_id).remove(subject.subject_id)
        # No deadline past this point, and shielded from the caller going away: once started,
        # the opt-out runs to the end of its steps (or leaves them to the retrier), never stops
        # half way because a client hung up.
        result = await asyncio.shield(
            self._opt_out.request(tenant_id, subject_id=subject.subject_id)
        )
        after = await self._store.get_subject_by_id(tenant_id, subject.subject_id)
        withdrawn_at = None
        if after is not None and after.consent is not None:
            withdrawn_at = after.consent.withdrawn_at
        return DeletionOutcome(
            subject_id=result.subject_id,
            done=result.state is OptOutState.DONE,
            withdrawn_at=withdrawn_at or self._clock(),
        )


def _view(subject: SubjectRecord, template_count: int, model_ids: tuple[str, ...]) -> SubjectView:
    consent = subject.consent
    return SubjectView(
        subject_id=subject.subject_id,
        status=subject.status.value,
        template_count=template_count,
        model_ids=model_ids,
        policy_version="" if consent is None else consent.policy_version,
        consented_at=None if consent is None else consent.consented_at,
        channel="" if consent is None else consent.channel,
        purpose="" if consent is None else consent.purpose,
        identification=False if consent is None else consent.identification,
        withdrawn_at=None if consent is None else consent.withdrawn_at,
        enrolled_at=subject.created_at,
    )
