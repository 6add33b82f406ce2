"""TokenVerifier: a genuine approval passes; every forgery is refused, each for its own reason."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from bioauth.client import Jwks, RejectReason, TokenRejected
from bioauth.client.tokens import JwksCache, TokenVerifier

from .tokens_support import (
    AUDIENCE,
    ISSUER,
    NOW,
    SigningKey,
    b64url,
    claims,
    header,
    hs256,
    segment,
    transaction,
)


class CountingSource:
    """A key source that counts how often it is asked, and can be told to fail."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.calls = 0
        self.down = False

    async def __call__(self) -> Jwks:
        self.calls += 1
        if self.down:
            raise OSError("key server down")
        return Jwks(tuple(k.public_jwk() for k in self.keys), max_age_s=300)


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate("sig-2026-1")


@pytest.fixture
def other_key() -> SigningKey:
    return SigningKey.generate("sig-2026-2")


@pytest.fixture
def source(key: SigningKey, other_key: SigningKey) -> CountingSource:
    return CountingSource(key, other_key)


@pytest.fixture
def verifier(source: CountingSource) -> TokenVerifier:
    return TokenVerifier(source, issuer=ISSUER, audience=AUDIENCE, clock=lambda: NOW + 1.0)


async def rejected(verifier: TokenVerifier, token: str, **tx_changes: Any) -> RejectReason:
    with pytest.raises(TokenRejected) as caught:
        await verifier.verify(token, transaction(**tx_changes))
    return caught.value.reason


async def test_genuine_token_verifies(verifier: TokenVerifier, key: SigningKey) -> None:
    """A correctly signed approval of this transaction is accepted with its claims."""
    decision = await verifier.verify(key.sign(header(key.kid), claims()), transaction())
    assert decision.subject_id == "subj-3f9a"
    assert decision.operation == "verify"
    assert (decision.enrolment_images, decision.probe_images) == (3, 1)
    assert decision.key_id == key.kid
    assert decision.expires_at == NOW + 60


async def test_alg_none_is_rejected(verifier: TokenVerifier, key: SigningKey) -> None:
    """An unsigned token (alg none, empty signature) is refused."""
    token = f"{segment(header(key.kid, alg='none'))}.{segment(claims())}."
    assert await rejected(verifier, token) is RejectReason.ALGORITHM


async def test_hs256_keyed_with_the_public_key_is_rejected(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    """The classic key-confusion forgery: HMAC with the published public key as secret."""
    public_pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (public_pem, json.dumps(key.public_jwk()).encode()):
        token = hs256(header(key.kid, alg="HS256"), claims(), secret)
        assert await rejected(verifier, token) is RejectReason.ALGORITHM


def _foreign_alg_token(alg: str, kid: str) -> str:
    signer: Any
    if alg == "ES384":
        signer = ec.generate_private_key(ec.SECP384R1())
    elif alg in ("RS256", "PS256"):
        signer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        signer = ed25519.Ed25519PrivateKey.generate()
    return jwt.encode(
        claims(), signer, algorithm=alg, headers={"kid": kid, "typ": "bioauth-decision+jwt"}
    )


@pytest.mark.parametrize("alg", ["ES384", "RS256", "PS256", "EdDSA"])
async def test_algorithms_other_than_es256_are_rejected(
    verifier: TokenVerifier, key: SigningKey, alg: str
) -> None:
    """Only ES256 is accepted, whatever key signed the token."""
    assert await rejected(verifier, _foreign_alg_token(alg, key.kid)) is RejectReason.ALGORITHM


@pytest.mark.parametrize("crit", [["exp-policy"], ["b64"]])
async def test_unknown_crit_is_rejected(
    verifier: TokenVerifier, key: SigningKey, crit: list[str]
) -> None:
    """A properly signed token naming a critical extension is refused (we implement none)."""
    token = key.sign(header(key.kid, crit=crit, **{crit[0]: False}), claims())
    assert await rejected(verifier, token) is RejectReason.CRITICAL_HEADER


@pytest.mark.parametrize("name", ["jku", "x5u", "jwk", "x5c"])
async def test_key_headers_are_rejected_without_fetching(
    verifier: TokenVerifier, source: CountingSource, name: str
) -> None:
    """Headers that point at or embed a key are refused before any key is looked up."""
    attacker = SigningKey.generate("attacker")
    values: dict[str, Any] = {
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "jwk": attacker.public_jwk(),
        "x5c": ["MIIB..."],
    }
    token = attacker.sign(header("attacker", **{name: values[name]}), claims())
    assert await rejected(verifier, token) is RejectReason.FORBIDDEN_HEADER
    assert source.calls == 0


async def test_swapped_kid_is_rejected(
    verifier: TokenVerifier, key: SigningKey, other_key: SigningKey
) -> None:
    """Signed by one published key but naming the other: the signature does not verify."""
    token = key.sign(header(other_key.kid), claims())
    assert await rejected(verifier, token) is RejectReason.SIGNATURE


async def test_unknown_kid_is_rejected(verifier: TokenVerifier) -> None:
    """A key that is not in the set, even after a refresh, is refused."""
    attacker = SigningKey.generate("not-published")
    token = attacker.sign(header(attacker.kid), claims())
    assert await rejected(verifier, token) is RejectReason.UNKNOWN_KEY


CHANGED_CLAIMS: dict[str, Any] = {
    "iss": "bioauth-other",
    "aud": "network-b",
    "sub": "subj-other",
    "decision": "decline",
    "op": "identify",
    "model": "other_model",
    "point": "fmr_1e-2",
    "band": "low",
    "mode": "e1p1",
    "txn": b64url(b"\x00" * 32),
    "iat": NOW - 30,
    "exp": NOW + 3600,
    "jti": "another-jti-value",
}


@pytest.mark.parametrize("name", sorted(CHANGED_CLAIMS))
async def test_any_changed_claim_breaks_the_signature(
    verifier: TokenVerifier, key: SigningKey, name: str
) -> None:
    """Editing one claim of a genuine token (signature kept) is refused."""
    genuine = key.sign(header(key.kid), claims())
    head, _, signature = genuine.split(".")
    tampered = claims(**{name: CHANGED_CLAIMS[name]})
    original = json.loads(jwt.utils.base64url_decode(genuine.split(".")[1]))
    tampered["jti"] = CHANGED_CLAIMS["jti"] if name == "jti" else original["jti"]
    token = f"{head}.{segment(tampered)}.{signature}"
    assert await rejected(verifier, token) is RejectReason.SIGNATURE


async def test_claims_resigned_by_another_key_under_a_published_kid_are_rejected(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    """An attacker's own P-256 key cannot sign for a published kid."""
    attacker = SigningKey.generate(key.kid)
    token = attacker.sign(header(key.kid), claims(sub="subj-victim"))
    assert await rejected(verifier, token) is RejectReason.SIGNATURE


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", None, "bioauth-decision"])
async def test_wrong_typ_is_rejected(
    verifier: TokenVerifier, key: SigningKey, typ: str | None
) -> None:
    """Only the explicit decision type is accepted (no other JWT passes for a decision)."""
    token = key.sign(header(key.kid, typ=typ), claims())
    assert await rejected(verifier, token) is RejectReason.TYPE


async def test_expired_token_is_rejected(verifier: TokenVerifier, key: SigningKey) -> None:
    """A token past exp plus the clock skew is refused."""
    token = key.sign(header(key.kid), claims(iat=NOW - 100, exp=NOW - 40))
    assert await rejected(verifier, token) is RejectReason.EXPIRED


async def test_expiry_within_the_clock_skew_is_tolerated(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    """A token that expired less than the skew ago still verifies (clocks differ)."""
    token = key.sign(header(key.kid), claims(iat=NOW - 70, exp=NOW - 10))
    await verifier.verify(token, transaction())


async def test_token_from_the_future_is_rejected(verifier: TokenVerifier, key: SigningKey) -> None:
    """iat later than now plus the skew is refused."""
    token = key.sign(header(key.kid), claims(iat=NOW + 120, exp=NOW + 180))
    assert await rejected(verifier, token) is RejectReason.NOT_YET_VALID


async def test_overlong_lifetime_is_rejected(verifier: TokenVerifier, key: SigningKey) -> None:
    """A token that would live longer than max_lifetime_s is refused even if signed."""
    token = key.sign(header(key.kid), claims(exp=NOW + 86_400))
    assert await rejected(verifier, token) is RejectReason.LIFETIME


async def test_foreign_audience_is_rejected(verifier: TokenVerifier, key: SigningKey) -> None:
    """A token issued to another network is refused."""
    token = key.sign(header(key.kid), claims(aud="network-b"))
    assert await rejected(verifier, token) is RejectReason.AUDIENCE


async def test_audience_list_is_rejected(verifier: TokenVerifier, key: SigningKey) -> None:
    """aud must be exactly our audience, not a list that happens to contain it."""
    token = key.sign(header(key.kid), claims(aud=[AUDIENCE, "network-b"]))
    assert await rejected(verifier, token) is RejectReason.AUDIENCE


async def test_foreign_issuer_is_rejected(verifier: TokenVerifier, key: SigningKey) -> None:
    """A token from another issuer is refused."""
    token = key.sign(header(key.kid), claims(iss="bioauth-elsewhere"))
    assert await rejected(verifier, token) is RejectReason.ISSUER


async def test_non_approval_is_rejected(verifier: TokenVerifier, key: SigningKey) -> None:
    """Only approvals carry tokens; a signed 'decline' is not an authorisation."""
    token = key.sign(header(key.kid), claims(decision="decline"))
    assert await rejected(verifier, token) is RejectReason.DECISION


@pytest.mark.parametrize("name", ["sub", "txn", "jti", "exp", "mode"])
async def test_missing_claim_is_rejected(
    verifier: TokenVerifier, key: SigningKey, name: str
) -> None:
    """Every claim is required."""
    token = key.sign(header(key.kid), claims(**{name: None}))
    assert await rejected(verifier, token) is RejectReason.MISSING_CLAIM


@pytest.mark.parametrize(
    "change",
    [
        {"amount_minor": 5000},
        {"currency": "USD"},
        {"merchant_id": "merchant-43"},
        {"terminal_id": "term-8"},
        {"transaction_id": "tx-0002"},
        {"nonce": "gateway-nonce-0002"},
    ],
)
async def test_token_for_another_transaction_is_rejected(
    verifier: TokenVerifier, key: SigningKey, change: dict[str, Any]
) -> None:
    """Dynamic linking: changing any field of the transaction invalidates the token."""
    token = key.sign(header(key.kid), claims())
    assert await rejected(verifier, token, **change) is RejectReason.TRANSACTION


async def test_replayed_jti_is_rejected(verifier: TokenVerifier, key: SigningKey) -> None:
    """The same token presented a second time is refused."""
    token = key.sign(header(key.kid), claims())
    await verifier.verify(token, transaction())
    assert await rejected(verifier, token) is RejectReason.REPLAYED


async def test_forgery_does_not_burn_the_jti(verifier: TokenVerifier, key: SigningKey) -> None:
    """A rejected forgery carrying a genuine jti does not block the genuine token."""
    genuine_claims = claims()
    forged = SigningKey.generate(key.kid).sign(header(key.kid), genuine_claims)
    assert await rejected(verifier, forged) is RejectReason.SIGNATURE
    await verifier.verify(key.sign(header(key.kid), genuine_claims), transaction())


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "e30.e30.", "x" * 9000])
async def test_malformed_input_is_rejected(verifier: TokenVerifier, token: str) -> None:
    """Garbage is refused as malformed (or for its header), never crashes."""
    assert await rejected(verifier, token) in {RejectReason.MALFORMED, RejectReason.ALGORITHM}


async def test_unknown_kids_refresh_the_keys_at_most_once_per_interval(
    source: CountingSource, key: SigningKey
) -> None:
    """A flood of made-up kids costs one refresh per interval, not one fetch per token."""
    now = [1000.0]
    cache = JwksCache(source, min_refresh_interval_s=30.0, clock=lambda: now[0])
    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE, clock=lambda: NOW)
    await verifier.verify(key.sign(header(key.kid), claims()), transaction())
    assert source.calls == 1
    for i in range(5):
        stranger = SigningKey.generate(f"made-up-{i}")
        token = stranger.sign(header(stranger.kid), claims())
        assert await rejected(verifier, token) is RejectReason.UNKNOWN_KEY
    assert source.calls == 1  # the first fetch was less than 30 s ago
    now[0] += 31
    rotated = SigningKey.generate("sig-2026-3")
    source.keys.append(rotated)
    await verifier.verify(rotated.sign(header(rotated.kid), claims()), transaction())
    assert source.calls == 2


async def test_keys_unavailable_fails_closed(source: CountingSource, key: SigningKey) -> None:
    """When the key set cannot be fetched (or is stale and cannot be renewed), tokens are refused."""
    source.down = True
    verifier = TokenVerifier(source, issuer=ISSUER, audience=AUDIENCE, clock=lambda: NOW)
    token = key.sign(header(key.kid), claims())
    assert await rejected(verifier, token) is RejectReason.KEYS_UNAVAILABLE


def test_clock_skew_is_bounded(source: CountingSource) -> None:
    """A verifier cannot be configured with a skew that would stretch token lifetimes."""
    with pytest.raises(ValueError, match="clock_skew_s"):
        TokenVerifier(source, issuer=ISSUER, audience=AUDIENCE, clock_skew_s=3600)
