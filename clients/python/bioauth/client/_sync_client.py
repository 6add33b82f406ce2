"""The blocking client: a thin wrapper that runs :class:`AsyncClient` on its own event loop.

The loop lives in one daemon thread owned by the client, so blocking code (scripts, WSGI
gateways) gets the same behaviour, deadlines and errors as async code, from one implementation.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import grpc.aio

from bioauth.client._async_client import AsyncClient, AuthenticateOutcome, HealthStatus, Jwks
from bioauth.client._config import DEFAULT_TIMEOUT_S, TLSConfig
from bioauth.client._errors import ClientClosed
from bioauth.client.replay import ReplayCache
from bioauth.client.tokens import DecisionToken, TokenVerifier
from bioauth.v1 import bioauth_pb2, types_pb2

__all__ = ["BlockingTokenVerifier", "Client"]

_T = TypeVar("_T")
_END = object()


class Client:
    """The blocking twin of :class:`AsyncClient`; same arguments, same errors.

    ``channel_factory`` replaces ``channel``: a grpc.aio channel must be created on the loop
    that uses it, so the factory is called on the client's own loop thread.
    """

    def __init__(
        self,
        target: str = "",
        *,
        api_key: str | None = None,
        tls: TLSConfig | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        channel_options: Sequence[tuple[str, Any]] = (),
        channel_factory: Callable[[], grpc.aio.Channel] | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="bioauth-client-loop", daemon=True
        )
        self._thread.start()
        self._closed = False

        async def build() -> AsyncClient:
            return AsyncClient(
                target,
                api_key=api_key,
                tls=tls,
                timeout=timeout,
                channel_options=channel_options,
                channel=None if channel_factory is None else channel_factory(),
            )

        try:
            self._client = self._run(build())
        except BaseException:
            self._stop_loop()
            raise

    def __repr__(self) -> str:
        return f"Client(closed={self._closed})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel and stop the loop thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            asyncio.run_coroutine_threadsafe(self._client.close(), self._loop).result()
        finally:
            self._stop_loop()

    def enroll(
        self,
        subject: str,
        samples: Sequence[types_pb2.FaceImage],
        consent: types_pb2.Consent,
        *,
        idempotency_key: str,
        timeout: float | None = None,
    ) -> bioauth_pb2.EnrollResponse:
        """See :meth:`AsyncClient.enroll`."""
        return self._run(
            self._client.enroll(
                subject, samples, consent, idempotency_key=idempotency_key, timeout=timeout
            )
        )

    def verify(
        self,
        subject: str,
        probes: Sequence[types_pb2.FaceImage],
        transaction: types_pb2.TransactionContext,
        *,
        timeout: float | None = None,
    ) -> types_pb2.AuthorizationResult:
        """See :meth:`AsyncClient.verify`."""
        return self._run(self._client.verify(subject, probes, transaction, timeout=timeout))

    def identify(
        self,
        probes: Sequence[types_pb2.FaceImage],
        transaction: types_pb2.TransactionContext,
        *,
        timeout: float | None = None,
    ) -> types_pb2.AuthorizationResult:
        """See :meth:`AsyncClient.identify`."""
        return self._run(self._client.identify(probes, transaction, timeout=timeout))

    def delete_subject(
        self, subject: str, *, timeout: float | None = None
    ) -> bioauth_pb2.DeleteSubjectResponse:
        """See :meth:`AsyncClient.delete_subject`."""
        return self._run(self._client.delete_subject(subject, timeout=timeout))

    def get_subject(
        self, subject: str, *, timeout: float | None = None
    ) -> bioauth_pb2.GetSubjectResponse:
        """See :meth:`AsyncClient.get_subject`."""
        return self._run(self._client.get_subject(subject, timeout=timeout))

    def get_jwks(self, *, timeout: float | None = None) -> Jwks:
        """See :meth:`AsyncClient.get_jwks`."""
        return self._run(self._client.get_jwks(timeout=timeout))

    def health(self, service: str = "", *, timeout: float | None = None) -> HealthStatus:
        """See :meth:`AsyncClient.health`."""
        return self._run(self._client.health(service, timeout=timeout))

    def authenticate_frames(
        self,
        transaction: types_pb2.TransactionContext,
        frames: Iterable[types_pb2.FaceImage],
        *,
        subject: str | None = None,
        max_frames: int = 0,
        timeout: float | None = None,
    ) -> AuthenticateOutcome:
        """See :meth:`AsyncClient.authenticate_frames`; ``frames`` may block (a camera)."""
        return self._run(
            self._client.authenticate_frames(
                transaction,
                _threaded(frames),
                subject=subject,
                max_frames=max_frames,
                timeout=timeout,
            )
        )

    def authenticate(
        self,
        requests: Iterable[bioauth_pb2.AuthenticateRequest],
        *,
        timeout: float | None = None,
    ) -> Iterator[bioauth_pb2.AuthenticateResponse]:
        """See :meth:`AsyncClient.authenticate`; ``requests`` may block."""
        stream = self._client.authenticate(_threaded(requests), timeout=timeout)

        async def next_response() -> bioauth_pb2.AuthenticateResponse:
            return await anext(stream)

        try:
            while True:
                try:
                    yield self._run(next_response())
                except StopAsyncIteration:
                    return
        finally:
            if not self._closed:
                self._run(stream.aclose())

    def token_verifier(
        self,
        *,
        issuer: str,
        audience: str,
        replay_cache: ReplayCache | None = None,
        clock_skew_s: float = 30.0,
    ) -> BlockingTokenVerifier:
        """A token verifier whose keys come from this client's GetJwks (see TokenVerifier)."""
        verifier = TokenVerifier(
            self._client.get_jwks,
            issuer=issuer,
            audience=audience,
            replay_cache=replay_cache,
            clock_skew_s=clock_skew_s,
        )
        return BlockingTokenVerifier(self, verifier)

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        if self._closed:
            coroutine.close()
            raise ClientClosed("the client is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


class BlockingTokenVerifier:
    """:class:`TokenVerifier` for blocking code; runs on its :class:`Client`'s loop."""

    def __init__(self, client: Client, verifier: TokenVerifier) -> None:
        self._client = client
        self._verifier = verifier

    def verify(self, token: str, transaction: types_pb2.TransactionContext) -> DecisionToken:
        """See :meth:`TokenVerifier.verify`: raises ``TokenRejected`` unless every check passes."""
        return self._client._run(self._verifier.verify(token, transaction))


async def _threaded(source: Iterable[_T]) -> AsyncIterator[_T]:
    """Pull a blocking iterator from a worker thread so the loop never waits on it."""
    iterator = iter(source)
    while True:
        item = await asyncio.to_thread(next, iterator, _END)
        if item is _END:
            return
        yield cast(_T, item)
