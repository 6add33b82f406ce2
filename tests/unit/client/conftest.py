"""A real grpc.aio server on a loopback port with a scripted BioAuth servicer, for SDK tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from bioauth.v1 import bioauth_pb2, bioauth_pb2_grpc, types_pb2

JWKS_JSON = '{"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "x": "x", "y": "y"}]}'


@dataclass
class Seen:
    """What the scripted server observed about each call."""

    api_keys: list[str | None] = field(default_factory=list)
    time_remaining: list[float | None] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)


class ScriptedBioAuth(bioauth_pb2_grpc.BioAuthServicer, bioauth_pb2_grpc.KeyPublicationServicer):
    """Answers from a script: a fixed reply per method, or a status code to abort with."""

    def __init__(self) -> None:
        self.seen = Seen()
        self.abort_with: tuple[grpc.StatusCode, str] | None = None

    async def _record(self, request: Any, context: aio.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata() or ())
        self.seen.api_keys.append(metadata.get("x-api-key"))
        self.seen.time_remaining.append(context.time_remaining())
        self.seen.requests.append(request)
        if self.abort_with is not None:
            await context.abort(*self.abort_with)

    async def Enroll(self, request: Any, context: aio.ServicerContext) -> Any:
        await self._record(request, context)
        return bioauth_pb2.EnrollResponse(subject_id="subj-1", model_id="m1", template_count=1)

    async def Verify(self, request: Any, context: aio.ServicerContext) -> Any:
        await self._record(request, context)
        return types_pb2.AuthorizationResult(
            decision=types_pb2.DECISION_DECLINE,
            reason=types_pb2.DECISION_REASON_SCORE_BELOW_THRESHOLD,
        )

    async def Identify(self, request: Any, context: aio.ServicerContext) -> Any:
        await self._record(request, context)
        return types_pb2.AuthorizationResult(
            decision=types_pb2.DECISION_NO_MATCH, reason=types_pb2.DECISION_REASON_NO_CANDIDATE
        )

    async def DeleteSubject(self, request: Any, context: aio.ServicerContext) -> Any:
        await self._record(request, context)
        return bioauth_pb2.DeleteSubjectResponse(
            subject_id="subj-1", status=bioauth_pb2.DELETION_STATUS_DONE
        )

    async def GetSubject(self, request: Any, context: aio.ServicerContext) -> Any:
        await self._record(request, context)
        return bioauth_pb2.GetSubjectResponse(
            subject_id="subj-1", status=bioauth_pb2.ENROLMENT_STATUS_ENROLLED
        )

    async def GetJwks(self, request: Any, context: aio.ServicerContext) -> Any:
        await self._record(request, context)
        return bioauth_pb2.GetJwksResponse(jwks_json=JWKS_JSON, max_age_seconds=120)

    async def Authenticate(
        self, request_iterator: Any, context: aio.ServicerContext
    ) -> AsyncIterator[Any]:
        await self._record(None, context)
        frames = 0
        async for request in request_iterator:
            self.seen.requests.append(request)
            if request.HasField("frame"):
                frames += 1
                yield bioauth_pb2.AuthenticateResponse(
                    frame_result=bioauth_pb2.FrameResult(
                        sequence=request.frame.sequence, accepted=True
                    )
                )
                if frames == 2:
                    break
        yield bioauth_pb2.AuthenticateResponse(
            result=types_pb2.AuthorizationResult(
                decision=types_pb2.DECISION_RETRY,
                reason=types_pb2.DECISION_REASON_SESSION_BUDGET_SPENT,
            )
        )


@dataclass
class ScriptedServer:
    target: str
    servicer: ScriptedBioAuth
    health: health.aio.HealthServicer


@pytest.fixture
async def scripted_server() -> AsyncIterator[ScriptedServer]:
    server = aio.server()
    servicer = ScriptedBioAuth()
    health_servicer = health.aio.HealthServicer()
    bioauth_pb2_grpc.add_BioAuthServicer_to_server(servicer, server)
    bioauth_pb2_grpc.add_KeyPublicationServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield ScriptedServer(f"127.0.0.1:{port}", servicer, health_servicer)
    finally:
        await server.stop(None)
