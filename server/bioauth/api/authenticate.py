"""The Authenticate stream's messages to session values and back.

Requests are converted lazily, one at a time as the session reads them, so a malformed message
fails the stream when it is reached (INVALID_ARGUMENT), after the answers to the frames before it.
A frame without an image is passed on as an empty file, which the session rejects as UNREADABLE:
one bad frame costs only itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from bioauth.api import convert
from bioauth.errors import InvalidInput
from bioauth.inference.decode import RawImage
from bioauth.service.domain import FaceInput, Operation
from bioauth.service.stream_types import (
    FrameReason,
    FrameVerdict,
    SessionMessage,
    SessionOpening,
    SessionReply,
    StreamFrame,
)
from bioauth.v1 import bioauth_pb2, types_pb2

__all__ = ["session_messages", "session_response"]

_MODES = {
    bioauth_pb2.AUTHENTICATION_MODE_VERIFY: Operation.VERIFY,
    bioauth_pb2.AUTHENTICATION_MODE_IDENTIFY: Operation.IDENTIFY,
}
_FRAME_REASON = {
    FrameReason.UNREADABLE: types_pb2.FRAME_REJECT_REASON_UNREADABLE,
    FrameReason.TOO_SMALL: types_pb2.FRAME_REJECT_REASON_TOO_SMALL,
    FrameReason.TOO_BLURRED: types_pb2.FRAME_REJECT_REASON_TOO_BLURRED,
    FrameReason.TOO_DARK: types_pb2.FRAME_REJECT_REASON_TOO_DARK,
    FrameReason.IMPLAUSIBLE_EMBEDDING: types_pb2.FRAME_REJECT_REASON_IMPLAUSIBLE_EMBEDDING,
    FrameReason.DUPLICATE: types_pb2.FRAME_REJECT_REASON_DUPLICATE,
    FrameReason.OVER_BUDGET: types_pb2.FRAME_REJECT_REASON_OVER_BUDGET,
}


async def session_messages(
    requests: AsyncIterator[bioauth_pb2.AuthenticateRequest],
) -> AsyncIterator[SessionMessage]:
    async for request in requests:
        kind = request.WhichOneof("message")
        if kind == "open":
            yield session_opening(request.open)
        elif kind == "frame":
            yield stream_frame(request.frame)
        else:
            raise InvalidInput("holds neither open nor frame", field="message")


def session_opening(message: bioauth_pb2.SessionOpen) -> SessionOpening:
    mode = _MODES.get(message.mode)
    if mode is None:
        raise InvalidInput("must be VERIFY or IDENTIFY", field="open.mode")
    if not message.HasField("transaction"):
        raise InvalidInput("is required", field="open.transaction")
    external_ref: str | None = None
    if mode is Operation.VERIFY:
        external_ref = convert.external_ref(message.subject, "open.subject.external_ref")
    elif message.subject.external_ref:
        raise InvalidInput("must be empty for an identify session", field="open.subject")
    return SessionOpening(
        mode=mode,
        external_ref=external_ref,
        transaction=convert.transaction(message.transaction, "open.transaction"),
        max_frames=message.max_frames,
    )


def stream_frame(message: bioauth_pb2.Frame) -> StreamFrame:
    return StreamFrame(sequence=message.sequence, image=_image(message.image))


def _image(image: types_pb2.FaceImage) -> FaceInput:
    kind = image.WhichOneof("data")
    if kind == "raw":
        return RawImage(bytes(image.raw.rgb8), image.raw.width, image.raw.height)
    return bytes(image.encoded)  # empty when unset: rejected UNREADABLE


def session_response(reply: SessionReply) -> bioauth_pb2.AuthenticateResponse:
    if isinstance(reply, FrameVerdict):
        return bioauth_pb2.AuthenticateResponse(
            frame_result=bioauth_pb2.FrameResult(
                sequence=reply.sequence,
                accepted=reply.accepted,
                reason=types_pb2.FRAME_REJECT_REASON_UNSPECIFIED
                if reply.reason is None
                else _FRAME_REASON[reply.reason],
            )
        )
    return bioauth_pb2.AuthenticateResponse(result=convert.authorization_result(reply))
