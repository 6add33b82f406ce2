"""Building decision tokens by hand for verifier tests: valid ones and every kind of forgery."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from bioauth.client import transaction_context
from bioauth.v1 import types_pb2
from bioauth.wire import transaction_hash_b64

ISSUER = "bioauth-test"
AUDIENCE = "network-a"
NOW = 1_800_000_000


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class SigningKey:
    kid: str
    private: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, kid: str) -> SigningKey:
        return cls(kid, ec.generate_private_key(ec.SECP256R1()))

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.ECAlgorithm.to_jwk(
            self.private.public_key(), as_dict=True
        )
        return {**jwk, "kid": self.kid, "alg": "ES256", "use": "sig"}

    def sign(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        """A compact JWS with exactly this header, ES256-signed with this key."""
        signing_input = f"{segment(header)}.{segment(claims)}"
        der = self.private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{segment(header)}.{segment(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def transaction(**changes: Any) -> types_pb2.TransactionContext:
    fields: dict[str, Any] = {
        "transaction_id": "tx-0001",
        "amount_minor": 4999,
        "currency": "EUR",
        "merchant_id": "merchant-42",
        "terminal_id": "term-7",
        "nonce": "gateway-nonce-0001",
    }
    fields.update(changes)
    transaction_id = fields.pop("transaction_id")
    amount = fields.pop("amount_minor")
    currency = fields.pop("currency")
    return transaction_context(
        transaction_id,
        amount,
        currency,
        timestamp=dt.datetime.fromtimestamp(NOW - 5, dt.UTC),
        **fields,
    )


def header(kid: str, **changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {"alg": "ES256", "typ": "bioauth-decision+jwt", "kid": kid}
    value.update(changes)
    return {k: v for k, v in value.items() if v is not None}


def claims(tx: types_pb2.TransactionContext | None = None, **changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "subj-3f9a",
        "decision": "approve",
        "op": "verify",
        "model": "dlib_resnet_v1",
        "point": "fmr_1e-4",
        "band": "very_high",
        "mode": "e3p1",
        "txn": transaction_hash_b64(tx or transaction()),
        "iat": NOW,
        "exp": NOW + 60,
        "jti": secrets.token_urlsafe(16),
    }
    value.update(changes)
    return {k: v for k, v in value.items() if v is not None}
