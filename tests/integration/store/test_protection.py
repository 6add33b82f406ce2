"""What the database holds is useless without the key provider: no plaintext, no moved rows."""

from __future__ import annotations

import asyncio
import subprocess

import numpy as np
import numpy.typing as npt
import pytest

from bioauth.crypto.envelope import open_template
from bioauth.crypto.local_provider import LocalKeyProvider
from bioauth.errors import DecryptionFailed
from tests.integration.store.conftest import Backend
from tests.integration.store.helpers import enroll_new
from tests.integration.store.plaintext import find_leaks
from tests.support.faces import Face

pytestmark = pytest.mark.integration


async def _enroll_face_set(
    backend: Backend, provider: LocalKeyProvider, faces: list[Face]
) -> list[str]:
    """One subject per identity, one template per face; returns the subject ids."""
    by_identity: dict[str, list[Face]] = {}
    for face in faces:
        by_identity.setdefault(face.identity, []).append(face)
    subjects = []
    for identity, group in by_identity.items():
        outcome, _ = await enroll_new(
            backend.store, provider, "bank-a", f"card-{identity}", [f.descriptor for f in group]
        )
        subjects.append(outcome.subject.subject_id)
    return subjects


async def _decrypted(
    backend: Backend, provider: LocalKeyProvider, subjects: list[str]
) -> list[npt.NDArray[np.float32]]:
    vectors = []
    for subject_id in subjects:
        for template in await backend.store.list_templates("bank-a", subject_id):
            vectors.append(await open_template(provider, template))
    return vectors


async def _stored_bytes(backend: Backend) -> dict[str, bytes]:
    """Every byte the database holds for this store: files for SQLite, rows and a dump for PG."""
    if backend.sqlite_path is not None:
        files = {}
        for suffix in ("", "-wal", "-shm", "-journal"):
            path = backend.sqlite_path.with_name(backend.sqlite_path.name + suffix)
            if path.exists():
                files[path.name] = path.read_bytes()
        return files
    assert backend.pg is not None
    tables = await backend.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", backend.pg.schema
    )
    found: dict[str, bytes] = {}
    for (table,) in tables:
        chunks = []
        for row in await backend.fetch(f'SELECT * FROM "{table}"'):
            for value in row:
                chunks.append(value if isinstance(value, bytes) else str(value).encode())
        found[f"rows of {table}"] = b"\x00".join(chunks)
    dump = await asyncio.to_thread(
        subprocess.run,
        ["pg_dump", "--data-only", "--schema", backend.pg.schema, backend.pg.database_dsn],
        capture_output=True,
        check=True,
        timeout=60,
    )
    found["pg_dump"] = dump.stdout
    return found


async def test_no_stored_byte_holds_a_template_in_any_encoding(
    backend: Backend, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """Scan the database (SQLite file, -wal, -shm; PostgreSQL rows and pg_dump) for the plaintext
    the store's own decrypt returns, as float32/float64/fp16, normalised, base64, hex and text."""
    subjects = await _enroll_face_set(backend, local_provider, faces)
    vectors = await _decrypted(backend, local_provider, subjects)
    assert len(vectors) == len(faces)
    for face, vector in zip(sorted(faces, key=lambda f: f.identity), vectors, strict=False):
        assert vector.shape == face.descriptor.shape
    haystacks = await _stored_bytes(backend)
    assert sum(len(h) for h in haystacks.values()) > 0
    if backend.kind == "sqlite":
        assert "store.sqlite3-wal" in haystacks  # the WAL is scanned while it holds the writes
    assert find_leaks(haystacks, vectors) == []
    await backend.store.close()
    assert find_leaks(await _stored_bytes(backend), vectors) == []

    # Control: the same scan does find a vector once one is written in the clear.
    await backend.execute(
        "CREATE TABLE leak (b BYTEA)" if backend.pg else "CREATE TABLE leak (b BLOB)"
    )
    await backend.execute("INSERT INTO leak (b) VALUES (?)", vectors[3].astype("<f4").tobytes())
    leaks = find_leaks(await _stored_bytes(backend), vectors)
    assert any(leak.startswith("template 3 as f32<") for leak in leaks)


async def test_a_ciphertext_moved_to_another_row_does_not_decrypt(
    backend: Backend, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """Copying one subject's sealed template over another's row, or moving the row to another
    subject or tenant, makes decryption fail: the AAD binds tenant, subject and template id."""
    a, a_sealed = await enroll_new(
        backend.store, local_provider, "bank-a", "a", [faces[0].descriptor]
    )
    b, b_sealed = await enroll_new(
        backend.store, local_provider, "bank-a", "b", [faces[5].descriptor]
    )
    c, _ = await enroll_new(backend.store, local_provider, "bank-b", "c", [faces[9].descriptor])
    source = a_sealed[0]

    # 1. A's ciphertext, nonce and wrapped key pasted into B's row (same tenant).
    await backend.execute(
        "UPDATE templates SET nonce = ?, ciphertext = ?, wrapped_key = ?, key_id = ?, "
        "key_version = ? WHERE template_id = ?",
        source.nonce, source.ciphertext, source.wrapped_key, source.key_id, source.key_version,
        b_sealed[0].template_id,
    )  # fmt: skip
    [pasted] = await backend.store.list_templates("bank-a", b.subject.subject_id)
    assert pasted.ciphertext == source.ciphertext
    with pytest.raises(DecryptionFailed):
        await open_template(local_provider, pasted)

    # 2. A's whole row re-assigned to the subject of another tenant.
    await backend.execute(
        "UPDATE templates SET tenant_id = ?, subject_id = ? WHERE template_id = ?",
        "bank-b", c.subject.subject_id, source.template_id,
    )  # fmt: skip
    moved = [
        t
        for t in await backend.store.list_templates("bank-b", c.subject.subject_id)
        if t.template_id == source.template_id
    ]
    assert len(moved) == 1
    with pytest.raises(DecryptionFailed):
        await open_template(local_provider, moved[0])

    # 3. The row moved back to A's subject, but under another template id.
    await backend.execute(
        "UPDATE templates SET tenant_id = ?, subject_id = ?, template_id = ? WHERE template_id = ?",
        "bank-a", a.subject.subject_id, "renamed-" + source.template_id, source.template_id,
    )  # fmt: skip
    [renamed] = await backend.store.list_templates("bank-a", a.subject.subject_id)
    with pytest.raises(DecryptionFailed):
        await open_template(local_provider, renamed)

    # Control: put everything back as it was and it opens again.
    await backend.execute(
        "UPDATE templates SET template_id = ? WHERE template_id = ?",
        source.template_id, renamed.template_id,
    )  # fmt: skip
    [restored] = await backend.store.list_templates("bank-a", a.subject.subject_id)
    vector = await open_template(local_provider, restored)
    np.testing.assert_array_equal(vector, faces[0].descriptor.astype(np.float32))
