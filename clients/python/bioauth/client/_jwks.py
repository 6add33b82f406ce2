"""The verifier's key cache: keys by ``kid``, refreshed from one trusted source only.

Keys come from the configured source (the server's GetJwks, or a static set), never from a URL
or key inside a token. An unknown ``kid`` triggers a refresh, at most once per
``min_refresh_interval_s``, so a stream of tokens with made-up ``kid`` values cannot turn the
verifier into a request flood against the key server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt

from bioauth.client._async_client import Jwks
from bioauth.client._errors import BioauthClientError, RejectReason, TokenRejected
from bioauth.wire.decision_token import TOKEN_ALGORITHM

__all__ = ["JwksCache", "JwksSource", "static_jwks"]

JwksSource = Callable[[], Awaitable[Jwks]]
"""Where keys come from, e.g. ``AsyncClient.get_jwks`` or :func:`static_jwks`."""

_DEFAULT_MAX_AGE_S = 300.0


def static_jwks(document: dict[str, Any] | Jwks) -> JwksSource:
    """A source that always returns ``document`` (offline verification, pinned keys)."""
    jwks = document if isinstance(document, Jwks) else Jwks(tuple(document["keys"]), 0)

    async def source() -> Jwks:
        return jwks

    return source


def _usable(jwk: dict[str, Any]) -> bool:
    return (
        jwk.get("kty") == "EC"
        and jwk.get("crv") == "P-256"
        and jwk.get("alg", TOKEN_ALGORITHM) == TOKEN_ALGORITHM
        and jwk.get("use", "sig") == "sig"
        and isinstance(jwk.get("kid"), str)
        and "d" not in jwk  # a private key has no business in a published set
    )


class JwksCache:
    """ES256 public keys by ``kid``.

    Args:
        source: the one trusted key source.
        min_refresh_interval_s: least time between two refreshes caused by unknown ``kid``s.
        default_max_age_s: cache lifetime when the source gives none (``max_age_s == 0``).
        clock: monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        source: JwksSource,
        *,
        min_refresh_interval_s: float = 30.0,
        default_max_age_s: float = _DEFAULT_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._min_refresh_interval_s = min_refresh_interval_s
        self._default_max_age_s = default_max_age_s
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._expires_at = float("-inf")
        self._last_failed = False
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many times the source was asked (for tests and metrics)."""

    async def key(self, kid: str) -> jwt.PyJWK:
        """The key named ``kid``; ``TokenRejected`` (unknown_key or keys_unavailable) otherwise."""
        async with self._lock:
            now = self._clock()
            stale = now >= self._expires_at
            if (stale or kid not in self._keys) and self._may_refresh(now, stale=stale):
                await self._refresh(now)
            if now >= self._expires_at:
                # Stale keys may have been withdrawn (rotation, compromise): fail closed.
                raise TokenRejected(RejectReason.KEYS_UNAVAILABLE, "no current key set")
            found = self._keys.get(kid)
        if found is None:
            raise TokenRejected(RejectReason.UNKNOWN_KEY, f"no key with kid {kid!r}")
        return found

    def _may_refresh(self, now: float, *, stale: bool) -> bool:
        if self._fetched_at is None or (stale and not self._last_failed):
            return True
        return now - self._fetched_at >= self._min_refresh_interval_s

    async def _refresh(self, now: float) -> None:
        self._fetched_at = now
        self.fetches += 1
        try:
            jwks = await self._source()
        except (BioauthClientError, OSError, ValueError):
            # Keep what is cached while it is fresh; the caller decides what a miss means.
            self._last_failed = True
            return
        self._last_failed = False
        keys: dict[str, jwt.PyJWK] = {}
        for jwk in jwks.keys:
            if not _usable(jwk):
                continue
            try:
                keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm=TOKEN_ALGORITHM)
            except jwt.PyJWTError:
                continue  # one malformed entry must not take the whole set down
        self._keys = keys
        max_age = jwks.max_age_s or self._default_max_age_s
        self._expires_at = now + max_age
