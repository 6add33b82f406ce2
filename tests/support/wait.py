"""Waiting for something another process or task does: poll a condition up to a deadline.

Tests wait on observable events (a log line, a store row, a gallery entry), never on a fixed
sleep, so a slow shared machine makes them slower, not flaky.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

__all__ = ["eventually"]


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    what: str,
    *,
    timeout_s: float = 20.0,
    interval_s: float = 0.05,
) -> None:
    """Return once ``check()`` (plain or async) holds; ``AssertionError`` naming ``what`` when it
    does not within ``timeout_s``."""
    until = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > until:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(interval_s)
