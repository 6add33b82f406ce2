"""Enrolment: one protected template per accepted sample, stored with the person's consent.

Order of work, so that nothing is written for a request that will fail: consent is checked, every
crop is embedded (rejected ones get a reason), the subject is found or created with its own key in
the key provider, each accepted embedding is sealed under a fresh data key, and the store writes
subject, consent, templates, the idempotency record and the audit row in one transaction. Only then
does the 1:N gallery of this process learn of the subject.

Idempotency: the store keeps the first answer under the request's idempotency key together with a
digest of the request's content; a retry with the same content gets that answer back unchanged
(nothing is written twice), the same key with other content is ``AlreadyExists``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bioauth.crypto.envelope import SealedTemplate, seal_template
from bioauth.crypto.provider import KeyProvider
from bioauth.errors import AlreadyExists, BioauthError, FailedPrecondition, InvalidInput
from bioauth.matching.gallery import TenantGalleries
from bioauth.observability.logging import get_logger, pseudonym
from bioauth.service._deadline import within
from bioauth.service.domain import (
    EnrolOutcomeView,
    EnrolRequest,
    EnrolSampleView,
    SampleOutcome,
    SampleReason,
)
from bioauth.service.face_digest import digest_fields, face_fields
from bioauth.service.face_embedder import FaceEmbedder
from bioauth.service.templates import refresh_gallery_subject
from bioauth.store.protocol import (
    ENROLL,
    AuditEntry,
    Consent,
    Enrolment,
    SubjectExists,
    SubjectRecord,
    SubjectStatus,
    TemplateStore,
    new_subject_id,
)

__all__ = ["EnrolService", "decode_enrol_response", "encode_enrol_response"]

_LOGGER = get_logger(__name__)
_CREATE_ATTEMPTS = 2


class EnrolService:
    """The enrolment use case; transport-independent."""

    def __init__(
        self,
        *,
        store: TemplateStore,
        keys: KeyProvider,
        embedder: FaceEmbedder,
        gallery: TenantGalleries,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._keys = keys
        self._embedder = embedder
        self._gallery = gallery
        self._clock = clock

    async def enrol(
        self, tenant_id: str, request: EnrolRequest, *, deadline: float | None
    ) -> EnrolOutcomeView:
        """Enrol the samples; raises ``FailedPrecondition`` without consent or for a subject who
        is opting out, ``AlreadyExists`` for an idempotency key reused with other content."""
        _check_consent(request, self._clock())
        outcomes = await self._embedder.embed_all(request.samples, deadline=deadline)
        accepted = [o for o in outcomes if o.accepted]
        model_id = self._embedder.model_id
        existing = _live(
            await within(
                deadline,
                self._store.get_subject(tenant_id, request.external_ref),
                "subject look-up",
            )
        )
        if existing is not None and existing.status is not SubjectStatus.ENROLLED:
            raise FailedPrecondition("this subject is opting out; enrol again once that is done")
        if not accepted:
            # Nothing to store: answer with the reasons so the terminal can capture again.
            count = 0
            if existing is not None:
                prior = await within(
                    deadline,
                    self._store.list_templates(tenant_id, existing.subject_id),
                    "template count",
                )
                count = len(prior)
            return _view(existing.subject_id if existing else "", outcomes, {}, model_id, count)
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                return await self._write(tenant_id, request, outcomes, existing, deadline)
            except SubjectExists:
                # A concurrent enrolment created this person first: seal under their key.
                if attempt + 1 == _CREATE_ATTEMPTS:
                    raise
                existing = _live(
                    await within(
                        deadline,
                        self._store.get_subject(tenant_id, request.external_ref),
                        "subject look-up",
                    )
                )
                if existing is None or existing.status is not SubjectStatus.ENROLLED:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _write(
        self,
        tenant_id: str,
        request: EnrolRequest,
        outcomes: list[SampleOutcome],
        existing: SubjectRecord | None,
        deadline: float | None,
    ) -> EnrolOutcomeView:
        model_id = self._embedder.model_id
        now = self._clock()
        if existing is None:
            subject_id = new_subject_id()
            key = await within(
                deadline, self._keys.create_subject_key(tenant_id, subject_id), "key creation"
            )
            key_id = key.key_id
            prior_count = 0
        else:
            subject_id, key_id = existing.subject_id, existing.key_id
            prior = await within(
                deadline, self._store.list_templates(tenant_id, subject_id), "template count"
            )
            prior_count = len(prior)
        sealed: list[SealedTemplate] = []
        template_ids: dict[int, str] = {}
        for outcome in outcomes:
            if outcome.embedding is None:
                continue
            template_id = secrets.token_urlsafe(16)
            template_ids[outcome.index] = template_id
            sealed.append(
                await within(
                    deadline,
                    seal_template(
                        self._keys,
                        tenant_id=tenant_id,
                        subject_id=subject_id,
                        template_id=template_id,
                        model_id=model_id,
                        key=key_id,
                        embedding=outcome.embedding,
                        quality=outcome.quality,
                        created_at=now,
                    ),
                    "template sealing",
                )
            )
        view = _view(subject_id, outcomes, template_ids, model_id, prior_count + len(sealed))
        enrolment = Enrolment(
            tenant_id=tenant_id,
            external_ref=request.external_ref,
            subject_id=subject_id,
            key_id=key_id,
            consent=Consent(
                policy_version=request.policy_version,
                consented_at=request.consented_at,
                channel=request.channel,
                purpose=request.purpose,
                identification=request.identification,
            ),
            templates=sealed,
            idempotency_key=request.idempotency_key,
            request_digest=request_digest(request),
            response=encode_enrol_response(view),
            audit=AuditEntry(
                tenant_id=tenant_id,
                operation=ENROLL,
                at=now,
                subject_id=subject_id,
                model_id=model_id,
                details={
                    "accepted": len(sealed),
                    "rejected": len(outcomes) - len(sealed),
                    "identification": request.identification,
                    "policy_version": request.policy_version,
                },
            ),
            created_at=now,
        )
        try:
            stored = await within(deadline, self._store.enroll(enrolment), "enrolment write")
        except (SubjectExists, AlreadyExists):
            # The store refused the write as a whole (not a timeout, after which it may have
            # committed): nothing was written under a new subject id, so its fresh key is unused.
            if existing is None:
                await self._discard_key(key_id)
            raise
        if stored.replayed:
            if existing is None and stored.subject.subject_id != subject_id:
                await self._discard_key(key_id)  # the stored answer is another subject's
            _LOGGER.info("enrol_replayed", subject=pseudonym(stored.subject.subject_id))
            return decode_enrol_response(stored.response)
        # The store is the truth; the gallery follows it (also when consent to 1:N changed).
        await within(
            deadline,
            refresh_gallery_subject(
                self._store, self._keys, self._gallery, stored.subject, model_id
            ),
            "gallery refresh",
        )
        _LOGGER.info(
            "enrolled",
            subject=pseudonym(subject_id),
            accepted=len(sealed),
            rejected=len(outcomes) - len(sealed),
            identification=request.identification,
        )
        return view

    async def _discard_key(self, key_id: str) -> None:
        """Destroy a subject key this request made and nothing uses (best effort)."""
        try:
            await self._keys.destroy_subject_key(key_id)
        except BioauthError as exc:  # the request's own answer matters more; the key is empty
            _LOGGER.warning("unused_subject_key_not_destroyed", error=type(exc).__name__)


def _live(subject: SubjectRecord | None) -> SubjectRecord | None:
    """A subject who completed opt-out is history: enrolling the reference again starts afresh."""
    if subject is not None and subject.status is SubjectStatus.OPTED_OUT:
        return None
    return subject


def _check_consent(request: EnrolRequest, now: datetime) -> None:
    if not request.policy_version or not request.purpose or not request.channel:
        raise FailedPrecondition(
            "enrolment needs the person's consent: policy version, channel and purpose"
        )
    if request.consented_at.tzinfo is None:
        raise InvalidInput("must be timezone-aware", field="consent.consented_at")
    if request.consented_at > now:
        raise InvalidInput("must not be in the future", field="consent.consented_at")


def _view(
    subject_id: str,
    outcomes: list[SampleOutcome],
    template_ids: dict[int, str],
    model_id: str,
    template_count: int,
) -> EnrolOutcomeView:
    return EnrolOutcomeView(
        subject_id=subject_id,
        samples=tuple(
            EnrolSampleView(
                index=o.index,
                reason=o.reason,
                quality=round(o.quality, 6),
                template_id=template_ids.get(o.index, ""),
            )
            for o in outcomes
        ),
        model_id=model_id,
        template_count=template_count,
    )


def request_digest(request: EnrolRequest) -> bytes:
    """SHA-256 over the request's content: who, which consent, which exact images."""
    fields: list[str] = [
        request.external_ref,
        request.policy_version,
        request.consented_at.astimezone(UTC).isoformat(timespec="microseconds"),
        request.channel,
        request.purpose,
        "1" if request.identification else "0",
    ]
    for sample in request.samples:
        fields.extend(face_fields(sample))
    return digest_fields(fields)


def encode_enrol_response(view: EnrolOutcomeView) -> bytes:
    """The answer as stored for replays: JSON, no biometric data in it."""
    document: dict[str, Any] = {
        "v": 1,
        "subject_id": view.subject_id,
        "model_id": view.model_id,
        "template_count": view.template_count,
        "samples": [
            {
                "index": s.index,
                "reason": None if s.reason is None else s.reason.value,
                "quality": s.quality,
                "template_id": s.template_id,
            }
            for s in view.samples
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def decode_enrol_response(data: bytes) -> EnrolOutcomeView:
    document = json.loads(data)
    return EnrolOutcomeView(
        subject_id=document["subject_id"],
        model_id=document["model_id"],
        template_count=int(document["template_count"]),
        samples=tuple(
            EnrolSampleView(
                index=int(s["index"]),
                reason=None if s["reason"] is None else SampleReason(s["reason"]),
                quality=float(s["quality"]),
                template_id=s["template_id"],
            )
            for s in document["samples"]
        ),
    )
