"""Opening a subject's sealed templates for matching, and keeping the 1:N gallery current.

Decrypted templates exist only in memory: for one verification (and are dropped with it) or in the
tenant's gallery of subjects who consented to identification. Only templates of the model that
serves now are opened; templates of an older model wait for re-enrolment, they are never compared
with another model's embeddings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from bioauth.crypto.envelope import SealedTemplate, open_template
from bioauth.crypto.provider import KeyProvider
from bioauth.errors import DecryptionFailed, FailedPrecondition, NotFound
from bioauth.matching.gallery import TenantGalleries
from bioauth.matching.gallery.reduce import MAX_ENROLMENT_IMAGES
from bioauth.observability.logging import get_logger, pseudonym
from bioauth.service._deadline import within
from bioauth.store.protocol import SubjectRecord, SubjectStatus, TemplateStore

__all__ = [
    "enrolled_subject",
    "load_gallery",
    "open_enrolment",
    "open_templates",
    "refresh_gallery_subject",
    "searchable",
]

_LOGGER = get_logger(__name__)


async def open_templates(
    keys: KeyProvider, templates: Sequence[SealedTemplate], model_id: str
) -> npt.NDArray[np.float32]:
    """The (k, d) embeddings of ``templates`` made by ``model_id``, opened concurrently."""
    mine = [t for t in templates if t.model_id == model_id]
    if not mine:
        return np.empty((0, 0), dtype=np.float32)
    rows = await asyncio.gather(*(open_template(keys, t) for t in mine))
    return np.stack(rows).astype(np.float32, copy=False)


async def enrolled_subject(
    store: TemplateStore, tenant_id: str, external_ref: str, deadline: float | None
) -> SubjectRecord:
    """The subject a 1:1 comparison is against (Verify, a verify session): ``NotFound`` for a
    reference this tenant does not know, ``FailedPrecondition`` for one who opted out."""
    subject = await within(deadline, store.get_subject(tenant_id, external_ref), "subject look-up")
    if subject is None:
        raise NotFound("no such subject for this tenant")
    if subject.status is not SubjectStatus.ENROLLED:
        raise FailedPrecondition("the subject has opted out")
    return subject


async def open_enrolment(
    store: TemplateStore,
    keys: KeyProvider,
    subject: SubjectRecord,
    model_id: str,
    deadline: float | None,
) -> npt.NDArray[np.float32]:
    """The subject's decrypted templates of the serving model, for one comparison only;
    ``FailedPrecondition`` when it has none (enrolled under another model)."""
    templates = await within(
        deadline, store.list_templates(subject.tenant_id, subject.subject_id), "template read"
    )
    enrolment = await within(
        deadline, open_templates(keys, templates, model_id), "template decryption"
    )
    if len(enrolment) == 0:
        raise FailedPrecondition("the subject has no template of the model in service; enrol again")
    return enrolment


def searchable(subject: SubjectRecord) -> bool:
    """The one rule for who a 1:N search may find: enrolled, with consent to identification
    not withdrawn. The gallery holds exactly these; an approval is re-checked against it."""
    consent = subject.consent
    return (
        subject.status is SubjectStatus.ENROLLED
        and consent is not None
        and consent.identification
        and consent.withdrawn_at is None
    )


async def refresh_gallery_subject(
    store: TemplateStore,
    keys: KeyProvider,
    gallery: TenantGalleries,
    subject: SubjectRecord,
    model_id: str,
) -> None:
    """Make the gallery agree with the store about one subject: present with every current
    template while enrolled with 1:N consent, absent otherwise."""
    if not searchable(subject):
        gallery.get(subject.tenant_id).remove(subject.subject_id)
        return
    templates = await store.list_templates(subject.tenant_id, subject.subject_id)
    embeddings = await open_templates(keys, templates, model_id)
    if len(embeddings) == 0:
        gallery.get(subject.tenant_id).remove(subject.subject_id)
        return
    gallery.get(subject.tenant_id).upsert(subject.subject_id, embeddings[:MAX_ENROLMENT_IMAGES])


async def load_gallery(
    store: TemplateStore,
    keys: KeyProvider,
    gallery: TenantGalleries,
    tenant_ids: Sequence[str],
    model_id: str,
) -> int:
    """Fill the gallery at start-up from every tenant's 1:N-consenting subjects; templates seen.

    Templates are grouped per subject so each subject enters the gallery once, with all of them.
    """
    total = 0
    for tenant_id in tenant_ids:
        per_subject: dict[str, list[SealedTemplate]] = {}
        async for page in store.iter_identification_templates(tenant_id):
            for template in page:
                if template.model_id == model_id:
                    per_subject.setdefault(template.subject_id, []).append(template)
        for subject_id, templates in per_subject.items():
            try:
                embeddings = await open_templates(keys, templates, model_id)
            except DecryptionFailed:
                # One damaged record must not keep the server down; this subject just cannot be
                # identified until re-enrolled, and the log says so.
                _LOGGER.error("gallery_subject_unreadable", subject=pseudonym(subject_id))
                continue
            gallery.get(tenant_id).upsert(subject_id, embeddings[:MAX_ENROLMENT_IMAGES])
            total += len(templates)
        _LOGGER.info("gallery_loaded", tenant=tenant_id, subjects=len(per_subject))
    return total
