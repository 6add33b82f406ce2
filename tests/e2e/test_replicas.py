"""Two server processes share one PostgreSQL store, as replicas behind a load balancer do.

Replica B reaches PostgreSQL through a TCP proxy this test controls, so its connections can be cut
for real. The periodic catch-up is off on both, so only LISTEN/NOTIFY (and B's catch-up after it
reconnects) can carry a change from A to B. Every wait polls up to a deadline.

The tenant's point ``fmr_1e-3`` (e1p1) is placed by this module between the genuine and impostor
distances the served model gives on the chips used (``tests.support.calibration``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from bioauth.client import (
    AsyncClient,
    consent,
    face_image_from_path,
    transaction_context,
)
from bioauth.v1 import types_pb2
from tests.support.calibration import fused, mode, point, served_calibration, served_embeddings
from tests.support.faces import face_set
from tests.support.postgres import fresh_database
from tests.support.server import Sections, ServerProcess, Tenant, running_server
from tests.support.tcp_proxy import TcpProxy
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e

POINT = "fmr_1e-3"
TENANT = Tenant("bank-r", "key-bank-r", verify_operating_point=POINT, identify_fpir_target=0.01)
WAIT_S = 10.0
TIMEOUT_S = 30.0
APPROVE = types_pb2.DECISION_APPROVE


@dataclass(frozen=True)
class Chips:
    obama: list[Path]
    biden: list[Path]
    threshold: float


@dataclass(frozen=True)
class Replicas:
    a: ServerProcess
    b: ServerProcess
    proxy: TcpProxy


@pytest.fixture(scope="module")
def chips() -> Chips:
    faces = face_set()
    obama, biden = faces.chips("obama")[:2], faces.chips("biden")[:2]
    o0, o1, b0, b1 = served_embeddings([*obama, *biden])
    genuine = max(fused(o0, o1), fused(b0, b1))
    impostor = min(fused(o0, b1), fused(b0, o1), fused(o0, b0))
    assert genuine < impostor, "the chips must separate the two people"
    return Chips(obama, biden, (genuine + impostor) / 2)


def _through(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, f"{user}127.0.0.1:{port}", parts.path, "", ""))


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, chips: Chips) -> Iterator[Replicas]:
    shared = tmp_path_factory.mktemp("replicas")
    settings: Sections = {
        "keys": {"local_path": shared / "dev-keys.json"},  # one key file: B opens what A sealed
        "gallery_sync": {
            "catch_up_interval_s": 0,
            "probe_interval_s": 0.5,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
        },
    }
    calibration = served_calibration(e1p1=mode(point(1e-3, chips.threshold)))
    with fresh_database() as dsn, contextlib.ExitStack() as stack:
        parts = urlsplit(dsn)
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
        stack.callback(proxy.close)
        servers: list[ServerProcess] = []
        for name, url in (("a", dsn), ("b", _through(dsn, proxy.port))):
            directory = shared / name
            directory.mkdir()
            server = running_server(
                directory,
                tenants=[TENANT],
                store_url=url,
                calibration=calibration,
                settings=settings,
            )
            servers.append(stack.enter_context(server))
        yield Replicas(servers[0], servers[1], proxy)


@pytest.fixture
async def clients(replicas: Replicas) -> AsyncIterator[tuple[AsyncClient, AsyncClient]]:
    async with (
        replicas.a.client(TENANT.id, timeout=TIMEOUT_S) as a,
        replicas.b.client(TENANT.id, timeout=TIMEOUT_S) as b,
    ):
        yield a, b


_counter = iter(range(1_000_000))


def _tx() -> types_pb2.TransactionContext:
    return transaction_context(f"tx-replicas-{next(_counter)}", 1500, "EUR", terminal_id="t-2")


async def _enrol(client: AsyncClient, ref: str, chip: Path) -> str:
    response = await client.enroll(
        ref,
        [face_image_from_path(chip)],
        consent("2026-10", "payment-authentication", channel="terminal", identification=True),
        idempotency_key=f"enrol-{ref}",
    )
    assert [s.accepted for s in response.samples] == [True]
    return response.subject_id


def _identify(
    client: AsyncClient, chip: Path
) -> Callable[[], Awaitable[types_pb2.AuthorizationResult]]:
    async def call() -> types_pb2.AuthorizationResult:
        return await client.identify([face_image_from_path(chip)], _tx())

    return call


async def _until(
    call: Callable[[], Awaitable[types_pb2.AuthorizationResult]],
    holds: Callable[[types_pb2.AuthorizationResult], bool],
    what: str,
) -> types_pb2.AuthorizationResult:
    """Call until the answer satisfies ``holds``, for at most WAIT_S seconds."""
    until = time.monotonic() + WAIT_S
    while True:
        result = await call()
        if holds(result):
            return result
        if time.monotonic() > until:
            raise AssertionError(f"not within {WAIT_S} s: {what}; last answer {result}")
        await asyncio.sleep(0.1)


async def _log_shows(server: ServerProcess, event: str, count: int) -> None:
    await eventually(
        lambda: server.logs().count(f'"event": "{event}"') >= count,
        f"{event} logged {count} times",
        timeout_s=WAIT_S,
    )


async def test_enrolled_on_one_identified_on_the_other_then_opted_out_everywhere(
    clients: tuple[AsyncClient, AsyncClient], chips: Chips
) -> None:
    """Enrolled through A, identified through B; once both have matched the person, an opt-out
    through A leaves B with an empty gallery (EMPTY_GALLERY: B's own gallery dropped them, not
    just the store check before an approval)."""
    a, b = clients
    subject_id = await _enrol(a, "acct-obama", chips.obama[0])
    found = await _until(
        _identify(b, chips.obama[1]), lambda r: r.decision == APPROVE, "B identifies A's enrolment"
    )
    assert found.subject_id == subject_id
    assert found.external_ref == "acct-obama"
    assert (await _identify(a, chips.obama[1])()).decision == APPROVE

    deleted = await a.delete_subject("acct-obama")
    assert deleted.subject_id == subject_id
    gone = await _until(
        _identify(b, chips.obama[1]),
        lambda r: r.reason == types_pb2.DECISION_REASON_EMPTY_GALLERY,
        "B's gallery drops the subject opted out through A",
    )
    assert gone.decision == types_pb2.DECISION_NO_MATCH
    assert gone.token == ""
    assert (await _identify(a, chips.obama[1])()).decision == types_pb2.DECISION_NO_MATCH


async def test_b_catches_up_after_its_database_connection_is_cut_and_restored(
    replicas: Replicas, clients: tuple[AsyncClient, AsyncClient], chips: Chips
) -> None:
    """The proxy drops every connection of B and refuses new ones while A enrols; once the proxy
    is back, B reconnects by itself and identifies the person enrolled while it was cut off."""
    a, b = clients
    interrupted = replicas.b.logs().count('"event": "gallery_sync_interrupted"')
    reconnected = replicas.b.logs().count('"event": "gallery_sync_reconnected"')
    replicas.proxy.cut()
    try:
        await _log_shows(replicas.b, "gallery_sync_interrupted", interrupted + 1)
        subject_id = await _enrol(a, "acct-biden", chips.biden[0])
    finally:
        replicas.proxy.restore()
    found = await _until(
        _identify(b, chips.biden[1]),
        lambda r: r.decision == APPROVE,
        "B identifies the person enrolled through A while B was cut off",
    )
    assert found.subject_id == subject_id
    await _log_shows(replicas.b, "gallery_sync_reconnected", reconnected + 1)
