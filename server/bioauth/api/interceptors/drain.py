"""Ending a client-streaming call only after the client has finished writing.

grpc's asyncio client loses the server's status when the call ends while one of its writes is in
flight: the failed write overwrites the status with ``INTERNAL: Internal error from Core``
(grpc/grpc#36066, fixed upstream only by an open pull request). A gateway sent UNAUTHENTICATED or
INVALID_ARGUMENT would see an opaque INTERNAL instead, about once in a thousand calls measured
here. So before a stream-request call is ended with an error, the server reads and drops what the
client is still sending until it half-closes, bounded in time and in messages so a client that
never stops cannot hold the call open.

A successful Authenticate session drains through its own inbox instead (``service.stream``): a
read of the inbox may still be pending there, and a second read beside it would fail.
"""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

import grpc
from grpc import aio

__all__ = ["DRAIN_MAX_MESSAGES", "abort_after_drain", "drain_requests"]

# An honest client sends at most one SessionOpen and MAX_FRAMES_PER_SESSION frames; anything
# beyond a few more is not a client finishing its writes.
DRAIN_MAX_MESSAGES = 16


async def drain_requests(
    context: aio.ServicerContext[Any, Any],
    *,
    seconds: float,
    max_messages: int = DRAIN_MAX_MESSAGES,
) -> bool:
    """Read and discard the call's remaining requests; True when the client half-closed.

    Reads through the context rather than the request iterator: the iterator may already be
    finished by the servicer's own failure. Any read error (the client cancelled, a read was
    still pending) ends the drain: the call is ending either way, and the caller still sends
    its status.
    """
    if seconds <= 0:
        return False
    try:
        async with asyncio.timeout(seconds):
            for _ in range(max_messages + 1):
                if await context.read() is aio.EOF:
                    return True
    except TimeoutError:
        return False
    except Exception:  # see the docstring: a failed read only ends the drain
        return False
    return False


async def abort_after_drain(
    request: Any,
    context: aio.ServicerContext[Any, Any],
    code: grpc.StatusCode,
    details: str,
    *,
    drain_s: float,
) -> NoReturn:
    """End the call with ``code``; a client-streaming call (``request`` is the request iterator)
    is drained first. Every error status of a stream-request call goes out through here."""
    if hasattr(request, "__aiter__"):
        await drain_requests(context, seconds=drain_s)
    await context.abort(code, details)
    raise AssertionError("context.abort returned")  # pragma: no cover - abort raises
