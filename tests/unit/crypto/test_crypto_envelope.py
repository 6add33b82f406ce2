"""Template envelope: round trip, AAD binding, tamper detection (local development provider)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from bioauth.crypto.envelope import (
    FORMAT_VERSION,
    SealedTemplate,
    open_template,
    seal_template,
    template_aad,
    wrap_aad,
)
from bioauth.crypto.local_provider import LocalKeyProvider
from bioauth.crypto.provider import KeyProvider
from bioauth.errors import DecryptionFailed, InvalidInput


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[LocalKeyProvider]:
    p = await LocalKeyProvider.open(tmp_path / "keys.json")
    yield p
    await p.close()


def flip(raw: bytes) -> bytes:
    return bytes([raw[0] ^ 1]) + raw[1:]


def _embedding(seed: int = 0) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return vector / np.linalg.norm(vector)


async def _seal(
    provider: KeyProvider, *, tenant: str = "t1", subject: str = "s1", template: str = "tpl-1"
) -> SealedTemplate:
    key = await provider.create_subject_key(tenant, subject)
    return await seal_template(
        provider,
        tenant_id=tenant,
        subject_id=subject,
        template_id=template,
        model_id="dlib_resnet_v1",
        key=key,
        embedding=_embedding(),
        quality=0.8,
    )


async def test_round_trip_returns_the_same_float32_vector(provider: LocalKeyProvider) -> None:
    """What goes in comes out bit for bit, as float32."""
    sealed = await _seal(provider)
    opened = await open_template(provider, sealed)
    assert opened.dtype == np.float32
    np.testing.assert_array_equal(opened, _embedding())
    assert sealed.format_version == FORMAT_VERSION
    assert len(sealed.nonce) == 12
    assert len(sealed.ciphertext) == 128 * 4 + 16
    assert sealed.created_at.tzinfo is UTC
    assert sealed.key_version == 1


async def test_ciphertext_does_not_contain_the_plaintext(provider: LocalKeyProvider) -> None:
    """Neither the float32 bytes nor any 16-byte run of them appears in the sealed record."""
    sealed = await _seal(provider)
    raw = _embedding().astype("<f4").tobytes()
    stored = sealed.ciphertext + sealed.wrapped_key + sealed.nonce
    assert all(raw[i : i + 16] not in stored for i in range(0, len(raw) - 16, 4))


async def test_each_template_gets_a_fresh_data_key_and_nonce(provider: LocalKeyProvider) -> None:
    """Sealing the same vector twice gives unrelated records."""
    first = await _seal(provider, template="a")
    second = await _seal(provider, template="a")
    assert first.nonce != second.nonce
    assert first.wrapped_key != second.wrapped_key
    assert first.ciphertext != second.ciphertext


@pytest.mark.parametrize(
    "field",
    ["tenant_id", "subject_id", "template_id", "model_id"],
)
async def test_moving_a_record_to_another_row_fails(provider: LocalKeyProvider, field: str) -> None:
    """A ciphertext and wrapped key copied to another tenant/subject/template/model do not open."""
    sealed = await _seal(provider)
    moved = dataclasses.replace(sealed, **{field: getattr(sealed, field) + "x"})
    with pytest.raises(DecryptionFailed):
        await open_template(provider, moved)


async def test_a_ciphertext_under_another_subjects_key_fails(
    provider: LocalKeyProvider,
) -> None:
    """Pairing one subject's ciphertext with another subject's wrapped key and ids fails."""
    mine = await _seal(provider, subject="alice")
    theirs = await _seal(provider, subject="bob")
    swapped = dataclasses.replace(theirs, ciphertext=mine.ciphertext, nonce=mine.nonce)
    with pytest.raises(DecryptionFailed):
        await open_template(provider, swapped)


async def test_tampered_ciphertext_nonce_or_wrapped_key_fails(provider: LocalKeyProvider) -> None:
    """One flipped bit anywhere is detected."""
    sealed = await _seal(provider)
    tampered = [
        dataclasses.replace(sealed, ciphertext=flip(sealed.ciphertext)),
        dataclasses.replace(sealed, nonce=flip(sealed.nonce)),
        dataclasses.replace(sealed, wrapped_key=flip(sealed.wrapped_key)),
    ]
    for record in tampered:
        with pytest.raises(DecryptionFailed):
            await open_template(provider, record)


async def test_an_unknown_format_version_is_refused(provider: LocalKeyProvider) -> None:
    """A record cannot be relabelled to another format version."""
    sealed = await _seal(provider)
    with pytest.raises(DecryptionFailed):
        await open_template(provider, dataclasses.replace(sealed, format_version=2))


def test_aad_encoding_is_unambiguous() -> None:
    """Shifting characters between adjacent fields changes the AAD; the two purposes differ."""
    base = {"tenant_id": "ab", "subject_id": "c", "template_id": "t", "model_id": "m"}
    shifted = {"tenant_id": "a", "subject_id": "bc", "template_id": "t", "model_id": "m"}
    assert template_aad(**base, format_version=1) != template_aad(**shifted, format_version=1)
    assert template_aad(**base, format_version=1) != wrap_aad(**base, format_version=1)
    assert template_aad(**base, format_version=1) != template_aad(**base, format_version=2)


def test_aad_known_answer() -> None:
    """The AAD layout is fixed: stored records depend on it byte for byte."""
    aad = template_aad(
        tenant_id="t", subject_id="s", template_id="x", model_id="m", format_version=1
    )
    assert aad == (
        b"bioauth/template/v1"
        b"\x00\x00\x00\x01t\x00\x00\x00\x01s\x00\x00\x00\x01x\x00\x00\x00\x01m\x00\x01"
    )


async def test_bad_embeddings_are_refused(provider: LocalKeyProvider) -> None:
    """NaN, 2-d arrays and naive timestamps are caller errors."""
    key = await provider.create_subject_key("t1", "s1")
    common = {
        "tenant_id": "t1",
        "subject_id": "s1",
        "template_id": "x",
        "model_id": "m",
        "key": key,
        "quality": 1.0,
    }
    with pytest.raises(InvalidInput):
        await seal_template(provider, embedding=np.array([np.nan, 1.0]), **common)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        await seal_template(provider, embedding=np.zeros((2, 2)), **common)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        await seal_template(
            provider,
            embedding=np.ones(4),
            created_at=datetime(2026, 1, 1),
            **common,  # type: ignore[arg-type]
        )
