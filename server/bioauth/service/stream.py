"""Authenticate: a terminal streams frames and gets one decision, as soon as the frames allow it.

A session opens with its first message (verify against a subject, or identify), answers every
frame it reads (accepted, or rejected with a reason), and after every accepted frame decides again
with the best frames it holds (at most three, fused the way the calibration was measured, in the
comparison mode the policy picks). It ends at the first approval at the tenant's point, or when its
budget is spent (``max_frames`` frames read, or ``stream.budget_s`` seconds since the opening),
with the policy's final answer for what it has: a decline or no-match with a reason and no token.
Only that final answer is recorded (one audit row, a token only for an approval).

Every decision along the way is a comparison an impostor could win, so a session of ten frames
gives up to ten chances: the budget is kept small on purpose, like the attempts a PIN allows.

A stream that does not open first, or opens twice, is INVALID_ARGUMENT; one that never opens ends
DEADLINE_EXCEEDED after ``stream.open_timeout_s``. A client that goes away mid-session leaves
nothing behind: the read in flight is cancelled, a frame waiting for inference gives its batcher
slot back, decrypted templates are dropped, and nothing is recorded, since nothing was decided.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from bioauth.config import StreamSettings, TenantSettings
from bioauth.crypto.provider import KeyProvider
from bioauth.errors import (
    BioauthError,
    DeadlineExceeded,
    InvalidInput,
)
from bioauth.matching.gallery import TenantGalleries
from bioauth.matching.operating_points import Calibration, require_calibration
from bioauth.observability.logging import get_logger
from bioauth.service._inbox import Inbox, InboxEvent
from bioauth.service._session import Session, SessionLimits
from bioauth.service._session_targets import IdentifyTarget, SessionTarget, VerifyTarget
from bioauth.service.decisions import DecisionRecorder
from bioauth.service.domain import AuthorizationOutcome, Operation
from bioauth.service.face_embedder import FaceEmbedder
from bioauth.service.stream_types import SessionMessage, SessionOpening, SessionReply
from bioauth.service.templates import enrolled_subject, open_enrolment
from bioauth.store.protocol import TemplateStore
from bioauth.wire import MAX_FRAMES_PER_SESSION

__all__ = ["AuthenticateService"]

_LOGGER = get_logger(__name__)


class AuthenticateService:
    """The Authenticate use case; transport-independent."""

    def __init__(
        self,
        *,
        store: TemplateStore,
        keys: KeyProvider,
        embedder: FaceEmbedder,
        galleries: TenantGalleries,
        calibration: Calibration | None,
        recorder: DecisionRecorder,
        settings: StreamSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._keys = keys
        self._embedder = embedder
        self._galleries = galleries
        self._calibration = calibration
        self._recorder = recorder
        self._settings = settings
        self._clock = clock

    async def authenticate(
        self,
        tenant: TenantSettings,
        messages: AsyncIterator[SessionMessage],
        *,
        deadline: float | None,
    ) -> AsyncIterator[SessionReply]:
        """Run one session over ``messages``; yields a ``FrameVerdict`` per frame read, then one
        ``AuthorizationOutcome``. ``deadline`` is the call's (absolute ``time.monotonic()``).

        Raises ``InvalidInput`` for a stream that breaks the protocol, ``DeadlineExceeded`` for one
        that never opens, ``NotFound``/``FailedPrecondition`` as Verify does for its subject.
        """
        inbox: Inbox[SessionMessage] = Inbox(messages, clock=self._clock)
        target: SessionTarget | None = None
        session: Session | None = None
        decided = False
        try:
            opening = await self._opening(inbox, deadline)
            calibration = require_calibration(self._calibration, self._embedder.model_id)
            target = await self._target(tenant, opening, calibration, deadline)
            session = Session(
                tenant=tenant,
                opening=opening,
                target=target,
                embedder=self._embedder,
                recorder=self._recorder,
                limits=self._limits(opening, deadline),
                deadline=deadline,
                clock=self._clock,
            )
            async for reply in session.run(inbox):
                decided = isinstance(reply, AuthorizationOutcome)
                yield reply
            await self._drain(inbox)
        except (asyncio.CancelledError, GeneratorExit):
            # The client went away (or the server is stopping): nothing was decided, so nothing
            # is recorded; the log line is the only trace.
            if not decided:
                _LOGGER.info(
                    "session_abandoned",
                    frames=0 if session is None else session.frames_read,
                    opened=session is not None,
                )
            raise
        finally:
            if target is not None:
                target.close()
            await inbox.close()

    async def _drain(self, inbox: Inbox[SessionMessage]) -> None:
        """Read and drop what the client sent before it saw the result, until it half-closes.

        A client streams frames ahead of the answers; if the call ended while one of its writes
        was in flight, grpc would end the call on the client's side with INTERNAL and the result
        could be lost. Nothing read here is processed: the session is over.
        """
        until = self._clock() + self._settings.drain_s
        try:
            while (await inbox.next_before(until)) not in (InboxEvent.ENDED, InboxEvent.TIMED_OUT):
                pass
        except BioauthError:
            return  # a malformed late message changes nothing: the answer is already out

    async def _opening(
        self, inbox: Inbox[SessionMessage], deadline: float | None
    ) -> SessionOpening:
        wait_until = self._clock() + self._settings.open_timeout_s
        if deadline is not None:
            wait_until = min(wait_until, deadline)
        first = await inbox.next_before(wait_until)
        if first is InboxEvent.TIMED_OUT:
            raise DeadlineExceeded("the stream sent no SessionOpen in time")
        if first is InboxEvent.ENDED:
            raise InvalidInput("the stream ended before its SessionOpen", field="open")
        if not isinstance(first, SessionOpening):
            raise InvalidInput("the first message must be SessionOpen", field="open")
        _check_opening(first)
        return first

    def _limits(self, opening: SessionOpening, deadline: float | None) -> SessionLimits:
        opened_at = self._clock()
        ends_at = opened_at + self._settings.budget_s
        if deadline is not None:
            ends_at = min(ends_at, deadline - self._settings.decision_reserve_s)
        max_frames = opening.max_frames or self._settings.default_max_frames
        return SessionLimits(max_frames=max_frames, ends_at=ends_at)

    async def _target(
        self,
        tenant: TenantSettings,
        opening: SessionOpening,
        calibration: Calibration,
        deadline: float | None,
    ) -> SessionTarget:
        if opening.mode is Operation.IDENTIFY:
            return IdentifyTarget(
                tenant=tenant,
                store=self._store,
                galleries=self._galleries,
                calibration=calibration,
            )
        assert opening.external_ref is not None  # _check_opening
        subject = await enrolled_subject(self._store, tenant.id, opening.external_ref, deadline)
        enrolment = await open_enrolment(
            self._store, self._keys, subject, self._embedder.model_id, deadline
        )
        return VerifyTarget(subject, enrolment, calibration, tenant.verify_operating_point)


def _check_opening(opening: SessionOpening) -> None:
    if opening.mode is Operation.VERIFY and not opening.external_ref:
        raise InvalidInput("is required for a verify session", field="open.subject")
    if opening.mode is Operation.IDENTIFY and opening.external_ref is not None:
        raise InvalidInput("must be empty for an identify session", field="open.subject")
    if not 0 <= opening.max_frames <= MAX_FRAMES_PER_SESSION:
        raise InvalidInput(
            f"must be 0 to {MAX_FRAMES_PER_SESSION}, got {opening.max_frames}",
            field="open.max_frames",
        )
