"""The base of interceptors that act around every authenticated call (deadline, error mapping).

Public services (health, reflection) pass through untouched; every other method's behaviour is
wrapped, whatever its streaming kind, in what the subclass builds for that method.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from grpc import aio

from bioauth.security.authentication import PUBLIC_SERVICES
from bioauth.security.handlers import StreamAround, UnaryAround, wrap_handler

__all__ = ["AroundInterceptor"]


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
