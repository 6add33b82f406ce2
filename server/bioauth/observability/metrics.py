"""Process-wide RPC metrics (prometheus-client); other rooms keep their own metrics modules."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["RPC_SECONDS", "RPC_TOTAL"]

RPC_TOTAL = Counter(
    "bioauth_rpc_total", "RPCs finished, by method and status code", ["method", "code"]
)
RPC_SECONDS = Histogram(
    "bioauth_rpc_seconds",
    "RPC latency in seconds, by method",
    ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
