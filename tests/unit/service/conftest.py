"""Service-layer fixtures: real SQLite store, real local key provider, real token issuer and
gallery; only the model is scripted (``bioauth.testing.ScriptedEmbedder``), so that a test can say
which crops are the same person."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from bioauth.config import ImageSettings, Settings, TenantSettings, TokenSettings
from bioauth.crypto.local_provider import LocalKeyProvider
from bioauth.crypto.provider import KeyProvider
from bioauth.crypto.tokens import TokenIssuer
from bioauth.inference.manifest import ModelManifest
from bioauth.matching.gallery import TenantGalleries
from bioauth.matching.gallery.reduce import reducer_for_rule
from bioauth.matching.operating_points import Calibration, ComparisonMode
from bioauth.service.container import Services, build_services
from bioauth.service.domain import EnrolRequest, FaceInput, Transaction
from bioauth.service.face_embedder import FaceEmbedder
from bioauth.service.opt_out import OptOutService
from bioauth.store.protocol import TemplateStore
from bioauth.store.sqlite import SqliteTemplateStore
from bioauth.testing import build_tiny_model, tiny_manifest
from bioauth.testing.embedders import ScriptedEmbedder
from bioauth.v1 import types_pb2
from bioauth.wire import transaction_hash_b64
from tests.support.calibration import calibration, mode, point

DIM = 8
# Constructed for these tests (hand-picked thresholds, not measured): every mode has the same
# two points, so any image count decides at a known threshold.
LOOSE, STRICT = 0.5, 0.3
MARGIN = 0.1


def constructed_calibration(model_id: str) -> Calibration:
    same = mode(point(1e-3, LOOSE), point(1e-4, STRICT), margin=MARGIN)
    return calibration({m.key: same for m in ComparisonMode.all()}, model_id=model_id)


def face_png(seed: int, *, side: int = 150, blur: bool = False, dark: bool = False) -> bytes:
    """A crop that passes (or, as asked, fails) the quality gates: textured noise."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(60, 200, size=(side, side, 3), dtype=np.uint8)
    if blur:
        pixels[:] = pixels.mean(axis=(0, 1)).astype(np.uint8)
    if dark:
        pixels //= 10
    out = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(out, format="PNG")
    return out.getvalue()


def person(seed: int) -> npt.NDArray[np.float32]:
    """A random unit vector standing for one person's true embedding."""
    v = np.random.default_rng(10_000 + seed).standard_normal(DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def near(base: npt.NDArray[np.float32], seed: int, noise: float = 0.02) -> npt.NDArray[np.float32]:
    v = base + noise * np.random.default_rng(20_000 + seed).standard_normal(DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def enrol_request(
    ref: str, samples: Sequence[FaceInput], *, identification: bool = True, key: str | None = None
) -> EnrolRequest:
    return EnrolRequest(
        external_ref=ref,
        policy_version="2026-10",
        consented_at=datetime.now(UTC) - timedelta(minutes=1),
        channel="mobile_app",
        purpose="payment-authentication",
        identification=identification,
        samples=tuple(samples),
        idempotency_key=key or f"enrol-{ref}",
    )


def transaction(tx_id: str = "tx-1") -> Transaction:
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromDatetime(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    ctx = types_pb2.TransactionContext(
        transaction_id=tx_id, amount_minor=1250, currency="EUR", timestamp=ts, nonce="nonce-123456"
    )
    return Transaction(transaction_id=tx_id, binding=transaction_hash_b64(ctx))


def deadline(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


@dataclass
class World:
    services: Services
    store: SqliteTemplateStore
    keys: LocalKeyProvider
    scripted: ScriptedEmbedder
    galleries: TenantGalleries
    manifest: ModelManifest
    tenant: TenantSettings
    other_tenant: TenantSettings


def scripted_services(
    store: TemplateStore,
    keys: KeyProvider,
    manifest: ModelManifest,
    scripted: ScriptedEmbedder,
    *,
    tokens: TokenSettings,
) -> tuple[TenantGalleries, Services]:
    """The real use cases over ``store`` and ``keys``, embedding with the scripted model and
    deciding by the constructed calibration; the galleries returned are the ones they keep."""
    calibration = constructed_calibration(manifest.model_id)
    galleries = TenantGalleries(dim=DIM, reducer=reducer_for_rule(calibration.fusion_rule))
    services = build_services(
        Settings(),
        store=store,
        keys=keys,
        embedder=FaceEmbedder(scripted, manifest, ImageSettings()),
        calibration=calibration,
        galleries=galleries,
        opt_out=OptOutService(store, keys),
        tokens=TokenIssuer(keys, tokens),
    )
    return galleries, services


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    manifest = tiny_manifest(build_tiny_model(embedding_size=DIM), embedding_size=DIM)
    store = await SqliteTemplateStore.open(tmp_path / "bioauth.sqlite3")
    keys = await LocalKeyProvider.open(tmp_path / "keys.json")
    scripted = ScriptedEmbedder(manifest)
    galleries, services = scripted_services(
        store, keys, manifest, scripted, tokens=TokenSettings(issuer="bioauth-test")
    )
    tenant = TenantSettings(
        id="tenant-a", verify_operating_point="fmr_1e-3", identify_fpir_target=0.1
    )
    other = TenantSettings(id="tenant-b", verify_operating_point="fmr_1e-3")
    try:
        yield World(services, store, keys, scripted, galleries, manifest, tenant, other)
    finally:
        await keys.close()
        await store.close()
