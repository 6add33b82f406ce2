"""Fingerprints of face images, framed one way for every digest the service keeps.

An enrolment's idempotency digest (stored with its first answer, so its bytes must never change)
and an Authenticate session's replayed-frame check both hash images. Both frame them the same way:
the image's kind and size (a raw crop's pixel bytes alone do not say its shape) and the SHA-256 of
its bytes, as length-prefixed fields, so no two different inputs share a digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from bioauth.inference.decode import RawImage
from bioauth.service.domain import FaceInput

__all__ = ["digest_fields", "face_digest", "face_fields"]


def face_fields(image: FaceInput) -> tuple[str, ...]:
    """The fields one image contributes to a digest."""
    if isinstance(image, RawImage):
        return (f"raw:{image.width}x{image.height}:", hashlib.sha256(image.rgb8).hexdigest())
    return ("encoded:" + hashlib.sha256(image).hexdigest(),)


def digest_fields(fields: Iterable[str]) -> bytes:
    """SHA-256 over the fields, each UTF-8 and prefixed with its 4-byte big-endian length."""
    digest = hashlib.sha256()
    for value in fields:
        raw = value.encode("utf-8")
        digest.update(len(raw).to_bytes(4, "big"))
        digest.update(raw)
    return digest.digest()


def face_digest(image: FaceInput) -> bytes:
    """One image's fingerprint: equal exactly for the same kind, size and bytes."""
    return digest_fields(face_fields(image))
