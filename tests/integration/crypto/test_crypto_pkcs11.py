"""PKCS#11 key provider against a real SoftHSM2 token (a private one per test run)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pkcs11
import pytest
from cryptography.exceptions import InvalidSignature
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import AttributeSensitive

from bioauth.crypto.envelope import open_template, seal_template
from bioauth.crypto.pkcs11_provider import Pkcs11KeyProvider
from bioauth.crypto.provider import KeyProvider
from bioauth.errors import DecryptionFailed, KeyProviderUnavailable, NotFound
from tests.support.es256 import verify_es256
from tests.support.softhsm import SoftHsmToken, make_token

pytestmark = pytest.mark.integration

SIGNING_LABEL = "bioauth-token-signing-test"


async def _open(token: SoftHsmToken, signing_label: str = SIGNING_LABEL) -> Pkcs11KeyProvider:
    return await Pkcs11KeyProvider.open(
        library=token.library,
        token_label=token.label,
        user_pin=token.user_pin,
        signing_key_label=signing_label,
    )


@pytest.fixture
async def provider(softhsm_token: SoftHsmToken) -> AsyncIterator[Pkcs11KeyProvider]:
    p = await _open(softhsm_token)
    yield p
    await p.close()


@pytest.fixture
def raw_session(softhsm_token: SoftHsmToken, provider: Pkcs11KeyProvider) -> Any:
    """An independent session on the same token, to look at objects as an auditor would.

    No PIN: the login belongs to the process, and ``provider`` already holds it.
    """
    token = pkcs11.lib(str(softhsm_token.library)).get_token(token_label=softhsm_token.label)
    with token.open() as session:
        yield session


def _subject() -> str:
    return "s-" + uuid.uuid4().hex


async def test_subject_key_lifecycle(provider: Pkcs11KeyProvider) -> None:
    """Create, wrap, unwrap, rotate, rewrap, retire: each step keeps or refuses what it should."""
    assert isinstance(provider, KeyProvider)
    key = await provider.create_subject_key("t1", _subject())
    assert key.version == 1
    assert await provider.create_subject_key("t1", key.key_id.split(".", 1)[1]) == key  # idempotent
    data_key, wrapped = await provider.generate_data_key(key.key_id, b"aad-1")
    assert await provider.unwrap(wrapped, b"aad-1") == data_key
    with pytest.raises(DecryptionFailed):
        await provider.unwrap(wrapped, b"aad-2")
    assert await provider.rotate_subject_key(key.key_id) == 2
    rewrapped = await provider.rewrap(wrapped, b"aad-1")
    assert rewrapped.version == 2
    assert rewrapped.blob != wrapped.blob
    assert await provider.unwrap(rewrapped, b"aad-1") == data_key
    _, fresh = await provider.generate_data_key(key.key_id, b"x")
    assert fresh.version == 2
    await provider.retire_subject_key_versions(key.key_id, 2)
    with pytest.raises(DecryptionFailed):
        await provider.unwrap(wrapped, b"aad-1")
    assert await provider.unwrap(rewrapped, b"aad-1") == data_key


async def test_envelope_round_trip_and_move_detection(provider: Pkcs11KeyProvider) -> None:
    """Templates sealed under HSM keys open, and not when moved to another subject."""
    alice, bob = _subject(), _subject()
    keys = {s: await provider.create_subject_key("t1", s) for s in (alice, bob)}
    vector = np.random.default_rng(1).normal(size=128).astype(np.float32)
    sealed = await seal_template(
        provider,
        tenant_id="t1",
        subject_id=alice,
        template_id="tpl",
        model_id="m",
        key=keys[alice],
        embedding=vector,
        quality=0.9,
    )
    np.testing.assert_array_equal(await open_template(provider, sealed), vector)
    with pytest.raises(DecryptionFailed):
        await open_template(provider, replace(sealed, subject_id=bob))
    with pytest.raises(DecryptionFailed):
        await open_template(provider, replace(sealed, tenant_id="t2"))


async def test_destroy_leaves_nothing_in_the_token(
    provider: Pkcs11KeyProvider, raw_session: Any
) -> None:
    """After destroy a find by id or label returns nothing and old wrapped keys never open again."""
    key = await provider.create_subject_key("t1", _subject())
    await provider.rotate_subject_key(key.key_id)
    _, wrapped = await provider.generate_data_key(key.key_id, b"aad")
    assert len(list(raw_session.get_objects({Attribute.LABEL: key.key_id}))) == 2
    await provider.destroy_subject_key(key.key_id)
    await provider.destroy_subject_key(key.key_id)  # idempotent
    for version in (1, 2):
        assert (
            list(raw_session.get_objects({Attribute.ID: f"{key.key_id}/v{version}".encode()})) == []
        )
    assert list(raw_session.get_objects({Attribute.LABEL: key.key_id})) == []
    assert not await provider.subject_key_exists(key.key_id)
    with pytest.raises(DecryptionFailed):
        await provider.unwrap(wrapped, b"aad")
    with pytest.raises(NotFound):
        await provider.wrap(key.key_id, b"k" * 32, b"aad")


async def test_a_stale_cached_handle_is_refreshed(softhsm_token: SoftHsmToken) -> None:
    """A key destroyed or rotated through another session is seen on the next use."""
    server, cli = await _open(softhsm_token), await _open(softhsm_token)
    try:
        key = await server.create_subject_key("t1", _subject())
        data_key, wrapped = await server.generate_data_key(key.key_id, b"a")
        assert await cli.rotate_subject_key(key.key_id) == 2
        newer = await cli.rewrap(wrapped, b"a")
        assert await server.unwrap(newer, b"a") == data_key  # miss on v2: refresh
        await cli.destroy_subject_key(key.key_id)
        with pytest.raises(DecryptionFailed):
            await server.unwrap(wrapped, b"a")  # cached handle is stale now
    finally:
        await server.close()
        await cli.close()


async def test_keys_are_generated_in_the_token_and_cannot_be_read_out(
    provider: Pkcs11KeyProvider, raw_session: Any
) -> None:
    """Reading CKA_VALUE of a subject key or the EC private key fails; both were born sensitive."""
    key = await provider.create_subject_key("t1", _subject())
    await provider.signing_key_id()
    subject_obj = next(iter(raw_session.get_objects({Attribute.LABEL: key.key_id})))
    ec_private = next(
        iter(
            raw_session.get_objects(
                {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: SIGNING_LABEL}
            )
        )
    )
    for obj in (subject_obj, ec_private):
        with pytest.raises(AttributeSensitive):
            obj[Attribute.VALUE]
        assert obj[Attribute.EXTRACTABLE] is False
        assert obj[Attribute.NEVER_EXTRACTABLE] is True
        assert obj[Attribute.ALWAYS_SENSITIVE] is True
        assert obj[Attribute.LOCAL] is True  # generated inside the token, never imported


async def test_es256_signatures_verify_against_the_published_jwk(
    provider: Pkcs11KeyProvider,
) -> None:
    """Token signatures are raw r||s over SHA-256 and verify with cryptography; rotation keeps old kids."""
    kid = await provider.signing_key_id()
    signature = await provider.sign_es256(b"header.payload", kid=kid)
    jwks = {j["kid"]: j for j in await provider.public_jwks()}
    verify_es256(jwks[kid], b"header.payload", signature)
    with pytest.raises(InvalidSignature):
        verify_es256(jwks[kid], b"header.payloaX", signature)
    new_kid = await provider.rotate_signing_key()
    assert await provider.signing_key_id() == new_kid
    jwks = {j["kid"]: j for j in await provider.public_jwks()}
    assert {kid, new_kid} <= set(jwks)
    verify_es256(jwks[new_kid], b"x", await provider.sign_es256(b"x"))
    verify_es256(jwks[kid], b"y", await provider.sign_es256(b"y", kid=kid))


async def test_a_closed_provider_fails_closed(softhsm_token: SoftHsmToken) -> None:
    """After close every call is KeyProviderUnavailable, never a silent success."""
    p = await _open(softhsm_token)
    key = await p.create_subject_key("t1", _subject())
    await p.close()
    await p.close()
    with pytest.raises(KeyProviderUnavailable):
        await p.generate_data_key(key.key_id, b"a")
    with pytest.raises(KeyProviderUnavailable):
        await p.sign_es256(b"x")


_BROKEN_TOKEN_SCRIPT = textwrap.dedent(
    """
    import asyncio, shutil, sys
    from pathlib import Path
    from bioauth.crypto.pkcs11_provider import Pkcs11KeyProvider
    from bioauth.errors import KeyProviderUnavailable

    library, label, pin, token_dir = sys.argv[1:5]

    async def expect_unavailable(coro):
        try:
            await coro
        except KeyProviderUnavailable:
            return "unavailable"
        except Exception as exc:
            return type(exc).__name__
        return "succeeded"

    async def main():
        lib = Path(library)
        args = dict(library=lib, signing_key_label="sig")
        print("RESULT wrong-label", await expect_unavailable(
            Pkcs11KeyProvider.open(token_label="no-such-token", user_pin=pin, **args)))
        print("RESULT wrong-pin", await expect_unavailable(
            Pkcs11KeyProvider.open(token_label=label, user_pin="9999", **args)))
        p = await Pkcs11KeyProvider.open(token_label=label, user_pin=pin, **args)
        key = await p.create_subject_key("t1", "s1")
        _, wrapped = await p.generate_data_key(key.key_id, b"a")
        await p.signing_key_id()
        shutil.rmtree(token_dir)  # the token is gone (removed, wiped, replaced)
        print("RESULT unwrap", await expect_unavailable(p.unwrap(wrapped, b"a")))
        print("RESULT wrap", await expect_unavailable(p.generate_data_key(key.key_id, b"a")))
        print("RESULT destroy", await expect_unavailable(p.destroy_subject_key(key.key_id)))
        print("RESULT sign", await expect_unavailable(p.sign_es256(b"x")))

    asyncio.run(main())
    """
)


def test_a_removed_token_or_bad_credentials_fail_closed(tmp_path: Path) -> None:
    """Wrong token label or PIN, or a token wiped under a running provider: KeyProviderUnavailable.

    In a subprocess: the PKCS#11 library reads its configuration once per process.
    """
    token = make_token(tmp_path, label="doomed")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _BROKEN_TOKEN_SCRIPT,
            str(token.library),
            token.label,
            token.user_pin,
            str(token.token_dir),
        ],
        env=token.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = dict(
        line.split(" ")[1:3] for line in result.stdout.splitlines() if line.startswith("RESULT ")
    )
    assert outcome == {
        "wrong-label": "unavailable",
        "wrong-pin": "unavailable",
        "unwrap": "unavailable",
        "wrap": "unavailable",
        "destroy": "unavailable",
        "sign": "unavailable",
    }
