"""Builders for the request values gateways assemble on every call.

They check locally what the server would refuse anyway (size, magic bytes, amount range), so a
mistake fails fast with a ``ValueError`` that names the bad value instead of a round trip.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

from bioauth.v1 import types_pb2
from bioauth.wire import MAX_ENCODED_IMAGE_BYTES, MAX_ID_LENGTH

__all__ = [
    "consent",
    "face_image_from_bytes",
    "face_image_from_path",
    "face_image_from_rgb",
    "new_nonce",
    "transaction_context",
]

_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
_MAX_AMOUNT_MINOR = 2**53 - 1
_CHANNELS = {
    "mobile_app": types_pb2.CONSENT_CHANNEL_MOBILE_APP,
    "bank_branch": types_pb2.CONSENT_CHANNEL_BANK_BRANCH,
    "terminal": types_pb2.CONSENT_CHANNEL_TERMINAL,
    "web": types_pb2.CONSENT_CHANNEL_WEB,
}


def face_image_from_bytes(data: bytes) -> types_pb2.FaceImage:
    """A FaceImage from the bytes of a JPEG or PNG file."""
    if len(data) > MAX_ENCODED_IMAGE_BYTES:
        raise ValueError(f"image is {len(data)} bytes, the most is {MAX_ENCODED_IMAGE_BYTES}")
    if not data.startswith(_MAGIC):
        raise ValueError("image is neither JPEG nor PNG (by its magic bytes)")
    return types_pb2.FaceImage(encoded=data)


def face_image_from_path(path: str | Path) -> types_pb2.FaceImage:
    """A FaceImage from a JPEG or PNG file on disk."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_ENCODED_IMAGE_BYTES:
        raise ValueError(f"{path} is {size} bytes, the most is {MAX_ENCODED_IMAGE_BYTES}")
    return face_image_from_bytes(path.read_bytes())


def face_image_from_rgb(rgb8: bytes, width: int, height: int) -> types_pb2.FaceImage:
    """A FaceImage from uncompressed 8-bit RGB pixels, row-major, no padding."""
    if width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive, got {width}x{height}")
    if len(rgb8) != width * height * 3:
        expected = width * height * 3
        raise ValueError(f"expected {expected} bytes for {width}x{height} RGB8, got {len(rgb8)}")
    return types_pb2.FaceImage(raw=types_pb2.RawImage(rgb8=rgb8, width=width, height=height))


def new_nonce() -> str:
    """A fresh gateway nonce: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


def _utc(moment: dt.datetime | None) -> dt.datetime:
    if moment is None:
        return dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(dt.UTC)


def transaction_context(
    transaction_id: str,
    amount_minor: int,
    currency: str,
    *,
    merchant_id: str = "",
    terminal_id: str = "",
    timestamp: dt.datetime | None = None,
    nonce: str | None = None,
) -> types_pb2.TransactionContext:
    """The TransactionContext a decision token will bind.

    Args:
        transaction_id: the network's transaction id.
        amount_minor: amount in the currency's minor units, 0 to 2^53 - 1.
        currency: ISO 4217 alphabetic code, e.g. ``"EUR"``.
        merchant_id: acquirer's merchant id.
        terminal_id: terminal or ATM id.
        timestamp: when the gateway created the transaction (timezone-aware); default now.
        nonce: unique per authorisation attempt; default a fresh random one.

    Keep the returned message: the same context must be handed to the token verifier.
    """
    if not 1 <= len(transaction_id) <= MAX_ID_LENGTH:
        raise ValueError(f"transaction_id must have 1 to {MAX_ID_LENGTH} characters")
    if not 0 <= amount_minor <= _MAX_AMOUNT_MINOR:
        raise ValueError(f"amount_minor must be in [0, 2^53), got {amount_minor}")
    if len(currency) != 3 or not currency.isascii() or not currency.isupper():
        raise ValueError(f"currency must be an ISO 4217 code such as 'EUR', got {currency!r}")
    nonce = new_nonce() if nonce is None else nonce
    if not 8 <= len(nonce) <= MAX_ID_LENGTH:
        raise ValueError(f"nonce must have 8 to {MAX_ID_LENGTH} characters")
    context = types_pb2.TransactionContext(
        transaction_id=transaction_id,
        merchant_id=merchant_id,
        terminal_id=terminal_id,
        amount_minor=amount_minor,
        currency=currency,
        nonce=nonce,
    )
    context.timestamp.FromDatetime(_utc(timestamp))
    return context


def consent(
    policy_version: str,
    purpose: str,
    *,
    channel: str,
    identification: bool,
    consented_at: dt.datetime | None = None,
) -> types_pb2.Consent:
    """The consent record an enrolment carries.

    Args:
        policy_version: the privacy-policy version the person accepted.
        purpose: what the person agreed to, e.g. ``"payment-authentication"``.
        channel: ``mobile_app``, ``bank_branch``, ``terminal`` or ``web``.
        identification: True when the person also agreed to 1:N identification.
        consented_at: when (timezone-aware); default now.
    """
    if channel not in _CHANNELS:
        raise ValueError(f"channel must be one of {sorted(_CHANNELS)}, got {channel!r}")
    record = types_pb2.Consent(
        policy_version=policy_version,
        purpose=purpose,
        channel=_CHANNELS[channel],
        identification=identification,
    )
    record.consented_at.FromDatetime(_utc(consented_at))
    return record
