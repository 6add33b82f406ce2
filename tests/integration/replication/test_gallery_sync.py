"""Two replicas in one process share a real PostgreSQL database: replica B's gallery follows
replica A's enrolments and opt-outs through LISTEN/NOTIFY, and catches up after its connection is
cut (through a TCP proxy, or killed by PostgreSQL) without being rebuilt.

The periodic catch-up is off, so only notifications and reconnections carry changes. Every wait
polls up to a deadline. Only the model is scripted (which crop is whom); store, keys, gallery,
token issuer and the follower are the real ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bioauth.config import (
    GallerySyncSettings,
    TenantSettings,
    TokenSettings,
)
from bioauth.crypto.local_provider import LocalKeyProvider
from bioauth.matching.decision import Decision, DecisionReason
from bioauth.matching.gallery import TenantGalleries
from bioauth.service.container import Services
from bioauth.service.domain import AuthorizationOutcome
from bioauth.service.gallery_sync import GallerySync, SyncState
from bioauth.store.change_feed import APPLICATION_NAME, ChangeFeed
from bioauth.store.postgres import PostgresTemplateStore
from bioauth.testing import build_tiny_model, tiny_manifest
from bioauth.testing.embedders import ScriptedEmbedder
from tests.support.postgres import fresh_database
from tests.support.tcp_proxy import TcpProxy
from tests.support.wait import eventually
from tests.unit.service.conftest import (
    DIM,
    deadline,
    enrol_request,
    face_png,
    near,
    person,
    scripted_services,
    transaction,
)

pytestmark = pytest.mark.integration

TENANT = TenantSettings(id="tenant-a", verify_operating_point="fmr_1e-3", identify_fpir_target=0.1)
WAIT_S = 5.0
MODEL_ID = "tiny-test-model"
SYNC = GallerySyncSettings(
    catch_up_interval_s=0, probe_interval_s=0.5, reconnect_min_s=0.1, reconnect_max_s=0.5
)


@dataclass
class Replica:
    store: PostgresTemplateStore
    keys: LocalKeyProvider
    galleries: TenantGalleries
    services: Services


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with fresh_database() as dsn:
        yield dsn


@pytest.fixture
def proxy(database: str) -> Iterator[TcpProxy]:
    parts = urlsplit(database)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    try:
        yield proxy
    finally:
        proxy.close()


def _through(dsn: str, proxy: TcpProxy) -> str:
    parts = urlsplit(dsn)
    netloc = (
        f"{parts.username}@127.0.0.1:{proxy.port}" if parts.username else f"127.0.0.1:{proxy.port}"
    )
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@pytest.fixture
async def world(
    database: str, tmp_path: Path
) -> AsyncIterator[tuple[Replica, Replica, ScriptedEmbedder]]:
    manifest = tiny_manifest(build_tiny_model(embedding_size=DIM), embedding_size=DIM)
    assert manifest.model_id == MODEL_ID
    scripted = ScriptedEmbedder(manifest)
    replicas: list[Replica] = []
    try:
        for _ in range(2):
            store = await PostgresTemplateStore.open(database)
            keys = await LocalKeyProvider.open(tmp_path / "keys.json")  # one key file, shared
            galleries, services = scripted_services(
                store, keys, manifest, scripted, tokens=TokenSettings()
            )
            replicas.append(Replica(store, keys, galleries, services))
        yield replicas[0], replicas[1], scripted
    finally:
        for replica in replicas:
            await replica.keys.close()
            await replica.store.close()


def _follower(replica: Replica, dsn: str, model_id: str) -> GallerySync:
    async def open_feed(on_change: Callable[..., None], on_lost: Callable[[], None]) -> ChangeFeed:
        return await ChangeFeed.connect(dsn, on_change=on_change, on_lost=on_lost, timeout_s=2.0)

    return GallerySync(
        open_feed=open_feed,
        settings=SYNC,
        store=replica.store,
        keys=replica.keys,
        galleries=replica.galleries,
        tenant_ids=[TENANT.id],
        model_id=model_id,
    )


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    await eventually(check, what, timeout_s=WAIT_S)


async def _enrol(replica: Replica, scripted: ScriptedEmbedder, ref: str, seed: int) -> str:
    image = face_png(seed)
    scripted.register(image, person(seed))
    view = await replica.services.enrol.enrol(
        TENANT.id, enrol_request(ref, [image]), deadline=deadline()
    )
    return view.subject_id


async def _identify(
    replica: Replica, scripted: ScriptedEmbedder, like: int, seed: int
) -> AuthorizationOutcome:
    image = face_png(seed)
    scripted.register(image, near(person(like), seed))
    return await replica.services.identify.identify(
        TENANT, [image], transaction(f"tx-{seed}"), deadline=deadline()
    )


def _in_gallery(replica: Replica, subject_id: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return subject_id in replica.galleries.get(TENANT.id)

    return check


def _not_in_gallery(replica: Replica, subject_id: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return subject_id not in replica.galleries.get(TENANT.id)

    return check


async def _started(replica: Replica, dsn: str, model_id: str) -> GallerySync:
    sync = _follower(replica, dsn, model_id)
    await sync.mark()
    await sync.start()
    return sync


async def test_enrolment_and_opt_out_on_one_replica_reach_the_other(
    world: tuple[Replica, Replica, ScriptedEmbedder], database: str
) -> None:
    """Enrolled through A: B identifies the person; opted out through A: B's gallery drops them
    and B no longer matches them (NOTIFY alone carries both; the periodic catch-up is off)."""
    a, b, scripted = world
    sync = await _started(b, database, MODEL_ID)
    try:
        subject_id = await _enrol(a, scripted, "acct-1", 1)
        await _eventually(_in_gallery(b, subject_id), "B's gallery has the subject enrolled on A")
        outcome = await _identify(b, scripted, like=1, seed=101)
        assert outcome.verdict.decision is Decision.APPROVE
        assert outcome.external_ref == "acct-1"
        assert (await _identify(a, scripted, like=1, seed=102)).verdict.decision is Decision.APPROVE

        await a.services.subjects.delete(TENANT.id, "acct-1", deadline=deadline())
        await _eventually(_not_in_gallery(b, subject_id), "B's gallery dropped the opted-out one")
        after = await _identify(b, scripted, like=1, seed=103)
        assert after.verdict.decision is Decision.NO_MATCH
        assert after.verdict.reason is DecisionReason.EMPTY_GALLERY, (
            "dropped by the follower itself"
        )
        assert sync.reconnections == 0
    finally:
        await sync.close()


async def test_a_cut_connection_is_restored_and_caught_up(
    world: tuple[Replica, Replica, ScriptedEmbedder], database: str, proxy: TcpProxy
) -> None:
    """B's feed runs through a proxy; the proxy drops it and refuses to reconnect while A enrols
    and opts out; once restored, B reconnects by itself and catches up on both."""
    a, b, scripted = world
    sync = await _started(b, _through(database, proxy), MODEL_ID)
    try:
        leaving = await _enrol(a, scripted, "acct-leaving", 2)
        await _eventually(_in_gallery(b, leaving), "B follows A through the proxy")
        proxy.cut()

        async def reconnecting() -> bool:
            return sync.state is SyncState.RECONNECTING

        await _eventually(reconnecting, "B noticed that its connection is gone")
        joining = await _enrol(a, scripted, "acct-joining", 3)
        await a.services.subjects.delete(TENANT.id, "acct-leaving", deadline=deadline())
        assert joining not in b.galleries.get(TENANT.id)
        assert leaving in b.galleries.get(TENANT.id)

        proxy.restore()
        await _eventually(_in_gallery(b, joining), "B caught up on the enrolment made while cut")
        await _eventually(_not_in_gallery(b, leaving), "B caught up on the opt-out made while cut")
        assert sync.reconnections >= 1
        assert sync.state is SyncState.FOLLOWING
    finally:
        await sync.close()


async def test_a_listener_killed_by_postgresql_reconnects_and_catches_up(
    world: tuple[Replica, Replica, ScriptedEmbedder], database: str
) -> None:
    """pg_terminate_backend on B's LISTEN connection: B reconnects and sees what A did next."""
    a, b, scripted = world
    sync = await _started(b, database, MODEL_ID)
    try:
        admin = await asyncpg.connect(database)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = current_database()",
                APPLICATION_NAME,
            )
        finally:
            await admin.close()
        assert killed == 1
        subject_id = await _enrol(a, scripted, "acct-after-kill", 4)
        await _eventually(_in_gallery(b, subject_id), "B caught up after its listener was killed")

        async def reconnected() -> bool:
            return sync.reconnections >= 1

        await _eventually(reconnected, "B opened a new listener connection")
    finally:
        await sync.close()


async def test_changes_between_the_watermark_and_the_start_are_applied(
    world: tuple[Replica, Replica, ScriptedEmbedder], database: str
) -> None:
    """A change committed after B read its watermarks but before it followed (while it would be
    loading its gallery) is applied when following starts."""
    a, b, scripted = world
    sync = _follower(b, database, MODEL_ID)
    await sync.mark()
    try:
        subject_id = await _enrol(a, scripted, "acct-during-load", 5)
        assert subject_id not in b.galleries.get(TENANT.id)
        await sync.start()
        await _eventually(_in_gallery(b, subject_id), "B applied the change made during its load")
        assert sync.watermarks[TENANT.id] >= 1
    finally:
        await sync.close()


async def test_periodic_catch_up_repairs_lost_notifications(
    world: tuple[Replica, Replica, ScriptedEmbedder], database: str
) -> None:
    """With every notification lost (the feed's callback drops them), the periodic catch-up
    still brings B's gallery up to date within its interval."""
    a, b, scripted = world

    async def deaf_feed(on_change: Callable[..., None], on_lost: Callable[[], None]) -> ChangeFeed:
        return await ChangeFeed.connect(
            database, on_change=lambda _change: None, on_lost=on_lost, timeout_s=2.0
        )

    sync = GallerySync(
        open_feed=deaf_feed,
        settings=SYNC.model_copy(update={"catch_up_interval_s": 0.5}),
        store=b.store,
        keys=b.keys,
        galleries=b.galleries,
        tenant_ids=[TENANT.id],
        model_id=MODEL_ID,
    )
    await sync.mark()
    await sync.start()
    try:
        subject_id = await _enrol(a, scripted, "acct-unannounced", 6)
        await _eventually(_in_gallery(b, subject_id), "the periodic catch-up applied the change")
    finally:
        await sync.close()
