"""Every call gets a deadline: the client's, or the server's default when it sent none.

The deadline is one absolute ``time.monotonic()`` value in the request context (opened by the
authentication interceptor), so every stage below (batcher, store, key provider) spends the same
budget. grpc enforces a client's deadline itself; a call without one runs here under
``asyncio.timeout`` until the request context's deadline and fails DEADLINE_EXCEEDED when spent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from grpc import aio

from bioauth.api.interceptors.request_context import current_request
from bioauth.api.interceptors.wrapping import AroundInterceptor
from bioauth.errors import DeadlineExceeded

__all__ = ["DeadlineInterceptor"]


class DeadlineInterceptor(AroundInterceptor):
    """Holds a call whose client sent no deadline to the server's default one."""

    def __init__(self, default_deadline_s: float) -> None:
        self._default = default_deadline_s

    def _unary(self, method: str) -> Callable[..., Awaitable[Any]]:
        async def around(
            call: Callable[..., Awaitable[Any]],
            request: Any,
            context: aio.ServicerContext[Any, Any],
        ) -> Any:
            budget = _server_budget(context)
            if budget is None:
                return await call(request, context)
            scope = asyncio.timeout(budget)
            try:
                async with scope:
                    return await call(request, context)
            except TimeoutError as exc:
                if not scope.expired():
                    raise  # from below, not the default deadline: an internal error
                raise self._spent() from exc

        return around

    def _stream(self, method: str) -> Callable[..., AsyncIterator[Any]]:
        async def around(
            call: Callable[..., AsyncIterator[Any]],
            request: Any,
            context: aio.ServicerContext[Any, Any],
        ) -> AsyncIterator[Any]:
            budget = _server_budget(context)
            if budget is None:
                async for item in call(request, context):
                    yield item
                return
            scope = asyncio.timeout(budget)
            try:
                async with scope:
                    async for item in call(request, context):
                        yield item
            except TimeoutError as exc:
                if not scope.expired():
                    raise  # from below, not the default deadline: an internal error
                raise self._spent() from exc

        return around

    def _spent(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"server default deadline of {self._default:g} s exceeded")


def _server_budget(context: aio.ServicerContext[Any, Any]) -> float | None:
    """Seconds left of the server's default deadline; None when the client set its own."""
    if context.time_remaining() is not None:
        return None
    return current_request().deadline - time.monotonic()
