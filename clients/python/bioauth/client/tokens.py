"""Offline verification of decision tokens, for the gateway that receives an approval.

A token is accepted only when every check passes; any failure raises
:class:`bioauth.client.TokenRejected` with the failed check as ``reason`` (``verify`` never
returns a bool, so a forgotten check cannot pass a forgery). The JOSE work (parsing,
signature, issuer, audience) is PyJWT's; this module adds the policy around it:

1. header: ``alg`` exactly ES256 (``none``, HMAC, RSA, EdDSA and other curves refused before any
   key is looked up, so HS256-keyed-with-the-public-key cannot work); ``typ`` the decision
   type; no ``crit`` (this verifier implements no extension); no header that points at or embeds
   a key (``jku``, ``x5u``, ``jwk``, ``x5c``): keys come only from the configured source;
2. key by ``kid`` from :class:`JwksCache` (refreshed on an unknown ``kid``, rate limited);
3. signature, ``iss``, ``aud`` through PyJWT; every claim present with its type;
4. time: ``iat`` not in the future and ``exp`` not past, each within ``clock_skew_s`` (bounded),
   and a lifetime no longer than ``max_lifetime_s``;
5. ``txn`` equals the hash of the transaction context the gateway itself holds;
6. ``jti`` not seen before (the replay cache), checked last so forgeries cannot burn ids.

Usage::

    verifier = TokenVerifier(client.get_jwks, issuer="bioauth-prod", audience="network-a")
    decision = await verifier.verify(result.token, transaction)
"""

from __future__ import annotations

import binascii
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from bioauth.client._errors import RejectReason, TokenRejected
from bioauth.client._jwks import JwksCache, JwksSource, static_jwks
from bioauth.client.replay import InMemoryReplayCache, ReplayCache, ReplayCacheUnavailable
from bioauth.v1 import types_pb2
from bioauth.wire.decision_token import (
    DECISION_APPROVE,
    OPERATIONS,
    REQUIRED_CLAIMS,
    TOKEN_ALGORITHM,
    TOKEN_TYPE,
    parse_comparison_mode,
)
from bioauth.wire.transaction import transaction_hash_b64

__all__ = [
    "MAX_CLOCK_SKEW_S",
    "DecisionToken",
    "JwksCache",
    "JwksSource",
    "TokenVerifier",
    "static_jwks",
]

MAX_CLOCK_SKEW_S = 300.0
"""The most clock skew a verifier may allow: more would stretch a one-minute token's life."""

_MAX_TOKEN_CHARS = 8192
_ALLOWED_HEADERS = frozenset({"alg", "typ", "kid"})
_KEY_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256"})
_STRING_CLAIMS = tuple(name for name in REQUIRED_CLAIMS if name not in {"iat", "exp"})


@dataclass(frozen=True)
class DecisionToken:
    """A verified approval: what the gateway may rely on (and log, it holds no secret)."""

    subject_id: str
    operation: str
    model_id: str
    operating_point: str
    score_band: str
    enrolment_images: int
    probe_images: int
    transaction_hash: str
    issuer: str
    audience: str
    key_id: str
    jti: str
    issued_at: int
    expires_at: int


def _reject(reason: RejectReason, detail: str = "") -> TokenRejected:
    return TokenRejected(reason, detail)


def _reason_for(exc: jwt.PyJWTError) -> RejectReason:
    """PyJWT's errors as reject reasons: the one place they are translated."""
    match exc:
        case jwt.InvalidSignatureError():
            return RejectReason.SIGNATURE
        case jwt.InvalidAlgorithmError():
            return RejectReason.ALGORITHM
        case jwt.InvalidIssuerError():
            return RejectReason.ISSUER
        case jwt.InvalidAudienceError():
            return RejectReason.AUDIENCE
        case jwt.MissingRequiredClaimError():
            return RejectReason.MISSING_CLAIM
        case jwt.ExpiredSignatureError():
            return RejectReason.EXPIRED
        case jwt.ImmatureSignatureError():
            return RejectReason.NOT_YET_VALID
        case _:
            return RejectReason.MALFORMED


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class TokenVerifier:
    """Verifies decision tokens for one issuer and one audience.

    Args:
        keys: where the verification keys come from (``AsyncClient.get_jwks``, a
            :func:`static_jwks` source) or a ready :class:`JwksCache`.
        issuer: the expected ``iss`` (the server's ``tokens.issuer``).
        audience: the expected ``aud`` (this network's audience at the server).
        replay_cache: where seen ``jti``s are kept; default one in memory (one process only:
            share a :class:`bioauth.client.replay.RedisReplayCache` between replicas).
        clock_skew_s: tolerance for clock differences, 0 to ``MAX_CLOCK_SKEW_S``.
        max_lifetime_s: the longest ``exp - iat`` accepted.
        clock: epoch seconds; injectable for tests.
    """

    def __init__(
        self,
        keys: JwksSource | JwksCache,
        *,
        issuer: str,
        audience: str,
        replay_cache: ReplayCache | None = None,
        clock_skew_s: float = 30.0,
        max_lifetime_s: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 <= clock_skew_s <= MAX_CLOCK_SKEW_S:
            raise ValueError(f"clock_skew_s must be in [0, {MAX_CLOCK_SKEW_S}], got {clock_skew_s}")
        if max_lifetime_s <= 0:
            raise ValueError(f"max_lifetime_s must be positive, got {max_lifetime_s}")
        if not issuer or not audience:
            raise ValueError("issuer and audience are required")
        self._keys = keys if isinstance(keys, JwksCache) else JwksCache(keys)
        self._issuer = issuer
        self._audience = audience
        self._replay = replay_cache if replay_cache is not None else InMemoryReplayCache()
        self._skew = clock_skew_s
        self._max_lifetime = max_lifetime_s
        self._clock = clock

    async def verify(self, token: str, transaction: types_pb2.TransactionContext) -> DecisionToken:
        """Verify ``token`` as an approval of ``transaction``; raise ``TokenRejected`` if not.

        ``transaction`` is the context the gateway sent with the Verify/Identify call, kept on
        the gateway side: the token must bind exactly that one.
        """
        expected_txn = transaction_hash_b64(transaction)
        header = self._checked_header(token)
        kid = header["kid"]
        key = await self._keys.key(kid)
        claims = self._decoded(token, key)
        self._check_times(claims)
        if not hmac.compare_digest(claims["txn"], expected_txn):
            raise _reject(RejectReason.TRANSACTION, "token is bound to another transaction")
        try:
            first = await self._replay.first_use(claims["jti"], claims["exp"] + self._skew)
        except ReplayCacheUnavailable as exc:
            raise _reject(RejectReason.REPLAY_CHECK_UNAVAILABLE) from exc
        if not first:
            raise _reject(RejectReason.REPLAYED, "this jti was accepted before")
        enrolment_images, probe_images = parse_comparison_mode(claims["mode"])
        return DecisionToken(
            subject_id=claims["sub"],
            operation=claims["op"],
            model_id=claims["model"],
            operating_point=claims["point"],
            score_band=claims["band"],
            enrolment_images=enrolment_images,
            probe_images=probe_images,
            transaction_hash=claims["txn"],
            issuer=claims["iss"],
            audience=claims["aud"],
            key_id=kid,
            jti=claims["jti"],
            issued_at=claims["iat"],
            expires_at=claims["exp"],
        )

    def _checked_header(self, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS or token.count(".") != 2:
            raise _reject(RejectReason.MALFORMED, "not a compact JWS")
        # The header is read here only to refuse what must never reach key lookup or PyJWT
        # (whose own header handling accepts some extensions, such as b64); PyJWT then parses
        # the whole token again and checks the signature.
        try:
            header = json.loads(jwt.utils.base64url_decode(token.split(".", 1)[0]))
        except (ValueError, binascii.Error) as exc:
            raise _reject(RejectReason.MALFORMED, "unreadable header") from exc
        if not isinstance(header, dict):
            raise _reject(RejectReason.MALFORMED, "header is not a JSON object")
        if header.get("alg") != TOKEN_ALGORITHM:
            raise _reject(RejectReason.ALGORITHM, f"alg {header.get('alg')!r} is not ES256")
        if "crit" in header:
            raise _reject(RejectReason.CRITICAL_HEADER, f"unsupported crit {header['crit']!r}")
        key_headers = sorted(_KEY_HEADERS & header.keys())
        if key_headers:
            raise _reject(RejectReason.FORBIDDEN_HEADER, f"key headers {key_headers} are refused")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower().removeprefix("application/") != TOKEN_TYPE:
            raise _reject(RejectReason.TYPE, f"typ {typ!r} is not {TOKEN_TYPE}")
        unknown = sorted(header.keys() - _ALLOWED_HEADERS)
        if unknown:
            raise _reject(RejectReason.FORBIDDEN_HEADER, f"unexpected headers {unknown}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _reject(RejectReason.UNKNOWN_KEY, "no kid")
        return header

    def _decoded(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[TOKEN_ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "strict_aud": True,
                    # Times are checked against the injectable clock in _check_times.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise _reject(_reason_for(exc), type(exc).__name__) from exc
        for name in _STRING_CLAIMS:
            if not isinstance(claims.get(name), str) or not claims[name]:
                raise _reject(RejectReason.MISSING_CLAIM, f"{name} must be a non-empty string")
        for name in ("iat", "exp"):
            if not _is_int(claims.get(name)):
                raise _reject(RejectReason.MISSING_CLAIM, f"{name} must be an integer")
        if claims["decision"] != DECISION_APPROVE:
            raise _reject(RejectReason.DECISION, f"decision {claims['decision']!r}")
        if claims["op"] not in OPERATIONS:
            raise _reject(RejectReason.MISSING_CLAIM, f"op {claims['op']!r} is unknown")
        try:
            parse_comparison_mode(claims["mode"])
        except ValueError as exc:
            raise _reject(RejectReason.MISSING_CLAIM, "mode is malformed") from exc
        return claims

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        issued_at, expires_at = claims["iat"], claims["exp"]
        if issued_at > now + self._skew:
            raise _reject(RejectReason.NOT_YET_VALID, "issued in the future")
        if expires_at + self._skew <= now:
            raise _reject(RejectReason.EXPIRED, "token expired")
        if not 0 < expires_at - issued_at <= self._max_lifetime:
            raise _reject(RejectReason.LIFETIME, f"lifetime {expires_at - issued_at}s")

    @classmethod
    def offline(
        cls, jwks: dict[str, Any], *, issuer: str, audience: str, **kwargs: Any
    ) -> TokenVerifier:
        """A verifier over a fixed JWK Set document (no server call ever)."""
        return cls(static_jwks(jwks), issuer=issuer, audience=audience, **kwargs)
