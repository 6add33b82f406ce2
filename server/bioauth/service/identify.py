"""1:N identification: who, among this tenant's subjects who consented to 1:N, is this?

Only the calling tenant's gallery is searched, and it holds only subjects enrolled with consent to
identification (kept so by enrolment and opt-out). The probes are fused the way the calibration
says (one template vector for a template rule, every frame for ``best_of``), the gallery returns
the best and the runner-up subject, and the policy decides at the point its false-positive target
allows for the gallery's size, refusing a best match too close to the runner-up (AMBIGUOUS).

Before an approval is signed the matched subject is read back from the store: a subject who left
a moment ago, or whose consent no longer covers 1:N, is dropped from the gallery and not matched.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from bioauth.config import TenantSettings
from bioauth.matching import policy
from bioauth.matching.decision import Decision, DecisionReason, Verdict, no_usable_probe
from bioauth.matching.fusion import fuse_embeddings
from bioauth.matching.gallery import GalleryResult, TenantGalleries
from bioauth.matching.operating_points import Calibration, require_calibration
from bioauth.service._deadline import within
from bioauth.service.decisions import DecisionRecorder
from bioauth.service.domain import AuthorizationOutcome, FaceInput, Operation, Transaction
from bioauth.service.face_embedder import FaceEmbedder
from bioauth.service.templates import searchable
from bioauth.store.protocol import TemplateStore

__all__ = ["IdentifyService", "best_two", "decide_identify"]


class IdentifyService:
    """The identification use case; transport-independent."""

    def __init__(
        self,
        *,
        store: TemplateStore,
        embedder: FaceEmbedder,
        galleries: TenantGalleries,
        calibration: Calibration | None,
        recorder: DecisionRecorder,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._galleries = galleries
        self._calibration = calibration
        self._recorder = recorder

    async def identify(
        self,
        tenant: TenantSettings,
        probes: Sequence[FaceInput],
        transaction: Transaction,
        *,
        deadline: float | None,
    ) -> AuthorizationOutcome:
        calibration = require_calibration(self._calibration, self._embedder.model_id)
        model_id = self._embedder.model_id
        outcomes = tuple(await self._embedder.embed_all(probes, deadline=deadline))
        usable = [o.embedding for o in outcomes if o.embedding is not None]
        external_ref = ""
        if not usable:
            verdict = no_usable_probe()
        else:
            verdict, external_ref = await decide_identify(
                np.stack(usable),
                tenant=tenant,
                store=self._store,
                galleries=self._galleries,
                calibration=calibration,
                deadline=deadline,
            )
        return await self._recorder.record(
            tenant=tenant,
            operation=Operation.IDENTIFY,
            verdict=verdict,
            transaction=transaction,
            model_id=model_id,
            probes=outcomes,
            external_ref=external_ref,
            deadline=deadline,
        )


async def decide_identify(
    probes: npt.NDArray[np.float32],
    *,
    tenant: TenantSettings,
    store: TemplateStore,
    galleries: TenantGalleries,
    calibration: Calibration,
    deadline: float | None,
    more_frames_possible: bool = False,
) -> tuple[Verdict, str]:
    """The 1:N decision for embedded probes, and on approval the matched subject's reference.

    Shared by Identify and the Authenticate session's identify target, so both search, decide
    and re-check the match against the store the same way. The gallery may lag the store by a
    moment (another replica's opt-out): the store has the last word before anyone is charged.
    """
    gallery = galleries.get(tenant.id)
    size = len(gallery)
    candidates: list[policy.Candidate] = []
    if size:
        results = await within(
            deadline, gallery.search_async(_queries(calibration, probes)), "search"
        )
        candidates = best_two(results)
    verdict = policy.decide_identify(
        candidates,
        len(probes),
        size,
        calibration,
        tenant.identify_fpir_target,
        more_frames_possible=more_frames_possible,
    )
    if verdict.decision is not Decision.APPROVE:
        return verdict, ""
    subject = await within(
        deadline, store.get_subject_by_id(tenant.id, verdict.subject_id), "subject look-up"
    )
    if subject is None or not searchable(subject) or subject.external_ref is None:
        gallery.remove(verdict.subject_id)
        return _stale(verdict), ""
    return verdict, subject.external_ref


def _queries(calibration: Calibration, probes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """What the gallery is searched with: one fused vector under a template rule (the gallery's
    rows are fused the same way), every frame otherwise."""
    rule = calibration.fusion_rule
    if rule.fuses_embeddings:
        return fuse_embeddings(probes, rule).astype(np.float32)[None, :]
    return probes


def best_two(results: Sequence[GalleryResult]) -> list[policy.Candidate]:
    """The best subject over every probe row and the nearest other subject (the runner-up).

    Each row's result holds its two nearest distinct subjects, which always includes, for that
    row, the nearest subject other than any given one; so the overall runner-up is among them.
    """
    best: dict[str, policy.Candidate] = {}
    for result in results:
        for candidate in result.candidates:
            held = best.get(candidate.subject_id)
            if held is None or candidate.distance < held.distance:
                best[candidate.subject_id] = candidate
    return sorted(best.values(), key=lambda c: c.distance)[:2]


def _stale(verdict: Verdict) -> Verdict:
    """The match left the store: no candidate, at the point and in the mode decided."""
    return Verdict(
        Decision.NO_MATCH,
        DecisionReason.NO_CANDIDATE,
        operating_point=verdict.operating_point,
        enrolment_images=verdict.enrolment_images,
        probe_images=verdict.probe_images,
    )
