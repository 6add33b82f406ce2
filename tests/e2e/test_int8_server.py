"""The real server on the int8 model, chosen by its manifest alone (``inference.manifest``): it
builds the model into its cache at start-up, decides with the int8 model's own calibration, and
binds the int8 model's id into its tokens. One store backend (SQLite) is enough here: the
backends are covered by the decision tests on the float model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bioauth.client import AsyncClient, consent, face_image_from_path, transaction_context
from bioauth.client.tokens import TokenVerifier
from bioauth.inference.manifest import load_manifest
from bioauth.v1 import types_pb2
from tests.support.environment import REPO_ROOT
from tests.support.faces import face_set
from tests.support.server import ServerProcess, Tenant, running_server

pytestmark = pytest.mark.e2e

INT8 = REPO_ROOT / "models" / "dlib_resnet_v1_int8" / "manifest.json"
ISSUER = "bioauth-e2e-int8"
POINT = "fmr_1e-3"
TENANT = Tenant("bank-int8", "key-bank-int8", verify_operating_point=POINT)
TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def chips() -> dict[str, list[Path]]:
    faces = face_set()
    return {identity: faces.chips(identity) for identity in faces.by_identity()}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("int8-server")
    with running_server(
        directory,
        tenants=[TENANT],
        settings={
            "tokens": {"issuer": ISSUER},
            "inference": {"manifest": INT8, "cache_dir": directory / "model-cache"},
        },
    ) as proc:
        yield proc


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[AsyncClient]:
    async with server.client(TENANT.id, timeout=TIMEOUT_S) as bank:
        yield bank


async def test_the_server_verifies_with_the_int8_model(
    client: AsyncClient, chips: dict[str, list[Path]], server: ServerProcess
) -> None:
    manifest = load_manifest(INT8)
    enrol_consent = consent(
        "2026-10", "payment-authentication", channel="mobile_app", identification=False
    )
    for identity in ("obama", "biden"):
        response = await client.enroll(
            f"acct-{identity}",
            [face_image_from_path(chips[identity][0])],
            enrol_consent,
            idempotency_key=f"enrol-int8-{identity}",
        )
        assert [s.accepted for s in response.samples] == [True], response
    verifier = TokenVerifier(client.get_jwks, issuer=ISSUER, audience=TENANT.id)

    for k, chip in enumerate(chips["obama"][1:]):
        tx = transaction_context(f"tx-int8-{k}", 1250, "EUR", merchant_id="m-1")
        result = await client.verify("acct-obama", [face_image_from_path(chip)], tx)
        assert result.decision == types_pb2.DECISION_APPROVE, (chip.name, result)
        assert result.operating_point == POINT
        token = await verifier.verify(result.token, tx)
        assert token.model_id == manifest.model_id

    tx = transaction_context("tx-int8-impostor", 1250, "EUR", merchant_id="m-1")
    result = await client.verify("acct-obama", [face_image_from_path(chips["biden"][1])], tx)
    assert result.decision != types_pb2.DECISION_APPROVE
    assert result.token == ""
    built = server.directory / "model-cache" / manifest.model_id / manifest.onnx.file
    assert built.is_file()
