"""The real server inside the test's own process and event loop, on a free loopback port.

Built by ``bioauth.app.build_app``, the composition root ``bioauth serve`` runs, so interceptors,
servicers, health and reflection are the production ones; a test reaches it over a real channel.
Only the environment is small: the tiny ONNX graph of ``bioauth.testing`` (real ONNX Runtime,
microseconds per batch), SQLite and the local development key file under the test's directory,
no calibration (the server enrols but refuses to decide). Starting and stopping takes well under
a second, against several for the subprocess server of ``tests.support.server``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from bioauth.app import App, build_app
from bioauth.config import (
    InferenceSettings,
    KeySettings,
    ServerSettings,
    Settings,
    StoreSettings,
    TenantSettings,
    hash_api_key,
)
from bioauth.testing import build_tiny_model, tiny_manifest
from tests.support.server import DEFAULT_TENANTS

__all__ = ["in_process_settings", "running_app"]


def _tiny_model(directory: Path) -> Path:
    """The tiny model's manifest, with its ONNX file beside it as a shipped model has it."""
    directory.mkdir(parents=True, exist_ok=True)
    data = build_tiny_model()
    manifest = tiny_manifest(data)
    (directory / manifest.onnx.file).write_bytes(data)
    path = directory / "manifest.json"
    path.write_text(manifest.to_json())
    return path


def in_process_settings(directory: Path, **server: Any) -> Settings:
    """Settings for a throwaway server: files under ``directory``, the two ``DEFAULT_TENANTS``
    of the subprocess server; ``server`` overrides fields of the ``[server]`` section."""
    server_fields: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "drain_delay_s": 0.0,
        "grace_period_s": 1.0,
        **server,
    }
    return Settings(
        server=ServerSettings(**server_fields),
        tenants=[
            TenantSettings(id=tenant.id, api_key_sha256=[hash_api_key(tenant.api_key)])
            for tenant in DEFAULT_TENANTS
        ],
        inference=InferenceSettings(
            manifest=_tiny_model(directory / "model"),
            cache_dir=directory / "cache",
            providers=["CPUExecutionProvider"],
        ),
        store=StoreSettings(url=f"sqlite:///{directory / 'bioauth.sqlite3'}"),
        keys=KeySettings(provider="local", local_path=directory / "dev-keys.json"),
    )


@asynccontextmanager
async def running_app(
    settings: Settings, *, extra_handlers: Sequence[grpc.GenericRpcHandler] = ()
) -> AsyncIterator[tuple[App, aio.Channel]]:
    """The started app and an open channel to it; shut down (gracefully, as on SIGTERM) after.

    ``extra_handlers`` adds a test's own services: they pass through the same interceptors as
    every bioauth RPC.
    """
    app = await build_app(settings, extra_handlers=extra_handlers)
    try:
        await app.start()
        async with aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield app, channel
    finally:
        await app.shutdown()
