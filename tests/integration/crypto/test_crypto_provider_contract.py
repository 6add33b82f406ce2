"""One contract for every key provider: the same behaviour from local, PKCS#11 and Transit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from bioauth.crypto.envelope import SealedTemplate, open_template, seal_template
from bioauth.crypto.local_provider import LocalKeyProvider
from bioauth.crypto.pkcs11_provider import Pkcs11KeyProvider
from bioauth.crypto.provider import KeyProvider, WrappedKey
from bioauth.crypto.vault_provider import VaultKeyProvider
from bioauth.errors import DecryptionFailed, NotFound
from tests.support.openbao import OpenBaoServer
from tests.support.softhsm import SoftHsmToken

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "pkcs11", "vault"])
async def provider(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KeyProvider]:
    p: KeyProvider
    if request.param == "local":
        p = await LocalKeyProvider.open(tmp_path / "keys.json")
    elif request.param == "pkcs11":
        token: SoftHsmToken = request.getfixturevalue("softhsm_token")
        p = await Pkcs11KeyProvider.open(
            library=token.library,
            token_label=token.label,
            user_pin=token.user_pin,
            signing_key_label="contract-sig",
        )
    else:
        server: OpenBaoServer = request.getfixturevalue("openbao_server")
        p = await VaultKeyProvider.open(url=server.url, token=server.token, mount=server.mount)
    assert p.name == request.param
    yield p
    await p.close()


def _subject() -> str:
    return "c-" + uuid.uuid4().hex


async def test_concurrent_seal_and_open(provider: KeyProvider) -> None:
    """Many templates of many subjects sealed and opened at once all round-trip."""
    subjects = [_subject() for _ in range(8)]
    keys = await asyncio.gather(*(provider.create_subject_key("tc", s) for s in subjects))
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(64, 128)).astype(np.float32)

    async def seal(i: int) -> SealedTemplate:
        return await seal_template(
            provider,
            tenant_id="tc",
            subject_id=subjects[i % 8],
            template_id=f"tpl-{i}",
            model_id="m",
            key=keys[i % 8],
            embedding=vectors[i],
            quality=1.0,
        )

    sealed = await asyncio.gather(*(seal(i) for i in range(64)))
    opened = await asyncio.gather(*(open_template(provider, s) for s in sealed))
    np.testing.assert_array_equal(np.stack(opened), vectors)


async def test_versions_and_destroy_behave_alike(provider: KeyProvider) -> None:
    """Rotation, rewrap, destroy and missing keys give the same answers everywhere."""
    key = await provider.create_subject_key("tc", _subject())
    assert await provider.subject_key_exists(key.key_id)
    data_key, v1 = await provider.generate_data_key(key.key_id, b"aad")
    assert (v1.key_id, v1.version) == (key.key_id, 1)
    assert await provider.rotate_subject_key(key.key_id) == 2
    assert await provider.rotate_subject_key(key.key_id) == 3
    v3 = await provider.rewrap(v1, b"aad")
    assert v3.version == 3
    assert (
        await provider.rewrap(v3, b"aad") == v3 or (await provider.unwrap(v3, b"aad")) == data_key
    )
    await provider.destroy_subject_key(key.key_id)
    assert not await provider.subject_key_exists(key.key_id)
    for wrapped in (v1, v3):
        with pytest.raises(DecryptionFailed):
            await provider.unwrap(wrapped, b"aad")
        with pytest.raises(DecryptionFailed):
            await provider.rewrap(wrapped, b"aad")
    with pytest.raises(NotFound):
        await provider.rotate_subject_key(key.key_id)
    with pytest.raises(NotFound):
        await provider.generate_data_key(key.key_id, b"aad")
    with pytest.raises(DecryptionFailed):
        await provider.unwrap(WrappedKey(key_id="tc.never-made", version=1, blob=v1.blob), b"aad")
    await provider.destroy_subject_key("tc.never-made")
