"""Verify and identify: decisions at the tenant's points, tokens only for approvals, one audit
row per decision, tenant isolation, and 1:N consent."""

from __future__ import annotations

import jwt
import pytest

from bioauth.errors import FailedPrecondition, NotFound
from bioauth.matching.decision import Decision, DecisionReason, ScoreBand
from bioauth.store.protocol import SubjectStatus
from tests.unit.service.conftest import (
    World,
    deadline,
    enrol_request,
    face_png,
    near,
    person,
    transaction,
)


async def _enrol(world: World, ref: str, seed: int, *, identification: bool = True) -> str:
    image = face_png(seed)
    world.scripted.register(image, person(seed))
    view = await world.services.enrol.enrol(
        world.tenant.id,
        enrol_request(ref, [image], identification=identification),
        deadline=deadline(),
    )
    return view.subject_id


def _probe(world: World, seed: int, like: int, noise: float = 0.02) -> bytes:
    image = face_png(seed)
    world.scripted.register(image, near(person(like), seed, noise))
    return image


async def _claims(world: World, token: str) -> dict[str, object]:
    jwks = jwt.PyJWKSet.from_dict(await world.services.tokens.jwks())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    claims: dict[str, object] = jwt.decode(
        token, key=key, algorithms=["ES256"], audience=world.tenant.token_audience
    )
    return claims


async def test_verify_approves_the_holder_with_a_token_bound_to_the_transaction(
    world: World,
) -> None:
    subject_id = await _enrol(world, "acct-1", 1)
    tx = transaction()
    outcome = await world.services.verify.verify(
        world.tenant, "acct-1", [_probe(world, 101, like=1)], tx, deadline=deadline()
    )
    assert outcome.verdict.decision is Decision.APPROVE
    assert outcome.verdict.reason is None
    assert outcome.verdict.subject_id == subject_id
    assert outcome.verdict.operating_point == "fmr_1e-3"
    assert outcome.verdict.band is ScoreBand.VERY_HIGH
    claims = await _claims(world, outcome.token)
    assert claims["sub"] == subject_id
    assert claims["txn"] == tx.binding
    assert claims["op"] == "verify"
    assert claims["point"] == "fmr_1e-3"
    rows = await world.store.read_audit(world.tenant.id)
    decision_row = rows[-1].entry
    assert decision_row.operation == "verify"
    assert decision_row.decision == "approve"
    assert decision_row.token_jti == claims["jti"]
    assert decision_row.details["decision_id"] == outcome.decision_id


async def test_verify_declines_another_person_without_a_token(world: World) -> None:
    await _enrol(world, "acct-1", 1)
    outcome = await world.services.verify.verify(
        world.tenant, "acct-1", [_probe(world, 102, like=2)], transaction(), deadline=deadline()
    )
    assert outcome.verdict.decision is Decision.DECLINE
    assert outcome.verdict.reason is DecisionReason.SCORE_BELOW_THRESHOLD
    assert outcome.token == ""
    assert outcome.token_expires_at is None
    row = (await world.store.read_audit(world.tenant.id))[-1].entry
    assert row.decision == "decline"
    assert row.token_jti is None


async def test_verify_uses_the_tenants_named_point(world: World) -> None:
    """A probe between the strict and the loose threshold passes only the loose point."""
    await _enrol(world, "acct-1", 1)
    probe = _probe(world, 103, like=1, noise=0.15)
    strict = world.tenant.model_copy(update={"verify_operating_point": "fmr_1e-4"})
    loose = await world.services.verify.verify(
        world.tenant, "acct-1", [probe], transaction(), deadline=deadline()
    )
    tight = await world.services.verify.verify(
        strict, "acct-1", [probe], transaction(), deadline=deadline()
    )
    assert loose.verdict.decision is Decision.APPROVE
    assert loose.verdict.band is ScoreBand.HIGH
    assert tight.verdict.decision is Decision.DECLINE
    assert tight.verdict.operating_point == "fmr_1e-4"


async def test_verify_of_unknown_or_foreign_subject_is_not_found(world: World) -> None:
    await _enrol(world, "acct-1", 1)
    for tenant, ref in ((world.tenant, "nobody"), (world.other_tenant, "acct-1")):
        with pytest.raises(NotFound):
            await world.services.verify.verify(
                tenant, ref, [face_png(1)], transaction(), deadline=deadline()
            )


async def test_verify_without_a_usable_probe_asks_to_retry(world: World) -> None:
    await _enrol(world, "acct-1", 1)
    outcome = await world.services.verify.verify(
        world.tenant, "acct-1", [face_png(9, blur=True)], transaction(), deadline=deadline()
    )
    assert outcome.verdict.decision is Decision.RETRY
    assert outcome.verdict.reason is DecisionReason.NO_USABLE_PROBE
    assert outcome.token == ""


async def test_identify_finds_the_right_subject_and_names_the_account(world: World) -> None:
    subject_id = await _enrol(world, "acct-1", 1)
    await _enrol(world, "acct-2", 2)
    outcome = await world.services.identify.identify(
        world.tenant, [_probe(world, 104, like=1)], transaction(), deadline=deadline()
    )
    assert outcome.verdict.decision is Decision.APPROVE
    assert outcome.verdict.subject_id == subject_id
    assert outcome.external_ref == "acct-1"
    claims = await _claims(world, outcome.token)
    assert claims["op"] == "identify"
    assert claims["sub"] == subject_id


async def test_identify_of_a_stranger_is_no_match(world: World) -> None:
    await _enrol(world, "acct-1", 1)
    outcome = await world.services.identify.identify(
        world.tenant, [_probe(world, 105, like=7)], transaction(), deadline=deadline()
    )
    assert outcome.verdict.decision is Decision.NO_MATCH
    assert outcome.token == ""
    assert outcome.verdict.subject_id == ""
    assert outcome.external_ref == ""


async def test_identify_with_two_accounts_of_one_face_is_ambiguous(world: World) -> None:
    image = face_png(1)
    world.scripted.register(image, person(1))
    for ref in ("acct-1", "acct-1-bis"):
        await world.services.enrol.enrol(
            world.tenant.id, enrol_request(ref, [image]), deadline=deadline()
        )
    outcome = await world.services.identify.identify(
        world.tenant, [_probe(world, 106, like=1)], transaction(), deadline=deadline()
    )
    assert outcome.verdict.decision is Decision.AMBIGUOUS
    assert outcome.verdict.reason is DecisionReason.RUNNER_UP_TOO_CLOSE
    assert outcome.token == ""
    assert outcome.verdict.subject_id == ""


async def test_identify_never_returns_a_1to1_only_subject(world: World) -> None:
    await _enrol(world, "acct-1", 1, identification=False)
    outcome = await world.services.identify.identify(
        world.tenant, [_probe(world, 107, like=1)], transaction(), deadline=deadline()
    )
    assert outcome.verdict.decision is Decision.NO_MATCH
    assert outcome.verdict.reason is DecisionReason.EMPTY_GALLERY


async def test_identify_searches_only_the_callers_tenant(world: World) -> None:
    await _enrol(world, "acct-1", 1)
    outcome = await world.services.identify.identify(
        world.other_tenant, [_probe(world, 108, like=1)], transaction(), deadline=deadline()
    )
    assert outcome.verdict.decision is Decision.NO_MATCH


async def test_every_decision_has_one_audit_row(world: World) -> None:
    await _enrol(world, "acct-1", 1)
    probe = _probe(world, 109, like=1)
    await world.services.verify.verify(
        world.tenant, "acct-1", [probe], transaction(), deadline=deadline()
    )
    await world.services.identify.identify(
        world.tenant, [probe], transaction(), deadline=deadline()
    )
    await world.services.identify.identify(
        world.tenant, [_probe(world, 110, like=5)], transaction(), deadline=deadline()
    )
    operations = [r.entry.operation for r in await world.store.read_audit(world.tenant.id)]
    assert operations == ["enroll", "verify", "identify", "identify"]
    assert (await world.store.verify_audit_chain(world.tenant.id)).ok


async def test_opt_out_removes_from_gallery_and_stops_verification(world: World) -> None:
    subject_id = await _enrol(world, "acct-1", 1)
    deleted = await world.services.subjects.delete(world.tenant.id, "acct-1", deadline=deadline())
    assert deleted.done
    assert deleted.subject_id == subject_id
    assert subject_id not in world.galleries.get(world.tenant.id)
    with pytest.raises((NotFound, FailedPrecondition)):
        await world.services.verify.verify(
            world.tenant, "acct-1", [_probe(world, 111, like=1)], transaction(), deadline=deadline()
        )
    identified = await world.services.identify.identify(
        world.tenant, [_probe(world, 112, like=1)], transaction(), deadline=deadline()
    )
    assert identified.verdict.decision is Decision.NO_MATCH
    stored = await world.store.get_subject_by_id(world.tenant.id, subject_id)
    assert stored is not None
    assert stored.status is SubjectStatus.OPTED_OUT
    assert await world.store.list_templates(world.tenant.id, subject_id) == []
    by_ref = await world.services.subjects.get(world.tenant.id, "acct-1", deadline=deadline())
    assert (by_ref.subject_id, by_ref.status) == (subject_id, "opted_out")
    assert by_ref.withdrawn_at == deleted.withdrawn_at
    assert (by_ref.template_count, by_ref.model_ids) == (0, ())
    again = await world.services.subjects.delete(world.tenant.id, "acct-1", deadline=deadline())
    assert (again.done, again.subject_id, again.withdrawn_at) == (
        True,
        subject_id,
        deleted.withdrawn_at,
    )


async def test_a_reference_enrols_again_after_opt_out_as_a_new_subject(world: World) -> None:
    """The opted-out subject does not block the reference; the new, live one is what GetSubject
    shows from then on, and it verifies."""
    old = await _enrol(world, "acct-1", 1)
    await world.services.subjects.delete(world.tenant.id, "acct-1", deadline=deadline())
    new = await _enrol(world, "acct-1", 2)
    assert new not in ("", old)
    view = await world.services.subjects.get(world.tenant.id, "acct-1", deadline=deadline())
    assert (view.subject_id, view.status, view.template_count) == (new, "enrolled", 1)
    assert view.withdrawn_at is None
    outcome = await world.services.verify.verify(
        world.tenant, "acct-1", [_probe(world, 113, like=2)], transaction(), deadline=deadline()
    )
    assert outcome.verdict.decision is Decision.APPROVE
    assert outcome.verdict.subject_id == new


async def test_get_subject_shows_consent_but_no_biometric_data(world: World) -> None:
    subject_id = await _enrol(world, "acct-1", 1)
    view = await world.services.subjects.get(world.tenant.id, "acct-1", deadline=deadline())
    assert view.subject_id == subject_id
    assert view.status == "enrolled"
    assert view.template_count == 1
    assert view.model_ids == (world.manifest.model_id,)
    assert view.identification
    assert view.policy_version == "2026-10"
    with pytest.raises(NotFound):
        await world.services.subjects.get(world.other_tenant.id, "acct-1", deadline=deadline())
