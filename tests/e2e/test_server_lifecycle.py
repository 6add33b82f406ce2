"""The real server process: health, reflection, authentication first, default deadlines, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from bioauth.client import HealthStatus
from bioauth.v1 import bioauth_pb2, bioauth_pb2_grpc, types_pb2
from tests.support.server import DEFAULT_TENANTS, ServerProcess, ServerStartError, running_server
from tests.support.slow_server import SLOW_CALL_STARTED, SLOW_METHOD
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e

SLOW_SERVER = [sys.executable, "-m", "tests.support.slow_server"]
TENANT = DEFAULT_TENANTS[0]
GOOD_KEY = (("x-api-key", TENANT.api_key),)
BAD_KEY = (("x-api-key", "not-a-key"),)
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("server"), argv=SLOW_SERVER) as proc:
        yield proc


@pytest.fixture
async def channel(server: ServerProcess) -> AsyncIterator[aio.Channel]:
    async with aio.insecure_channel(server.target) as ch:
        yield ch


def _all_rpcs(channel: aio.Channel) -> dict[str, Callable[[Metadata], Awaitable[object]]]:
    """One call per v1 RPC, each with a minimal valid request."""
    stub = bioauth_pb2_grpc.BioAuthStub(channel)
    keys = bioauth_pb2_grpc.KeyPublicationStub(channel)
    ref = types_pb2.SubjectRef(external_ref="acct-1")

    async def frames() -> AsyncIterator[bioauth_pb2.AuthenticateRequest]:
        yield bioauth_pb2.AuthenticateRequest(
            open=bioauth_pb2.SessionOpen(mode=bioauth_pb2.AUTHENTICATION_MODE_IDENTIFY)
        )

    return {
        "Enroll": lambda md: stub.Enroll(
            bioauth_pb2.EnrollRequest(subject=ref), metadata=md, timeout=5
        ),
        "Verify": lambda md: stub.Verify(
            bioauth_pb2.VerifyRequest(subject=ref), metadata=md, timeout=5
        ),
        "Identify": lambda md: stub.Identify(bioauth_pb2.IdentifyRequest(), metadata=md, timeout=5),
        "DeleteSubject": lambda md: stub.DeleteSubject(
            bioauth_pb2.DeleteSubjectRequest(subject=ref), metadata=md, timeout=5
        ),
        "GetSubject": lambda md: stub.GetSubject(
            bioauth_pb2.GetSubjectRequest(subject=ref), metadata=md, timeout=5
        ),
        "GetJwks": lambda md: keys.GetJwks(bioauth_pb2.GetJwksRequest(), metadata=md, timeout=5),
        "Authenticate": lambda md: _drain(stub.Authenticate(frames(), metadata=md, timeout=5)),
    }


async def _drain(call: aio.StreamStreamCall) -> list[object]:
    return [msg async for msg in call]


async def _code(call: Awaitable[object]) -> grpc.StatusCode:
    try:
        await call
    except aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_health_is_serving(channel: aio.Channel) -> None:
    """Health answers SERVING for the server and each bioauth service, without credentials."""
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "bioauth.v1.BioAuth", "bioauth.v1.KeyPublication"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_through_the_sdk(server: ServerProcess) -> None:
    """The SDK's health call sees SERVING."""
    async with server.client(TENANT.id) as client:
        assert await client.health() == HealthStatus.SERVING


async def test_reflection_lists_the_bioauth_services(channel: aio.Channel) -> None:
    """Server reflection lists both v1 services and health."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def one() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = {
        s.name
        async for reply in stub.ServerReflectionInfo(one(), timeout=5)
        for s in reply.list_services_response.service
    }
    assert {"bioauth.v1.BioAuth", "bioauth.v1.KeyPublication", "grpc.health.v1.Health"} <= names


@pytest.mark.parametrize("metadata", [BAD_KEY, ()], ids=["unknown-key", "no-key"])
async def test_every_rpc_refuses_unknown_credentials(
    channel: aio.Channel, metadata: tuple[tuple[str, str], ...]
) -> None:
    """Every v1 RPC, built or not, answers UNAUTHENTICATED to an unknown or missing API key."""
    for name, call in _all_rpcs(channel).items():
        assert await _code(call(metadata)) == grpc.StatusCode.UNAUTHENTICATED, name


def _identify_open(*, with_transaction: bool) -> bioauth_pb2.AuthenticateRequest:
    opening = bioauth_pb2.SessionOpen(mode=bioauth_pb2.AUTHENTICATION_MODE_IDENTIFY)
    if with_transaction:
        opening.transaction.CopyFrom(
            types_pb2.TransactionContext(transaction_id="txn-1", merchant_id="m-1")
        )
    return bioauth_pb2.AuthenticateRequest(open=opening)


@pytest.mark.parametrize(
    ("metadata", "with_transaction", "expected"),
    [
        (BAD_KEY, True, grpc.StatusCode.UNAUTHENTICATED),
        (GOOD_KEY, False, grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=["refused", "invalid"],
)
async def test_a_failing_stream_ends_only_after_the_client_finishes_writing(
    channel: aio.Channel,
    metadata: Metadata,
    with_transaction: bool,
    expected: grpc.StatusCode,
) -> None:
    """A stream that fails keeps reading until the client half-closes, then sends its status.

    Ending it while a client write is in flight makes grpc's asyncio client report INTERNAL
    instead of the real status (grpc/grpc#36066), which CI once caught on a refused call.
    """
    call = bioauth_pb2_grpc.BioAuthStub(channel).Authenticate(metadata=metadata, timeout=10)
    await call.write(_identify_open(with_transaction=with_transaction))
    await asyncio.sleep(0.3)
    assert not call.done(), "the status must wait for the client's half-close"
    await call.write(_identify_open(with_transaction=with_transaction))
    await call.done_writing()
    assert await call.code() == expected


async def test_a_failing_stream_that_never_half_closes_is_ended_anyway(
    channel: aio.Channel,
) -> None:
    """The wait for the half-close is bounded (stream.drain_s): a client cannot hold the call."""
    call = bioauth_pb2_grpc.BioAuthStub(channel).Authenticate(metadata=BAD_KEY, timeout=30)
    await call.write(_identify_open(with_transaction=True))
    assert await asyncio.wait_for(call.code(), timeout=10) == grpc.StatusCode.UNAUTHENTICATED
    call.cancel()


async def test_a_valid_key_gets_past_authentication(channel: aio.Channel) -> None:
    """With a valid key no RPC is refused as unauthenticated; unbuilt ones say UNIMPLEMENTED."""
    for name, call in _all_rpcs(channel).items():
        code = await _code(call(GOOD_KEY))
        assert code != grpc.StatusCode.UNAUTHENTICATED, name
        assert code != grpc.StatusCode.INTERNAL, name


async def test_outcome_log_lines_carry_the_request_fields(
    server: ServerProcess, channel: aio.Channel
) -> None:
    """Each call's outcome line (rpc_done, rpc_failed) names its request id, tenant and method:
    the line an operator searches first must not lose them."""
    stub = bioauth_pb2_grpc.BioAuthStub(channel)
    ref = types_pb2.SubjectRef(external_ref="acct-log-" + str(id(stub)))
    with pytest.raises(aio.AioRpcError) as info:
        await stub.GetSubject(
            bioauth_pb2.GetSubjectRequest(subject=ref), metadata=GOOD_KEY, timeout=5
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND

    def outcome_lines() -> list[dict[str, object]]:
        lines = [json.loads(x) for x in server.logs().splitlines() if x.startswith("{")]
        return [
            x
            for x in lines
            if x.get("event") in ("rpc_done", "rpc_failed")
            and x.get("method") == "/bioauth.v1.BioAuth/GetSubject"
        ]

    await eventually(lambda: len(outcome_lines()) >= 2, "both outcome lines logged")
    lines = outcome_lines()
    assert {x["event"] for x in lines} >= {"rpc_done", "rpc_failed"}
    for line in lines:
        assert line["tenant"] == TENANT.id
        assert isinstance(line["request_id"], str)
        assert len(line["request_id"]) == 32
    assert "acct-log" not in server.logs(), "external references never reach the logs"


async def test_unauthenticated_calls_never_reach_the_handler(
    server: ServerProcess, channel: aio.Channel
) -> None:
    """A refused call does not run the handler: its budget reply never comes and no log line shows it."""
    sleep = channel.unary_unary("/bioauth.test.Slow/Sleep")
    with pytest.raises(aio.AioRpcError) as info:
        await sleep(b"0", metadata=BAD_KEY, timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert info.value.details() == "authentication failed"
    assert (
        '"method": "/bioauth.test.Slow/Sleep"'
        not in server.logs().split("authentication_failed")[-1]
    )


async def test_a_call_without_deadline_gets_the_default(channel: aio.Channel) -> None:
    """No client deadline: the handler sees the server default (2 s here) and is cut off at it."""
    sleep = channel.unary_unary("/bioauth.test.Slow/Sleep")
    budget = float(await sleep(b"0", metadata=GOOD_KEY))
    assert 1.0 < budget <= 2.0
    with pytest.raises(aio.AioRpcError) as info:
        await sleep(b"3", metadata=GOOD_KEY)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_client_deadline_wins_over_the_default(channel: aio.Channel) -> None:
    """A client deadline longer than the default lets the call run to it."""
    sleep = channel.unary_unary("/bioauth.test.Slow/Sleep")
    budget = float(await sleep(b"2.5", metadata=GOOD_KEY, timeout=10))
    assert budget > 5.0


async def test_sigterm_drains_in_flight_calls(tmp_path: Path) -> None:
    """SIGTERM: health turns NOT_SERVING first, the in-flight call completes, the process exits 0."""
    with running_server(tmp_path, argv=SLOW_SERVER) as proc:
        async with aio.insecure_channel(proc.target) as ch:
            watch = health_pb2_grpc.HealthStub(ch).Watch(
                health_pb2.HealthCheckRequest(service=""), timeout=20
            )
            first = await watch.read()
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            slow = asyncio.ensure_future(
                ch.unary_unary("/bioauth.test.Slow/Sleep")(b"1.5", metadata=GOOD_KEY, timeout=20)
            )
            await eventually(  # the call is in its handler before the signal
                lambda: SLOW_CALL_STARTED in proc.logs(), "the slow call reached its handler"
            )
            proc.terminate()
            second = await watch.read()
            assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert not slow.done(), "health must turn NOT_SERVING before in-flight calls finish"
            watch.cancel()
            assert float(await slow) > 0
        assert await asyncio.to_thread(proc.wait, 30) == 0


def test_a_port_in_use_fails_start_up_with_a_clear_message(tmp_path: Path) -> None:
    """The port is taken: the server says so and exits non-zero (what it opened is closed)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            pytest.raises(
                ServerStartError, match=f"bioauth serve: could not bind 127.0.0.1:{port}"
            ) as info,
            running_server(tmp_path, settings={"server": {"port": port}}, timeout_s=60),
        ):
            pass
        assert info.value.returncode not in (None, 0)


async def test_metrics_are_served_without_anything_biometric(tmp_path: Path) -> None:
    """server.metrics_port serves the RPC and batcher families; labels carry no reference."""
    with running_server(
        tmp_path, argv=SLOW_SERVER, settings={"server": {"metrics_port": 0}}
    ) as proc:
        await eventually(lambda: "metrics_listening" in proc.logs(), "metrics endpoint logged")
        [line] = [json.loads(x) for x in proc.logs().splitlines() if '"metrics_listening"' in x]
        async with aio.insecure_channel(proc.target) as ch:
            ref = types_pb2.SubjectRef(external_ref="acct-metrics-1")
            with pytest.raises(aio.AioRpcError):
                await bioauth_pb2_grpc.BioAuthStub(ch).GetSubject(
                    bioauth_pb2.GetSubjectRequest(subject=ref), metadata=GOOD_KEY, timeout=5
                )
            sleep = ch.unary_unary(SLOW_METHOD)
            with pytest.raises(aio.AioRpcError) as cut:
                await sleep(b"3", metadata=GOOD_KEY, timeout=0.5)
            assert cut.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        url = f"http://127.0.0.1:{line['port']}/metrics"

        def scrape() -> str:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())

        expired = f'bioauth_rpc_total{{code="DEADLINE_EXCEEDED",method="{SLOW_METHOD}"}} 1.0'

        async def counted() -> bool:
            return expired in await asyncio.to_thread(scrape)

        await eventually(counted, "a call cut off by its client deadline is counted")
        text = await asyncio.to_thread(scrape)
        assert (
            'bioauth_rpc_total{code="NOT_FOUND",method="/bioauth.v1.BioAuth/GetSubject"} 1.0'
            in text
        )
        for family in ("bioauth_inference_batch_size", "bioauth_inference_queue_depth"):
            assert f"# TYPE {family}" in text
        assert "acct-metrics" not in text
