"""One open Authenticate session: frames in, a verdict per frame, one decision out.

State lives here only for the session's life: the frames kept for fusion (at most three; the
decision after the third accepted frame is final, so a session is at most three tries), digests of the frames seen (to refuse a replayed
frame), and the outcome of every frame that reached inference (for the audit row's counts).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bioauth.config import TenantSettings
from bioauth.errors import DeadlineExceeded, InvalidInput
from bioauth.matching.decision import Decision, DecisionReason, Verdict
from bioauth.matching.operating_points import MAX_IMAGES_PER_SIDE
from bioauth.observability.logging import get_logger
from bioauth.service._inbox import Inbox, InboxEvent
from bioauth.service._session_targets import Decided, SessionTarget
from bioauth.service.decisions import DecisionRecorder
from bioauth.service.domain import (
    AuthorizationOutcome,
    Operation,
    SampleOutcome,
    SampleReason,
)
from bioauth.service.face_digest import face_digest
from bioauth.service.face_embedder import FaceEmbedder
from bioauth.service.stream_types import (
    FrameReason,
    FrameVerdict,
    SessionMessage,
    SessionOpening,
    SessionReply,
    StreamFrame,
)

__all__ = ["Session", "SessionLimits"]

_LOGGER = get_logger(__name__)
_FRAME_REASON = {
    SampleReason.UNREADABLE: FrameReason.UNREADABLE,
    SampleReason.TOO_SMALL: FrameReason.TOO_SMALL,
    SampleReason.TOO_BLURRED: FrameReason.TOO_BLURRED,
    SampleReason.TOO_DARK: FrameReason.TOO_DARK,
    SampleReason.IMPLAUSIBLE_EMBEDDING: FrameReason.IMPLAUSIBLE_EMBEDDING,
}


class _End(enum.StrEnum):
    APPROVED = "approved"
    FRAMES_SPENT = "frames_spent"
    TIME_SPENT = "time_spent"
    CLIENT_DONE = "client_done"
    """The client half-closed after at least one frame: it has nothing more to show."""
    FUSION_FULL = "fusion_full"
    """Three frames accepted: the fused decision is final, so an impostor gets no more tries."""


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_frames: int
    """Frames the session reads at most."""
    ends_at: float
    """``time.monotonic()`` at which the seconds budget is spent."""


@dataclass(frozen=True, slots=True)
class _Kept:
    quality: float
    sequence: int
    embedding: npt.NDArray[np.float32]


class Session:
    def __init__(
        self,
        *,
        tenant: TenantSettings,
        opening: SessionOpening,
        target: SessionTarget,
        embedder: FaceEmbedder,
        recorder: DecisionRecorder,
        limits: SessionLimits,
        deadline: float | None,
        clock: Callable[[], float],
    ) -> None:
        self._tenant = tenant
        self._opening = opening
        self._target = target
        self._embedder = embedder
        self._recorder = recorder
        self._limits = limits
        self._deadline = deadline
        self._clock = clock
        self._frames_read = 0
        self._last_sequence = -1
        self._seen: set[bytes] = set()
        self._kept: list[_Kept] = []
        self._outcomes: list[SampleOutcome] = []

    @property
    def frames_read(self) -> int:
        return self._frames_read

    async def run(self, inbox: Inbox[SessionMessage]) -> AsyncIterator[SessionReply]:
        """Yield a verdict per frame read and, last, the one recorded outcome."""
        while True:
            if self._frames_read >= self._limits.max_frames:
                yield await self._finish(_End.FRAMES_SPENT, None)
                return
            message = await inbox.next_before(self._limits.ends_at)
            if message is InboxEvent.TIMED_OUT:
                yield await self._finish(_End.TIME_SPENT, None)
                return
            if message is InboxEvent.ENDED:
                if self._frames_read == 0:
                    raise InvalidInput("the stream ended before any frame", field="frame")
                yield await self._finish(_End.CLIENT_DONE, None)
                return
            if not isinstance(message, StreamFrame):
                raise InvalidInput("SessionOpen may come only once, first", field="open")
            self._check_sequence(message.sequence)
            self._frames_read += 1
            if self._clock() >= self._limits.ends_at:
                yield FrameVerdict(message.sequence, FrameReason.OVER_BUDGET)
                yield await self._finish(_End.TIME_SPENT, None)
                return
            verdict, decided = await self._frame(message)
            yield verdict
            if verdict.reason is FrameReason.OVER_BUDGET:
                yield await self._finish(_End.TIME_SPENT, None)
                return
            if decided is None:
                continue
            if decided.verdict.decision is Decision.APPROVE:
                yield await self._finish(_End.APPROVED, decided)
                return
            if self._fusion_full():
                # Decided with final=True: that is the policy's final answer already.
                yield await self._finish(_End.FUSION_FULL, decided)
                return
            if self._frames_read >= self._limits.max_frames:
                # Decided with final=True: that is the policy's final answer already.
                yield await self._finish(_End.FRAMES_SPENT, decided)
                return

    def _check_sequence(self, sequence: int) -> None:
        if sequence <= self._last_sequence:
            raise InvalidInput("frame sequence numbers must increase", field="frame.sequence")
        self._last_sequence = sequence

    async def _frame(self, frame: StreamFrame) -> tuple[FrameVerdict, Decided | None]:
        """Screen, embed and (when accepted) decide again with the frames kept."""
        digest = face_digest(frame.image)
        if digest in self._seen:
            return FrameVerdict(frame.sequence, FrameReason.DUPLICATE), None
        self._seen.add(digest)
        try:
            (outcome,) = await self._embedder.embed_all(
                [frame.image], deadline=self._limits.ends_at
            )
        except DeadlineExceeded:
            if self._clock() < self._limits.ends_at:
                raise
            return FrameVerdict(frame.sequence, FrameReason.OVER_BUDGET), None
        self._outcomes.append(_renumbered(outcome, frame.sequence))
        if outcome.embedding is None:
            assert outcome.reason is not None
            return FrameVerdict(frame.sequence, _FRAME_REASON[outcome.reason]), None
        self._keep(_Kept(outcome.quality, frame.sequence, outcome.embedding))
        final = self._frames_read >= self._limits.max_frames or self._fusion_full()
        decided = await self._target.decide(self._probes(), final=final, deadline=self._deadline)
        return FrameVerdict(frame.sequence, None), decided

    def _fusion_full(self) -> bool:
        # Every decision is a chance for an impostor: deciding again on every later frame would
        # multiply the calibrated false-match rate. Once the richest mode the policy is
        # calibrated for (3 probe frames) is reached, its answer stands.
        return len(self._kept) >= MAX_IMAGES_PER_SIDE

    def _keep(self, frame: _Kept) -> None:
        self._kept.append(frame)
        self._kept.sort(key=lambda k: (k.quality, k.sequence), reverse=True)
        del self._kept[MAX_IMAGES_PER_SIDE:]

    def _probes(self) -> npt.NDArray[np.float32]:
        """The kept frames in arrival order (the policy fuses the first ones it needs)."""
        ordered = sorted(self._kept, key=lambda k: k.sequence)
        return np.stack([k.embedding for k in ordered]).astype(np.float32, copy=False)

    async def _finish(self, end: _End, decided: Decided | None) -> AuthorizationOutcome:
        if decided is None:
            decided = await self._final_decision(end)
        self._kept.clear()
        outcome = await self._recorder.record(
            tenant=self._tenant,
            operation=self._opening.mode,
            verdict=decided.verdict,
            transaction=self._opening.transaction,
            model_id=self._embedder.model_id,
            probes=tuple(self._outcomes),
            external_ref=decided.external_ref,
            deadline=self._deadline,
        )
        _LOGGER.info(
            "session_ended",
            mode=self._opening.mode.value,
            end=end.value,
            frames=self._frames_read,
            accepted=sum(1 for o in self._outcomes if o.accepted),
            decision=outcome.verdict.decision.value,
            decision_id=outcome.decision_id,
        )
        return outcome

    async def _final_decision(self, end: _End) -> Decided:
        """The policy's final answer for the frames kept; without any, a decline or no-match."""
        if self._kept:
            return await self._target.decide(self._probes(), final=True, deadline=self._deadline)
        reason = (
            DecisionReason.NO_USABLE_PROBE
            if end is _End.CLIENT_DONE
            else DecisionReason.SESSION_BUDGET_SPENT
        )
        decision = (
            Decision.NO_MATCH if self._opening.mode is Operation.IDENTIFY else Decision.DECLINE
        )
        return Decided(Verdict(decision, reason, subject_id=self._target.subject_id))


def _renumbered(outcome: SampleOutcome, sequence: int) -> SampleOutcome:
    return SampleOutcome(sequence, outcome.reason, outcome.quality, outcome.embedding)
