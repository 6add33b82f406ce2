"""Turns typed errors into gRPC statuses, and records each call's outcome (log line, metrics).

Sits inside authentication (unauthenticated calls never reach it) and outside the deadline
interceptor, so a default deadline that expires is mapped like any other error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from bioauth.api.interceptors.drain import abort_after_drain
from bioauth.api.interceptors.wrapping import AroundInterceptor, StreamAround, UnaryAround
from bioauth.api.status import status_for
from bioauth.errors import BioauthError
from bioauth.observability.logging import get_logger
from bioauth.observability.metrics import RPC_SECONDS, RPC_TOTAL

__all__ = ["ErrorMappingInterceptor"]

_LOGGER = get_logger(__name__)


class ErrorMappingInterceptor(AroundInterceptor):
    """``drain_s`` bounds how long a failing client-streaming call reads what the client is
    still sending before its status goes out (see ``drain``)."""

    def __init__(self, *, drain_s: float = 1.0) -> None:
        self._drain_s = drain_s

    def _unary(self, method: str) -> UnaryAround:
        return _unary(method, self._drain_s)

    def _stream(self, method: str) -> StreamAround:
        return _stream(method, self._drain_s)


async def _fail(
    method: str,
    exc: BaseException,
    request: Any,
    context: aio.ServicerContext[Any, Any],
    started: float,
    drain_s: float,
) -> None:
    code, message = status_for(exc)
    if isinstance(exc, BioauthError) and code is not grpc.StatusCode.INTERNAL:
        _LOGGER.info("rpc_failed", code=code.name, error=type(exc).__name__, detail=exc.message)
    else:
        # Our bug or an integrity failure: full detail in the log, opaque to the caller.
        _LOGGER.error("rpc_error", code=code.name, error=type(exc).__name__, exc_info=exc)
    _record(method, code, started)
    await abort_after_drain(request, context, code, message, drain_s=drain_s)


def _record(method: str, code: grpc.StatusCode, started: float) -> None:
    elapsed = time.perf_counter() - started
    RPC_TOTAL.labels(method=method, code=code.name).inc()
    RPC_SECONDS.labels(method=method).observe(elapsed)
    _LOGGER.info("rpc_done", code=code.name, seconds=round(elapsed, 6))


def _cut_off(context: aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    """Why grpc cancelled the call's task: the client's deadline ran out, or the client left.
    Counted and logged like any other outcome, so the slowest calls are not the missing ones."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


def _is_abort(exc: BaseException) -> bool:
    # context.abort() raises an AbortError that must pass through untouched.
    return isinstance(exc, aio.AbortError)


def _unary(method: str, drain_s: float) -> Callable[..., Awaitable[Any]]:
    async def around(
        call: Callable[..., Awaitable[Any]], request: Any, context: aio.ServicerContext[Any, Any]
    ) -> Any:
        started = time.perf_counter()
        try:
            response = await call(request, context)
        except asyncio.CancelledError:
            _record(method, _cut_off(context), started)
            raise
        except Exception as exc:
            if _is_abort(exc):
                raise
            await _fail(method, exc, request, context, started, drain_s)
            raise  # unreachable: abort raised
        _record(method, grpc.StatusCode.OK, started)
        return response

    return around


def _stream(method: str, drain_s: float) -> Callable[..., AsyncIterator[Any]]:
    async def around(
        call: Callable[..., AsyncIterator[Any]],
        request: Any,
        context: aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        started = time.perf_counter()
        try:
            async for item in call(request, context):
                yield item
        except asyncio.CancelledError:
            _record(method, _cut_off(context), started)
            raise
        except Exception as exc:
            if _is_abort(exc):
                raise
            await _fail(method, exc, request, context, started, drain_s)
            raise
        _record(method, grpc.StatusCode.OK, started)

    return around
