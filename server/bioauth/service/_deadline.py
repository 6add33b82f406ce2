"""Spending one request's deadline across the stages that do not take one themselves.

The batcher takes the absolute deadline directly; the store and the key provider do not, so their
calls run under ``asyncio.timeout`` for whatever budget is left. A budget already spent fails before
the call starts, so no work is begun that nobody will wait for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

from bioauth.errors import DeadlineExceeded

__all__ = ["within"]

_T = TypeVar("_T")


async def within(deadline: float | None, awaitable: Awaitable[_T], what: str) -> _T:
    """Await ``awaitable`` within the absolute ``time.monotonic()`` ``deadline`` (None: no limit).

    ``what`` names the stage in the error message (never anything about the person).
    """
    if deadline is None:
        return await awaitable
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # never started: avoids "coroutine was never awaited"
        raise DeadlineExceeded(f"deadline passed before {what}")
    try:
        async with asyncio.timeout(remaining):
            return await awaitable
    except TimeoutError as exc:
        raise DeadlineExceeded(f"deadline passed during {what}") from exc
