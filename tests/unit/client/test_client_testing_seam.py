"""bioauth.client.testing.MockChannel: the SDK tested without a server, as gateways will."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.message import Message

from bioauth.client import (
    AsyncClient,
    Client,
    DeadlineExceeded,
    PermissionDenied,
    face_image_from_bytes,
    transaction_context,
)
from bioauth.client.testing import MockCall, MockChannel, rpc_error
from bioauth.v1 import bioauth_pb2, types_pb2

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


async def answer(call: MockCall) -> Message | AsyncIterator[Message]:
    if call.method == "/bioauth.v1.BioAuth/GetSubject":
        return bioauth_pb2.GetSubjectResponse(subject_id="subj-7")
    if call.method == "/bioauth.v1.BioAuth/DeleteSubject":
        raise rpc_error(grpc.StatusCode.PERMISSION_DENIED, "not yours")
    if call.method == "/bioauth.v1.BioAuth/Verify":
        await asyncio.sleep(10)
    if call.method == "/bioauth.v1.BioAuth/Authenticate":
        requests = call.requests
        assert requests is not None

        async def responses() -> AsyncIterator[Message]:
            async for request in requests:
                if request.HasField("frame"):
                    break
            yield bioauth_pb2.AuthenticateResponse(
                result=types_pb2.AuthorizationResult(decision=types_pb2.DECISION_APPROVE)
            )

        return responses()
    raise rpc_error(grpc.StatusCode.UNIMPLEMENTED, call.method)


async def test_mock_channel_answers_and_records() -> None:
    """Calls reach the handler with metadata and deadline; answers come back typed."""
    channel = MockChannel(answer)
    async with AsyncClient(channel=channel, api_key="k", timeout=4.0) as client:
        subject = await client.get_subject("acct-1")
    assert subject.subject_id == "subj-7"
    [call] = channel.calls
    assert call.metadata == {"x-api-key": "k"}
    assert call.timeout == 4.0
    assert isinstance(call.request, bioauth_pb2.GetSubjectRequest)
    assert channel.closed


async def test_mock_channel_errors_map_like_real_ones() -> None:
    """An rpc_error from the handler raises the same typed error a server would cause."""
    async with AsyncClient(channel=MockChannel(answer)) as client:
        with pytest.raises(PermissionDenied, match="not yours"):
            await client.delete_subject("acct-1")


async def test_mock_channel_enforces_the_deadline() -> None:
    """A handler slower than the call's timeout ends as DEADLINE_EXCEEDED."""
    tx = transaction_context("tx", 1, "EUR", nonce="nonce-123456")
    async with AsyncClient(channel=MockChannel(answer)) as client:
        with pytest.raises(DeadlineExceeded):
            await client.verify("acct-1", [face_image_from_bytes(PNG)], tx, timeout=0.05)


async def test_mock_channel_streams() -> None:
    """The Authenticate stream runs through the seam too."""
    tx = transaction_context("tx", 1, "EUR", nonce="nonce-123456")
    async with AsyncClient(channel=MockChannel(answer)) as client:
        outcome = await client.authenticate_frames(tx, [face_image_from_bytes(PNG)])
    assert outcome.result is not None
    assert outcome.result.decision == types_pb2.DECISION_APPROVE


def test_sync_client_takes_a_channel_factory() -> None:
    """The blocking client builds the mock channel on its own loop."""
    with Client(channel_factory=lambda: MockChannel(answer)) as client:
        assert client.get_subject("acct-1").subject_id == "subj-7"
