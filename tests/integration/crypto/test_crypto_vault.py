"""Vault Transit key provider against a real OpenBao dev server (no recorded responses)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import hvac
import hvac.exceptions
import numpy as np
import pytest
from cryptography.exceptions import InvalidSignature

from bioauth.crypto.envelope import open_template, seal_template
from bioauth.crypto.provider import KeyProvider, WrappedKey
from bioauth.crypto.vault_provider import VaultKeyProvider
from bioauth.errors import DecryptionFailed, KeyProviderUnavailable, NotFound
from tests.support.es256 import verify_es256
from tests.support.openbao import OpenBaoServer, start_openbao

pytestmark = pytest.mark.integration

PREFIX = "bioauth-subject-"


async def _open(server: OpenBaoServer, **kwargs: object) -> VaultKeyProvider:
    options: dict[str, object] = {
        "mount": server.mount,
        "subject_key_prefix": PREFIX,
        "timeout_s": 2.0,
    }
    options.update(kwargs)
    return await VaultKeyProvider.open(url=server.url, token=server.token, **options)  # type: ignore[arg-type]


@pytest.fixture
async def provider(openbao_server: OpenBaoServer) -> AsyncIterator[VaultKeyProvider]:
    p = await _open(openbao_server)
    yield p
    await p.close()


@pytest.fixture
def admin(openbao_server: OpenBaoServer) -> hvac.Client:
    """A plain hvac client, to look at Transit as an operator would."""
    return hvac.Client(url=openbao_server.url, token=openbao_server.token)


def _subject() -> str:
    return "s-" + uuid.uuid4().hex


async def test_subject_key_lifecycle(provider: VaultKeyProvider, admin: hvac.Client) -> None:
    """Create, datakey, decrypt, rotate, rewrap, retire; keys are derived and not deletable."""
    assert isinstance(provider, KeyProvider)
    subject = _subject()
    key = await provider.create_subject_key("t1", subject)
    assert key.version == 1
    assert await provider.create_subject_key("t1", subject) == key
    info = admin.secrets.transit.read_key(PREFIX + key.key_id)["data"]
    assert info["derived"] is True
    assert info["deletion_allowed"] is False
    assert info["exportable"] is False
    data_key, wrapped = await provider.generate_data_key(key.key_id, b"aad-1")
    assert len(data_key) == 32
    assert wrapped.blob.startswith(b"vault:v1:")
    assert await provider.unwrap(wrapped, b"aad-1") == data_key
    with pytest.raises(DecryptionFailed):
        await provider.unwrap(wrapped, b"aad-2")
    with pytest.raises(DecryptionFailed):
        await provider.rewrap(wrapped, b"aad-2")
    assert await provider.rotate_subject_key(key.key_id) == 2
    rewrapped = await provider.rewrap(wrapped, b"aad-1")
    assert rewrapped.version == 2
    assert await provider.unwrap(rewrapped, b"aad-1") == data_key
    wrapped_again = await provider.wrap(key.key_id, data_key, b"aad-3")
    assert wrapped_again.version == 2
    assert await provider.unwrap(wrapped_again, b"aad-3") == data_key
    await provider.retire_subject_key_versions(key.key_id, 2)
    with pytest.raises(DecryptionFailed):
        await provider.unwrap(wrapped, b"aad-1")
    assert await provider.unwrap(rewrapped, b"aad-1") == data_key


async def test_envelope_round_trip_and_move_detection(provider: VaultKeyProvider) -> None:
    """Templates sealed under Transit keys open, and not when moved to another subject or tenant."""
    alice, bob = _subject(), _subject()
    keys = {s: await provider.create_subject_key("t1", s) for s in (alice, bob)}
    vector = np.random.default_rng(2).normal(size=128).astype(np.float32)
    sealed = await seal_template(
        provider,
        tenant_id="t1",
        subject_id=alice,
        template_id="tpl",
        model_id="m",
        key=keys[alice],
        embedding=vector,
        quality=0.5,
    )
    np.testing.assert_array_equal(await open_template(provider, sealed), vector)
    for moved in (
        replace(sealed, subject_id=bob),
        replace(sealed, tenant_id="t2"),
        replace(sealed, template_id="x"),
    ):
        with pytest.raises(DecryptionFailed):
            await open_template(provider, moved)
    # Bob's key with Alice's wrapped data key: also refused.
    stolen = WrappedKey(key_id=keys[bob].key_id, version=1, blob=sealed.wrapped_key)
    with pytest.raises(DecryptionFailed):
        await provider.unwrap(stolen, b"anything")


async def test_destroy_is_final(provider: VaultKeyProvider, admin: hvac.Client) -> None:
    """After destroy OpenBao answers 404 and old wrapped keys never open, even under a new key."""
    subject = _subject()
    key = await provider.create_subject_key("t1", subject)
    _, wrapped = await provider.generate_data_key(key.key_id, b"aad")
    await provider.destroy_subject_key(key.key_id)
    await provider.destroy_subject_key(key.key_id)  # idempotent
    with pytest.raises(hvac.exceptions.InvalidPath):  # HTTP 404
        admin.secrets.transit.read_key(PREFIX + key.key_id)
    assert not await provider.subject_key_exists(key.key_id)
    with pytest.raises(DecryptionFailed):
        await provider.unwrap(wrapped, b"aad")
    with pytest.raises(NotFound):
        await provider.generate_data_key(key.key_id, b"aad")
    with pytest.raises(NotFound):
        await provider.wrap(key.key_id, b"k" * 32, b"aad")  # no upsert resurrects it
    assert not await provider.subject_key_exists(key.key_id)
    await provider.create_subject_key("t1", subject)  # same name, new key material
    with pytest.raises(DecryptionFailed):
        await provider.unwrap(wrapped, b"aad")


async def test_es256_signatures_verify_against_the_published_jwk(
    openbao_server: OpenBaoServer,
) -> None:
    """JWS-marshalled Transit signatures are raw r||s and verify with cryptography."""
    provider = await _open(openbao_server, signing_key_name="sig-" + uuid.uuid4().hex[:8])
    try:
        kid = await provider.signing_key_id()
        signature = await provider.sign_es256(b"header.payload", kid=kid)
        jwks = {j["kid"]: j for j in await provider.public_jwks()}
        verify_es256(jwks[kid], b"header.payload", signature)
        with pytest.raises(InvalidSignature):
            verify_es256(jwks[kid], b"header.payloaX", signature)
        new_kid = await provider.rotate_signing_key()
        assert new_kid != kid
        assert await provider.signing_key_id() == new_kid
        jwks = {j["kid"]: j for j in await provider.public_jwks()}
        assert set(jwks) == {kid, new_kid}
        verify_es256(jwks[new_kid], b"x", await provider.sign_es256(b"x"))
        verify_es256(jwks[kid], b"y", await provider.sign_es256(b"y", kid=kid))
    finally:
        await provider.close()


async def test_a_down_server_fails_closed() -> None:
    """Stopped server, wrong URL, revoked token: KeyProviderUnavailable, never a result."""
    server = start_openbao()
    try:
        provider = await _open(server, timeout_s=1.0)
        key = await provider.create_subject_key("t1", _subject())
        _, wrapped = await provider.generate_data_key(key.key_id, b"a")
        # A token that loses its rights (revoked) mid-flight.
        admin = hvac.Client(url=server.url, token=server.token)
        child = admin.auth.token.create(policies=["root"], ttl="1h")["auth"]["client_token"]
        revocable = await VaultKeyProvider.open(
            url=server.url, token=child, mount=server.mount, subject_key_prefix=PREFIX
        )
        assert await revocable.unwrap(wrapped, b"a")
        admin.auth.token.revoke(child)
        with pytest.raises(KeyProviderUnavailable):
            await revocable.unwrap(wrapped, b"a")
        with pytest.raises(KeyProviderUnavailable):
            await VaultKeyProvider.open(url=server.url, token="wrong-token", mount=server.mount)
        with pytest.raises(KeyProviderUnavailable):
            await VaultKeyProvider.open(url=server.url, token=server.token, mount="not-mounted")
        await revocable.close()
        server.stop()
        for call in (
            provider.unwrap(wrapped, b"a"),
            provider.generate_data_key(key.key_id, b"a"),
            provider.destroy_subject_key(key.key_id),
            provider.sign_es256(b"x"),
        ):
            with pytest.raises(KeyProviderUnavailable):
                await call
        await provider.close()
    finally:
        server.stop()
    with pytest.raises(KeyProviderUnavailable):
        await VaultKeyProvider.open(url="http://127.0.0.1:9", token="x", timeout_s=1.0)
