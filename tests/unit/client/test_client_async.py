"""AsyncClient against a real grpc.aio server on loopback: metadata, deadlines, errors, streams."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2

from bioauth.client import (
    AsyncClient,
    ClientClosed,
    HealthStatus,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    consent,
    face_image_from_bytes,
    transaction_context,
)
from bioauth.v1 import bioauth_pb2, types_pb2

from .conftest import ScriptedServer

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _tx() -> types_pb2.TransactionContext:
    return transaction_context("tx-1", 1250, "EUR", merchant_id="m-1", nonce="nonce-123456")


async def test_health_reports_serving_then_not_serving(scripted_server: ScriptedServer) -> None:
    """health() returns the server's serving status, including NOT_SERVING during shutdown."""
    async with AsyncClient(scripted_server.target, api_key="k") as client:
        assert await client.health() is HealthStatus.SERVING
        await scripted_server.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert await client.health() is HealthStatus.NOT_SERVING


async def test_every_call_carries_the_api_key_and_a_deadline(
    scripted_server: ScriptedServer,
) -> None:
    """Each RPC sends x-api-key and arrives at the server with a deadline within the timeout."""
    async with AsyncClient(scripted_server.target, api_key="secret-key", timeout=7.0) as client:
        image = face_image_from_bytes(PNG)
        record = consent("2026-10", "payment-authentication", channel="web", identification=True)
        await client.enroll("acct-1", [image], record, idempotency_key="idem-1")
        await client.verify("acct-1", [image], _tx())
        await client.identify([image], _tx())
        await client.delete_subject("acct-1")
        await client.get_subject("acct-1")
        await client.get_jwks(timeout=2.0)
    seen = scripted_server.servicer.seen
    assert seen.api_keys == ["secret-key"] * 6
    remaining = seen.time_remaining
    # gRPC rounds deadlines on the wire, so allow a few milliseconds over.
    assert all(r is not None and 6.0 < r <= 7.05 for r in remaining[:5]), remaining
    assert remaining[5] is not None
    assert 1.0 < remaining[5] <= 2.05


async def test_requests_carry_the_arguments(scripted_server: ScriptedServer) -> None:
    """The builders' values reach the server unchanged."""
    tx = _tx()
    async with AsyncClient(scripted_server.target) as client:
        result = await client.verify("acct-9", [face_image_from_bytes(PNG)], tx)
    assert result.decision == types_pb2.DECISION_DECLINE
    request = scripted_server.servicer.seen.requests[0]
    assert request.subject.external_ref == "acct-9"
    assert request.transaction == tx
    assert request.probes[0].encoded == PNG


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhausted),
        (grpc.StatusCode.UNAVAILABLE, Unavailable),
    ],
)
async def test_status_codes_become_typed_errors(
    scripted_server: ScriptedServer, code: grpc.StatusCode, error: type[Exception]
) -> None:
    """A non-OK status raises its SDK class, with the gRPC error chained as the cause."""
    scripted_server.servicer.abort_with = (code, "told so")
    async with AsyncClient(scripted_server.target) as client:
        with pytest.raises(error) as caught:
            await client.get_subject("acct-1")
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert caught.value.details == "told so"  # type: ignore[attr-defined]
    assert isinstance(caught.value.__cause__, grpc.aio.AioRpcError)


async def test_unreachable_server_is_unavailable() -> None:
    """Nothing listening: the call fails as Unavailable within its deadline."""
    async with AsyncClient("127.0.0.1:1", timeout=2.0) as client:
        with pytest.raises(Unavailable):
            await client.health()


async def test_authenticate_frames_stops_at_the_result(scripted_server: ScriptedServer) -> None:
    """The session helper sends the open message, numbers frames, and returns the decision."""
    frames = [face_image_from_bytes(PNG)] * 5
    async with AsyncClient(scripted_server.target) as client:
        outcome = await client.authenticate_frames(_tx(), frames, subject="acct-1")
    assert [r.sequence for r in outcome.frame_results] == [1, 2]
    assert outcome.result is not None
    assert outcome.result.decision == types_pb2.DECISION_RETRY
    sent = scripted_server.servicer.seen.requests[1:]
    assert sent[0].open.mode == bioauth_pb2.AUTHENTICATION_MODE_VERIFY
    assert sent[0].open.subject.external_ref == "acct-1"


async def test_closed_client_refuses_calls(scripted_server: ScriptedServer) -> None:
    """A call after close() raises ClientClosed instead of reaching a dead channel."""
    client = AsyncClient(scripted_server.target)
    await client.close()
    await client.close()
    with pytest.raises(ClientClosed):
        await client.health()


async def test_nonpositive_timeout_is_refused(scripted_server: ScriptedServer) -> None:
    """A zero timeout would mean no deadline at all; the client refuses it."""
    async with AsyncClient(scripted_server.target) as client:
        with pytest.raises(ValueError, match="timeout"):
            await client.health(timeout=0)
