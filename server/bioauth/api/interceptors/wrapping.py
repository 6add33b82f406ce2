"""Wrapping a grpc RpcMethodHandler's behaviour, whatever its streaming kind.

Interceptors that must act around the call itself (not only before it) wrap the behaviour;
this module does it once for the four kinds so each interceptor states only its job.
``AroundInterceptor`` is the base of those that act around every authenticated call (error
mapping, deadline): public services (health, reflection) pass through them untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

__all__ = ["PUBLIC_SERVICES", "AroundInterceptor", "StreamAround", "UnaryAround", "wrap_handler"]

# Load balancers and operators must reach these without tenant credentials.
PUBLIC_SERVICES: tuple[str, ...] = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

# around(call, request_or_iterator, context) for unary-response kinds.
UnaryAround = Callable[
    [Callable[..., Awaitable[Any]], Any, aio.ServicerContext[Any, Any]], Awaitable[Any]
]
# around(gen_factory, request_or_iterator, context) for stream-response kinds.
StreamAround = Callable[
    [Callable[..., AsyncIterator[Any]], Any, aio.ServicerContext[Any, Any]], AsyncIterator[Any]
]


def wrap_handler(
    handler: grpc.RpcMethodHandler, unary: UnaryAround, stream: StreamAround
) -> grpc.RpcMethodHandler:
    """A copy of ``handler`` whose behaviour runs inside ``unary``/``stream``."""
    if handler.unary_unary is not None:
        inner_uu = handler.unary_unary

        async def uu(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            return await unary(inner_uu, request, context)

        return grpc.unary_unary_rpc_method_handler(
            uu, handler.request_deserializer, handler.response_serializer
        )
    if handler.stream_unary is not None:
        inner_su = handler.stream_unary

        async def su(requests: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            return await unary(inner_su, requests, context)

        return grpc.stream_unary_rpc_method_handler(
            su, handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream is not None:
        inner_us = handler.unary_stream

        async def us(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async for item in stream(_as_generator(inner_us), request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(
            us, handler.request_deserializer, handler.response_serializer
        )
    inner_ss = handler.stream_stream

    async def ss(requests: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        async for item in stream(_as_generator(inner_ss), requests, context):
            yield item

    return grpc.stream_stream_rpc_method_handler(
        ss, handler.request_deserializer, handler.response_serializer
    )


def _as_generator(behaviour: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
    """Servicers may stream by yielding or by ``await context.write()``; present both as a generator."""

    async def gen(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        result = behaviour(request, context)
        if hasattr(result, "__aiter__"):
            async for item in result:
                yield item
        else:
            await result

    return gen


class AroundInterceptor(aio.ServerInterceptor):
    """Subclasses say what runs around a unary-response and a stream-response call."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(PUBLIC_SERVICES):
            return handler
        return wrap_handler(handler, self._unary(method), self._stream(method))

    def _unary(self, method: str) -> UnaryAround:
        raise NotImplementedError

    def _stream(self, method: str) -> StreamAround:
        raise NotImplementedError
