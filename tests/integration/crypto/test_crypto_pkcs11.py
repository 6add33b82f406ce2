"""PKCS#11 key provider against a real SoftHSM2 token (a private one per test run)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import AttributeSensitive

from bioauth.crypto.pkcs11_provider import Pkcs11KeyProvider
from bioauth.errors import DecryptionFailed, KeyProviderUnavailable, NotFound
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

    library, label, pin, token_dir, blank = sys.argv[1:6]

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
        print("RESULT uninitialised", await expect_unavailable(
            Pkcs11KeyProvider.open(token_label=blank, user_pin=pin, **args)))
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
    """Wrong token label or PIN, a token never initialised for bioauth (what a wiped or replaced
    token looks like at start-up), or a token wiped under a running provider:
    KeyProviderUnavailable, never a subject that looks opted out.

    In a subprocess: the PKCS#11 library reads its configuration once per process. The first
    token is initialised by ``bioauth keys init`` (``make_token``), the second is left blank.
    """
    token = make_token(tmp_path, label="doomed")
    blank = make_token(tmp_path, label="blank", for_bioauth=False)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _BROKEN_TOKEN_SCRIPT,
            str(token.library),
            token.label,
            token.user_pin,
            str(token.token_dir),
            blank.label,
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
        "uninitialised": "unavailable",
        "unwrap": "unavailable",
        "wrap": "unavailable",
        "destroy": "unavailable",
        "sign": "unavailable",
    }
