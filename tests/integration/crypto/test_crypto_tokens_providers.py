"""Decision tokens signed by every real key provider (local file, SoftHSM2, OpenBao Transit)
verify with the SDK and with joserfc, also across a signing-key rotation."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from bioauth.client import Jwks, transaction_context
from bioauth.client.tokens import JwksCache, TokenVerifier
from bioauth.config import TokenSettings
from bioauth.crypto.provider import KeyProvider
from bioauth.crypto.tokens import ApprovalClaims, TokenIssuer
from bioauth.v1 import types_pb2
from bioauth.wire import transaction_hash_b64

pytestmark = pytest.mark.integration

SETTINGS = TokenSettings(issuer="bioauth-it", ttl_s=60)


def _tx() -> types_pb2.TransactionContext:
    return transaction_context(
        "tx-it-1",
        1999,
        "EUR",
        merchant_id="m-9",
        terminal_id="t-9",
        nonce="nonce-it-000001",
        timestamp=dt.datetime(2026, 11, 23, 8, 0, 0, 250_000, tzinfo=dt.UTC),
    )


def _claims() -> ApprovalClaims:
    return ApprovalClaims(
        audience="network-it",
        subject_id="subj-it",
        operation="verify",
        model_id="dlib_resnet_v1",
        operating_point="fmr_1e-3",
        score_band="very_high",
        enrolment_images=1,
        probe_images=1,
        transaction_hash=transaction_hash_b64(_tx()),
    )


async def test_tokens_verify_with_sdk_and_joserfc(each_provider: KeyProvider) -> None:
    """The provider's signature is valid ES256 for both verifiers; the claims bind the transaction."""
    issuer = TokenIssuer(each_provider, SETTINGS)
    issued = await issuer.issue(_claims())
    jwks = await issuer.jwks()

    async def source() -> Jwks:
        return Jwks(tuple(jwks["keys"]), issuer.jwks_max_age_s)

    verifier = TokenVerifier(source, issuer="bioauth-it", audience="network-it")
    decision = await verifier.verify(issued.token, _tx())
    assert decision.key_id == issued.key_id

    token = jwt.decode(issued.token, KeySet.import_key_set(jwks), algorithms=["ES256"])  # type: ignore[arg-type]
    jwt.JWTClaimsRegistry(
        now=int(time.time()),
        iss={"essential": True, "value": "bioauth-it"},
        aud={"essential": True, "value": "network-it"},
    ).validate(token.claims)
    assert token.header["kid"] == issued.key_id


async def test_rotation_publishes_the_new_kid_and_keeps_the_old(each_provider: KeyProvider) -> None:
    """After a rotation, new tokens carry the new kid; a cached verifier refreshes on it, and a
    token signed just before the rotation still verifies."""
    issuer = TokenIssuer(each_provider, SETTINGS)
    fetches = 0

    async def source() -> Jwks:
        nonlocal fetches
        fetches += 1
        document = await issuer.jwks()
        return Jwks(tuple(document["keys"]), 300)

    cache = JwksCache(source, min_refresh_interval_s=0.0)
    verifier = TokenVerifier(cache, issuer="bioauth-it", audience="network-it")
    before = await issuer.issue(_claims())
    in_flight = await issuer.issue(_claims())  # signed before the rotation, presented after it
    await verifier.verify(before.token, _tx())
    assert fetches == 1

    await each_provider.rotate_signing_key()
    after = await issuer.issue(_claims())
    assert after.key_id != before.key_id
    await verifier.verify(after.token, _tx())
    assert fetches == 2  # the unknown kid triggered exactly one refresh
    await verifier.verify(in_flight.token, _tx())
    published = {key["kid"] for key in (await issuer.jwks())["keys"]}
    assert {before.key_id, after.key_id} <= published
