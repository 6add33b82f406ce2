"""The asynchronous bioauth client: one grpc.aio channel, a deadline on every call."""

# Calls take ``timeout`` because it becomes the gRPC deadline, which the server sees and
# propagates into its own work; an asyncio.timeout around the call could not do that.
# ruff: noqa: ASYNC109

from __future__ import annotations

import enum
import json
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bioauth.client._config import DEFAULT_TIMEOUT_S, TLSConfig, open_channel
from bioauth.client._errors import BioauthClientError, ClientClosed, RpcError, map_rpc_error
from bioauth.v1 import bioauth_pb2, bioauth_pb2_grpc, types_pb2
from bioauth.wire import API_KEY_HEADER

__all__ = [
    "AsyncClient",
    "AuthenticateOutcome",
    "HealthStatus",
    "Jwks",
    "frame_request",
    "session_open_request",
]

_T = TypeVar("_T")


class HealthStatus(enum.StrEnum):
    """The answer of ``grpc.health.v1.Health/Check``."""

    UNKNOWN = "UNKNOWN"
    SERVING = "SERVING"
    NOT_SERVING = "NOT_SERVING"
    SERVICE_UNKNOWN = "SERVICE_UNKNOWN"


@dataclass(frozen=True)
class Jwks:
    """The server's token-verification keys.

    Attributes:
        keys: the JWKs (RFC 7517) as parsed JSON objects.
        max_age_s: how long they may be cached; refresh earlier on an unknown ``kid``.
    """

    keys: tuple[dict[str, Any], ...]
    max_age_s: int

    @property
    def document(self) -> dict[str, Any]:
        """The JWK Set document, ``{"keys": [...]}``."""
        return {"keys": list(self.keys)}

    @classmethod
    def from_json(cls, jwks_json: str, max_age_s: int = 0) -> Jwks:
        """Parse a JWK Set document; ``ValueError`` when it is not one."""
        document = json.loads(jwks_json)
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError('a JWK Set is a JSON object with a "keys" list')
        keys = document["keys"]
        if not all(isinstance(key, dict) for key in keys):
            raise ValueError("every JWK must be a JSON object")
        return cls(keys=tuple(keys), max_age_s=max_age_s)


@dataclass(frozen=True)
class AuthenticateOutcome:
    """What an Authenticate session returned: the per-frame answers and the one decision."""

    frame_results: list[bioauth_pb2.FrameResult] = field(default_factory=list)
    result: types_pb2.AuthorizationResult | None = None


def session_open_request(
    transaction: types_pb2.TransactionContext,
    *,
    subject: str | None = None,
    max_frames: int = 0,
) -> bioauth_pb2.AuthenticateRequest:
    """The first message of an Authenticate stream: 1:1 when ``subject`` is given, else 1:N."""
    mode = (
        bioauth_pb2.AUTHENTICATION_MODE_VERIFY
        if subject is not None
        else bioauth_pb2.AUTHENTICATION_MODE_IDENTIFY
    )
    open_ = bioauth_pb2.SessionOpen(mode=mode, transaction=transaction, max_frames=max_frames)
    if subject is not None:
        open_.subject.external_ref = subject
    return bioauth_pb2.AuthenticateRequest(open=open_)


def frame_request(sequence: int, image: types_pb2.FaceImage) -> bioauth_pb2.AuthenticateRequest:
    """One frame of an Authenticate stream."""
    return bioauth_pb2.AuthenticateRequest(frame=bioauth_pb2.Frame(sequence=sequence, image=image))


class AsyncClient:
    """Calls a bioauth server.

    Every call carries a deadline (``timeout`` seconds, or the client's default) and the API key
    as ``x-api-key`` metadata. Failed calls raise a subclass of
    :class:`bioauth.client.RpcError` chosen by the gRPC status.

    Use it as ``async with AsyncClient("host:50051", api_key=...) as client: ...`` or call
    :meth:`close` yourself. The channel is opened on the running event loop, so create the client
    inside the loop that uses it.

    Args:
        target: ``host:port`` of the server.
        api_key: development API key (sent on every call); None with mTLS.
        tls: TLS settings; None for a plaintext channel (development on loopback only).
        timeout: default deadline of every call, in seconds.
        channel_options: extra gRPC channel options, e.g. ``[("grpc.max_send_message_length", n)]``.
        channel: an already opened channel to use instead of opening one (tests pass
            :class:`bioauth.client.testing.MockChannel` here); the client closes it.
    """

    def __init__(
        self,
        target: str = "",
        *,
        api_key: str | None = None,
        tls: TLSConfig | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        channel_options: Sequence[tuple[str, Any]] = (),
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout}")
        if channel is None:
            if not target:
                raise ValueError("target is required unless a channel is given")
            channel = open_channel(target, tls, channel_options)
        self._channel = channel
        self._timeout = timeout
        self._metadata: tuple[tuple[str, str], ...] = (
            ((API_KEY_HEADER, api_key),) if api_key else ()
        )
        # The generated stubs are untyped; every call goes through _unary, which checks the type.
        stubs: tuple[Any, Any, Any] = (
            bioauth_pb2_grpc.BioAuthStub,
            bioauth_pb2_grpc.KeyPublicationStub,
            health_pb2_grpc.HealthStub,
        )
        self._bioauth, self._keys, self._health = (stub(channel) for stub in stubs)
        self._closed = False

    def __repr__(self) -> str:
        return f"AsyncClient(timeout={self._timeout}, closed={self._closed})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled. Idempotent."""
        if not self._closed:
            self._closed = True
            await self._channel.close(grace=None)

    # --- calls ----------------------------------------------------------------------------------

    async def enroll(
        self,
        subject: str,
        samples: Sequence[types_pb2.FaceImage],
        consent: types_pb2.Consent,
        *,
        idempotency_key: str,
        timeout: float | None = None,
    ) -> bioauth_pb2.EnrollResponse:
        """Enrol an opted-in person under the tenant's reference ``subject``.

        A retry with the same ``idempotency_key`` and content returns the first answer.
        """
        request = bioauth_pb2.EnrollRequest(
            subject=types_pb2.SubjectRef(external_ref=subject),
            consent=consent,
            samples=list(samples),
            idempotency_key=idempotency_key,
        )
        return await self._unary(self._bioauth.Enroll, request, timeout, bioauth_pb2.EnrollResponse)

    async def verify(
        self,
        subject: str,
        probes: Sequence[types_pb2.FaceImage],
        transaction: types_pb2.TransactionContext,
        *,
        timeout: float | None = None,
    ) -> types_pb2.AuthorizationResult:
        """1:1: is the person in ``probes`` the holder of ``subject``?"""
        request = bioauth_pb2.VerifyRequest(
            subject=types_pb2.SubjectRef(external_ref=subject),
            probes=list(probes),
            transaction=transaction,
        )
        return await self._unary(
            self._bioauth.Verify, request, timeout, types_pb2.AuthorizationResult
        )

    async def identify(
        self,
        probes: Sequence[types_pb2.FaceImage],
        transaction: types_pb2.TransactionContext,
        *,
        timeout: float | None = None,
    ) -> types_pb2.AuthorizationResult:
        """1:N: who, among the subjects who consented to identification, is this?"""
        request = bioauth_pb2.IdentifyRequest(probes=list(probes), transaction=transaction)
        return await self._unary(
            self._bioauth.Identify, request, timeout, types_pb2.AuthorizationResult
        )

    async def delete_subject(
        self, subject: str, *, timeout: float | None = None
    ) -> bioauth_pb2.DeleteSubjectResponse:
        """Opt-out: destroy the subject's key and templates (DONE or PENDING)."""
        reference = types_pb2.SubjectRef(external_ref=subject)
        request = bioauth_pb2.DeleteSubjectRequest(subject=reference)
        return await self._unary(
            self._bioauth.DeleteSubject, request, timeout, bioauth_pb2.DeleteSubjectResponse
        )

    async def get_subject(
        self, subject: str, *, timeout: float | None = None
    ) -> bioauth_pb2.GetSubjectResponse:
        """Enrolment status and consent of ``subject``; never biometric data."""
        request = bioauth_pb2.GetSubjectRequest(subject=types_pb2.SubjectRef(external_ref=subject))
        return await self._unary(
            self._bioauth.GetSubject, request, timeout, bioauth_pb2.GetSubjectResponse
        )

    async def get_jwks(self, *, timeout: float | None = None) -> Jwks:
        """The keys that verify decision tokens (a :class:`TokenVerifier`'s key source)."""
        response = await self._unary(
            self._keys.GetJwks, bioauth_pb2.GetJwksRequest(), timeout, bioauth_pb2.GetJwksResponse
        )
        try:
            return Jwks.from_json(response.jwks_json, response.max_age_seconds)
        except ValueError as exc:
            raise BioauthClientError(f"server sent an invalid JWK Set: {exc}") from exc

    async def health(self, service: str = "", *, timeout: float | None = None) -> HealthStatus:
        """``grpc.health.v1`` Check of ``service`` ("" is the whole server)."""
        response = await self._unary(
            self._health.Check,
            health_pb2.HealthCheckRequest(service=service),
            timeout,
            health_pb2.HealthCheckResponse,
        )
        return HealthStatus(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    async def authenticate(
        self,
        requests: AsyncIterable[bioauth_pb2.AuthenticateRequest],
        *,
        timeout: float | None = None,
    ) -> AsyncGenerator[bioauth_pb2.AuthenticateResponse, None]:
        """The raw Authenticate stream: send ``requests``, yield every response.

        ``requests`` must start with :func:`session_open_request`, then
        :func:`frame_request` messages. ``timeout`` bounds the whole session. Most callers want
        :meth:`authenticate_frames`.
        """
        call = self._bioauth.Authenticate(
            requests, timeout=self._deadline(timeout), metadata=self._metadata
        )
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc) from exc
        finally:
            # A caller that stops iterating early must not leave the stream open.
            call.cancel()

    async def authenticate_frames(
        self,
        transaction: types_pb2.TransactionContext,
        frames: AsyncIterable[types_pb2.FaceImage] | Iterable[types_pb2.FaceImage],
        *,
        subject: str | None = None,
        max_frames: int = 0,
        timeout: float | None = None,
    ) -> AuthenticateOutcome:
        """Run one Authenticate session over ``frames`` (1:1 when ``subject`` is given).

        Frames are numbered from 1 and sent until the server decides; frames the source yields
        after that are not sent. The stream is read to its end, so the server closes it with OK
        rather than seeing a cancellation.
        """
        decided = False

        async def requests() -> AsyncIterator[bioauth_pb2.AuthenticateRequest]:
            yield session_open_request(transaction, subject=subject, max_frames=max_frames)
            sequence = 0
            async for image in _aiter(frames):
                if decided:
                    return
                sequence += 1
                yield frame_request(sequence, image)

        frame_results: list[bioauth_pb2.FrameResult] = []
        result: types_pb2.AuthorizationResult | None = None
        responses = self.authenticate(requests(), timeout=timeout)
        try:
            async for response in responses:
                if result is not None:
                    raise BioauthClientError("Authenticate stream went on after its result")
                if response.HasField("frame_result"):
                    frame_results.append(response.frame_result)
                elif response.HasField("result"):
                    result = response.result
                    decided = True
        except RpcError:
            if result is None:
                raise
            # The decision is in hand: a status the transport reports after it (the server
            # ended the call while a frame was still being written) does not undo it.
        finally:
            await responses.aclose()
        if result is None:
            raise BioauthClientError("Authenticate stream ended without a result")
        return AuthenticateOutcome(frame_results, result)

    # --- plumbing --------------------------------------------------------------------------------

    def _deadline(self, timeout: float | None) -> float:
        if self._closed:
            raise ClientClosed("the client is closed")
        if timeout is None:
            return self._timeout
        if timeout <= 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout}")
        return timeout

    async def _unary(
        self, method: Any, request: Any, timeout: float | None, response_type: type[_T]
    ) -> _T:
        deadline = self._deadline(timeout)
        try:
            response = await method(request, timeout=deadline, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc) from exc
        if not isinstance(response, response_type):
            got = type(response).__name__
            raise BioauthClientError(f"expected {response_type.__name__}, got {got}")
        return response


async def _aiter(source: AsyncIterable[_T] | Iterable[_T]) -> AsyncIterator[_T]:
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    else:
        for item in source:
            yield item
