"""The values an Authenticate session takes and gives: plain data, no protobuf.

The API layer turns the stream's messages into these (``bioauth.api.authenticate``); the CLI and
tests build them directly. A session answers every frame with a ``FrameVerdict`` and ends with one
``AuthorizationOutcome`` (``bioauth.service.domain``), the same value Verify and Identify return.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bioauth.service.domain import AuthorizationOutcome, FaceInput, Operation, Transaction

__all__ = [
    "FrameReason",
    "FrameVerdict",
    "SessionMessage",
    "SessionOpening",
    "SessionReply",
    "StreamFrame",
]


@dataclass(frozen=True, slots=True)
class SessionOpening:
    """The first message of a session, already checked for shape and length."""

    mode: Operation
    external_ref: str | None
    """Required for VERIFY, None for IDENTIFY."""
    transaction: Transaction
    max_frames: int
    """1 to MAX_FRAMES_PER_SESSION, or 0 for the server's default."""

    def __repr__(self) -> str:
        # external_ref identifies a person to the tenant: never in a repr.
        return f"SessionOpening(mode={self.mode.value}, max_frames={self.max_frames})"


@dataclass(frozen=True, slots=True)
class StreamFrame:
    sequence: int
    """The client's counter, strictly increasing; echoed in the frame's verdict."""
    image: FaceInput

    def __repr__(self) -> str:
        return f"StreamFrame(sequence={self.sequence})"


SessionMessage = SessionOpening | StreamFrame


class FrameReason(enum.StrEnum):
    """Why a frame was not used (the API's FrameRejectReason)."""

    UNREADABLE = "unreadable"
    TOO_SMALL = "too_small"
    TOO_BLURRED = "too_blurred"
    TOO_DARK = "too_dark"
    IMPLAUSIBLE_EMBEDDING = "implausible_embedding"
    DUPLICATE = "duplicate"
    """The same image as an earlier frame of the session: a replayed frame adds no evidence."""
    OVER_BUDGET = "over_budget"
    """The frame arrived once the session's seconds were spent."""


@dataclass(frozen=True, slots=True)
class FrameVerdict:
    sequence: int
    reason: FrameReason | None
    """None when the frame was accepted (it counts toward the fused decision)."""

    @property
    def accepted(self) -> bool:
        return self.reason is None


SessionReply = FrameVerdict | AuthorizationOutcome
"""What a session yields: one verdict per frame read, then exactly one outcome, last."""
