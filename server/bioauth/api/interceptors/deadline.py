"""Every call gets a deadline: the client's, or the server's default when it sent none.

The deadline becomes one absolute ``time.monotonic()`` value in the request context, so every
stage below (batcher, store, key provider) spends the same budget. A call without a client
deadline runs under ``asyncio.timeout`` at the default and fails DEADLINE_EXCEEDED when spent.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from grpc import aio

from bioauth.errors import DeadlineExceeded
from bioauth.security.around import AroundInterceptor
from bioauth.security.authentication import current_tenant
from bioauth.security.context import RequestContext, request_scope

__all__ = ["DeadlineInterceptor"]


class DeadlineInterceptor(AroundInterceptor):
    """Sets the request context (tenant, request id, absolute deadline) and the default deadline."""

    def __init__(self, default_deadline_s: float) -> None:
        self._default = default_deadline_s

    def _open(
        self, method: str, context: aio.ServicerContext[Any, Any]
    ) -> tuple[RequestContext, float | None]:
        remaining = context.time_remaining()
        imposed = None if remaining is not None else self._default
        budget = remaining if remaining is not None else self._default
        ctx = RequestContext(
            tenant=current_tenant(),
            request_id=uuid.uuid4().hex,
            method=method,
            deadline=time.monotonic() + budget,
        )
        structlog.contextvars.bind_contextvars(
            request_id=ctx.request_id, tenant=ctx.tenant.id, method=method
        )
        return ctx, imposed

    def _unary(self, method: str) -> Callable[..., Awaitable[Any]]:
        async def around(
            call: Callable[..., Awaitable[Any]],
            request: Any,
            context: aio.ServicerContext[Any, Any],
        ) -> Any:
            ctx, imposed = self._open(method, context)
            # Each call runs in its own task: nothing to restore, and the log fields stay bound
            # for the outcome line the error mapping writes around this interceptor.
            request_scope(ctx)
            if imposed is None:
                return await call(request, context)
            scope = asyncio.timeout(imposed)
            try:
                async with scope:
                    return await call(request, context)
            except TimeoutError as exc:
                if not scope.expired():
                    raise  # from below, not the default deadline: an internal error
                raise _spent(imposed) from exc

        return around

    def _stream(self, method: str) -> Callable[..., AsyncIterator[Any]]:
        async def around(
            call: Callable[..., AsyncIterator[Any]],
            request: Any,
            context: aio.ServicerContext[Any, Any],
        ) -> AsyncIterator[Any]:
            ctx, imposed = self._open(method, context)
            request_scope(ctx)  # the stream runs in its own task
            if imposed is None:
                async for item in call(request, context):
                    yield item
                return
            scope = asyncio.timeout(imposed)
            try:
                async with scope:
                    async for item in call(request, context):
                        yield item
            except TimeoutError as exc:
                if not scope.expired():
                    raise  # from below, not the default deadline: an internal error
                raise _spent(imposed) from exc

        return around


def _spent(imposed: float) -> DeadlineExceeded:
    return DeadlineExceeded(f"server default deadline of {imposed:g} s exceeded")
