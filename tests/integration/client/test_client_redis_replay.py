"""RedisReplayCache against the real Redis: one jti is accepted once across verifier replicas."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bioauth.client import Jwks, RejectReason, TokenRejected, TokenVerifier
from bioauth.client.replay import RedisReplayCache, ReplayCacheUnavailable
from tests.support.environment import missing
from tests.unit.client.tokens_support import (
    AUDIENCE,
    ISSUER,
    NOW,
    SigningKey,
    claims,
    header,
    transaction,
)

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("BIOAUTH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def client() -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await connection.ping()
    except (OSError, redis.exceptions.RedisError):
        await connection.aclose()
        missing(f"Redis at {REDIS_URL}", "start redis-server or set BIOAUTH_TEST_REDIS_URL")
    try:
        yield connection
    finally:
        await connection.aclose()


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix per test, so runs never see each other's ids."""
    return f"bioauth-test:{secrets.token_hex(6)}:"


async def test_first_use_then_replay(client: redis.asyncio.Redis, prefix: str) -> None:
    """The first use of a jti wins; the second is a replay."""
    cache = RedisReplayCache(client, prefix=prefix, clock=lambda: NOW)
    assert await cache.first_use("jti-1", NOW + 60) is True
    assert await cache.first_use("jti-1", NOW + 60) is False
    assert await cache.first_use("jti-2", NOW + 60) is True


async def test_entries_expire_with_the_token(client: redis.asyncio.Redis, prefix: str) -> None:
    """The key's TTL follows the token's expiry, so Redis never fills with dead ids."""
    cache = RedisReplayCache(client, prefix=prefix, clock=lambda: NOW)
    await cache.first_use("jti-ttl", NOW + 90)
    ttl_ms = await client.pttl(prefix + "jti-ttl")
    assert 89_000 < ttl_ms <= 90_000


async def test_concurrent_replicas_accept_a_token_once(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Four verifier replicas racing on one token: exactly one accepts it."""
    key = SigningKey.generate("k-redis")
    jwks = Jwks((key.public_jwk(),), 300)

    async def source() -> Jwks:
        return jwks

    replicas = [
        TokenVerifier(
            source,
            issuer=ISSUER,
            audience=AUDIENCE,
            replay_cache=RedisReplayCache(client, prefix=prefix),
            clock=lambda: NOW + 1,
        )
        for _ in range(4)
    ]
    token = key.sign(header(key.kid), claims())
    outcomes = await asyncio.gather(
        *(replica.verify(token, transaction()) for replica in replicas), return_exceptions=True
    )
    accepted = [o for o in outcomes if not isinstance(o, BaseException)]
    replays = [o for o in outcomes if isinstance(o, TokenRejected)]
    assert len(accepted) == 1
    assert len(replays) == 3
    assert all(r.reason is RejectReason.REPLAYED for r in replays)


async def test_unreachable_redis_fails_closed() -> None:
    """No Redis: the cache raises, and the verifier refuses the token rather than skip the check."""
    # No retries: redis-py's default backoff would only make the test slow.
    dead = redis.asyncio.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    try:
        cache = RedisReplayCache(dead)
        with pytest.raises(ReplayCacheUnavailable):
            await cache.first_use("jti-x", NOW + 60)
        key = SigningKey.generate("k-dead")
        verifier = TokenVerifier(
            lambda: _static(key),
            issuer=ISSUER,
            audience=AUDIENCE,
            replay_cache=cache,
            clock=lambda: NOW,
        )
        with pytest.raises(TokenRejected) as caught:
            await verifier.verify(key.sign(header(key.kid), claims()), transaction())
        assert caught.value.reason is RejectReason.REPLAY_CHECK_UNAVAILABLE
    finally:
        await dead.aclose()


async def _static(key: SigningKey) -> Jwks:
    return Jwks((key.public_jwk(),), 300)


@pytest.fixture
async def silent_redis() -> AsyncIterator[int]:
    """A port that accepts connections and never answers: a Redis that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_a_redis_that_stops_answering_fails_closed_in_time(silent_redis: int) -> None:
    """A hung Redis must not hold the payment: the check fails closed after ``timeout_s``, with
    the SDK's own client (socket timeouts) and with a caller's client that has none."""
    from_url = RedisReplayCache.from_url(f"redis://127.0.0.1:{silent_redis}/0", timeout_s=0.3)
    bare = redis.asyncio.Redis(host="127.0.0.1", port=silent_redis, retry=Retry(NoBackoff(), 0))
    try:
        for cache in (from_url, RedisReplayCache(bare, timeout_s=0.3)):
            with pytest.raises(ReplayCacheUnavailable):
                await asyncio.wait_for(cache.first_use("jti-hang", NOW + 60), timeout=10)
    finally:
        await bare.aclose()
