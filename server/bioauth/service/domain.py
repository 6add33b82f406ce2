"""The values the use cases take and return: plain data, no protobuf, no gRPC.

The API layer converts protobuf messages into these (``bioauth.api.convert``) and back; the CLI and
tests build them directly. Nothing here carries a raw score, and the values that do carry biometric
data (embeddings inside ``SampleOutcome``) hide it from ``repr`` so it cannot reach a log line.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from bioauth.inference.decode import RawImage
from bioauth.matching.decision import Verdict

__all__ = [
    "AuthorizationOutcome",
    "DeletionOutcome",
    "EnrolOutcomeView",
    "EnrolRequest",
    "EnrolSampleView",
    "FaceInput",
    "Operation",
    "SampleOutcome",
    "SampleReason",
    "SubjectView",
    "Transaction",
]

FaceInput = bytes | RawImage
"""One face crop: an encoded JPEG/PNG file, or raw RGB8 pixels."""


class Operation(enum.StrEnum):
    """What a decision answered (and what an Authenticate session does); carried in tokens and
    audit rows."""

    VERIFY = "verify"
    """1:1 against the subject the request names."""
    IDENTIFY = "identify"
    """1:N over the tenant's subjects who consented to identification."""


class SampleReason(enum.StrEnum):
    """Why one enrolment sample or probe was not used (the API's SampleRejectReason)."""

    UNREADABLE = "unreadable"
    TOO_SMALL = "too_small"
    TOO_BLURRED = "too_blurred"
    TOO_DARK = "too_dark"
    IMPLAUSIBLE_EMBEDDING = "implausible_embedding"


@dataclass(frozen=True, slots=True)
class SampleOutcome:
    """What happened to one crop: accepted with its embedding, or rejected with a reason."""

    index: int
    reason: SampleReason | None
    quality: float
    """Coarse capture quality in [0, 1]; 0 for an unreadable crop."""
    embedding: npt.NDArray[np.float32] | None = field(default=None, repr=False)

    @property
    def accepted(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class Transaction:
    """The transaction a decision is bound to: its id and the hash of its canonical encoding."""

    transaction_id: str
    binding: str
    """``txn`` claim: base64url SHA-256 of the context's canonical encoding (``bioauth.wire``)."""


@dataclass(frozen=True, slots=True)
class EnrolRequest:
    """One enrolment as the caller asked for it (already validated for shape and length)."""

    external_ref: str
    policy_version: str
    consented_at: datetime
    channel: str
    purpose: str
    identification: bool
    samples: tuple[FaceInput, ...]
    idempotency_key: str

    def __repr__(self) -> str:
        # external_ref and images identify a person: never in a repr.
        return f"EnrolRequest(samples={len(self.samples)}, identification={self.identification})"


@dataclass(frozen=True, slots=True)
class EnrolSampleView:
    index: int
    reason: SampleReason | None
    quality: float
    template_id: str

    @property
    def accepted(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class EnrolOutcomeView:
    """The enrolment answer, exactly what a replay of the same request gets back."""

    subject_id: str
    samples: tuple[EnrolSampleView, ...]
    model_id: str
    template_count: int


@dataclass(frozen=True, slots=True)
class AuthorizationOutcome:
    """One recorded decision, the same shape for verify, identify and a session; never a raw
    score."""

    verdict: Verdict
    external_ref: str
    """Identify approvals only: the account to charge."""
    model_id: str
    decision_id: str
    token: str = field(default="", repr=False)
    token_expires_at: datetime | None = None
    probes: tuple[SampleOutcome, ...] = ()


@dataclass(frozen=True, slots=True)
class SubjectView:
    """Enrolment status and consent; never biometric data."""

    subject_id: str
    status: str
    """``enrolled``, ``opt_out_pending`` or ``opted_out`` (``store.protocol.SubjectStatus``)."""
    template_count: int
    model_ids: tuple[str, ...]
    policy_version: str
    consented_at: datetime | None
    channel: str
    purpose: str
    identification: bool
    withdrawn_at: datetime | None
    enrolled_at: datetime


@dataclass(frozen=True, slots=True)
class DeletionOutcome:
    subject_id: str
    done: bool
    """True once the subject key is destroyed and every template removed; False while pending."""
    withdrawn_at: datetime
