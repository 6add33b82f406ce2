"""The blocking Client: same calls, same errors, its own loop thread, clean shutdown."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import grpc
import pytest
from google.protobuf.message import Message

from bioauth.client import (
    Client,
    ClientClosed,
    HealthStatus,
    NotFound,
    TokenRejected,
    face_image_from_bytes,
    frame_request,
    session_open_request,
    transaction_context,
)
from bioauth.client.testing import MockCall, MockChannel
from bioauth.v1 import bioauth_pb2, types_pb2

from .conftest import ScriptedServer
from .tokens_support import AUDIENCE, ISSUER, SigningKey, claims, header, transaction

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


async def test_sync_client_calls_the_server(scripted_server: ScriptedServer) -> None:
    """Blocking calls work while the test's own loop keeps serving (the client has its own)."""

    def work() -> tuple[HealthStatus, int]:
        with Client(scripted_server.target, api_key="k", timeout=3.0) as client:
            status = client.health()
            subject = client.get_subject("acct-1")
            return status, subject.status

    status, enrolment = await asyncio.to_thread(work)
    assert status is HealthStatus.SERVING
    assert enrolment == bioauth_pb2.ENROLMENT_STATUS_ENROLLED
    assert scripted_server.servicer.seen.api_keys == ["k"]


async def test_sync_client_raises_typed_errors(scripted_server: ScriptedServer) -> None:
    """A non-OK status surfaces as the same typed error as in the async client."""
    scripted_server.servicer.abort_with = (grpc.StatusCode.NOT_FOUND, "no such subject")

    def work() -> None:
        with Client(scripted_server.target) as client:
            client.delete_subject("acct-1")

    with pytest.raises(NotFound):
        await asyncio.to_thread(work)


async def test_sync_authenticate_streams_from_a_blocking_iterator(
    scripted_server: ScriptedServer,
) -> None:
    """Frames from a plain (blocking) iterator are streamed; the decision comes back."""
    tx = transaction_context("tx-1", 100, "EUR", nonce="nonce-123456")

    def work() -> types_pb2.AuthorizationResult | None:
        with Client(scripted_server.target) as client:
            outcome = client.authenticate_frames(tx, iter([face_image_from_bytes(PNG)] * 3))
            return outcome.result

    result = await asyncio.to_thread(work)
    assert result is not None
    assert result.decision == types_pb2.DECISION_RETRY


def test_close_stops_the_loop_thread_and_refuses_calls() -> None:
    """close() joins the loop thread; later calls raise ClientClosed."""
    before = {t.name for t in threading.enumerate()}
    client = Client("127.0.0.1:1")
    client.close()
    client.close()
    after = [t for t in threading.enumerate() if t.name == "bioauth-client-loop"]
    assert "bioauth-client-loop" not in before
    assert after == []
    with pytest.raises(ClientClosed):
        client.health()


def test_blocking_token_verifier_uses_the_servers_keys() -> None:
    """Client.token_verifier fetches keys through the client and verifies on its loop."""
    key = SigningKey.generate("k-sync")

    async def answer(call: MockCall) -> Message:
        document = json.dumps({"keys": [key.public_jwk()]})
        return bioauth_pb2.GetJwksResponse(jwks_json=document, max_age_seconds=60)

    now = int(time.time())
    with Client(channel_factory=lambda: MockChannel(answer)) as client:
        verifier = client.token_verifier(issuer=ISSUER, audience=AUDIENCE)
        token = key.sign(header(key.kid), claims(iat=now, exp=now + 60))
        assert verifier.verify(token, transaction()).key_id == "k-sync"
        with pytest.raises(TokenRejected):
            verifier.verify(token, transaction())


async def test_sync_raw_authenticate_yields_every_response(scripted_server: ScriptedServer) -> None:
    """The raw blocking stream yields frame results then the decision, and closes cleanly."""
    tx = transaction_context("tx-1", 100, "EUR", nonce="nonce-123456")
    image = face_image_from_bytes(PNG)

    def work() -> list[str]:
        requests = [session_open_request(tx), frame_request(1, image), frame_request(2, image)]
        with Client(scripted_server.target) as client:
            return [r.WhichOneof("message") or "" for r in client.authenticate(requests)]

    kinds = await asyncio.to_thread(work)
    assert kinds == ["frame_result", "frame_result", "result"]
