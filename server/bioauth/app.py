"""The composition root: builds every component from settings, and owns their lifecycle.

Start-up order: logging, (store, key provider, model, batcher as their issues land), gRPC
server with interceptors, health SERVING. Shutdown order (SIGTERM/SIGINT): health NOT_SERVING
so load balancers drain, a short drain delay, ``server.stop(grace)`` (no new calls; in-flight
calls get the grace period), then components close in reverse order. Every close is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bioauth.api.error_mapping import ErrorMappingInterceptor
from bioauth.api.servicers import BioAuthServicer, KeyPublicationServicer
from bioauth.config import Settings
from bioauth.observability.logging import configure_logging, get_logger
from bioauth.security.authentication import AuthenticationInterceptor, TenantDirectory
from bioauth.security.deadline import DeadlineInterceptor
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
    directory = TenantDirectory(settings.tenants)
    server = aio.server(
        interceptors=[
            AuthenticationInterceptor(directory),
            ErrorMappingInterceptor(),
            DeadlineInterceptor(settings.server.default_deadline_s),
        ],
        options=[
            ("grpc.max_receive_message_length", settings.server.max_receive_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=settings.server.max_concurrent_rpcs,
    )
    bioauth_pb2_grpc.add_BioAuthServicer_to_server(BioAuthServicer(), server)
    bioauth_pb2_grpc.add_KeyPublicationServicer_to_server(KeyPublicationServicer(), server)
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
    port = server.add_insecure_port(f"{settings.server.host}:{settings.server.port}")
    if port == 0:
        raise OSError(f"could not bind {settings.server.host}:{settings.server.port}")
    return App(settings, server, health_servicer, port, closers)


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
