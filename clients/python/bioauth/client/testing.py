"""Test seam of the SDK: a channel that answers calls in-process, without a server or network.

Like httpx's ``MockTransport``: hand a :class:`MockChannel` to ``AsyncClient(channel=...)`` (or a
factory returning one to ``Client(channel_factory=...)``) and answer each call from a handler::

    async def handler(call: MockCall) -> Message:
        if call.method == "/bioauth.v1.BioAuth/GetSubject":
            return bioauth_pb2.GetSubjectResponse(subject_id="s-1")
        raise rpc_error(grpc.StatusCode.UNIMPLEMENTED, call.method)

    client = AsyncClient(channel=MockChannel(handler), api_key="k")

Requests and responses go through the real serializers, the call's ``timeout`` is enforced as a
deadline (DEADLINE_EXCEEDED), and every call is recorded in ``MockChannel.calls``. For a stream,
the handler reads ``call.requests`` and returns an async iterator of responses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import Message

__all__ = ["MockCall", "MockChannel", "MockHandler", "rpc_error"]


@dataclass
class MockCall:
    """One call as the channel saw it.

    Attributes:
        method: the full method path, e.g. ``/bioauth.v1.BioAuth/Verify``.
        timeout: the deadline the client set, in seconds (None: no deadline).
        metadata: the call's metadata as a dict (``x-api-key`` among them).
        request: the request message of a unary call.
        requests: the request stream of a streaming call.
    """

    method: str
    timeout: float | None
    metadata: dict[str, str]
    request: Message | None = None
    requests: AsyncIterator[Message] | None = field(default=None, repr=False)


MockHandler = Callable[[MockCall], Awaitable[Message | AsyncIterator[Message]]]


def rpc_error(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    """The error a real channel raises for a call that ended with ``code``."""
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details, debug_error_string=None
    )


def _metadata(metadata: Any) -> dict[str, str]:
    return {str(key): str(value) for key, value in (metadata or ())}


def _roundtrip(message: Any, serializer: Any) -> None:
    # What a real channel would send must serialize: a wrong type fails here as it would there.
    if serializer is not None:
        serializer(message)


class _UnaryUnary:
    def __init__(self, channel: MockChannel, method: str, serializer: Any, deserializer: Any):
        self._channel, self._method = channel, method
        self._serializer, self._deserializer = serializer, deserializer

    def __call__(
        self, request: Any, *, timeout: float | None = None, metadata: Any = None, **_: Any
    ) -> Awaitable[Any]:
        call = MockCall(self._method, timeout, _metadata(metadata), request=request)
        return self._invoke(call)

    async def _invoke(self, call: MockCall) -> Any:
        _roundtrip(call.request, self._serializer)
        self._channel.calls.append(call)
        response = await self._channel.answer(call)
        if not isinstance(response, Message):
            raise TypeError(f"handler for {call.method} must return a message")
        data = response.SerializeToString()
        return data if self._deserializer is None else self._deserializer(data)


class _StreamStreamCall:
    def __init__(self, responses: AsyncIterator[Any]) -> None:
        self._responses = responses
        self.cancelled = False

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._responses

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class _StreamStream:
    def __init__(self, channel: MockChannel, method: str, serializer: Any, deserializer: Any):
        self._channel, self._method = channel, method
        self._serializer, self._deserializer = serializer, deserializer

    def __call__(
        self,
        request_iterator: AsyncIterable[Any],
        *,
        timeout: float | None = None,
        metadata: Any = None,
        **_: Any,
    ) -> _StreamStreamCall:
        async def requests() -> AsyncIterator[Message]:
            async for request in request_iterator:
                _roundtrip(request, self._serializer)
                yield request

        call = MockCall(self._method, timeout, _metadata(metadata), requests=requests())
        self._channel.calls.append(call)
        return _StreamStreamCall(self._responses(call))

    async def _responses(self, call: MockCall) -> AsyncIterator[Any]:
        responses = await self._channel.answer(call)
        if isinstance(responses, Message):
            raise TypeError(f"streaming {call.method}: the handler must return an async iterator")
        try:
            async with asyncio.timeout(call.timeout):
                async for response in responses:
                    data = response.SerializeToString()
                    yield data if self._deserializer is None else self._deserializer(data)
        except TimeoutError as exc:
            raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from exc


class MockChannel:
    """Stands in for a grpc.aio channel; its calls are answered by ``handler`` in-process.

    It offers the part of ``grpc.aio.Channel`` the SDK uses (unary-unary and stream-stream
    calls, ``close``), duck-typed rather than subclassed.
    """

    def __init__(self, handler: MockHandler) -> None:
        self.handler = handler
        self.calls: list[MockCall] = []
        self.closed = False

    async def answer(self, call: MockCall) -> Message | AsyncIterator[Message]:
        try:
            async with asyncio.timeout(call.timeout):
                return await self.handler(call)
        except TimeoutError as exc:
            raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from exc

    async def __aenter__(self) -> MockChannel:
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        await self.close()

    async def close(self, grace: float | None = None) -> None:
        self.closed = True

    async def channel_ready(self) -> None:
        return None

    def unary_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool | None = False,
    ) -> _UnaryUnary:
        return _UnaryUnary(self, method, request_serializer, response_deserializer)

    def stream_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool | None = False,
    ) -> _StreamStream:
        return _StreamStream(self, method, request_serializer, response_deserializer)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Callable[..., Any]:
        # Health/Watch is the only unary-stream call a stub builds; the SDK never makes it.
        def refuse(*_args: Any, **_kwargs: Any) -> Any:
            raise NotImplementedError(f"MockChannel does not support {method}")

        return refuse
