"""The use cases wired together, as the composition root builds them once per process.

Front ends (the gRPC servicers, the CLI, tests) take a ``Services`` and call its members; they never
build a use case themselves, so every front end decides with the same policy, store and keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from bioauth.config import Settings
from bioauth.crypto.provider import KeyProvider
from bioauth.crypto.tokens import TokenIssuer
from bioauth.matching.gallery import TenantGalleries
from bioauth.matching.operating_points import Calibration
from bioauth.service.decisions import DecisionRecorder
from bioauth.service.enrol import EnrolService
from bioauth.service.face_embedder import FaceEmbedder
from bioauth.service.identify import IdentifyService
from bioauth.service.opt_out import OptOutService
from bioauth.service.stream import AuthenticateService
from bioauth.service.subjects import SubjectService
from bioauth.service.verify import VerifyService
from bioauth.store.protocol import TemplateStore

__all__ = ["Services", "build_services"]


@dataclass(frozen=True)
class Services:
    enrol: EnrolService
    verify: VerifyService
    identify: IdentifyService
    subjects: SubjectService
    tokens: TokenIssuer
    """Publishes the JWKS; approvals are signed through ``DecisionRecorder``."""
    galleries: TenantGalleries
    authenticate: AuthenticateService
    """The Authenticate stream's sessions (``bioauth.service.stream``)."""


def build_services(
    settings: Settings,
    *,
    store: TemplateStore,
    keys: KeyProvider,
    embedder: FaceEmbedder,
    calibration: Calibration | None,
    galleries: TenantGalleries,
    opt_out: OptOutService,
    tokens: TokenIssuer,
) -> Services:
    """Every use case over one set of components."""
    recorder = DecisionRecorder(store, tokens)
    return Services(
        enrol=EnrolService(store=store, keys=keys, embedder=embedder, gallery=galleries),
        verify=VerifyService(
            store=store,
            keys=keys,
            embedder=embedder,
            calibration=calibration,
            recorder=recorder,
        ),
        identify=IdentifyService(
            store=store,
            embedder=embedder,
            galleries=galleries,
            calibration=calibration,
            recorder=recorder,
        ),
        subjects=SubjectService(store=store, opt_out=opt_out, galleries=galleries),
        tokens=tokens,
        galleries=galleries,
        authenticate=AuthenticateService(
            store=store,
            keys=keys,
            embedder=embedder,
            galleries=galleries,
            calibration=calibration,
            recorder=recorder,
            settings=settings.stream,
        ),
    )
