"""Authenticate streams on real faces, through the real server and the real SDK.

Obama is enrolled with one chip; his three other distinct chips are the frames. The operating point
``fmr_1e-3`` used here is constructed by this module from the served model's own distances on these
chips (``tests.support.calibration``): in e1p1 it sits below each frame's distance to the
enrolment, in e1p2 below the first two frames fused, and in e1p3 above all three fused. So no
single frame (and no pair) approves, and the three fused frames do: the result must say e1p3.
Biden's chips are the impostor's frames, far above every threshold.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from PIL import Image

from bioauth.client import (
    AsyncClient,
    InvalidArgument,
    consent,
    face_image_from_bytes,
    face_image_from_path,
    frame_request,
    session_open_request,
    transaction_context,
)
from bioauth.client.tokens import TokenVerifier
from bioauth.v1 import bioauth_pb2, types_pb2
from tests.support.calibration import fused, mode, point, served_calibration, served_embeddings
from tests.support.faces import face_set
from tests.support.server import ServerProcess, Tenant, running_server
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e

POINT = "fmr_1e-3"
TENANT = Tenant("bank-s", "key-bank-s", verify_operating_point=POINT, identify_fpir_target=0.01)
ISSUER = "bioauth-e2e-stream"
BUDGET_S = 3.0
TIMEOUT_S = 60.0
APPROVE = types_pb2.DECISION_APPROVE


@dataclass(frozen=True)
class Cast:
    obama_enrolment: Path
    obama_frames: list[Path]
    biden: list[Path]
    thresholds: dict[str, float]


@pytest.fixture(scope="module")
def cast() -> Cast:
    """Picks the frames and places the thresholds from the served model's distances."""
    faces = face_set()
    obama, biden = faces.chips("obama"), faces.chips("biden")
    embeddings = served_embeddings([*obama, *biden])
    o, b = embeddings[: len(obama)], embeddings[len(obama) :]
    enrolment = o[0]
    # Frames: the other chips of distinct photos (a near-copy of the enrolment chip would approve
    # alone, which is not what this test is about).
    frames = [i for i in range(1, len(obama)) if fused(enrolment, o[i]) > 0.1][:3]
    assert len(frames) == 3, "the face set needs three distinct other chips of obama"
    singles = [fused(enrolment, o[i]) for i in frames]
    pair = fused(enrolment, o[frames[:2]])
    three = fused(enrolment, o[frames])
    thresholds = {"e1p1": 0.9 * min(singles), "e1p2": 0.9 * pair, "e1p3": 1.1 * three}
    impostor = min(fused(enrolment, x) for x in b)
    assert impostor > 1.5 * max(thresholds.values()), "biden must be far from every point"
    return Cast(obama[0], [obama[i] for i in frames], biden, thresholds)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, cast: Cast) -> Iterator[ServerProcess]:
    calibration = served_calibration(
        {key: mode(point(1e-3, threshold)) for key, threshold in cast.thresholds.items()}
    )
    with running_server(
        tmp_path_factory.mktemp("stream"),
        tenants=[TENANT],
        calibration=calibration,
        settings={"stream": {"budget_s": BUDGET_S}, "tokens": {"issuer": ISSUER}},
    ) as proc:
        yield proc


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[AsyncClient]:
    async with server.client(TENANT.id, timeout=TIMEOUT_S) as c:
        yield c


@pytest.fixture(scope="module")
def enrolled(server: ServerProcess, cast: Cast) -> None:
    async def run() -> None:
        async with server.client(TENANT.id, timeout=TIMEOUT_S) as c:
            for ref, chip in (("acct-obama", cast.obama_enrolment), ("acct-biden", cast.biden[0])):
                response = await c.enroll(
                    ref,
                    [face_image_from_path(chip)],
                    consent(
                        "2026-10",
                        "payment-authentication",
                        channel="terminal",
                        identification=True,
                    ),
                    idempotency_key=f"enrol-{ref}",
                )
                assert [s.accepted for s in response.samples] == [True]

    asyncio.run(run())


def _tx(tag: str) -> types_pb2.TransactionContext:
    return transaction_context(f"tx-stream-{tag}", 990, "EUR", terminal_id="t-1")


def _unreadable() -> types_pb2.FaceImage:
    return types_pb2.FaceImage(encoded=b"\xff\xd8\xff not a JPEG after all")


def _too_small(chip: Path) -> types_pb2.FaceImage:
    with Image.open(chip) as img:
        small = img.convert("RGB").resize((40, 40))
    out = io.BytesIO()
    small.save(out, format="PNG")
    return face_image_from_bytes(out.getvalue())


async def test_fused_frames_approve_where_single_frames_do_not(
    client: AsyncClient, cast: Cast, enrolled: None
) -> None:
    """Verify stream with an unreadable and a too-small frame between obama's three frames: each
    rejected frame is answered with its reason, and the session approves in e1p3 at the third
    accepted frame with a token bound to the transaction; no single frame approves on its own."""
    good = [face_image_from_path(p) for p in cast.obama_frames]
    frames = [good[0], _unreadable(), good[1], _too_small(cast.obama_frames[0]), good[2]]
    tx = _tx("fused")
    outcome = await client.authenticate_frames(tx, frames, subject="acct-obama")

    reasons = [(r.sequence, r.accepted, r.reason) for r in outcome.frame_results]
    assert reasons == [
        (1, True, types_pb2.FRAME_REJECT_REASON_UNSPECIFIED),
        (2, False, types_pb2.FRAME_REJECT_REASON_UNREADABLE),
        (3, True, types_pb2.FRAME_REJECT_REASON_UNSPECIFIED),
        (4, False, types_pb2.FRAME_REJECT_REASON_TOO_SMALL),
        (5, True, types_pb2.FRAME_REJECT_REASON_UNSPECIFIED),
    ]
    result = outcome.result
    assert result is not None
    assert result.decision == APPROVE, result
    assert result.operating_point == POINT
    assert (result.comparison_mode.enrolment_images, result.comparison_mode.probe_images) == (1, 3)
    verifier = TokenVerifier(client.get_jwks, issuer=ISSUER, audience=TENANT.id)
    token = await verifier.verify(result.token, tx)
    assert (token.enrolment_images, token.probe_images) == (1, 3)

    for index, image in enumerate(good):
        alone = await client.verify("acct-obama", [image], _tx(f"alone-{index}"))
        assert alone.decision == types_pb2.DECISION_DECLINE, (index, alone)
        assert alone.comparison_mode.probe_images == 1
        assert alone.token == ""


async def test_identify_stream_names_the_account_after_fusing(
    client: AsyncClient, cast: Cast, enrolled: None
) -> None:
    """1:N stream over a gallery of two: obama's three frames fused identify his account."""
    frames = [face_image_from_path(p) for p in cast.obama_frames]
    outcome = await client.authenticate_frames(_tx("identify"), frames)
    result = outcome.result
    assert result is not None
    assert result.decision == APPROVE, result
    assert result.external_ref == "acct-obama"
    assert result.comparison_mode.probe_images == 3
    assert result.token


async def test_frame_budget_spent_ends_with_a_decline_and_no_token(
    client: AsyncClient, cast: Cast, enrolled: None
) -> None:
    """An impostor's session with max_frames=2 ends after two frames with the policy's decline,
    its reason, and no token; the third frame is never read."""
    frames = [face_image_from_path(p) for p in cast.biden]
    outcome = await client.authenticate_frames(
        _tx("frames-budget"), frames, subject="acct-obama", max_frames=2
    )
    assert [r.sequence for r in outcome.frame_results] == [1, 2]
    result = outcome.result
    assert result is not None
    assert result.decision == types_pb2.DECISION_DECLINE
    assert result.reason == types_pb2.DECISION_REASON_SCORE_BELOW_THRESHOLD
    assert result.token == ""
    assert not result.HasField("token_expires_at")


async def test_seconds_budget_spent_ends_the_session_with_no_match(
    client: AsyncClient, cast: Cast, enrolled: None
) -> None:
    """A 1:N session that sends only an unreadable frame and then nothing is answered once its
    seconds are spent: NO_MATCH, SESSION_BUDGET_SPENT, no token, and the stream closes OK."""
    hold = asyncio.Event()

    async def requests() -> AsyncIterator[bioauth_pb2.AuthenticateRequest]:
        yield session_open_request(_tx("seconds-budget"))
        yield frame_request(1, _unreadable())
        await hold.wait()

    responses = [r async for r in client.authenticate(requests(), timeout=BUDGET_S + 20)]
    hold.set()
    assert [r.WhichOneof("message") for r in responses] == ["frame_result", "result"]
    result = responses[-1].result
    assert result.decision == types_pb2.DECISION_NO_MATCH
    assert result.reason == types_pb2.DECISION_REASON_SESSION_BUDGET_SPENT
    assert result.token == ""


async def test_a_stream_that_does_not_open_first_is_invalid(client: AsyncClient) -> None:
    """A frame before SessionOpen ends the stream with INVALID_ARGUMENT and nothing else."""

    async def requests() -> AsyncIterator[bioauth_pb2.AuthenticateRequest]:
        yield frame_request(1, _unreadable())

    with pytest.raises(InvalidArgument) as info:
        _ = [r async for r in client.authenticate(requests())]
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "SessionOpen" in str(info.value)


async def test_a_client_that_cancels_mid_session_leaves_nothing_behind(
    server: ServerProcess, client: AsyncClient, cast: Cast, enrolled: None
) -> None:
    """A client that cancels after its first frame's answer: the server abandons the session
    without a decision (no session_ended, no audit row behind it) and serves the next one."""
    logs_before = server.logs()
    ended = logs_before.count('"event": "session_ended"')
    abandoned = logs_before.count('"event": "session_abandoned"')
    hold = asyncio.Event()

    async def requests() -> AsyncIterator[bioauth_pb2.AuthenticateRequest]:
        yield session_open_request(_tx("cancelled"), subject="acct-obama")
        yield frame_request(1, face_image_from_path(cast.biden[0]))
        await hold.wait()

    responses = client.authenticate(requests())
    first = await anext(responses)
    assert first.frame_result.sequence == 1
    await responses.aclose()  # the SDK cancels the call
    hold.set()

    await eventually(
        lambda: server.logs().count('"event": "session_abandoned"') > abandoned,
        "the server abandoned the cancelled session",
        timeout_s=10,
    )
    assert server.logs().count('"event": "session_ended"') == ended
    frames = [face_image_from_path(p) for p in cast.obama_frames]
    outcome = await client.authenticate_frames(_tx("after-cancel"), frames, subject="acct-obama")
    assert outcome.result is not None
    assert outcome.result.decision == APPROVE
