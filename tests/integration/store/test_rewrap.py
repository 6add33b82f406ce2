"""Key rotation and rewrap: versions move, old ones can be retired, readers never fail meanwhile."""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from bioauth.cli.main import main
from bioauth.crypto.envelope import SealedTemplate, open_template, wrap_aad
from bioauth.crypto.local_provider import LocalKeyProvider
from bioauth.crypto.provider import KeyProvider, WrappedKey
from bioauth.errors import DecryptionFailed, KeyProviderUnavailable
from bioauth.service.opt_out import OptOutService
from bioauth.service.rewrap import rewrap_templates, rotate_subject_keys
from bioauth.store.protocol import TemplateStore, new_subject_id
from tests.integration.store.conftest import Backend
from tests.integration.store.helpers import enroll_new, enrolment, seal_all
from tests.support.faces import Face

pytestmark = pytest.mark.integration


async def _all_templates(store: TemplateStore) -> list[SealedTemplate]:
    return [t async for page in store.iter_wrapped_keys_for_rewrap(batch_size=1000) for t in page]


async def test_rotation_with_the_key_provider_down_raises_the_typed_error(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """A provider outage mid-rotation leaves as KeyProviderUnavailable, not an ExceptionGroup,
    so `bioauth keys rotate` answers with its one-line message."""
    for i in range(2):
        await enroll_new(store, local_provider, "bank-a", f"card-down-{i}", [faces[i].descriptor])

    class Down:
        name = "down"

        async def rotate_subject_key(self, key_id: str) -> int:
            raise KeyProviderUnavailable("the HSM is gone")

    with pytest.raises(KeyProviderUnavailable, match="HSM is gone"):
        await rotate_subject_keys(store, cast(KeyProvider, Down()), concurrency=2)


def _aad(t: SealedTemplate) -> bytes:
    return wrap_aad(
        tenant_id=t.tenant_id, subject_id=t.subject_id, template_id=t.template_id,
        model_id=t.model_id, format_version=t.format_version,
    )  # fmt: skip


async def test_rotate_then_rewrap_moves_every_template_and_retires_old_versions(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """After rotate + rewrap every row is at version 2, decrypts, and version 1 no longer opens."""
    for i in range(3):
        await enroll_new(
            store,
            local_provider,
            "bank-a",
            f"card-{i}",
            [f.descriptor for f in faces[3 * i : 3 * i + 3]],
        )
    before = await _all_templates(store)
    assert await rotate_subject_keys(store, local_provider, concurrency=2) == 3
    report = await rewrap_templates(
        store, local_provider, batch_size=2, concurrency=3, retire_old_versions=True
    )
    assert (report.seen, report.rewrapped, report.unchanged, report.failed) == (9, 9, 0, 0)
    assert report.retired_keys == 3
    after = await _all_templates(store)
    assert {t.key_version for t in after} == {2}
    for template in after:
        await open_template(local_provider, template)
    for template in before:  # the old wrapped keys, e.g. from a backup: version 1 is retired
        with pytest.raises(DecryptionFailed):
            await local_provider.unwrap(template.wrapped, _aad(template))
    again = await rewrap_templates(store, local_provider)
    assert (again.seen, again.rewrapped, again.unchanged) == (9, 0, 9)


async def test_keys_rotate_and_rewrap_commands(
    backend: Backend,
    faces: list[Face],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``bioauth keys rotate`` then ``bioauth keys rewrap`` on the configured store and key file."""
    key_file = tmp_path / "cli-keys.json"
    provider = await LocalKeyProvider.open(key_file)
    try:
        for i in range(2):
            await enroll_new(backend.store, provider, "bank-a", f"c{i}", [faces[i].descriptor])
    finally:
        await provider.close()
    monkeypatch.setenv("BIOAUTH_STORE__URL", backend.url)
    monkeypatch.setenv("BIOAUTH_KEYS__PROVIDER", "local")
    monkeypatch.setenv("BIOAUTH_KEYS__LOCAL_PATH", str(key_file))
    assert await asyncio.to_thread(main, ["keys", "rotate"]) == 0
    assert "rotated 2 subject keys" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["keys", "rewrap", "--batch-size", "1"]) == 0
    assert "2 templates, 2 re-wrapped" in capsys.readouterr().out
    assert {t.key_version for t in await _all_templates(backend.store)} == {2}


@dataclass(frozen=True)
class Population:
    """1,000 subjects with 10 sealed templates each, sealed at key version 1, keys since rotated."""

    key_file: Path
    subjects: list[tuple[str, str, list[SealedTemplate]]]  # subject id, key id, templates
    build_s: float


async def _build(key_file: Path, faces: list[Face], subjects: int, per_subject: int) -> Population:
    started = time.perf_counter()
    provider = await LocalKeyProvider.open(key_file)
    try:
        rng = np.random.default_rng(7)
        base = [f.descriptor for f in faces]
        built = []
        for i in range(subjects):
            subject_id = new_subject_id()
            key = await provider.create_subject_key("bank-a", subject_id)
            vectors = [
                base[(i + j) % len(base)] + rng.normal(0, 0.01, 128) for j in range(per_subject)
            ]
            built.append(
                (
                    subject_id,
                    key.key_id,
                    await seal_all(provider, "bank-a", subject_id, key.key_id, vectors),
                )
            )
        for _, key_id, _ in built:
            assert await provider.rotate_subject_key(key_id) == 2
    finally:
        await provider.close()
    return Population(key_file, built, time.perf_counter() - started)


def _population(
    tmp_path_factory: pytest.TempPathFactory, faces: list[Face], subjects: int
) -> Population:
    key_file = tmp_path_factory.mktemp("rewrap") / "keys.json"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # its own loop, outside any test's
        return pool.submit(asyncio.run, _build(key_file, faces, subjects, 10)).result()


@pytest.fixture(scope="module")
def small_population(tmp_path_factory: pytest.TempPathFactory, faces: list[Face]) -> Population:
    """100 subjects, 1,000 templates: the same check at a size the regular suite can afford."""
    return _population(tmp_path_factory, faces, 100)


async def _enroll_population(store: TemplateStore, population: Population) -> None:
    semaphore = asyncio.Semaphore(8)  # PostgreSQL commits in parallel; SQLite queues on its writer

    async def one(i: int, subject_id: str, key_id: str, sealed: list[SealedTemplate]) -> None:
        async with semaphore:
            await store.enroll(enrolment("bank-a", f"card-{i}", subject_id, key_id, sealed))

    async with asyncio.TaskGroup() as group:
        for i, (subject_id, key_id, sealed) in enumerate(population.subjects):
            group.create_task(one(i, subject_id, key_id, sealed))


async def _rewrap_beside_readers(backend: Backend, population: Population) -> None:
    """Re-wrap every template while four readers list and decrypt templates without pause:
    every read succeeds and every row ends at the new version."""
    total = sum(len(t) for _, _, t in population.subjects)
    started = time.perf_counter()
    await _enroll_population(backend.store, population)
    enrolled_s = time.perf_counter() - started
    subject_ids = [s for s, _, _ in population.subjects]
    provider = await LocalKeyProvider.open(population.key_file)
    try:
        rewrap_done = asyncio.Event()
        reads = {"during": 0}
        failures: list[BaseException] = []

        async def reader(seed: int) -> None:
            rng = random.Random(seed)
            while not rewrap_done.is_set():
                try:
                    templates = await backend.store.list_templates(
                        "bank-a", rng.choice(subject_ids)
                    )
                    assert len(templates) == 10
                    for template in templates:
                        await open_template(provider, template)
                        reads["during"] += not rewrap_done.is_set()
                except Exception as exc:  # any failed read fails the test
                    failures.append(exc)
                    return

        async with asyncio.TaskGroup() as group:
            for i in range(4):
                group.create_task(reader(i))
            report = await rewrap_templates(backend.store, provider, batch_size=200, concurrency=4)
            rewrap_done.set()
        assert failures == []
        assert (report.seen, report.rewrapped, report.failed, report.conflicts) == (
            total,
            total,
            0,
            0,
        )
        assert reads["during"] > 0
        assert {t.key_version for t in await _all_templates(backend.store)} == {2}
        print(
            f"\n[{backend.kind}, local provider] keys+seal+rotate {population.build_s:.1f} s (once), "
            f"enrol {enrolled_s:.1f} s; rewrap {report.seen} templates in {report.elapsed_s:.2f} s "
            f"= {report.templates_per_s:.0f} templates/s beside {reads['during']} template reads, 0 failed"
        )
    finally:
        await provider.close()


async def test_rewrap_while_readers_decrypt(backend: Backend, small_population: Population) -> None:
    """1,000 templates of 100 subjects re-wrapped beside concurrent readers, no failed read.
    The 10,000-template run over every store and provider is `make bench-rewrap`."""
    await _rewrap_beside_readers(backend, small_population)


class OptOutDuringRewrap:
    """The real provider, with the first subject opting out just before its rewrap call."""

    def __init__(self, inner: LocalKeyProvider, store: TemplateStore, victim_key: str) -> None:
        self.inner = inner
        self.store = store
        self.victim_key = victim_key

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def rewrap(self, wrapped: WrappedKey, aad: bytes) -> WrappedKey:
        if wrapped.key_id == self.victim_key and await self.inner.subject_key_exists(
            self.victim_key
        ):
            await OptOutService(self.store, self.inner).request(
                "bank-a", subject_id=self.victim_key.split(".", 1)[1]
            )
        return await self.inner.rewrap(wrapped, aad)


async def test_rewrap_counts_opt_outs_that_race_it_apart_from_failures(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """A subject shredded mid-pass is 'opted out', not 'failed'; a wrong key on an enrolled
    subject is a failure; neither stops the others from moving."""
    victim, _ = await enroll_new(store, local_provider, "bank-a", "v", [faces[0].descriptor])
    broken, _ = await enroll_new(store, local_provider, "bank-a", "b", [faces[1].descriptor])
    fine, _ = await enroll_new(store, local_provider, "bank-a", "f", [faces[2].descriptor])
    await rotate_subject_keys(store, local_provider)
    await local_provider.destroy_subject_key(broken.subject.key_id)  # enrolled, key gone: a fault
    provider = OptOutDuringRewrap(local_provider, store, victim.subject.key_id)
    report = await rewrap_templates(store, cast(KeyProvider, provider), retire_old_versions=True)
    assert (report.seen, report.rewrapped, report.opted_out, report.failed) == (3, 1, 1, 1)
    assert report.retired_keys == 1  # only the key whose templates all moved
    [moved] = await store.list_templates("bank-a", fine.subject.subject_id)
    assert moved.key_version == 2
