"""Helpers every provider shares for the ES256 signing key: kids, JWKs, signature formats."""

from __future__ import annotations

import base64
import re

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from bioauth.errors import InvalidInput

__all__ = ["der_to_raw_signature", "jwk_from_public_key", "make_kid", "parse_kid"]

_P256_COORD_BYTES = 32
_KID_RE = re.compile(r"^(?P<name>.+)\.v(?P<version>[1-9][0-9]{0,8})$")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_kid(name: str, version: int) -> str:
    """``<signing key name>.v<version>``: readable in logs, and maps back to a key version."""
    return f"{name}.v{version}"


def parse_kid(kid: str, name: str) -> int:
    """The version a kid names; ``InvalidInput`` if it is not one of this key's kids."""
    match = _KID_RE.fullmatch(kid)
    if match is None or match["name"] != name:
        raise InvalidInput("not a kid of this signing key", field="kid")
    return int(match["version"])


def jwk_from_public_key(public_key: ec.EllipticCurvePublicKey, kid: str) -> dict[str, str]:
    """RFC 7518 EC public JWK for ES256."""
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise ValueError(f"signing key must be P-256, got {public_key.curve.name}")
    numbers = public_key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(_P256_COORD_BYTES, "big")),
        "y": b64url(numbers.y.to_bytes(_P256_COORD_BYTES, "big")),
        "kid": kid,
        "use": "sig",
        "alg": "ES256",
    }


def der_to_raw_signature(der: bytes) -> bytes:
    """ASN.1 DER ECDSA signature to the JWS ``r || s`` form (RFC 7518 section 3.4)."""
    r, s = decode_dss_signature(der)
    return r.to_bytes(_P256_COORD_BYTES, "big") + s.to_bytes(_P256_COORD_BYTES, "big")
