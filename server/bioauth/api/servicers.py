"""Thin gRPC servicers: protobuf in, domain call, protobuf out.

Until the service layer lands, every RPC answers UNIMPLEMENTED with a message that says so;
none pretends to work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

from grpc import aio

from bioauth.errors import NotImplementedYet
from bioauth.v1 import bioauth_pb2, bioauth_pb2_grpc, types_pb2

__all__ = ["BioAuthServicer", "KeyPublicationServicer"]

_Ctx: TypeAlias = aio.ServicerContext[Any, Any]


def _pending(rpc: str) -> NotImplementedYet:
    return NotImplementedYet(f"{rpc} is not implemented yet in this server build")


class BioAuthServicer(bioauth_pb2_grpc.BioAuthServicer):
    async def Enroll(
        self, request: bioauth_pb2.EnrollRequest, context: _Ctx
    ) -> bioauth_pb2.EnrollResponse:
        raise _pending("Enroll")

    async def Verify(
        self, request: bioauth_pb2.VerifyRequest, context: _Ctx
    ) -> types_pb2.AuthorizationResult:
        raise _pending("Verify")

    async def Identify(
        self, request: bioauth_pb2.IdentifyRequest, context: _Ctx
    ) -> types_pb2.AuthorizationResult:
        raise _pending("Identify")

    async def Authenticate(
        self, request_iterator: AsyncIterator[bioauth_pb2.AuthenticateRequest], context: _Ctx
    ) -> AsyncIterator[bioauth_pb2.AuthenticateResponse]:
        raise _pending("Authenticate")
        yield  # pragma: no cover - makes this an async generator like the real one

    async def DeleteSubject(
        self, request: bioauth_pb2.DeleteSubjectRequest, context: _Ctx
    ) -> bioauth_pb2.DeleteSubjectResponse:
        raise _pending("DeleteSubject")

    async def GetSubject(
        self, request: bioauth_pb2.GetSubjectRequest, context: _Ctx
    ) -> bioauth_pb2.GetSubjectResponse:
        raise _pending("GetSubject")


class KeyPublicationServicer(bioauth_pb2_grpc.KeyPublicationServicer):
    async def GetJwks(
        self, request: bioauth_pb2.GetJwksRequest, context: _Ctx
    ) -> bioauth_pb2.GetJwksResponse:
        raise _pending("GetJwks")
