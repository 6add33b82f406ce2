"""Enrol, verify, identify and opt out on real faces, through the real server and the real SDK.

The face set (``BIOAUTH_FACES_DIR``) has 8 identities; its genuine pairs all lie below the model's
``fmr_1e-3`` point and its impostor pairs far above it. The test tenants below (in this module's
config) therefore decide at that point for both operations: ``verify_operating_point =
"fmr_1e-3"`` for 1:1, and an ``identify_fpir_target`` of 0.01, with which the policy's rule
``N * target_fmr <= fpir_target`` keeps ``fmr_1e-3`` (the loosest calibrated point) for galleries
of up to 10 subjects, more than any gallery here holds. Every approval is asserted to have been
decided at ``fmr_1e-3``.

Every test runs once per store backend (SQLite, then PostgreSQL). Tenants, each with its own API
key: ``bank-a`` enrols one chip of six identities with 1:N consent, plus one identity with 1:1
consent only; ``bank-b`` enrols nobody and must see none of it; ``bank-c`` holds the look-alike
(one face under two accounts) and the opt-out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

import pytest
from joserfc import jws, jwt
from joserfc.jwk import KeySet

from bioauth.client import (
    AsyncClient,
    FailedPrecondition,
    NotFound,
    RejectReason,
    TokenRejected,
    consent,
    face_image_from_path,
    transaction_context,
)
from bioauth.client.tokens import TokenVerifier
from bioauth.v1 import bioauth_pb2, types_pb2
from tests.support.calibration import committed_calibration
from tests.support.faces import Face, FaceSet, face_set
from tests.support.postgres import fresh_database
from tests.support.server import ServerProcess, Tenant, running_server

pytestmark = pytest.mark.e2e

ISSUER = "bioauth-e2e"
POINT = "fmr_1e-3"
TENANTS = [
    Tenant(bank, f"key-{bank}", verify_operating_point=POINT, identify_fpir_target=0.01)
    for bank in ("bank-a", "bank-b", "bank-c")
]
ENROLLED = ("obama", "biden", "alex_lacamoire", "kit_harington", "rose_leslie", "guido_van_rossum")
ONE_TO_ONE_ONLY = "paul_allen"
TIMEOUT_S = 60.0
APPROVE = types_pb2.DECISION_APPROVE


def _ref(identity: str) -> str:
    return f"acct-{identity}"


@pytest.fixture(scope="module")
def faces() -> FaceSet:
    return face_set()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The server on each store backend: the embedded SQLite file, then a fresh PostgreSQL
    database), deciding at the committed calibration's points."""
    committed_calibration()
    directory = tmp_path_factory.mktemp(f"decisions-{request.param}")
    with contextlib.ExitStack() as stack:
        store_url = None
        if request.param == "postgresql":
            store_url = stack.enter_context(fresh_database("bioauth_e2e"))
        yield stack.enter_context(
            running_server(
                directory,
                tenants=TENANTS,
                store_url=store_url,
                settings={"tokens": {"issuer": ISSUER}},
            )
        )


def _client(server: ServerProcess, tenant: str) -> AsyncClient:
    return server.client(tenant, timeout=TIMEOUT_S)


@pytest.fixture
async def bank_a(server: ServerProcess) -> AsyncIterator[AsyncClient]:
    async with _client(server, "bank-a") as client:
        yield client


@pytest.fixture
async def bank_b(server: ServerProcess) -> AsyncIterator[AsyncClient]:
    async with _client(server, "bank-b") as client:
        yield client


@pytest.fixture
async def bank_c(server: ServerProcess) -> AsyncIterator[AsyncClient]:
    async with _client(server, "bank-c") as client:
        yield client


def _consent(identification: bool) -> types_pb2.Consent:
    return consent(
        "2026-10", "payment-authentication", channel="mobile_app", identification=identification
    )


async def _enrol(
    client: AsyncClient, ref: str, face: Face, *, identification: bool = True
) -> bioauth_pb2.EnrollResponse:
    response = await client.enroll(
        ref,
        [face_image_from_path(face.chip)],
        _consent(identification),
        idempotency_key=f"enrol-{ref}-{face.chip.name}",
    )
    assert [s.accepted for s in response.samples] == [True], response
    return response


@pytest.fixture(scope="module")
def enrolled(server: ServerProcess, faces: FaceSet) -> dict[str, str]:
    """bank-a's enrolment, once per module: identity -> subject id."""

    async def run() -> dict[str, str]:
        first = faces.first_of_each()
        async with _client(server, "bank-a") as client:
            subjects = {}
            for identity in ENROLLED:
                subjects[identity] = (
                    await _enrol(client, _ref(identity), first[identity])
                ).subject_id
            only = await _enrol(
                client, _ref(ONE_TO_ONE_ONLY), first[ONE_TO_ONE_ONLY], identification=False
            )
            subjects[ONE_TO_ONE_ONLY] = only.subject_id
            return subjects

    return asyncio.run(run())


def _tx(tag: str) -> types_pb2.TransactionContext:
    return transaction_context(f"tx-{tag}"[:128], 1250, "EUR", merchant_id="m-1", terminal_id="t-9")


async def _verifier(client: AsyncClient, audience: str) -> TokenVerifier:
    return TokenVerifier(client.get_jwks, issuer=ISSUER, audience=audience)


def _assert_no_token(result: types_pb2.AuthorizationResult) -> None:
    assert result.decision != APPROVE
    assert result.token == ""
    assert not result.HasField("token_expires_at")
    assert result.reason != types_pb2.DECISION_REASON_UNSPECIFIED


async def _bounded(
    calls: list[Coroutine[Any, Any, types_pb2.AuthorizationResult]], limit: int = 6
) -> list[types_pb2.AuthorizationResult]:
    """Run the calls a few at a time, so the server's batcher sees concurrent crops."""
    gate = asyncio.Semaphore(limit)

    async def one(
        call: Coroutine[Any, Any, types_pb2.AuthorizationResult],
    ) -> types_pb2.AuthorizationResult:
        async with gate:
            return await call

    return list(await asyncio.gather(*(one(c) for c in calls)))


async def test_genuine_chips_verify_and_identify(
    bank_a: AsyncClient, enrolled: dict[str, str], faces: FaceSet
) -> None:
    """Every other chip of an enrolled identity is APPROVED in 1:1 and found in 1:N, each
    approval carrying a token that the SDK verifier accepts for exactly that transaction."""
    first = faces.first_of_each()
    probes = [f for f in faces if f.identity in ENROLLED and f.chip != first[f.identity].chip]
    assert len(probes) >= 6
    verifier = await _verifier(bank_a, "bank-a")
    for face in probes:
        tx = _tx(f"v-{face.chip.stem}")
        result = await bank_a.verify(_ref(face.identity), [face_image_from_path(face.chip)], tx)
        assert result.decision == APPROVE, (face.identity, face.chip.name, result)
        assert result.subject_id == enrolled[face.identity]
        assert result.operating_point == POINT
        token = await verifier.verify(result.token, tx)
        assert token.subject_id == enrolled[face.identity]
        assert token.operation == "verify"
        assert (token.enrolment_images, token.probe_images) == (1, 1)

        tx = _tx(f"i-{face.chip.stem}")
        found = await bank_a.identify([face_image_from_path(face.chip)], tx)
        assert found.decision == APPROVE, (face.identity, face.chip.name, found)
        assert found.subject_id == enrolled[face.identity]
        assert found.external_ref == _ref(face.identity)
        assert found.operating_point == POINT
        assert (await verifier.verify(found.token, tx)).operation == "identify"


async def test_other_identities_are_declined_and_never_misidentified(
    bank_a: AsyncClient, enrolled: dict[str, str], faces: FaceSet
) -> None:
    """Each enrolled subject declines every chip of every other identity (no token); in 1:N every
    chip is NO_MATCH or its own identity, never someone else."""
    calls: list[Coroutine[Any, Any, types_pb2.AuthorizationResult]] = []
    for claimed in [*ENROLLED, ONE_TO_ONE_ONLY]:
        for face in faces:
            if face.identity != claimed:
                calls.append(
                    bank_a.verify(
                        _ref(claimed),
                        [face_image_from_path(face.chip)],
                        _tx(f"x-{claimed}-{face.chip.stem}"),
                    )
                )
    for result in await _bounded(calls):
        assert result.decision == types_pb2.DECISION_DECLINE, result
        _assert_no_token(result)
    found = await _bounded(
        [bank_a.identify([face_image_from_path(f.chip)], _tx(f"n-{f.chip.stem}")) for f in faces]
    )
    for face, result in zip(faces, found, strict=True):
        if result.decision == APPROVE:
            assert face.identity in ENROLLED
            assert result.subject_id == enrolled[face.identity]
        else:
            assert result.decision == types_pb2.DECISION_NO_MATCH, (face.identity, result)
            _assert_no_token(result)


async def test_one_to_one_only_subject_is_never_identified(
    bank_a: AsyncClient, enrolled: dict[str, str], faces: FaceSet
) -> None:
    """A subject who consented to 1:1 only verifies, but identify never returns them."""
    first = faces.first_of_each()
    for face in faces:
        if face.identity != ONE_TO_ONE_ONLY:
            continue
        image = face_image_from_path(face.chip)
        found = await bank_a.identify([image], _tx(f"o-{face.chip.stem}"))
        assert found.subject_id != enrolled[ONE_TO_ONE_ONLY]
        assert found.decision == types_pb2.DECISION_NO_MATCH
        _assert_no_token(found)
        if face.chip != first[ONE_TO_ONE_ONLY].chip:
            verified = await bank_a.verify(
                _ref(ONE_TO_ONE_ONLY), [image], _tx(f"p-{face.chip.stem}")
            )
            assert verified.decision == APPROVE


async def test_tokens_verify_independently_and_only_once(
    bank_a: AsyncClient, bank_b: AsyncClient, enrolled: dict[str, str], faces: FaceSet
) -> None:
    """An approval's token verifies with joserfc against the published JWKS; the SDK accepts it
    once, refuses a replay, another transaction and another audience."""
    face = next(
        f for f in faces if f.identity == "obama" and f.chip != faces.first_of_each()["obama"].chip
    )
    tx = _tx("token")
    result = await bank_a.verify(_ref("obama"), [face_image_from_path(face.chip)], tx)
    assert result.decision == APPROVE
    jwks = (await bank_a.get_jwks()).document
    keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    decoded = jwt.decode(result.token, keys, algorithms=["ES256"])
    assert decoded.header["typ"] == "bioauth-decision+jwt"
    assert decoded.claims["aud"] == "bank-a"
    assert decoded.claims["sub"] == enrolled["obama"]
    assert decoded.claims["point"] == POINT
    assert decoded.claims["exp"] - decoded.claims["iat"] == 60
    jws.deserialize_compact(result.token, keys, algorithms=["ES256"])

    with pytest.raises(TokenRejected) as other_tx:
        await (await _verifier(bank_a, "bank-a")).verify(result.token, _tx("another"))
    assert other_tx.value.reason is RejectReason.TRANSACTION
    with pytest.raises(TokenRejected) as foreign:
        await (await _verifier(bank_b, "bank-b")).verify(result.token, tx)
    assert foreign.value.reason is RejectReason.AUDIENCE
    verifier = await _verifier(bank_a, "bank-a")
    await verifier.verify(result.token, tx)
    with pytest.raises(TokenRejected) as replayed:
        await verifier.verify(result.token, tx)
    assert replayed.value.reason is RejectReason.REPLAYED


async def test_subjects_are_invisible_to_other_tenants(
    bank_b: AsyncClient, enrolled: dict[str, str], faces: FaceSet
) -> None:
    """bank-b cannot verify, look up, delete or identify bank-a's subjects."""
    face = next(f for f in faces if f.identity == "obama")
    image = face_image_from_path(face.chip)
    with pytest.raises(NotFound):
        await bank_b.verify(_ref("obama"), [image], _tx("cross-v"))
    with pytest.raises(NotFound):
        await bank_b.get_subject(_ref("obama"))
    with pytest.raises(NotFound):
        await bank_b.delete_subject(_ref("obama"))
    found = await bank_b.identify([image], _tx("cross-i"))
    assert found.decision == types_pb2.DECISION_NO_MATCH
    assert found.subject_id == ""
    _assert_no_token(found)


async def test_one_face_under_two_accounts_is_ambiguous(
    bank_c: AsyncClient, faces: FaceSet
) -> None:
    """Enrolling one chip under two references makes identify of another chip AMBIGUOUS."""
    biden = faces.of("biden")
    await _enrol(bank_c, "biden-card", biden[0])
    await _enrol(bank_c, "biden-second-card", biden[0])
    await _enrol(bank_c, _ref("guido"), faces.first_of_each()["guido_van_rossum"])
    result = await bank_c.identify([face_image_from_path(biden[1].chip)], _tx("ambiguous"))
    assert result.decision == types_pb2.DECISION_AMBIGUOUS, result
    assert result.reason == types_pb2.DECISION_REASON_RUNNER_UP_TOO_CLOSE
    assert result.subject_id == ""
    assert result.external_ref == ""
    _assert_no_token(result)


async def test_opt_out_stops_matching_and_records_withdrawal(
    bank_c: AsyncClient, faces: FaceSet
) -> None:
    """After DeleteSubject the person neither verifies nor identifies, and GetSubject by the
    same reference reports the withdrawal (the store keeps only a keyed digest of the reference
    once shredding is done), with no templates and no model left."""
    rose = faces.of("rose_leslie")
    enrolled = await _enrol(bank_c, "rose-card", rose[0])
    probe = face_image_from_path(rose[1].chip)
    before = await bank_c.identify([probe], _tx("rose-before"))
    assert before.decision == APPROVE
    assert before.subject_id == enrolled.subject_id
    status = await bank_c.get_subject("rose-card")
    assert status.status == bioauth_pb2.ENROLMENT_STATUS_ENROLLED
    assert status.consent.consent.identification
    assert not status.consent.HasField("withdrawn_at")

    deleted = await bank_c.delete_subject("rose-card")
    assert deleted.subject_id == enrolled.subject_id
    assert deleted.status == bioauth_pb2.DELETION_STATUS_DONE
    assert deleted.HasField("withdrawn_at")

    with pytest.raises((NotFound, FailedPrecondition)):
        await bank_c.verify("rose-card", [probe], _tx("rose-after-v"))
    after = await bank_c.identify([probe], _tx("rose-after-i"))
    assert after.decision == types_pb2.DECISION_NO_MATCH
    assert after.subject_id != enrolled.subject_id
    _assert_no_token(after)
    withdrawn = await bank_c.get_subject("rose-card")
    assert withdrawn.subject_id == enrolled.subject_id
    assert withdrawn.status == bioauth_pb2.ENROLMENT_STATUS_OPTED_OUT
    assert withdrawn.consent.HasField("withdrawn_at")
    assert withdrawn.consent.withdrawn_at == deleted.withdrawn_at
    assert withdrawn.consent.consent.identification
    assert withdrawn.template_count == 0
    assert list(withdrawn.model_ids) == []


async def test_gallery_is_reloaded_at_start_up(
    server: ServerProcess, enrolled: dict[str, str], faces: FaceSet
) -> None:
    """After a restart the 1:N gallery is rebuilt from the store: identification still works,
    and the 1:1-only subject is still left out. (Last in this module: it restarts the server.)"""
    server.stop()
    server.start(timeout_s=120)
    first = faces.first_of_each()
    async with _client(server, "bank-a") as client:
        for identity in ("obama", ONE_TO_ONE_ONLY):
            face = next(
                f for f in faces if f.identity == identity and f.chip != first[identity].chip
            )
            found = await client.identify([face_image_from_path(face.chip)], _tx(f"r-{identity}"))
            if identity == ONE_TO_ONE_ONLY:
                assert found.decision == types_pb2.DECISION_NO_MATCH
            else:
                assert found.decision == APPROVE
                assert found.subject_id == enrolled[identity]
