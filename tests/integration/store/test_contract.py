"""The template-store contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import uuid

import numpy as np
import pytest

from bioauth.crypto.envelope import open_template
from bioauth.crypto.local_provider import LocalKeyProvider
from bioauth.crypto.provider import WrappedKey
from bioauth.errors import AlreadyExists, FailedPrecondition, InvalidInput, NotFound
from bioauth.store.migrations import load_migrations
from bioauth.store.protocol import (
    AuditEntry,
    SubjectExists,
    SubjectStatus,
    TemplateStore,
    WrappedKeyUpdate,
    new_subject_id,
)
from tests.integration.store.helpers import enroll_new, enrolment, now, seal_all
from tests.support.faces import Face

pytestmark = pytest.mark.integration


def _by_identity(faces: list[Face]) -> dict[str, list[Face]]:
    groups: dict[str, list[Face]] = {}
    for face in faces:
        groups.setdefault(face.identity, []).append(face)
    return groups


async def _gallery(store: TemplateStore, tenant_id: str) -> list[str]:
    ids: list[str] = []
    async for page in store.iter_identification_templates(tenant_id, batch_size=3):
        ids.extend(t.template_id for t in page)
    return ids


async def test_migrate_is_idempotent_and_reports_the_latest_version(store: TemplateStore) -> None:
    """A second migrate applies nothing and the schema sits at the newest migration."""
    assert await store.migrate() == []
    assert (
        await store.schema_version()
        == len(load_migrations("sqlite"))
        == len(load_migrations("postgresql"))
    )


async def test_enrolled_templates_decrypt_to_the_descriptors(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """Templates come back sealed and open, under the provider, to the float32 descriptors."""
    obama = [f.descriptor for f in faces if f.identity == faces[0].identity]
    outcome, sealed = await enroll_new(store, local_provider, "bank-a", "card-1", obama)
    assert not outcome.replayed
    subject = await store.get_subject("bank-a", "card-1")
    assert subject == outcome.subject
    assert subject is not None
    assert subject.status is SubjectStatus.ENROLLED
    assert subject.consent is not None
    assert subject.consent.identification
    stored = await store.list_templates("bank-a", subject.subject_id)
    assert sorted(t.template_id for t in stored) == sorted(t.template_id for t in sealed)
    assert {t.template_id: t for t in stored} == {t.template_id: t for t in sealed}
    for template in stored:
        vector = await open_template(local_provider, template)
        expected = next(
            v for s, v in zip(sealed, obama, strict=True) if s.template_id == template.template_id
        )
        np.testing.assert_array_equal(vector, expected.astype(np.float32))


async def test_enrolment_replay_returns_the_stored_answer_and_writes_nothing(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """Same idempotency key and digest: the first response, once; other content: AlreadyExists."""
    subject_id = new_subject_id()
    key = await local_provider.create_subject_key("bank-a", subject_id)
    sealed = await seal_all(local_provider, "bank-a", subject_id, key.key_id, [faces[0].descriptor])
    first = enrolment("bank-a", "card-1", subject_id, key.key_id, sealed, idempotency_key="idem-1")
    assert not (await store.enroll(first)).replayed
    again = await store.enroll(first)
    assert again.replayed
    assert again.response == first.response
    assert len(await store.list_templates("bank-a", subject_id)) == 1
    assert len(await store.read_audit("bank-a")) == 1
    other = dataclasses.replace(first, request_digest=hashlib.sha256(b"other").digest())
    with pytest.raises(AlreadyExists):
        await store.enroll(other)


async def test_concurrent_replays_of_one_enrolment_write_once(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """Racing retries of the same request: exactly one writes, the others replay its answer."""
    subject_id = new_subject_id()
    key = await local_provider.create_subject_key("bank-a", subject_id)
    sealed = await seal_all(local_provider, "bank-a", subject_id, key.key_id, [faces[0].descriptor])
    request = enrolment("bank-a", "card-1", subject_id, key.key_id, sealed, idempotency_key="idem")
    outcomes = await asyncio.gather(*(store.enroll(request) for _ in range(4)))
    assert sorted(o.replayed for o in outcomes) == [False, True, True, True]
    assert len(await store.list_templates("bank-a", subject_id)) == 1


async def test_more_templates_join_the_existing_subject_under_its_key(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """A second enrolment of the same reference adds templates; another subject id is refused."""
    outcome, _ = await enroll_new(store, local_provider, "bank-a", "card-1", [faces[0].descriptor])
    subject = outcome.subject
    more = await seal_all(
        local_provider, "bank-a", subject.subject_id, subject.key_id, [faces[1].descriptor]
    )
    await store.enroll(enrolment("bank-a", "card-1", subject.subject_id, subject.key_id, more))
    assert len(await store.list_templates("bank-a", subject.subject_id)) == 2
    stranger = new_subject_id()
    key = await local_provider.create_subject_key("bank-a", stranger)
    sealed = await seal_all(local_provider, "bank-a", stranger, key.key_id, [faces[2].descriptor])
    with pytest.raises(SubjectExists):
        await store.enroll(enrolment("bank-a", "card-1", stranger, key.key_id, sealed))
    assert len(await store.list_templates("bank-a", subject.subject_id)) == 2


async def test_an_enrolment_whose_parts_disagree_is_refused(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """Templates sealed for another subject, or none at all, never reach the database."""
    subject_id = new_subject_id()
    key = await local_provider.create_subject_key("bank-a", subject_id)
    sealed = await seal_all(local_provider, "bank-a", subject_id, key.key_id, [faces[0].descriptor])
    with pytest.raises(InvalidInput):
        await store.enroll(enrolment("bank-a", "card-1", new_subject_id(), key.key_id, sealed))
    with pytest.raises(InvalidInput):
        await store.enroll(enrolment("bank-a", "card-1", subject_id, key.key_id, []))
    assert await store.get_subject("bank-a", "card-1") is None


async def test_tenants_do_not_see_each_other(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """The same external reference in two tenants is two subjects; nothing crosses over."""
    a, _ = await enroll_new(store, local_provider, "bank-a", "card-1", [faces[0].descriptor])
    b, _ = await enroll_new(store, local_provider, "bank-b", "card-1", [faces[1].descriptor])
    assert a.subject.subject_id != b.subject.subject_id
    assert await store.get_subject_by_id("bank-b", a.subject.subject_id) is None
    assert await store.list_templates("bank-b", a.subject.subject_id) == []
    assert len(await _gallery(store, "bank-a")) == 1
    assert await store.count_identification_subjects("bank-b") == 1


async def test_gallery_holds_only_enrolled_subjects_that_consented_to_identification(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """1:N sees subjects with 1:N consent; verify-only consent and opting-out subjects stay out."""
    groups = list(_by_identity(faces).values())
    yes, yes_sealed = await enroll_new(
        store, local_provider, "bank-a", "yes", [f.descriptor for f in groups[0]]
    )
    await enroll_new(
        store,
        local_provider,
        "bank-a",
        "no",
        [f.descriptor for f in groups[1]],
        identification=False,
    )
    leaving, _ = await enroll_new(
        store, local_provider, "bank-a", "leaving", [f.descriptor for f in groups[2]]
    )
    await store.mark_opt_out_pending(
        "bank-a",
        leaving.subject.subject_id,
        audit=AuditEntry("bank-a", "opt_out.requested", now(), leaving.subject.subject_id),
    )
    assert sorted(await _gallery(store, "bank-a")) == sorted(t.template_id for t in yes_sealed)
    assert await store.count_identification_subjects("bank-a") == 1
    assert yes.subject.consent is not None


async def test_opt_out_pending_stops_matching_and_withdraws_consent(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """Pending: no templates served, consent withdrawn, enrolment replay forgotten, idempotent."""
    outcome, _ = await enroll_new(store, local_provider, "bank-a", "card-1", [faces[0].descriptor])
    sid = outcome.subject.subject_id
    audit = AuditEntry("bank-a", "opt_out.requested", now(), sid)
    pending = await store.mark_opt_out_pending("bank-a", sid, audit=audit)
    assert pending.status is SubjectStatus.OPT_OUT_PENDING
    assert pending.consent is not None
    assert pending.consent.withdrawn_at is not None
    assert await store.list_templates("bank-a", sid) == []
    assert [s.subject_id for s in await store.list_pending_opt_outs()] == [sid]
    again = await store.mark_opt_out_pending("bank-a", sid, audit=audit)
    assert again == pending
    assert [r.entry.operation for r in await store.read_audit("bank-a")] == [
        "enroll",
        "opt_out.requested",
    ]
    more = await seal_all(
        local_provider, "bank-a", sid, outcome.subject.key_id, [faces[1].descriptor]
    )
    with pytest.raises(FailedPrecondition):
        await store.enroll(enrolment("bank-a", "card-1", sid, outcome.subject.key_id, more))
    with pytest.raises(NotFound):
        await store.mark_opt_out_pending("bank-a", new_subject_id(), audit=audit)


async def test_complete_opt_out_deletes_templates_and_the_link_to_the_person(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """Completion needs pending first, deletes every template and clears the external reference."""
    outcome, sealed = await enroll_new(
        store, local_provider, "bank-a", "card-1", [faces[0].descriptor, faces[1].descriptor]
    )
    sid = outcome.subject.subject_id
    done = AuditEntry("bank-a", "opt_out.completed", now(), sid)
    with pytest.raises(FailedPrecondition):
        await store.complete_opt_out("bank-a", sid, audit=done)
    await store.mark_opt_out_pending(
        "bank-a", sid, audit=AuditEntry("bank-a", "opt_out.requested", now(), sid)
    )
    assert await store.complete_opt_out("bank-a", sid, audit=done) == len(sealed)
    assert await store.complete_opt_out("bank-a", sid, audit=done) == 0
    gone = await store.get_subject_by_id("bank-a", sid)
    assert gone is not None
    assert gone.status is SubjectStatus.OPTED_OUT
    assert gone.external_ref is None
    assert gone.consent is not None
    assert gone.consent.withdrawn_at is not None
    assert await store.list_pending_opt_outs() == []
    rewrap_ids = [
        t.template_id async for page in store.iter_wrapped_keys_for_rewrap() for t in page
    ]
    assert rewrap_ids == []
    assert (await store.verify_audit_chain("bank-a")).ok
    # The person may come back later as a new, unrelated subject.
    back, _ = await enroll_new(store, local_provider, "bank-a", "card-1", [faces[0].descriptor])
    assert back.subject.subject_id != sid


async def _opt_out(store: TemplateStore, tenant_id: str, subject_id: str) -> None:
    await store.mark_opt_out_pending(
        tenant_id, subject_id, audit=AuditEntry(tenant_id, "opt_out.requested", now(), subject_id)
    )
    await store.complete_opt_out(
        tenant_id, subject_id, audit=AuditEntry(tenant_id, "opt_out.completed", now(), subject_id)
    )


async def test_an_opted_out_subject_is_still_found_by_reference_and_may_enrol_again(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """After opt-out the reference (by its keyed digest) names the withdrawn subject: status,
    consent with ``withdrawn_at``, no templates, no plaintext reference. Enrolling the reference
    again makes a new subject, which then wins the look-up; the old row never blocks it."""
    first, _ = await enroll_new(store, local_provider, "bank-a", "card-1", [faces[0].descriptor])
    await enroll_new(store, local_provider, "bank-b", "card-1", [faces[1].descriptor])
    old = first.subject.subject_id
    await _opt_out(store, "bank-a", old)

    found = await store.get_subject("bank-a", "card-1")
    assert found is not None
    assert (found.subject_id, found.status, found.external_ref) == (
        old,
        SubjectStatus.OPTED_OUT,
        None,
    )
    assert found.consent is not None
    assert found.consent.withdrawn_at is not None
    assert found.consent.identification
    assert await store.list_templates("bank-a", old) == []
    other_tenant = await store.get_subject("bank-b", "card-1")
    assert other_tenant is not None
    assert other_tenant.status is SubjectStatus.ENROLLED
    assert await store.get_subject("bank-a", "card-2") is None

    second, sealed = await enroll_new(
        store, local_provider, "bank-a", "card-1", [faces[2].descriptor]
    )
    new = second.subject.subject_id
    assert new != old
    live = await store.get_subject("bank-a", "card-1")
    assert live is not None
    assert (live.subject_id, live.status, live.external_ref) == (
        new,
        SubjectStatus.ENROLLED,
        "card-1",
    )
    assert live.consent is not None
    assert live.consent.withdrawn_at is None
    assert [t.template_id for t in await store.list_templates("bank-a", new)] == [
        t.template_id for t in sealed
    ]
    # More templates under the reference join the live subject, not the opted-out one.
    more = await seal_all(local_provider, "bank-a", new, live.key_id, [faces[3].descriptor])
    await store.enroll(enrolment("bank-a", "card-1", new, live.key_id, more))
    assert len(await store.list_templates("bank-a", new)) == 2

    # Leaving a second time: the look-up shows the latest withdrawal.
    await _opt_out(store, "bank-a", new)
    latest = await store.get_subject("bank-a", "card-1")
    assert latest is not None
    assert (latest.subject_id, latest.status) == (new, SubjectStatus.OPTED_OUT)
    assert (await store.verify_audit_chain("bank-a")).ok


async def test_a_reference_still_opting_out_refuses_a_new_enrolment(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """Only a completed opt-out frees the reference; while pending, a new subject is refused."""
    first, _ = await enroll_new(store, local_provider, "bank-a", "card-1", [faces[0].descriptor])
    sid = first.subject.subject_id
    await store.mark_opt_out_pending(
        "bank-a", sid, audit=AuditEntry("bank-a", "opt_out.requested", now(), sid)
    )
    with pytest.raises(FailedPrecondition):
        await enroll_new(store, local_provider, "bank-a", "card-1", [faces[1].descriptor])
    pending = await store.get_subject("bank-a", "card-1")
    assert pending is not None
    assert (pending.subject_id, pending.status) == (sid, SubjectStatus.OPT_OUT_PENDING)


async def test_audit_chain_appends_in_order_and_verifies(store: TemplateStore) -> None:
    """Rows chain per tenant: seq 1..n, each prev_hash the previous row_hash; both tenants verify."""
    for i in range(5):
        await store.append_audit(
            AuditEntry(
                "bank-a", "verify", now(), new_subject_id(), decision="approve",
                score_band="high", operating_point="fmr_1e-4", model_id="m", token_jti=f"j{i}",
                details={"latency_ms": 12.5, "attempt": i, "liveness": True, "note": None},
            )
        )  # fmt: skip
    await store.append_audit(AuditEntry("bank-b", "identify", now(), decision="no_match"))
    rows = await store.read_audit("bank-a")
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.row_hash for a, b in itertools.pairwise(rows))
    assert rows[4].entry.details == {
        "latency_ms": 12.5,
        "attempt": 4,
        "liveness": True,
        "note": None,
    }
    assert sorted(await store.audit_tenants()) == ["bank-a", "bank-b"]
    for tenant in ("bank-a", "bank-b", "bank-none"):
        assert (await store.verify_audit_chain(tenant)).ok


async def test_concurrent_audit_appends_keep_one_unbroken_chain(store: TemplateStore) -> None:
    """Many writers at once: no seq is used twice and the chain still verifies."""
    await asyncio.gather(
        *(
            store.append_audit(AuditEntry("bank-a", "verify", now(), token_jti=str(i)))
            for i in range(40)
        )
    )
    result = await store.verify_audit_chain("bank-a")
    assert result.ok
    assert result.rows == 40


async def test_audit_refuses_details_that_are_not_scalars(store: TemplateStore) -> None:
    """A vector or a blob cannot slip into the audit log through ``details``."""
    for bad in ({"embedding": [0.1, 0.2]}, {"blob": b"\x00"}, {"x": float("nan")}):
        with pytest.raises(InvalidInput):
            await store.append_audit(AuditEntry("bank-a", "verify", now(), details=bad))  # type: ignore[arg-type]
    assert await store.read_audit("bank-a") == []


async def test_rotation_and_rewrap_move_wrapped_keys_and_templates_still_open(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """After rotate + update_wrapped_keys the rows carry the new version and still decrypt."""
    outcome, sealed = await enroll_new(
        store, local_provider, "bank-a", "card-1", [f.descriptor for f in faces[:3]]
    )
    key_id = outcome.subject.key_id
    assert [k.key_id async for page in store.iter_subject_keys(batch_size=1) for k in page] == [
        key_id
    ]
    assert await local_provider.rotate_subject_key(key_id) == 2
    pages = [page async for page in store.iter_wrapped_keys_for_rewrap(batch_size=2)]
    assert [len(p) for p in pages] == [2, 1]
    updates = []
    for template in (t for page in pages for t in page):
        from bioauth.crypto.envelope import wrap_aad

        aad = wrap_aad(
            tenant_id=template.tenant_id, subject_id=template.subject_id,
            template_id=template.template_id, model_id=template.model_id,
            format_version=template.format_version,
        )  # fmt: skip
        new = await local_provider.rewrap(template.wrapped, aad)
        updates.append(WrappedKeyUpdate(template.template_id, old=template.wrapped, new=new))
    assert await store.update_wrapped_keys(updates) == 3
    assert await store.update_wrapped_keys(updates) == 0  # rows no longer hold ``old``
    stored = await store.list_templates("bank-a", outcome.subject.subject_id)
    assert {t.key_version for t in stored} == {2}
    for template in stored:
        await open_template(local_provider, template)
    stale = WrappedKeyUpdate(
        sealed[0].template_id,
        old=WrappedKey(key_id, 1, b"not what the row holds"),
        new=WrappedKey(key_id, 3, b"x"),
    )
    assert await store.update_wrapped_keys([stale]) == 0


async def test_template_ids_are_unique_across_enrolments(
    store: TemplateStore, local_provider: LocalKeyProvider, faces: list[Face]
) -> None:
    """Reusing a stored template id is refused and the second enrolment leaves nothing behind."""
    outcome, sealed = await enroll_new(
        store, local_provider, "bank-a", "card-1", [faces[0].descriptor]
    )
    other = new_subject_id()
    key = await local_provider.create_subject_key("bank-a", other)
    copy = dataclasses.replace(sealed[0], subject_id=other, key_id=key.key_id)
    with pytest.raises(AlreadyExists):
        await store.enroll(enrolment("bank-a", "card-2", other, key.key_id, [copy]))
    assert await store.get_subject("bank-a", "card-2") is None
    assert len(await store.read_audit("bank-a")) == 1
    assert outcome.subject.subject_id != other
    assert uuid.UUID(hex=sealed[0].template_id)
