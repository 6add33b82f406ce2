"""Decision tokens: the signed, short-lived proof of an approval that networks verify offline.

A recipe with no choices to make: ES256 only, the header and claims of
``bioauth.wire.decision_token``, the lifetime from settings, a fresh 128-bit ``jti``. Only
approvals are ever signed (the API has no way to ask for a token on a decline). The private key
never leaves the key provider: this module builds the JWS signing input and asks the provider
for the raw ``r || s`` signature.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bioauth.config import TokenSettings
from bioauth.crypto.provider import KeyProvider
from bioauth.errors import InternalError
from bioauth.wire.decision_token import (
    DECISION_APPROVE,
    OPERATIONS,
    SCORE_BANDS,
    TOKEN_ALGORITHM,
    TOKEN_TYPE,
    comparison_mode,
)

__all__ = ["ApprovalClaims", "IssuedToken", "TokenIssuer"]

_ES256_SIGNATURE_BYTES = 64
_TXN_HASH = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of 32 bytes, no padding


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _json_segment(value: dict[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


@dataclass(frozen=True)
class ApprovalClaims:
    """What one approval asserts; the issuer adds ``iss``, ``iat``, ``exp`` and ``jti``.

    Attributes:
        audience: the tenant's token audience (``TenantSettings.token_audience``).
        subject_id: the pseudonymous subject id.
        operation: ``verify`` or ``identify``.
        model_id: the embedding model's id.
        operating_point: the calibrated point used, e.g. ``fmr_1e-4``.
        score_band: ``very_high``, ``high``, ``low`` or ``very_low``
            (``bioauth.wire.decision_token.score_band_claim`` converts the proto enum).
        enrolment_images: enrolment images fused, 1 to 3.
        probe_images: probe images fused, 1 to 3.
        transaction_hash: ``bioauth.wire.transaction_hash_b64`` of the request's context.
    """

    audience: str
    subject_id: str
    operation: Literal["verify", "identify"]
    model_id: str
    operating_point: str
    score_band: str
    enrolment_images: int
    probe_images: int
    transaction_hash: str

    def __post_init__(self) -> None:
        # Wrong values here are our bug, never the caller's: refuse to sign rather than guess.
        problems = []
        for name in ("audience", "subject_id", "model_id", "operating_point"):
            if not getattr(self, name):
                problems.append(f"{name} is empty")
        if self.operation not in OPERATIONS:
            problems.append(f"operation must be one of {OPERATIONS}, got {self.operation!r}")
        if self.score_band not in SCORE_BANDS:
            problems.append(f"score_band must be one of {SCORE_BANDS}, got {self.score_band!r}")
        if not _TXN_HASH.fullmatch(self.transaction_hash):
            problems.append("transaction_hash is not a base64url SHA-256")
        if self.enrolment_images < 1 or self.probe_images < 1:
            problems.append("image counts must be >= 1")
        if problems:
            raise InternalError("cannot sign approval: " + "; ".join(problems))


@dataclass(frozen=True)
class IssuedToken:
    """A signed decision token and the facts the audit row and the response need."""

    token: str
    jti: str
    key_id: str
    issued_at: int
    expires_at: int

    def __repr__(self) -> str:
        # The token is a bearer credential for one transaction: keep it out of logs.
        return (
            f"IssuedToken(jti={self.jti!r}, key_id={self.key_id!r}, expires_at={self.expires_at})"
        )


class TokenIssuer:
    """Signs approvals as compact JWS ES256 with the key provider's signing key.

    Args:
        provider: holds the signing key (HSM, Vault Transit or the local development file).
        settings: ``Settings.tokens`` (issuer, lifetime, JWKS cache age).
        clock: seconds since the epoch; injectable for tests.
    """

    def __init__(
        self,
        provider: KeyProvider,
        settings: TokenSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._provider = provider
        self._settings = settings
        self._clock = clock

    @property
    def jwks_max_age_s(self) -> int:
        """How long verifiers may cache :meth:`jwks` (``GetJwksResponse.max_age_seconds``)."""
        return self._settings.jwks_max_age_s

    async def issue(self, claims: ApprovalClaims) -> IssuedToken:
        """Sign ``claims`` as an approval valid from now for ``tokens.ttl_s`` seconds.

        Raises ``KeyProviderUnavailable`` (from the provider) when the key cannot sign: the
        caller must then answer without a decision, never with an unsigned approval.
        """
        kid = await self._provider.signing_key_id()
        issued_at = int(self._clock())
        expires_at = issued_at + self._settings.ttl_s
        jti = _b64url(secrets.token_bytes(16))
        header = {"alg": TOKEN_ALGORITHM, "typ": TOKEN_TYPE, "kid": kid}
        payload = {
            "iss": self._settings.issuer,
            "aud": claims.audience,
            "sub": claims.subject_id,
            "decision": DECISION_APPROVE,
            "op": claims.operation,
            "model": claims.model_id,
            "point": claims.operating_point,
            "band": claims.score_band,
            "mode": comparison_mode(claims.enrolment_images, claims.probe_images),
            "txn": claims.transaction_hash,
            "iat": issued_at,
            "exp": expires_at,
            "jti": jti,
        }
        signing_input = f"{_json_segment(header)}.{_json_segment(payload)}"
        signature = await self._provider.sign_es256(signing_input.encode("ascii"), kid=kid)
        if len(signature) != _ES256_SIGNATURE_BYTES:
            raise InternalError(
                f"key provider returned a {len(signature)}-byte ES256 signature, expected 64"
            )
        token = f"{signing_input}.{_b64url(signature)}"
        return IssuedToken(token, jti, kid, issued_at, expires_at)

    async def jwks(self) -> dict[str, Any]:
        """The JWK Set (RFC 7517) of every signing-key version still valid."""
        return {"keys": await self._provider.public_jwks()}

    async def jwks_json(self) -> str:
        """:meth:`jwks` serialised for ``GetJwksResponse.jwks_json``."""
        return json.dumps(await self.jwks(), separators=(",", ":"), sort_keys=True)
