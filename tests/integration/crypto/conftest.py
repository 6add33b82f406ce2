"""Fixtures for the key-provider integration tests: a private SoftHSM2 token, an OpenBao server,
and every real key provider in turn for the tests that must hold for all of them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bioauth.crypto.local_provider import LocalKeyProvider
from bioauth.crypto.pkcs11_provider import Pkcs11KeyProvider
from bioauth.crypto.provider import KeyProvider
from bioauth.crypto.vault_provider import VaultKeyProvider
from tests.support.openbao import OpenBaoServer, openbao_server  # noqa: F401
from tests.support.softhsm import SoftHsmToken, softhsm_token  # noqa: F401


@pytest.fixture(params=["local", "pkcs11", "vault"])
async def each_provider(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[KeyProvider]:
    """Local file, SoftHSM2 and OpenBao Transit in turn, each with a signing key of its own test
    (a fresh key file, token label or Transit key name), so rotations never leak between tests."""
    signing = "sig-" + uuid.uuid4().hex[:12]
    p: KeyProvider
    if request.param == "local":
        p = await LocalKeyProvider.open(tmp_path / "keys.json")
    elif request.param == "pkcs11":
        token: SoftHsmToken = request.getfixturevalue("softhsm_token")
        p = await Pkcs11KeyProvider.open(
            library=token.library,
            token_label=token.label,
            user_pin=token.user_pin,
            signing_key_label=signing,
        )
    else:
        server: OpenBaoServer = request.getfixturevalue("openbao_server")
        p = await VaultKeyProvider.open(
            url=server.url, token=server.token, mount=server.mount, signing_key_name=signing
        )
    assert p.name == request.param
    yield p
    await p.close()
