"""Vault Transit key provider against a real OpenBao dev server (no recorded responses)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import hvac
import hvac.exceptions
import pytest

from bioauth.crypto import vault_provider
from bioauth.crypto.vault_provider import VaultKeyProvider
from bioauth.errors import DecryptionFailed, KeyProviderUnavailable, NotFound
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


async def test_subject_keys_are_derived_and_not_deletable(
    provider: VaultKeyProvider, admin: hvac.Client
) -> None:
    """Transit keys are created derived (context = the binding), not deletable, not exportable,
    and wrap data keys as Transit ciphertext (the shared lifecycle is in the provider contract)."""
    key = await provider.create_subject_key("t1", _subject())
    info = admin.secrets.transit.read_key(PREFIX + key.key_id)["data"]
    assert info["derived"] is True
    assert info["deletion_allowed"] is False
    assert info["exportable"] is False
    _, wrapped = await provider.generate_data_key(key.key_id, b"aad-1")
    assert wrapped.blob.startswith(b"vault:v1:")


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


async def test_a_rotation_by_another_replica_is_picked_up_within_the_version_ttl(
    openbao_server: OpenBaoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replica B reads the newest signing version at most every 30 s (one GET saved per
    approval); meanwhile its tokens carry the version it knows, which the JWKS still lists."""
    name = "sig-" + uuid.uuid4().hex[:10]
    a = await _open(openbao_server, signing_key_name=name)
    b = await _open(openbao_server, signing_key_name=name)
    try:
        first = await b.signing_key_id()
        rotated = await a.rotate_signing_key()
        assert rotated != first
        assert await b.signing_key_id() == first, "within the TTL B keeps the version it read"
        assert first in {jwk["kid"] for jwk in await b.public_jwks()}
        signature = await b.sign_es256(b"payload")
        assert len(signature) == 64
        monkeypatch.setattr(vault_provider, "_SIGNING_VERSION_TTL_S", 0.0)
        assert await b.signing_key_id() == rotated, "after the TTL B reads the new version"
    finally:
        await a.close()
        await b.close()


async def test_a_mount_never_initialised_for_bioauth_refuses_to_open(
    openbao_server: OpenBaoServer, admin: hvac.Client
) -> None:
    """A fresh (or wiped, or wrong) Transit mount fails closed at open; `bioauth keys init`
    (``initialise=True``) marks it once, and then it opens."""
    mount = "fresh-" + uuid.uuid4().hex[:8]
    admin.sys.enable_secrets_engine("transit", path=mount)
    with pytest.raises(KeyProviderUnavailable, match="never initialised"):
        await _open(openbao_server, mount=mount)
    initialised = await _open(openbao_server, mount=mount, initialise=True)
    await initialised.close()
    reopened = await _open(openbao_server, mount=mount)
    await reopened.close()
