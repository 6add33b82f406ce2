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
from bioauth.security.context import RequestContext, request_scope, reset_request_scope

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
            token = request_scope(ctx)
            try:
                if imposed is None:
                    return await call(request, context)
                try:
                    async with asyncio.timeout(imposed):
                        return await call(request, context)
                except TimeoutError as exc:
                    raise DeadlineExceeded(
                        f"server default deadline of {imposed:g} s exceeded"
                    ) from exc
            finally:
                reset_request_scope(token)
                structlog.contextvars.clear_contextvars()

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
            try:
                async with asyncio.timeout(imposed):
                    async for item in call(request, context):
                        yield item
            except TimeoutError as exc:
                raise DeadlineExceeded(
                    f"server default deadline of {imposed:g} s exceeded"
                ) from exc

        return around
