"""One contract for every key provider: the same behaviour from local, PKCS#11 and Transit."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import numpy as np
import pytest
from cryptography.exceptions import InvalidSignature

from bioauth.crypto.envelope import SealedTemplate, open_template, seal_template
from bioauth.crypto.provider import KeyProvider, WrappedKey
from bioauth.errors import DecryptionFailed, NotFound
from tests.support.es256 import verify_es256

pytestmark = pytest.mark.integration


def _subject() -> str:
    return "c-" + uuid.uuid4().hex


async def test_concurrent_seal_and_open(each_provider: KeyProvider) -> None:
    """Many templates of many subjects sealed and opened at once all round-trip."""
    subjects = [_subject() for _ in range(8)]
    keys = await asyncio.gather(*(each_provider.create_subject_key("tc", s) for s in subjects))
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(64, 128)).astype(np.float32)

    async def seal(i: int) -> SealedTemplate:
        return await seal_template(
            each_provider,
            tenant_id="tc",
            subject_id=subjects[i % 8],
            template_id=f"tpl-{i}",
            model_id="m",
            key=keys[i % 8],
            embedding=vectors[i],
            quality=1.0,
        )

    sealed = await asyncio.gather(*(seal(i) for i in range(64)))
    opened = await asyncio.gather(*(open_template(each_provider, s) for s in sealed))
    np.testing.assert_array_equal(np.stack(opened), vectors)


async def test_versions_and_destroy_behave_alike(each_provider: KeyProvider) -> None:
    """Rotation, rewrap, destroy and missing keys give the same answers everywhere."""
    key = await each_provider.create_subject_key("tc", _subject())
    assert await each_provider.subject_key_exists(key.key_id)
    data_key, v1 = await each_provider.generate_data_key(key.key_id, b"aad")
    assert (v1.key_id, v1.version) == (key.key_id, 1)
    assert await each_provider.rotate_subject_key(key.key_id) == 2
    assert await each_provider.rotate_subject_key(key.key_id) == 3
    v3 = await each_provider.rewrap(v1, b"aad")
    assert v3.version == 3
    assert (
        await each_provider.rewrap(v3, b"aad") == v3
        or (await each_provider.unwrap(v3, b"aad")) == data_key
    )
    await each_provider.destroy_subject_key(key.key_id)
    assert not await each_provider.subject_key_exists(key.key_id)
    for wrapped in (v1, v3):
        with pytest.raises(DecryptionFailed):
            await each_provider.unwrap(wrapped, b"aad")
        with pytest.raises(DecryptionFailed):
            await each_provider.rewrap(wrapped, b"aad")
    with pytest.raises(NotFound):
        await each_provider.rotate_subject_key(key.key_id)
    with pytest.raises(NotFound):
        await each_provider.generate_data_key(key.key_id, b"aad")
    with pytest.raises(DecryptionFailed):
        await each_provider.unwrap(
            WrappedKey(key_id="tc.never-made", version=1, blob=v1.blob), b"aad"
        )
    await each_provider.destroy_subject_key("tc.never-made")


async def test_subject_key_lifecycle(each_provider: KeyProvider) -> None:
    """Create, data key, unwrap, rotate, rewrap, wrap, retire: each step keeps or refuses what it
    should, with the same answers from every provider."""
    p = each_provider
    assert isinstance(p, KeyProvider)
    subject = _subject()
    key = await p.create_subject_key("tc", subject)
    assert key.version == 1
    assert await p.create_subject_key("tc", subject) == key  # idempotent
    data_key, wrapped = await p.generate_data_key(key.key_id, b"aad-1")
    assert len(data_key) == 32
    assert await p.unwrap(wrapped, b"aad-1") == data_key
    with pytest.raises(DecryptionFailed):
        await p.unwrap(wrapped, b"aad-2")
    with pytest.raises(DecryptionFailed):
        await p.rewrap(wrapped, b"aad-2")
    assert await p.rotate_subject_key(key.key_id) == 2
    rewrapped = await p.rewrap(wrapped, b"aad-1")
    assert rewrapped.version == 2
    assert rewrapped.blob != wrapped.blob
    assert await p.unwrap(rewrapped, b"aad-1") == data_key
    wrapped_again = await p.wrap(key.key_id, data_key, b"aad-3")
    assert wrapped_again.version == 2
    assert await p.unwrap(wrapped_again, b"aad-3") == data_key
    _, fresh = await p.generate_data_key(key.key_id, b"x")
    assert fresh.version == 2
    await p.retire_subject_key_versions(key.key_id, 2)
    with pytest.raises(DecryptionFailed):
        await p.unwrap(wrapped, b"aad-1")
    assert await p.unwrap(rewrapped, b"aad-1") == data_key


async def test_envelope_round_trip_and_move_detection(each_provider: KeyProvider) -> None:
    """Sealed templates open, and not when moved to another subject, tenant or template id, nor
    with another subject's key."""
    p = each_provider
    alice, bob = _subject(), _subject()
    keys = {s: await p.create_subject_key("tc", s) for s in (alice, bob)}
    vector = np.random.default_rng(2).normal(size=128).astype(np.float32)
    sealed = await seal_template(
        p,
        tenant_id="tc",
        subject_id=alice,
        template_id="tpl",
        model_id="m",
        key=keys[alice],
        embedding=vector,
        quality=0.5,
    )
    np.testing.assert_array_equal(await open_template(p, sealed), vector)
    for moved in (
        replace(sealed, subject_id=bob),
        replace(sealed, tenant_id="t2"),
        replace(sealed, template_id="x"),
    ):
        with pytest.raises(DecryptionFailed):
            await open_template(p, moved)
    # Bob's key with Alice's wrapped data key: also refused.
    stolen = WrappedKey(key_id=keys[bob].key_id, version=1, blob=sealed.wrapped_key)
    with pytest.raises(DecryptionFailed):
        await p.unwrap(stolen, b"anything")


async def test_es256_signatures_verify_against_the_published_jwk(
    each_provider: KeyProvider,
) -> None:
    """Signatures are raw r||s over SHA-256 and verify with cryptography; after a rotation the
    new kid signs and the old one stays published and usable for verification."""
    p = each_provider
    kid = await p.signing_key_id()
    signature = await p.sign_es256(b"header.payload", kid=kid)
    jwks = {j["kid"]: j for j in await p.public_jwks()}
    verify_es256(jwks[kid], b"header.payload", signature)
    with pytest.raises(InvalidSignature):
        verify_es256(jwks[kid], b"header.payloaX", signature)
    new_kid = await p.rotate_signing_key()
    assert new_kid != kid
    assert await p.signing_key_id() == new_kid
    jwks = {j["kid"]: j for j in await p.public_jwks()}
    assert {kid, new_kid} <= set(jwks)
    verify_es256(jwks[new_kid], b"x", await p.sign_es256(b"x"))
    verify_es256(jwks[kid], b"y", await p.sign_es256(b"y", kid=kid))
