"""Request builders fail fast on what the server would refuse, naming the bad value."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bioauth.client import (
    consent,
    face_image_from_bytes,
    face_image_from_path,
    face_image_from_rgb,
    transaction_context,
)
from bioauth.v1 import types_pb2
from bioauth.wire import MAX_ENCODED_IMAGE_BYTES

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


def test_image_from_path_reads_jpeg(tmp_path: Path) -> None:
    """A JPEG file becomes an encoded FaceImage with its exact bytes."""
    path = tmp_path / "face.jpg"
    path.write_bytes(JPEG)
    assert face_image_from_path(path).encoded == JPEG


def test_image_that_is_not_jpeg_or_png_is_refused() -> None:
    """Other formats are refused by magic bytes, before any upload."""
    with pytest.raises(ValueError, match="neither JPEG nor PNG"):
        face_image_from_bytes(b"GIF89a....")


def test_oversize_image_is_refused(tmp_path: Path) -> None:
    """An image over the API's byte limit is refused with its size."""
    path = tmp_path / "big.jpg"
    path.write_bytes(JPEG + b"\x00" * MAX_ENCODED_IMAGE_BYTES)
    with pytest.raises(ValueError, match="bytes"):
        face_image_from_path(path)


def test_raw_image_size_must_match() -> None:
    """Raw RGB8 must be exactly width * height * 3 bytes."""
    assert face_image_from_rgb(b"\x00" * 12, 2, 2).raw.width == 2
    with pytest.raises(ValueError, match="expected 12 bytes"):
        face_image_from_rgb(b"\x00" * 11, 2, 2)


def test_transaction_context_fields_and_defaults() -> None:
    """Fields are set as given; the nonce defaults to a fresh random value."""
    moment = dt.datetime(2026, 11, 23, 8, 0, 0, 120_000, tzinfo=dt.UTC)
    tx = transaction_context("tx-1", 1250, "EUR", merchant_id="m", timestamp=moment)
    assert tx.timestamp.ToJsonString() == "2026-11-23T08:00:00.120Z"
    assert len(tx.nonce) >= 16
    assert (
        transaction_context("tx-1", 1, "EUR").nonce != transaction_context("tx-1", 1, "EUR").nonce
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"amount_minor": 2**53}, "amount_minor"),
        ({"amount_minor": -1}, "amount_minor"),
        ({"currency": "eur"}, "currency"),
        ({"transaction_id": ""}, "transaction_id"),
        ({"nonce": "short"}, "nonce"),
        ({"timestamp": dt.datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_transaction_context_refuses_bad_values(kwargs: dict[str, object], match: str) -> None:
    """Out-of-range or malformed transaction fields raise ValueError naming the field."""
    args: dict[str, object] = {"transaction_id": "tx", "amount_minor": 1, "currency": "EUR"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        transaction_context(**args)  # type: ignore[arg-type]


def test_consent_record() -> None:
    """The consent builder maps the channel name and keeps the 1:N choice."""
    record = consent(
        "2026-10", "payment-authentication", channel="mobile_app", identification=False
    )
    assert record.channel == types_pb2.CONSENT_CHANNEL_MOBILE_APP
    assert record.identification is False
    assert record.HasField("consented_at")
    with pytest.raises(ValueError, match="channel"):
        consent("2026-10", "p", channel="fax", identification=True)
