"""Local development key provider: file permissions, destroy, rotation, signing, refusal."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bioauth.crypto.local_provider import LocalKeyProvider
from bioauth.crypto.provider import KeyProvider, subject_key_id
from bioauth.errors import DecryptionFailed, InvalidInput, KeyProviderUnavailable


async def test_key_file_is_created_0600_and_satisfies_the_protocol(tmp_path: Path) -> None:
    """First run creates the file owner-only."""
    path = tmp_path / "sub" / "keys.json"
    provider = await LocalKeyProvider.open(path)
    assert isinstance(provider, KeyProvider)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    await provider.create_subject_key("t1", "s1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_refused_in_production(tmp_path: Path) -> None:
    """Production settings never get the development provider."""
    with pytest.raises(KeyProviderUnavailable):
        await LocalKeyProvider.open(tmp_path / "keys.json", environment="production")
    assert not (tmp_path / "keys.json").exists()


async def test_a_group_readable_key_file_is_refused(tmp_path: Path) -> None:
    """A key file someone loosened is not trusted."""
    path = tmp_path / "keys.json"
    await LocalKeyProvider.open(path)
    path.chmod(0o640)
    with pytest.raises(KeyProviderUnavailable):
        await LocalKeyProvider.open(path)


async def test_destroy_removes_the_key_from_the_file(tmp_path: Path) -> None:
    """Destroy deletes the key from disk; old wrapped keys no longer open, even after a reload."""
    path = tmp_path / "keys.json"
    provider = await LocalKeyProvider.open(path)
    key = await provider.create_subject_key("t1", "s1")
    data_key, wrapped = await provider.generate_data_key(key.key_id, b"aad")
    assert await provider.unwrap(wrapped, b"aad") == data_key
    await provider.destroy_subject_key(key.key_id)
    await provider.destroy_subject_key(key.key_id)  # idempotent
    assert key.key_id not in json.loads(path.read_text())["subject_keys"]
    assert not await provider.subject_key_exists(key.key_id)
    reopened = await LocalKeyProvider.open(path)
    with pytest.raises(DecryptionFailed):
        await reopened.unwrap(wrapped, b"aad")


async def test_rotate_rewrap_retire(tmp_path: Path) -> None:
    """Rewrap moves to the newest version; retiring old versions leaves rewrapped keys readable."""
    provider = await LocalKeyProvider.open(tmp_path / "keys.json")
    key = await provider.create_subject_key("t1", "s1")
    data_key, old = await provider.generate_data_key(key.key_id, b"aad")
    assert await provider.rotate_subject_key(key.key_id) == 2
    with pytest.raises(DecryptionFailed):
        await provider.rewrap(old, b"other aad")
    new = await provider.rewrap(old, b"aad")
    assert new.version == 2
    assert await provider.rewrap(new, b"aad") == new
    await provider.retire_subject_key_versions(key.key_id, 2)
    assert await provider.unwrap(new, b"aad") == data_key
    with pytest.raises(DecryptionFailed):
        await provider.unwrap(old, b"aad")


async def test_a_second_process_sees_rotations(tmp_path: Path) -> None:
    """Two providers on one file (server and CLI) stay consistent."""
    path = tmp_path / "keys.json"
    server = await LocalKeyProvider.open(path)
    cli = await LocalKeyProvider.open(path)
    key = await server.create_subject_key("t1", "s1")
    assert await cli.rotate_subject_key(key.key_id) == 2
    _, wrapped = await cli.generate_data_key(key.key_id, b"a")
    assert (await server.unwrap(wrapped, b"a")) is not None


async def test_signing_with_an_unknown_kid_is_refused(tmp_path: Path) -> None:
    """Only the provider's own signing kids sign (the ES256 round trip is in the provider
    contract, tests/integration/crypto)."""
    provider = await LocalKeyProvider.open(tmp_path / "keys.json")
    await provider.sign_es256(b"x", kid=await provider.signing_key_id())
    with pytest.raises(InvalidInput):
        await provider.sign_es256(b"x", kid="someone-else.v1")


def test_subject_key_ids_are_unambiguous() -> None:
    """Tenant ids cannot contain the separator, so no two (tenant, subject) pairs share an id."""
    assert subject_key_id("a-b", "c") != subject_key_id("a", "b-c")
    with pytest.raises(InvalidInput):
        subject_key_id("a.b", "c")
    with pytest.raises(InvalidInput):
        subject_key_id("a", "b/c")
