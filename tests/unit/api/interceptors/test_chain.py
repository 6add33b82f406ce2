"""The interceptor chain, driven through the real server in-process over a real channel.

A probe service of the test's own (``/bioauth.test.Probe/*``) passes through the same chain as
every bioauth RPC: it reports the request context it sees, raises what it is told, or sleeps.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY

from bioauth import errors
from bioauth.api.interceptors.request_context import current_request
from bioauth.v1 import bioauth_pb2, bioauth_pb2_grpc, types_pb2
from bioauth.wire import API_KEY_HEADER
from tests.support.in_process import in_process_settings, running_app
from tests.support.server import DEFAULT_TENANTS

DEFAULT_DEADLINE_S = 0.5
PROBE = "/bioauth.test.Probe/"
TENANT_A, TENANT_B = DEFAULT_TENANTS
KEY_A = ((API_KEY_HEADER, TENANT_A.api_key),)
KEY_B = ((API_KEY_HEADER, TENANT_B.api_key),)


@dataclass
class Probe:
    """The test's service; ``calls`` counts every time one of its behaviours starts."""

    calls: list[str] = field(default_factory=list)

    def _seen(self, name: str, context: aio.ServicerContext[Any, Any]) -> bytes:
        self.calls.append(name)
        ctx = current_request()
        return json.dumps(
            {
                "tenant": ctx.tenant.id,
                "request_id": ctx.request_id,
                "method": ctx.method,
                "remaining": ctx.remaining(),
                "client_remaining": context.time_remaining(),
            }
        ).encode()

    async def context(self, _request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        return self._seen("Context", context)

    async def context_stream(
        self, _request: bytes, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        yield self._seen("ContextStream", context)
        yield self._seen("ContextStream", context)

    async def raise_(self, request: bytes, _context: aio.ServicerContext[Any, Any]) -> bytes:
        self.calls.append("Raise")
        name = request.decode()
        if name == "RuntimeError":
            raise RuntimeError("secret detail of a bug")
        raise getattr(errors, name)(f"safe message of {name}")

    async def sleep(self, request: bytes, _context: aio.ServicerContext[Any, Any]) -> bytes:
        self.calls.append("Sleep")
        await asyncio.sleep(float(request.decode()))
        return b"slept"

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "bioauth.test.Probe",
            {
                "Context": grpc.unary_unary_rpc_method_handler(self.context),
                "ContextStream": grpc.unary_stream_rpc_method_handler(self.context_stream),
                "Raise": grpc.unary_unary_rpc_method_handler(self.raise_),
                "Sleep": grpc.unary_unary_rpc_method_handler(self.sleep),
            },
        )


@dataclass
class Served:
    channel: aio.Channel
    probe: Probe

    async def call(self, name: str, request: bytes = b"", **kwargs: Any) -> bytes:
        reply: bytes = await self.channel.unary_unary(PROBE + name)(request, **kwargs)
        return reply

    async def code(self, name: str, request: bytes = b"", **kwargs: Any) -> tuple[Any, str]:
        try:
            await self.call(name, request, **kwargs)
        except aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
        return grpc.StatusCode.OK, ""


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    probe = Probe()
    settings = in_process_settings(tmp_path, default_deadline_s=DEFAULT_DEADLINE_S)
    async with running_app(settings, extra_handlers=[probe.handler()]) as (_app, channel):
        yield Served(channel, probe)


@pytest.mark.parametrize("metadata", [(), (("x-api-key", "not-a-key"),)], ids=["none", "unknown"])
async def test_an_unauthenticated_call_is_refused_before_the_servicer_runs(
    served: Served, metadata: tuple[tuple[str, str], ...]
) -> None:
    assert await served.code("Context", metadata=metadata, timeout=5) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "authentication failed",
    )
    stub = bioauth_pb2_grpc.BioAuthStub(served.channel)
    with pytest.raises(aio.AioRpcError) as info:
        await stub.GetSubject(
            bioauth_pb2.GetSubjectRequest(subject=types_pb2.SubjectRef(external_ref="acct-1")),
            metadata=metadata,
            timeout=5,
        )
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert served.probe.calls == []


async def test_health_and_reflection_answer_without_a_key(served: Served) -> None:
    health = health_pb2_grpc.HealthStub(served.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING

    async def one() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    stub = reflection_pb2_grpc.ServerReflectionStub(served.channel)
    names = {
        s.name
        async for reply in stub.ServerReflectionInfo(one(), timeout=5)
        for s in reply.list_services_response.service
    }
    assert "bioauth.v1.BioAuth" in names


async def test_a_call_without_a_deadline_gets_the_server_default(served: Served) -> None:
    seen = json.loads(await served.call("Context", metadata=KEY_A))
    assert seen["client_remaining"] is None
    assert 0 < seen["remaining"] <= DEFAULT_DEADLINE_S

    started = time.monotonic()
    assert await served.code("Sleep", b"5", metadata=KEY_A) == (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        f"server default deadline of {DEFAULT_DEADLINE_S:g} s exceeded",
    )
    assert time.monotonic() - started < DEFAULT_DEADLINE_S + 1.0


async def test_a_client_deadline_is_the_calls_deadline(served: Served) -> None:
    seen = json.loads(await served.call("Context", metadata=KEY_A, timeout=3))
    assert DEFAULT_DEADLINE_S < seen["remaining"] <= 3
    assert seen["client_remaining"] == pytest.approx(seen["remaining"], abs=0.1)
    assert await served.call("Sleep", b"0.7", metadata=KEY_A, timeout=3) == b"slept"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("InvalidInput", grpc.StatusCode.INVALID_ARGUMENT),
        ("NotFound", grpc.StatusCode.NOT_FOUND),
        ("FailedPrecondition", grpc.StatusCode.FAILED_PRECONDITION),
        ("Overloaded", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("StoreUnavailable", grpc.StatusCode.UNAVAILABLE),
        ("NotImplementedYet", grpc.StatusCode.UNIMPLEMENTED),
    ],
)
async def test_a_typed_error_reaches_the_client_as_its_status(
    served: Served, error: str, code: grpc.StatusCode
) -> None:
    """The full table is pinned in ``tests/unit/api/test_status.py``; here, that the chain
    applies it, with the error's safe message."""
    assert await served.code("Raise", error.encode(), metadata=KEY_A, timeout=5) == (
        code,
        f"safe message of {error}",
    )


@pytest.mark.parametrize("error", ["RuntimeError", "DecryptionFailed", "InternalError"])
async def test_a_bug_or_an_integrity_failure_is_an_opaque_internal(
    served: Served, error: str
) -> None:
    assert await served.code("Raise", error.encode(), metadata=KEY_A, timeout=5) == (
        grpc.StatusCode.INTERNAL,
        "internal error",
    )


async def test_the_servicer_sees_its_request_context(served: Served) -> None:
    first = json.loads(await served.call("Context", metadata=KEY_A, timeout=5))
    second = json.loads(await served.call("Context", metadata=KEY_B, timeout=5))
    assert (first["tenant"], second["tenant"]) == ("tenant-a", "tenant-b")
    assert first["method"] == PROBE + "Context"
    assert len(first["request_id"]) == 32
    assert first["request_id"] != second["request_id"]

    stream = served.channel.unary_stream(PROBE + "ContextStream")
    replies = [json.loads(x) async for x in stream(b"", metadata=KEY_B, timeout=5)]
    assert [x["tenant"] for x in replies] == ["tenant-b", "tenant-b"]
    assert replies[0]["request_id"] == replies[1]["request_id"], "one context per call"
    assert replies[0]["method"] == PROBE + "ContextStream"


def _count(method: str, code: str) -> float:
    return REGISTRY.get_sample_value("bioauth_rpc_total", {"method": method, "code": code}) or 0.0


async def test_each_call_has_one_outcome_line_and_one_count(served: Served) -> None:
    context, fail = PROBE + "Context", PROBE + "Raise"
    before = {
        (context, "OK"): _count(context, "OK"),
        (fail, "NOT_FOUND"): _count(fail, "NOT_FOUND"),
    }
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        await served.call("Context", metadata=KEY_A, timeout=5)
        await served.code("Raise", b"NotFound", metadata=KEY_B, timeout=5)
        await served.code("Context", timeout=5)  # refused: no outcome line, no count

    assert {k: _count(*k) - v for k, v in before.items()} == {
        (context, "OK"): 1.0,
        (fail, "NOT_FOUND"): 1.0,
    }
    done = [x for x in logs if x["event"] == "rpc_done"]
    assert [(x["method"], x["tenant"], x["code"]) for x in done] == [
        (context, "tenant-a", "OK"),
        (fail, "tenant-b", "NOT_FOUND"),
    ]
    assert all(len(x["request_id"]) == 32 for x in done)
    assert [x["event"] for x in logs if x["event"].startswith(("rpc_", "authentication_"))] == [
        "rpc_done",
        "rpc_failed",
        "rpc_done",
        "authentication_failed",
    ]
