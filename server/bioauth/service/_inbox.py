"""Reading a client's stream with a time limit, without losing a message to the timeout.

A session must stop waiting when its budget is spent, but cancelling a pending read of a gRPC
request stream would throw away a message that may already be on its way. So at most one read is
in flight, in its own task; a wait that times out leaves it running for the next wait, and only
``close`` cancels it (the session is over then, and an unread message has no one to read it).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

__all__ = ["Inbox", "InboxEvent"]

_T = TypeVar("_T")


class InboxEvent(enum.Enum):
    ENDED = "ended"
    """The client finished sending (half-close)."""
    TIMED_OUT = "timed_out"
    """Nothing arrived before the time limit."""


class Inbox(Generic[_T]):
    """Messages of one stream, one at a time, each wait bounded by an absolute deadline."""

    def __init__(
        self, source: AsyncIterator[_T], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._source = source
        self._clock = clock
        self._pending: asyncio.Future[_T] | None = None
        self._ended = False

    async def next_before(self, until: float) -> _T | InboxEvent:
        """The next message, or why there is none by ``until`` (on the inbox's clock).

        The source's own errors (the client cancelled, a malformed message) propagate.
        """
        if self._ended:
            return InboxEvent.ENDED
        if self._pending is None:
            self._pending = asyncio.ensure_future(anext(self._source))
        remaining = until - self._clock()
        if remaining > 0 and not self._pending.done():
            await asyncio.wait({self._pending}, timeout=remaining)
        if not self._pending.done():
            return InboxEvent.TIMED_OUT
        read, self._pending = self._pending, None
        try:
            return read.result()
        except StopAsyncIteration:
            self._ended = True
            return InboxEvent.ENDED

    async def close(self) -> None:
        """Cancel a read still in flight and wait for it; idempotent."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
