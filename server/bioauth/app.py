"""The composition root: builds every component from settings, and owns their lifecycle.

Start-up order: logging, store, key provider, model (ONNX session) and its batcher, calibrated
operating points, the 1:N galleries (filled from the store; with PostgreSQL, then following the
other replicas' changes), token issuer, opt-out retrier, the use
cases, then the gRPC server with interceptors, health SERVING. A failure half way closes what was
already opened. Shutdown order (SIGTERM/SIGINT): health NOT_SERVING
so load balancers drain, a short drain delay, ``server.stop(grace)`` (no new calls; in-flight
calls get the grace period), then components close in reverse order. Every close is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bioauth.api.interceptors.chain import interceptor_chain
from bioauth.api.servicers import BioAuthServicer, KeyPublicationServicer
from bioauth.config import Settings
from bioauth.crypto.factory import open_key_provider
from bioauth.crypto.tokens import TokenIssuer
from bioauth.inference.batcher import DynamicBatcher
from bioauth.inference.engine import OnnxEngine
from bioauth.inference.manifest import calibration_path, load_manifest
from bioauth.matching.gallery import TenantGalleries
from bioauth.matching.gallery.index import make_backend
from bioauth.matching.gallery.reduce import reducer_for_rule
from bioauth.matching.operating_points import Calibration, load_calibration
from bioauth.modelbuild import ensure_built
from bioauth.observability.logging import configure_logging, get_logger
from bioauth.observability.metrics import MetricsEndpoint
from bioauth.service.container import Services, build_services
from bioauth.service.face_embedder import FaceEmbedder
from bioauth.service.gallery_sync import open_gallery_sync
from bioauth.service.opt_out import OptOutRetrier, OptOutService
from bioauth.service.templates import load_gallery
from bioauth.store.factory import open_store
from bioauth.v1 import bioauth_pb2, bioauth_pb2_grpc

__all__ = ["App", "build_app", "serve"]

_LOGGER = get_logger(__name__)
SERVICE_NAMES: tuple[str, ...] = (
    bioauth_pb2.DESCRIPTOR.services_by_name["BioAuth"].full_name,
    bioauth_pb2.DESCRIPTOR.services_by_name["KeyPublication"].full_name,
)

Closer = Callable[[], Awaitable[None]]


class App:
    """A built server and the components it owns."""

    def __init__(
        self,
        settings: Settings,
        server: aio.Server,
        health_servicer: health.aio.HealthServicer,
        port: int,
        closers: Sequence[Closer],
    ) -> None:
        self.settings = settings
        self.server = server
        self.health = health_servicer
        self.port = port
        self._closers = list(closers)
        self._closed = False

    async def start(self) -> None:
        await self.server.start()
        server_settings = self.settings.server
        if server_settings.metrics_port is not None:
            endpoint = MetricsEndpoint.start(
                server_settings.metrics_host, server_settings.metrics_port
            )
            self._closers.append(endpoint.close)
            _LOGGER.info("metrics_listening", host=server_settings.metrics_host, port=endpoint.port)
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        port_file = self.settings.server.port_file
        if port_file is not None:
            tmp = port_file.with_suffix(".tmp")
            tmp.write_text(str(self.port))
            tmp.replace(port_file)
        _LOGGER.info("server_started", host=self.settings.server.host, port=self.port)

    async def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        server_settings = self.settings.server
        _LOGGER.info("shutdown_begin", grace_period_s=server_settings.grace_period_s)
        await self.health.enter_graceful_shutdown()
        await asyncio.sleep(server_settings.drain_delay_s)
        await self.server.stop(server_settings.grace_period_s)
        for close in reversed(self._closers):
            try:
                await close()
            except Exception:
                _LOGGER.exception(
                    "close_failed", closer=getattr(close, "__qualname__", repr(close))
                )
        _LOGGER.info("shutdown_done")


async def build_app(
    settings: Settings, *, extra_handlers: Sequence[grpc.GenericRpcHandler] = ()
) -> App:
    """Wire the server from settings. ``extra_handlers`` adds services (admin, or a test's own)."""
    closers: list[Closer] = []
    try:
        services = await _open_services(settings, closers)
    except BaseException:
        await _close_all(closers)
        raise
    server = aio.server(
        interceptors=interceptor_chain(
            settings.tenants,
            default_deadline_s=settings.server.default_deadline_s,
            drain_s=settings.stream.drain_s,
        ),
        options=[
            ("grpc.max_receive_message_length", settings.server.max_receive_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=settings.server.max_concurrent_rpcs,
    )
    bioauth_pb2_grpc.add_BioAuthServicer_to_server(BioAuthServicer(services), server)
    bioauth_pb2_grpc.add_KeyPublicationServicer_to_server(KeyPublicationServicer(services), server)
    if extra_handlers:
        server.add_generic_rpc_handlers(tuple(extra_handlers))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.server.reflection:
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
    address = f"{settings.server.host}:{settings.server.port}"
    try:
        port = server.add_insecure_port(address)  # grpc raises RuntimeError when it cannot bind
    except BaseException as exc:
        await _close_all(closers)
        raise OSError(f"could not bind {address}") from exc
    return App(settings, server, health_servicer, port, closers)


async def _close_all(closers: Sequence[Closer]) -> None:
    """Close what a failed start-up already opened, newest first; failures are only logged."""
    for close in reversed(closers):
        try:
            await close()
        except Exception:
            _LOGGER.exception("close_failed", closer=getattr(close, "__qualname__", repr(close)))


async def _open_services(settings: Settings, closers: list[Closer]) -> Services:
    """Open every component the use cases need, registering each one's close as it opens."""
    store = await open_store(settings.store)
    closers.append(store.close)
    keys = await open_key_provider(settings)
    closers.append(keys.close)
    manifest_path = settings.inference.manifest
    manifest = load_manifest(manifest_path)
    model_path = await asyncio.to_thread(ensure_built, manifest_path, settings.inference.cache_dir)
    engine = await asyncio.to_thread(OnnxEngine, model_path, manifest, settings.inference)
    batcher = DynamicBatcher(engine, settings.inference.batcher)
    await batcher.start()
    closers.append(batcher.close)
    calibration = _calibration(settings, manifest_path, manifest.model_id, manifest.onnx.sha256)
    # Without calibration the gallery still needs a row layout; per-sample rows suit any rule.
    reducer = None if calibration is None else reducer_for_rule(calibration.fusion_rule)
    galleries = TenantGalleries(
        dim=manifest.embedding_size,
        metric=manifest.metric,
        reducer=reducer,
        backend=make_backend(
            settings.matching.gallery_backend,
            settings.matching.gallery_scan_threads,
            settings.matching.gallery_single_probe_threads,
        ),
    )

    async def close_galleries() -> None:
        # Stops the scan threads and drops the decrypted templates held in memory.
        galleries.close()

    closers.append(close_galleries)
    # Watermarks are read before the load, so the follower misses nothing committed during it.
    sync = await open_gallery_sync(
        settings, store=store, keys=keys, galleries=galleries, model_id=manifest.model_id
    )
    if sync is not None:
        closers.append(sync.close)
    await load_gallery(store, keys, galleries, [t.id for t in settings.tenants], manifest.model_id)
    if sync is not None:
        await sync.start()
    opt_out = OptOutService(store, keys)
    retrier = OptOutRetrier(opt_out, store)
    await retrier.start()
    closers.append(retrier.close)
    return build_services(
        settings,
        store=store,
        keys=keys,
        embedder=FaceEmbedder(batcher, manifest, settings.image),
        calibration=calibration,
        galleries=galleries,
        opt_out=opt_out,
        tokens=TokenIssuer(keys, settings.tokens),
    )


def _calibration(
    settings: Settings, manifest_path: Path, model_id: str, model_sha256: str
) -> Calibration | None:
    """The model's operating points, or None (logged) when none are calibrated yet: the server
    then enrols but refuses to decide (FAILED_PRECONDITION), never using a guessed threshold."""
    path = calibration_path(manifest_path, settings.matching.calibration)
    if settings.matching.calibration is None and not path.is_file():
        _LOGGER.warning("no_calibration", model_id=model_id, expected=str(path))
        return None
    return load_calibration(path, model_id=model_id, model_sha256=model_sha256)


async def serve(
    settings: Settings, *, extra_handlers: Sequence[grpc.GenericRpcHandler] = ()
) -> int:
    """Run until SIGTERM or SIGINT, then shut down gracefully; the process exit code."""
    configure_logging(
        level=settings.logging.level,
        json_output=settings.logging.json_output,
        pseudonym_key=settings.logging.pseudonym_key,
    )
    app = await build_app(settings, extra_handlers=extra_handlers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start()
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await app.shutdown()
    return 0
