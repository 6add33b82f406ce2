"""TokenIssuer: ES256 decision tokens from the key provider, checked by two independent verifiers."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jws, jwt
from joserfc.jwk import KeySet

from bioauth.client import Jwks, RejectReason, TokenRejected, transaction_context
from bioauth.client.tokens import TokenVerifier, static_jwks
from bioauth.config import TokenSettings
from bioauth.crypto.local_provider import LocalKeyProvider
from bioauth.crypto.tokens import ApprovalClaims, IssuedToken, TokenIssuer
from bioauth.errors import InternalError
from bioauth.v1 import types_pb2
from bioauth.wire import transaction_hash_b64

NOW = 1_800_000_000
SETTINGS = TokenSettings(issuer="bioauth-test", ttl_s=60)


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[LocalKeyProvider]:
    opened = await LocalKeyProvider.open(tmp_path / "keys.json")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def issuer(provider: LocalKeyProvider) -> TokenIssuer:
    return TokenIssuer(provider, SETTINGS, clock=lambda: NOW + 0.7)


def tx(amount_minor: int = 1250) -> types_pb2.TransactionContext:
    return transaction_context(
        "tx-77",
        amount_minor,
        "EUR",
        merchant_id="m-1",
        terminal_id="t-1",
        nonce="nonce-abcdef12",
        timestamp=dt.datetime.fromtimestamp(NOW, dt.UTC),
    )


def approval(**changes: Any) -> ApprovalClaims:
    fields: dict[str, Any] = {
        "audience": "network-a",
        "subject_id": "subj-1",
        "operation": "identify",
        "model_id": "dlib_resnet_v1",
        "operating_point": "fmr_1e-4",
        "score_band": "high",
        "enrolment_images": 2,
        "probe_images": 1,
        "transaction_hash": transaction_hash_b64(tx()),
    }
    fields.update(changes)
    return ApprovalClaims(**fields)


def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


async def test_token_has_the_decision_header_and_claims(issuer: TokenIssuer) -> None:
    """Header alg/typ/kid and every claim the API promises, with exp = iat + ttl."""
    issued = await issuer.issue(approval())
    header, payload = _segment(issued.token, 0), _segment(issued.token, 1)
    assert header == {"alg": "ES256", "typ": "bioauth-decision+jwt", "kid": issued.key_id}
    assert payload == {
        "iss": "bioauth-test",
        "aud": "network-a",
        "sub": "subj-1",
        "decision": "approve",
        "op": "identify",
        "model": "dlib_resnet_v1",
        "point": "fmr_1e-4",
        "band": "high",
        "mode": "e2p1",
        "txn": transaction_hash_b64(tx()),
        "iat": NOW,
        "exp": NOW + 60,
        "jti": issued.jti,
    }
    assert issued.expires_at == NOW + 60
    assert len(base64.urlsafe_b64decode(issued.jti + "==")) == 16


async def test_jti_is_unique_per_token(issuer: TokenIssuer) -> None:
    """Two approvals never share a jti."""
    jtis = {(await issuer.issue(approval())).jti for _ in range(20)}
    assert len(jtis) == 20


async def test_sdk_verifier_accepts_issued_tokens(issuer: TokenIssuer) -> None:
    """What the server signs, the SDK verifies against the published JWKS, once."""
    jwks = await issuer.jwks()
    verifier = TokenVerifier(
        static_jwks(Jwks(tuple(jwks["keys"]), issuer.jwks_max_age_s)),
        issuer="bioauth-test",
        audience="network-a",
        clock=lambda: NOW + 5,
    )
    issued = await issuer.issue(approval())
    decision = await verifier.verify(issued.token, tx())
    assert decision.subject_id == "subj-1"
    assert decision.jti == issued.jti
    with pytest.raises(TokenRejected) as caught:
        await verifier.verify(issued.token, tx())
    assert caught.value.reason is RejectReason.REPLAYED


async def test_sdk_verifier_binds_the_transaction(issuer: TokenIssuer) -> None:
    """An issued token does not verify for a transaction with another amount."""
    verifier = TokenVerifier.offline(
        await issuer.jwks(), issuer="bioauth-test", audience="network-a", clock=lambda: NOW
    )
    issued = await issuer.issue(approval())
    with pytest.raises(TokenRejected) as caught:
        await verifier.verify(issued.token, tx(amount_minor=1251))
    assert caught.value.reason is RejectReason.TRANSACTION


async def test_independent_jose_library_accepts_issued_tokens(issuer: TokenIssuer) -> None:
    """joserfc, which shares no code with the SDK, verifies the signature and claims."""
    issued: IssuedToken = await issuer.issue(approval())
    keys = KeySet.import_key_set(await issuer.jwks())  # type: ignore[arg-type]
    token = jwt.decode(issued.token, keys, algorithms=["ES256"])
    assert token.header["typ"] == "bioauth-decision+jwt"
    assert token.claims["txn"] == transaction_hash_b64(tx())
    registry = jwt.JWTClaimsRegistry(
        now=NOW + 5,
        iss={"essential": True, "value": "bioauth-test"},
        aud={"essential": True, "value": "network-a"},
        jti={"essential": True},
    )
    registry.validate(token.claims)
    # And at the JWS layer: the compact serialisation's signature checks out on its own.
    jws.deserialize_compact(issued.token, keys, algorithms=["ES256"])


async def test_jwks_json_lists_the_signing_key(issuer: TokenIssuer) -> None:
    """The published set names the key every token's kid points at."""
    issued = await issuer.issue(approval())
    document = json.loads(await issuer.jwks_json())
    [key] = document["keys"]
    assert key["kid"] == issued.key_id
    assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-256", "ES256")
    assert "d" not in key


@pytest.mark.parametrize(
    "change",
    [
        {"operation": "enroll"},
        {"score_band": "0.93"},
        {"transaction_hash": "not-a-hash"},
        {"subject_id": ""},
        {"probe_images": 0},
    ],
)
def test_bad_claims_are_refused_before_signing(change: dict[str, Any]) -> None:
    """A malformed approval is our bug: nothing is signed."""
    with pytest.raises(InternalError):
        approval(**change)


class ShortSignatureProvider:
    """A provider that returns a DER-length signature, as a misbehaving HSM binding could."""

    async def signing_key_id(self) -> str:
        return "k1"

    async def sign_es256(self, signing_input: bytes, *, kid: str | None = None) -> bytes:
        return b"\x30" * 70

    async def public_jwks(self) -> list[dict[str, str]]:
        return []


async def test_wrong_length_signature_is_refused() -> None:
    """A signature that is not raw r||s never reaches a token."""
    broken = TokenIssuer(ShortSignatureProvider(), SETTINGS)  # type: ignore[arg-type]
    with pytest.raises(InternalError, match="64"):
        await broken.issue(approval())
