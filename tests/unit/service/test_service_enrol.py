"""Enrolment: consent, per-sample reasons, sealed templates, idempotency, audit, gallery."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bioauth.crypto.provider import KeyRef
from bioauth.errors import AlreadyExists, FailedPrecondition, InvalidInput
from bioauth.inference.decode import RawImage
from bioauth.matching.gallery import TenantGalleries
from bioauth.service.domain import SampleReason
from bioauth.service.templates import load_gallery
from tests.unit.service.conftest import World, deadline, enrol_request, face_png, person


async def test_enrol_stores_one_sealed_template_per_accepted_sample(world: World) -> None:
    """Accepted samples become templates that open to their embeddings; rejects say why."""
    good = [face_png(1), face_png(2)]
    for i, image in enumerate(good):
        world.scripted.register(image, person(1) * (1 + i * 0.01))
    samples = [good[0], face_png(3, blur=True), good[1], face_png(4, dark=True)][:3]
    view = await world.services.enrol.enrol(
        world.tenant.id, enrol_request("acct-1", samples), deadline=deadline()
    )
    assert [s.reason for s in view.samples] == [None, SampleReason.TOO_BLURRED, None]
    assert view.template_count == 2
    assert view.samples[0].template_id
    assert not view.samples[1].template_id
    assert 0.5 <= view.samples[0].quality <= 1.0
    subject = await world.store.get_subject(world.tenant.id, "acct-1")
    assert subject is not None
    assert subject.subject_id == view.subject_id
    templates = await world.store.list_templates(world.tenant.id, view.subject_id)
    assert {t.template_id for t in templates} == {
        view.samples[0].template_id,
        view.samples[2].template_id,
    }
    # Nothing in the store is the embedding in the clear.
    raw = person(1).astype("<f4").tobytes()
    assert all(raw[:16] not in t.ciphertext for t in templates)


async def test_enrol_writes_an_audit_row_without_biometric_data(world: World) -> None:
    world.scripted.register(face_png(1), person(1))
    view = await world.services.enrol.enrol(
        world.tenant.id, enrol_request("acct-1", [face_png(1)]), deadline=deadline()
    )
    rows = await world.store.read_audit(world.tenant.id)
    assert [r.entry.operation for r in rows] == ["enroll"]
    entry = rows[0].entry
    assert entry.subject_id == view.subject_id
    assert entry.model_id == world.manifest.model_id
    assert "acct-1" not in repr(entry)


async def test_replay_returns_the_first_answer_and_writes_nothing(world: World) -> None:
    world.scripted.register(face_png(1), person(1))
    request = enrol_request("acct-1", [face_png(1)])
    first = await world.services.enrol.enrol(world.tenant.id, request, deadline=deadline())
    again = await world.services.enrol.enrol(world.tenant.id, request, deadline=deadline())
    assert again == first
    assert len(await world.store.list_templates(world.tenant.id, first.subject_id)) == 1
    assert len(await world.store.read_audit(world.tenant.id)) == 1


async def test_same_key_with_other_content_is_refused(world: World) -> None:
    await world.services.enrol.enrol(
        world.tenant.id, enrol_request("acct-1", [face_png(1)]), deadline=deadline()
    )
    with pytest.raises(AlreadyExists):
        await world.services.enrol.enrol(
            world.tenant.id,
            enrol_request("acct-1", [face_png(2)], key="enrol-acct-1"),
            deadline=deadline(),
        )


async def test_enrolment_without_consent_is_refused(world: World) -> None:
    request = replace(enrol_request("acct-1", [face_png(1)]), policy_version="")
    with pytest.raises(FailedPrecondition):
        await world.services.enrol.enrol(world.tenant.id, request, deadline=deadline())
    assert await world.store.get_subject(world.tenant.id, "acct-1") is None


async def test_all_samples_rejected_stores_nothing(world: World) -> None:
    view = await world.services.enrol.enrol(
        world.tenant.id,
        enrol_request("acct-1", [b"not an image", face_png(2, side=80), face_png(3, side=8)]),
        deadline=deadline(),
    )
    # 80 px fails the quality gate, 8 px the decoder's smallest side: both only TOO_SMALL.
    assert [s.reason for s in view.samples] == [
        SampleReason.UNREADABLE,
        SampleReason.TOO_SMALL,
        SampleReason.TOO_SMALL,
    ]
    assert view.subject_id == ""
    assert view.template_count == 0
    assert await world.store.get_subject(world.tenant.id, "acct-1") is None


async def test_raw_rgb_samples_are_accepted(world: World) -> None:
    pixels = np.random.default_rng(5).integers(60, 200, size=(150, 150, 3), dtype=np.uint8)
    raw = RawImage(pixels.tobytes(), 150, 150)
    view = await world.services.enrol.enrol(
        world.tenant.id, enrol_request("acct-1", [raw]), deadline=deadline()
    )
    assert view.samples[0].accepted


async def test_oversized_image_is_the_callers_error(world: World) -> None:
    raw = RawImage(bytes(3000 * 10 * 3), 3000, 10)
    with pytest.raises(InvalidInput):
        await world.services.enrol.enrol(
            world.tenant.id, enrol_request("acct-1", [raw]), deadline=deadline()
        )


async def test_gallery_holds_only_subjects_with_1n_consent(world: World) -> None:
    one = await world.services.enrol.enrol(
        world.tenant.id, enrol_request("acct-1", [face_png(1)]), deadline=deadline()
    )
    only_1to1 = await world.services.enrol.enrol(
        world.tenant.id,
        enrol_request("acct-2", [face_png(2)], identification=False),
        deadline=deadline(),
    )
    gallery = world.galleries.get(world.tenant.id)
    assert one.subject_id in gallery
    assert only_1to1.subject_id not in gallery
    # Re-enrolment without 1:N consent takes the subject out again.
    await world.services.enrol.enrol(
        world.tenant.id,
        enrol_request("acct-1", [face_png(3)], identification=False, key="again"),
        deadline=deadline(),
    )
    assert one.subject_id not in gallery
    assert world.galleries.get(world.other_tenant.id).template_count == 0


async def test_deadline_reaches_the_batcher(world: World) -> None:
    limit = deadline(7.0)
    await world.services.enrol.enrol(
        world.tenant.id, enrol_request("acct-1", [face_png(1)]), deadline=limit
    )
    assert world.scripted.deadlines == [limit]


async def test_start_up_load_fills_the_gallery_from_the_store(world: World) -> None:
    """A fresh process rebuilds each tenant's gallery from sealed templates, 1:N consent only."""
    one = await world.services.enrol.enrol(
        world.tenant.id, enrol_request("acct-1", [face_png(1), face_png(2)]), deadline=deadline()
    )
    only_1to1 = await world.services.enrol.enrol(
        world.tenant.id,
        enrol_request("acct-2", [face_png(3)], identification=False),
        deadline=deadline(),
    )
    fresh = TenantGalleries(dim=world.manifest.embedding_size)
    loaded = await load_gallery(
        world.store,
        world.keys,
        fresh,
        [world.tenant.id, world.other_tenant.id],
        world.manifest.model_id,
    )
    assert loaded == 2
    gallery = fresh.get(world.tenant.id)
    assert one.subject_id in gallery
    assert only_1to1.subject_id not in gallery
    assert gallery.template_count == 2
    assert len(fresh.get(world.other_tenant.id)) == 0


async def test_a_refused_or_replayed_enrolment_leaves_no_unused_subject_key(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new subject's key is made before the write; when the store refuses the write (same
    idempotency key, other content) the key is destroyed, not left orphaned in the HSM."""
    made: list[str] = []
    create = world.keys.create_subject_key

    async def recording(tenant_id: str, subject_id: str) -> KeyRef:
        ref = await create(tenant_id, subject_id)
        made.append(ref.key_id)
        return ref

    monkeypatch.setattr(world.keys, "create_subject_key", recording)
    world.scripted.register(face_png(1), person(1))
    world.scripted.register(face_png(2), person(2))
    first = await world.services.enrol.enrol(
        world.tenant.id, enrol_request("acct-1", [face_png(1)], key="k-1"), deadline=deadline()
    )
    with pytest.raises(AlreadyExists):
        await world.services.enrol.enrol(
            world.tenant.id, enrol_request("acct-2", [face_png(2)], key="k-1"), deadline=deadline()
        )
    assert len(made) == 2
    assert await world.keys.subject_key_exists(made[0])
    assert not await world.keys.subject_key_exists(made[1])
    assert first.subject_id in made[0]
