"""Thin gRPC servicers: protobuf in, one service call, protobuf out.

The tenant and the absolute deadline come from the request context the interceptors set
(``bioauth.api.interceptors.request_context``); they are passed to the service explicitly, so
nothing below this layer reads gRPC state. Errors are never mapped here: typed errors propagate to the error-mapping
interceptor, which owns the one table of status codes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

from grpc import aio

from bioauth.api import authenticate, convert
from bioauth.api.interceptors.request_context import current_request
from bioauth.errors import InvalidInput
from bioauth.service.container import Services
from bioauth.v1 import bioauth_pb2, bioauth_pb2_grpc, types_pb2

__all__ = ["BioAuthServicer", "KeyPublicationServicer"]

_Ctx: TypeAlias = aio.ServicerContext[Any, Any]


class BioAuthServicer(bioauth_pb2_grpc.BioAuthServicer):
    def __init__(self, services: Services) -> None:
        self._services = services

    async def Enroll(
        self, request: bioauth_pb2.EnrollRequest, context: _Ctx
    ) -> bioauth_pb2.EnrollResponse:
        ctx = current_request()
        enrolment = convert.enrol_request(request)
        view = await self._services.enrol.enrol(ctx.tenant.id, enrolment, deadline=ctx.deadline)
        return convert.enrol_response(view)

    async def Verify(
        self, request: bioauth_pb2.VerifyRequest, context: _Ctx
    ) -> types_pb2.AuthorizationResult:
        ctx = current_request()
        if not request.HasField("transaction"):
            raise InvalidInput("is required", field="transaction")
        outcome = await self._services.verify.verify(
            ctx.tenant,
            convert.external_ref(request.subject),
            convert.face_inputs(request.probes, "probes"),
            convert.transaction(request.transaction),
            deadline=ctx.deadline,
        )
        return convert.authorization_result(outcome)

    async def Identify(
        self, request: bioauth_pb2.IdentifyRequest, context: _Ctx
    ) -> types_pb2.AuthorizationResult:
        ctx = current_request()
        if not request.HasField("transaction"):
            raise InvalidInput("is required", field="transaction")
        outcome = await self._services.identify.identify(
            ctx.tenant,
            convert.face_inputs(request.probes, "probes"),
            convert.transaction(request.transaction),
            deadline=ctx.deadline,
        )
        return convert.authorization_result(outcome)

    async def Authenticate(
        self, request_iterator: AsyncIterator[bioauth_pb2.AuthenticateRequest], context: _Ctx
    ) -> AsyncIterator[bioauth_pb2.AuthenticateResponse]:
        ctx = current_request()
        replies = self._services.authenticate.authenticate(
            ctx.tenant, authenticate.session_messages(request_iterator), deadline=ctx.deadline
        )
        async for reply in replies:
            yield authenticate.session_response(reply)

    async def DeleteSubject(
        self, request: bioauth_pb2.DeleteSubjectRequest, context: _Ctx
    ) -> bioauth_pb2.DeleteSubjectResponse:
        ctx = current_request()
        outcome = await self._services.subjects.delete(
            ctx.tenant.id, convert.external_ref(request.subject), deadline=ctx.deadline
        )
        return convert.delete_response(outcome)

    async def GetSubject(
        self, request: bioauth_pb2.GetSubjectRequest, context: _Ctx
    ) -> bioauth_pb2.GetSubjectResponse:
        ctx = current_request()
        view = await self._services.subjects.get(
            ctx.tenant.id, convert.external_ref(request.subject), deadline=ctx.deadline
        )
        return convert.subject_response(view)


class KeyPublicationServicer(bioauth_pb2_grpc.KeyPublicationServicer):
    def __init__(self, services: Services) -> None:
        self._services = services

    async def GetJwks(
        self, request: bioauth_pb2.GetJwksRequest, context: _Ctx
    ) -> bioauth_pb2.GetJwksResponse:
        tokens = self._services.tokens
        return bioauth_pb2.GetJwksResponse(
            jwks_json=await tokens.jwks_json(), max_age_seconds=tokens.jwks_max_age_s
        )
