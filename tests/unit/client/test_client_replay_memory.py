"""InMemoryReplayCache: once per jti, atomic under concurrency, forgets ids after they expire."""

from __future__ import annotations

import asyncio

from bioauth.client.replay import InMemoryReplayCache


async def test_second_use_is_refused() -> None:
    """A jti is accepted the first time only."""
    cache = InMemoryReplayCache(clock=lambda: 100.0)
    assert await cache.first_use("a", 160.0) is True
    assert await cache.first_use("a", 160.0) is False
    assert await cache.first_use("b", 160.0) is True


async def test_concurrent_uses_accept_exactly_one() -> None:
    """Many simultaneous verifications of one token: exactly one wins."""
    cache = InMemoryReplayCache(clock=lambda: 100.0)
    results = await asyncio.gather(*(cache.first_use("same", 160.0) for _ in range(50)))
    assert results.count(True) == 1


async def test_expired_ids_are_forgotten() -> None:
    """Entries go once their token has expired, so memory stays bounded."""
    now = [100.0]
    cache = InMemoryReplayCache(clock=lambda: now[0])
    for i in range(10):
        await cache.first_use(f"jti-{i}", 160.0)
    await cache.first_use("late", 400.0)
    assert len(cache) == 11
    now[0] = 200.0
    await cache.first_use("trigger", 260.0)
    assert len(cache) == 2  # "late" and "trigger"
