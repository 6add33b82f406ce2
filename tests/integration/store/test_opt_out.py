"""Opt-out makes every copy unreadable: a snapshot taken before it no longer opens for that person.

Run for each backend and each real key provider (local file, SoftHSM2, OpenBao).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from bioauth.crypto.envelope import SealedTemplate, open_template, wrap_aad
from bioauth.crypto.provider import KeyProvider
from bioauth.errors import DecryptionFailed
from bioauth.service.opt_out import OptOutService, OptOutState
from bioauth.store.postgres import PostgresTemplateStore
from bioauth.store.protocol import SubjectStatus, TemplateStore
from bioauth.store.sqlite import SqliteTemplateStore
from tests.integration.store.conftest import Backend, open_provider
from tests.integration.store.helpers import enroll_new
from tests.support.faces import Face

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "pkcs11", "vault"])
async def provider(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KeyProvider]:
    opened = await open_provider(request.param, request, tmp_path)
    try:
        yield opened
    finally:
        await opened.close()


def _take_snapshot(backend: Backend, tmp_path: Path) -> Path:
    """A copy of the database as a backup would hold it: the SQLite files, or a pg_dump."""
    if backend.sqlite_path is not None:
        snap = tmp_path / "snapshot"
        snap.mkdir()
        for suffix in ("", "-wal", "-shm"):
            source = backend.sqlite_path.with_name(backend.sqlite_path.name + suffix)
            if source.exists():
                shutil.copy2(source, snap / source.name)
        return snap / backend.sqlite_path.name
    assert backend.pg is not None
    dump = tmp_path / "snapshot.pgdump"
    subprocess.run(
        ["pg_dump", "-Fc", "--schema", backend.pg.schema, "-f", str(dump), backend.pg.database_dsn],
        check=True,
        timeout=60,
    )
    return dump


async def _restore(
    backend: Backend, snapshot: Path, stack: contextlib.AsyncExitStack
) -> TemplateStore:
    if backend.sqlite_path is not None:
        store: TemplateStore = await SqliteTemplateStore.open(snapshot, migrate=False)
    else:
        assert backend.pg is not None
        name = "bioauth_restore_" + secrets.token_hex(4)
        admin = backend.pg.database_dsn.rsplit("/", 1)[0] + "/postgres"
        await asyncio.to_thread(
            subprocess.run,
            ["psql", admin, "-c", f'CREATE DATABASE "{name}"'],
            check=True,
            capture_output=True,
            timeout=60,
        )
        stack.callback(
            subprocess.run,
            ["psql", admin, "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
            capture_output=True,
            timeout=60,
        )
        target = backend.pg.database_dsn.rsplit("/", 1)[0] + "/" + name
        await asyncio.to_thread(
            subprocess.run, ["pg_restore", "-d", target, str(snapshot)], check=True, timeout=60
        )
        store = await PostgresTemplateStore.open(
            f"{target}?search_path={backend.pg.schema}", migrate=False, max_size=2
        )
    stack.push_async_callback(store.close)
    return store


def _key_gone_inside(
    provider: KeyProvider, key_id: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Ask the key store itself, not the provider class: the key object must be gone."""
    if provider.name == "local":
        data = json.loads((tmp_path / "dev-keys.json").read_text())
        assert key_id not in json.dumps(data)
    elif provider.name == "pkcs11":
        import pkcs11
        from pkcs11 import Attribute

        token = request.getfixturevalue("softhsm_token")
        session_token = pkcs11.lib(str(token.library)).get_token(token_label=token.label)
        with session_token.open() as session:
            assert list(session.get_objects({Attribute.LABEL: key_id})) == []
    else:
        server = request.getfixturevalue("openbao_server")
        url = f"{server.url}/v1/{server.mount}/keys/bioauth-subject-{key_id}"
        lookup = urllib.request.Request(url, headers={"X-Vault-Token": server.token})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(lookup, timeout=5)
        assert answer.value.code == 404


async def _every_path_fails(provider: KeyProvider, template: SealedTemplate) -> None:
    with pytest.raises(DecryptionFailed):
        await open_template(provider, template)
    aad = wrap_aad(
        tenant_id=template.tenant_id, subject_id=template.subject_id,
        template_id=template.template_id, model_id=template.model_id,
        format_version=template.format_version,
    )  # fmt: skip
    with pytest.raises(DecryptionFailed):
        await provider.unwrap(template.wrapped, aad)
    with pytest.raises(DecryptionFailed):
        await provider.rewrap(template.wrapped, aad)


async def test_opt_out_shreds_the_subject_in_a_snapshot_taken_before_it(
    backend: Backend,
    provider: KeyProvider,
    faces: list[Face],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """After opt-out: the snapshot's templates of that subject open by no path, the others still
    do, the key is gone from the provider itself, and the audit chain records it and verifies."""
    groups: dict[str, list[Face]] = {}
    for face in faces:
        groups.setdefault(face.identity, []).append(face)
    enrolled = []
    for identity, group in list(groups.items())[:3]:
        outcome, _sealed = await enroll_new(
            backend.store, provider, "bank-a", f"card-{identity}", [f.descriptor for f in group]
        )
        enrolled.append((outcome.subject, group))
    leaving, leaving_faces = enrolled[0]

    async with contextlib.AsyncExitStack() as stack:
        snapshot = _take_snapshot(backend, tmp_path)
        service = OptOutService(backend.store, provider)
        result = await service.request("bank-a", external_ref=leaving.external_ref or "")
        assert result.state is OptOutState.DONE
        assert not await provider.subject_key_exists(leaving.key_id)
        _key_gone_inside(provider, leaving.key_id, tmp_path, request)

        copy = await _restore(backend, snapshot, stack)
        in_copy = await copy.list_templates("bank-a", leaving.subject_id)
        assert len(in_copy) == len(leaving_faces)  # the copy still has the rows...
        for template in in_copy:
            await _every_path_fails(provider, template)  # ...and none of them opens
        for subject, group in enrolled[1:]:
            opened = [
                await open_template(provider, t)
                for t in await copy.list_templates("bank-a", subject.subject_id)
            ]
            expected = sorted(tuple(f.descriptor.astype(np.float32)) for f in group)
            assert sorted(tuple(v) for v in opened) == expected

    live = await backend.store.get_subject_by_id("bank-a", leaving.subject_id)
    assert live is not None
    assert live.status is SubjectStatus.OPTED_OUT
    assert await backend.store.list_templates("bank-a", leaving.subject_id) == []
    assert (
        await backend.fetch(
            "SELECT count(*) FROM templates WHERE subject_id = ?", leaving.subject_id
        )
    ) == [(0,)]
    operations = [r.entry.operation for r in await backend.store.read_audit("bank-a")]
    assert operations[-2:] == ["opt_out.requested", "opt_out.completed"]
    assert (await backend.store.verify_audit_chain("bank-a")).ok


async def test_sqlite_keeps_no_copy_of_an_opted_out_subjects_rows(
    tmp_path: Path, faces: list[Face]
) -> None:
    """secure_delete and the WAL truncation: after opt-out neither the file nor the WAL holds the
    deleted ciphertexts or wrapped keys, while the other subject's are there (the control)."""
    from bioauth.crypto.local_provider import LocalKeyProvider

    path = tmp_path / "shred.sqlite3"
    provider = await LocalKeyProvider.open(tmp_path / "keys.json")
    store = await SqliteTemplateStore.open(path)
    try:
        _, leaving_sealed = await enroll_new(
            store, provider, "bank-a", "leaving", [f.descriptor for f in faces[:3]]
        )
        _, staying_sealed = await enroll_new(
            store, provider, "bank-a", "staying", [faces[5].descriptor]
        )
        result = await OptOutService(store, provider).request("bank-a", external_ref="leaving")
        assert result.state is OptOutState.DONE
        wal = path.with_name(path.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0  # checkpointed and truncated
    finally:
        await store.close()
        await provider.close()
    stored = b"".join(
        p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists()
    )
    for template in leaving_sealed:
        assert template.ciphertext[:32] not in stored
        assert template.wrapped_key not in stored
    assert staying_sealed[0].ciphertext in stored
