"""open_key_provider builds each provider from settings, against the real backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from bioauth.config import load_settings
from bioauth.crypto.factory import open_key_provider
from bioauth.crypto.local_provider import LocalKeyProvider
from bioauth.crypto.pkcs11_provider import Pkcs11KeyProvider
from bioauth.crypto.vault_provider import VaultKeyProvider
from bioauth.errors import KeyProviderUnavailable
from tests.support.openbao import OpenBaoServer
from tests.support.softhsm import SoftHsmToken

pytestmark = pytest.mark.integration


async def test_local_from_settings(tmp_path: Path) -> None:
    """The embedded default is the local provider, at the configured path."""
    settings = load_settings(keys={"provider": "local", "local_path": tmp_path / "k.json"})
    provider = await open_key_provider(settings)
    assert isinstance(provider, LocalKeyProvider)
    assert (tmp_path / "k.json").is_file()
    await provider.close()


async def test_pkcs11_from_settings(softhsm_token: SoftHsmToken) -> None:
    """keys.pkcs11 names the library, token and PIN; a wrong PIN fails closed."""
    pkcs11 = {
        "library": softhsm_token.library,
        "token_label": softhsm_token.label,
        "user_pin": softhsm_token.user_pin,
    }
    provider = await open_key_provider(load_settings(keys={"provider": "pkcs11", "pkcs11": pkcs11}))
    assert isinstance(provider, Pkcs11KeyProvider)
    assert (await provider.signing_key_id()).startswith("bioauth-token-signing.v")
    await provider.close()
    wrong = {**pkcs11, "token_label": "absent"}
    with pytest.raises(KeyProviderUnavailable):
        await open_key_provider(load_settings(keys={"provider": "pkcs11", "pkcs11": wrong}))


async def test_vault_from_settings(openbao_server: OpenBaoServer) -> None:
    """keys.vault names the server, token and mount."""
    vault = {
        "url": openbao_server.url,
        "token": openbao_server.token,
        "mount": openbao_server.mount,
    }
    provider = await open_key_provider(load_settings(keys={"provider": "vault", "vault": vault}))
    assert isinstance(provider, VaultKeyProvider)
    key = await provider.create_subject_key("t1", "factory")
    assert await provider.subject_key_exists(key.key_id)
    await provider.close()
