"""Reading what a client still sends before a client-streaming call ends with an error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import pytest
from grpc import aio

from bioauth.api.interceptors.drain import abort_after_drain, drain_requests


class _Context:
    """The one ServicerContext method the drain uses, fed by a script of reads."""

    def __init__(self, script: list[object], *, then_wait: bool = False) -> None:
        self._script = list(script)
        self._then_wait = then_wait
        self.reads = 0
        self.aborted: tuple[object, str] | None = None

    async def read(self) -> object:
        self.reads += 1
        if self._script:
            item = self._script.pop(0)
            if isinstance(item, BaseException):
                raise item
            return item
        if self._then_wait:
            await asyncio.Event().wait()
        return aio.EOF

    async def abort(self, code: object, details: str) -> None:
        self.aborted = (code, details)
        raise aio.AbortError()


def _ctx(context: _Context) -> aio.ServicerContext[Any, Any]:
    return cast(aio.ServicerContext[Any, Any], context)


async def test_reads_until_the_client_half_closes() -> None:
    context = _Context([b"frame-1", b"frame-2"])
    assert await drain_requests(_ctx(context), seconds=1.0) is True
    assert context.reads == 3  # two frames, then EOF


async def test_stops_at_its_time_limit_when_the_client_keeps_the_stream_open() -> None:
    context = _Context([b"frame-1"], then_wait=True)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await drain_requests(_ctx(context), seconds=0.05) is False
    assert loop.time() - started < 1.0


async def test_stops_after_its_message_budget() -> None:
    context = _Context([b"frame"] * 50)
    assert await drain_requests(_ctx(context), seconds=1.0, max_messages=4) is False
    assert context.reads == 5


async def test_a_failed_read_ends_the_drain_without_raising() -> None:
    context = _Context([b"frame", RuntimeError("read while another read is pending")])
    assert await drain_requests(_ctx(context), seconds=1.0) is False
    assert context.reads == 2


async def test_a_zero_budget_reads_nothing() -> None:
    context = _Context([b"frame"])
    assert await drain_requests(_ctx(context), seconds=0.0) is False
    assert context.reads == 0


async def test_cancellation_of_the_call_propagates() -> None:
    context = _Context([], then_wait=True)
    task = asyncio.create_task(drain_requests(_ctx(context), seconds=5.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _requests() -> AsyncIterator[bytes]:
    yield b"never read through the iterator"


@pytest.mark.parametrize("streaming", [True, False], ids=["client-streaming", "unary"])
async def test_abort_after_drain_drains_only_client_streaming_calls(streaming: bool) -> None:
    """A unary request is already whole; a stream's remaining messages are read before the status."""
    context = _Context([b"frame"])
    request: object = _requests() if streaming else b"request"
    with pytest.raises(aio.AbortError):
        await abort_after_drain(
            request, _ctx(context), grpc.StatusCode.INVALID_ARGUMENT, "bad", drain_s=1.0
        )
    assert context.reads == (2 if streaming else 0)
    assert context.aborted == (grpc.StatusCode.INVALID_ARGUMENT, "bad")
