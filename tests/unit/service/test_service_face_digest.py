"""Face fingerprints: one framing for the enrolment's stored digest and the session's replay check."""

from __future__ import annotations

from datetime import UTC, datetime

from bioauth.inference.decode import RawImage
from bioauth.service.domain import EnrolRequest
from bioauth.service.enrol import request_digest
from bioauth.service.face_digest import face_digest


def test_the_stored_enrolment_digest_never_changes() -> None:
    """Stored with the first answer: a retry after an upgrade must still be recognised."""
    request = EnrolRequest(
        external_ref="acct-1",
        policy_version="2026-10",
        consented_at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
        channel="in_person",
        purpose="payments",
        identification=True,
        samples=(b"\x89PNG-not-really", RawImage(bytes(range(12)), 2, 2)),
        idempotency_key="idem-1",
    )
    assert request_digest(request).hex() == (
        "016772912dd884bb1b2a6c0cc68686365fb2113b414102d7565a77825da7d5d8"
    )


def test_a_face_digest_tells_kind_size_and_bytes_apart() -> None:
    pixels = bytes(range(12))
    assert face_digest(RawImage(pixels, 2, 2)) == face_digest(RawImage(bytes(pixels), 2, 2))
    assert face_digest(RawImage(pixels, 2, 2)) != face_digest(RawImage(pixels, 4, 1))
    assert face_digest(RawImage(pixels, 2, 2)) != face_digest(pixels)
    assert face_digest(pixels) != face_digest(pixels[:-1])
