"""Process-wide RPC metrics (prometheus-client), and the endpoint that serves every family.

Other rooms keep their own metric families (the batcher's in ``inference.metrics``); all of them
live on the process registry, which ``MetricsEndpoint`` serves as ``/metrics``. Labels are method,
status code, device and reason: never a subject, a tenant's reference or anything biometric.
"""

from __future__ import annotations

import asyncio
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Histogram, start_http_server

__all__ = ["RPC_SECONDS", "RPC_TOTAL", "MetricsEndpoint"]

RPC_TOTAL = Counter(
    "bioauth_rpc_total", "RPCs finished, by method and status code", ["method", "code"]
)
RPC_SECONDS = Histogram(
    "bioauth_rpc_seconds",
    "RPC latency in seconds, by method",
    ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class MetricsEndpoint:
    """prometheus-client's own HTTP server for ``/metrics``, on its own thread."""

    def __init__(self, server: WSGIServer) -> None:
        self._server = server

    @classmethod
    def start(cls, host: str, port: int) -> MetricsEndpoint:
        server, _thread = start_http_server(port, addr=host)
        return cls(server)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    async def close(self) -> None:
        # shutdown() waits for the serving thread to leave its loop: not on the event loop.
        await asyncio.to_thread(self._server.shutdown)
        self._server.server_close()
