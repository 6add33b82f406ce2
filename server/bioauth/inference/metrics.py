"""Prometheus metrics of the inference path: what an operator needs to tune the batcher.

Batch size against queue delay, queue depth against ``max_queue_size`` and inference time per
batch size are the numbers that say whether ``max_batch_size`` and ``max_queue_delay_ms`` fit the
traffic. The families are created on the registry passed in (the composition root passes the
process registry; tests pass their own ``CollectorRegistry`` so that instances never collide) and
labelled by device, so several workers share one set of families.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["DeviceMetrics", "InferenceMetrics", "RejectReason", "process_metrics"]

RejectReason = Literal["overloaded", "deadline", "cancelled", "closed"]

_BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_SECONDS_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_PROCESS: list[InferenceMetrics] = []
_PROCESS_LOCK = threading.Lock()


class InferenceMetrics:
    """The metric families; ``for_device`` binds them to one worker's label."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        """``registry=None`` creates unregistered metrics (still counted, never exported)."""
        labels = ("device",)
        self.queue_depth = Gauge(
            "bioauth_inference_queue_depth",
            "Crops waiting in the batcher queue.",
            labels,
            registry=registry,
        )
        self.batch_size = Histogram(
            "bioauth_inference_batch_size",
            "Crops per inference call.",
            labels,
            buckets=_BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.inference_seconds = Histogram(
            "bioauth_inference_seconds",
            "Wall time of one inference call (one batch).",
            labels,
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        )
        self.queue_wait_seconds = Histogram(
            "bioauth_inference_queue_wait_seconds",
            "Time from a crop entering the queue to its batch starting.",
            labels,
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        )
        self.rejected = Counter(
            "bioauth_inference_rejected",
            "Crops refused or dropped without inference, by reason.",
            (*labels, "reason"),
            registry=registry,
        )
        self.failed_batches = Counter(
            "bioauth_inference_failed_batches",
            "Inference calls that raised; each fails only its own batch.",
            labels,
            registry=registry,
        )

    def for_device(self, device: str) -> DeviceMetrics:
        return DeviceMetrics(self, device)


@dataclass(frozen=True, slots=True)
class DeviceMetrics:
    """The families bound to one device label; the batcher records through this."""

    families: InferenceMetrics
    device: str

    def set_queue_depth(self, depth: int) -> None:
        self.families.queue_depth.labels(self.device).set(depth)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.families.batch_size.labels(self.device).observe(size)
        self.families.inference_seconds.labels(self.device).observe(seconds)

    def observe_queue_wait(self, seconds: float) -> None:
        self.families.queue_wait_seconds.labels(self.device).observe(seconds)

    def reject(self, reason: RejectReason, count: int = 1) -> None:
        self.families.rejected.labels(self.device, reason).inc(count)

    def failed_batch(self) -> None:
        self.families.failed_batches.labels(self.device).inc()


def process_metrics() -> InferenceMetrics:
    """The families on the process registry, created once (a family may be registered once)."""
    with _PROCESS_LOCK:
        if not _PROCESS:
            _PROCESS.append(InferenceMetrics(REGISTRY))
        return _PROCESS[0]
