"""Replay caches: each decision token's ``jti`` is accepted once.

A token authorises one transaction; a gateway that sees the same ``jti`` twice is looking at a
replay. One gateway process can use :class:`InMemoryReplayCache`; several replicas behind a load
balancer must share :class:`RedisReplayCache`, or a replay sent to another replica would pass.
Entries live until the token's expiry (plus the verifier's clock skew), after which the token
is refused as expired anyway.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bioauth.client._errors import BioauthClientError

__all__ = ["InMemoryReplayCache", "RedisReplayCache", "ReplayCache", "ReplayCacheUnavailable"]


class ReplayCacheUnavailable(BioauthClientError):
    """The shared replay cache could not be asked; the verifier then refuses the token."""


class ReplayCache(Protocol):
    """Remembers token ids until they expire."""

    async def first_use(self, jti: str, expires_at: float) -> bool:
        """Record ``jti`` until ``expires_at`` (epoch seconds); True when it was not seen before.

        Must be atomic: of two concurrent calls with the same ``jti`` exactly one gets True.
        """
        ...


class InMemoryReplayCache:
    """Replay cache of one process. Memory grows with token rate times token lifetime."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    async def first_use(self, jti: str, expires_at: float) -> bool:
        async with self._lock:
            now = self._clock()
            self._purge(now)
            if jti in self._expiry:
                return False
            self._expiry[jti] = expires_at
            heapq.heappush(self._heap, (expires_at, jti))
            return True

    def _purge(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            expires_at, jti = heapq.heappop(self._heap)
            if self._expiry.get(jti) == expires_at:
                del self._expiry[jti]


class _AsyncRedis(Protocol):
    def set(self, name: str, value: bytes, *, nx: bool, px: int) -> Awaitable[Any]: ...


def _redis_errors() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # redis is optional; a duck-typed client may raise only OSError
        return (OSError,)
    return (OSError, RedisError)


class RedisReplayCache:
    """Replay cache shared by gateway replicas: one ``SET key 1 NX PX ttl`` per token.

    Args:
        redis: a ``redis.asyncio.Redis`` client (install ``bioauth-client[redis]``).
        prefix: key prefix, so that several verifiers can share one Redis.
        timeout_s: how long one check may wait for Redis; past it the check fails closed
            (``ReplayCacheUnavailable``) instead of holding the payment.
        clock: epoch seconds; injectable for tests.
    """

    def __init__(
        self,
        redis: _AsyncRedis,
        *,
        prefix: str = "bioauth:jti:",
        timeout_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._clock = clock
        self._errors: tuple[type[BaseException], ...] = (TimeoutError, *_redis_errors())

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "bioauth:jti:", timeout_s: float = 1.0
    ) -> RedisReplayCache:
        """A cache on a new ``redis.asyncio`` client for ``url`` (``redis://host:6379/0``), with
        socket timeouts so a Redis that stops answering fails the check rather than hanging it."""
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        return cls(client, prefix=prefix, timeout_s=timeout_s)

    async def first_use(self, jti: str, expires_at: float) -> bool:
        ttl_ms = max(1, math.ceil((expires_at - self._clock()) * 1000))
        try:
            async with asyncio.timeout(self._timeout_s):
                stored = await self._redis.set(self._prefix + jti, b"1", nx=True, px=ttl_ms)
        except self._errors as exc:
            raise ReplayCacheUnavailable(f"replay cache failed: {type(exc).__name__}") from exc
        return bool(stored)
