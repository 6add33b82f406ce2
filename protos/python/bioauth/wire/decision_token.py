"""The decision token's fixed vocabulary, shared by the server that signs and the SDK that verifies.

A decision token is a compact JWS (RFC 7515), ES256 only, with the header
``{"alg": "ES256", "typ": "bioauth-decision+jwt", "kid": <signing-key version>}`` (the explicit
type of RFC 8725 section 3.11, so no other JWT can be passed off as one) and these claims:

==========  ===================================================================================
``iss``     the issuing deployment (settings ``tokens.issuer``)
``aud``     the tenant's audience: the network that asked
``sub``     the pseudonymous subject id (never the external reference)
``decision``  always ``approve``: declines never carry a token
``op``      ``verify`` (1:1) or ``identify`` (1:N)
``model``   the embedding model's id
``point``   the calibrated operating point used, e.g. ``fmr_1e-4``
``band``    the coarse score band, e.g. ``very_high`` (never the raw score)
``mode``    images fused on each side, ``e{enrolment}p{probe}``, e.g. ``e3p1``
``txn``     base64url SHA-256 of the transaction context's canonical encoding
``iat``     issue time, ``exp`` expiry (NumericDate seconds), ``jti`` unique id (128 random bits)
==========  ===================================================================================
"""

from __future__ import annotations

import re

from bioauth.v1 import types_pb2

__all__ = [
    "DECISION_APPROVE",
    "OPERATIONS",
    "REQUIRED_CLAIMS",
    "SCORE_BANDS",
    "TOKEN_ALGORITHM",
    "TOKEN_TYPE",
    "comparison_mode",
    "parse_comparison_mode",
    "score_band_claim",
]

TOKEN_TYPE = "bioauth-decision+jwt"  # noqa: S105 (a media type, not a secret)
TOKEN_ALGORITHM = "ES256"  # noqa: S105 (an algorithm name)
DECISION_APPROVE = "approve"
OPERATIONS = ("verify", "identify")
SCORE_BANDS = ("very_high", "high", "low", "very_low")
REQUIRED_CLAIMS = (
    "iss",
    "aud",
    "sub",
    "decision",
    "op",
    "model",
    "point",
    "band",
    "mode",
    "txn",
    "iat",
    "exp",
    "jti",
)
_MODE = re.compile(r"^e([1-9][0-9]*)p([1-9][0-9]*)$")
_BAND_PREFIX = "SCORE_BAND_"


def comparison_mode(enrolment_images: int, probe_images: int) -> str:
    """The ``mode`` claim: how many enrolment images and probe frames were fused."""
    if enrolment_images < 1 or probe_images < 1:
        raise ValueError(f"both counts must be >= 1, got e{enrolment_images}p{probe_images}")
    return f"e{enrolment_images}p{probe_images}"


def score_band_claim(band: types_pb2.ScoreBand | int) -> str:
    """The ``band`` claim for a proto ScoreBand (``SCORE_BAND_VERY_HIGH`` -> ``very_high``)."""
    name = types_pb2.ScoreBand.Name(band)
    claim = name.removeprefix(_BAND_PREFIX).lower()
    if claim not in SCORE_BANDS:
        raise ValueError(f"no token claim for score band {name}")
    return claim


def parse_comparison_mode(mode: str) -> tuple[int, int]:
    """``(enrolment_images, probe_images)`` from a ``mode`` claim; ``ValueError`` if malformed."""
    match = _MODE.fullmatch(mode)
    if match is None:
        raise ValueError(f"mode must look like e3p1, got {mode!r}")
    return int(match.group(1)), int(match.group(2))
