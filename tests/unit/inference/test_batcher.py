"""The dynamic batcher: batching, deadlines, cancellation, overload, failure isolation, drain.

The fake engine is held inside ``run`` (``hold``/``release``) and announces each batch
(``next_batch``), so these tests order events with the engine and asyncio, not with sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from bioauth.config import BatcherSettings
from bioauth.errors import (
    DeadlineExceeded,
    InternalError,
    InvalidInput,
    Overloaded,
    Unavailable,
)
from bioauth.inference.batcher import DynamicBatcher
from bioauth.inference.metrics import InferenceMetrics
from bioauth.testing import FakeEngine

SHAPE = (3, 8, 8)


def _x(value: float) -> npt.NDArray[np.float32]:
    return np.full(SHAPE, value, dtype=np.float32)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def _running(
    engine: FakeEngine,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.monotonic,
    **settings: Any,
) -> AsyncIterator[DynamicBatcher]:
    metrics = InferenceMetrics(registry).for_device("test")
    batcher = DynamicBatcher(
        engine, BatcherSettings(**settings), device="test", metrics=metrics, clock=clock
    )
    async with batcher:
        yield batcher


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, {"device": "test", **labels})
    return 0.0 if value is None else value


async def _wait_queued(batcher: DynamicBatcher, depth: int) -> None:
    """Let queued callers run up to their await (no timing: a bounded number of loop turns)."""
    for _ in range(100):
        if batcher.queue_depth == depth:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"queue depth {batcher.queue_depth}, expected {depth}")


async def test_concurrent_callers_share_full_batches_and_get_their_own_rows() -> None:
    engine = FakeEngine(SHAPE)
    registry = CollectorRegistry()
    async with _running(engine, registry, max_batch_size=8, max_queue_delay_ms=10_000) as batcher:
        inputs = [_x(i) for i in range(16)]
        results = await asyncio.gather(*(batcher.embed(x, deadline=None) for x in inputs))
    # A 10 s window closes early only because each batch filled up.
    assert engine.batch_sizes == [8, 8]
    for x, row in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(row, engine.embedding_of(x))
    assert _sample(registry, "bioauth_inference_batch_size_count") == 2
    assert _sample(registry, "bioauth_inference_batch_size_sum") == 16
    assert _sample(registry, "bioauth_inference_queue_depth") == 0


async def test_window_closes_after_the_queue_delay_with_a_partial_batch() -> None:
    engine = FakeEngine(SHAPE)
    async with _running(engine, max_batch_size=64, max_queue_delay_ms=5) as batcher:
        results = await asyncio.gather(*(batcher.embed(_x(i), deadline=None) for i in range(3)))
    assert engine.batch_sizes == [3]
    assert len(results) == 3


async def test_many_callers_while_busy_are_batched() -> None:
    engine = FakeEngine(SHAPE)
    async with _running(engine, max_batch_size=32, max_queue_delay_ms=1) as batcher:
        engine.hold()
        first = asyncio.create_task(batcher.embed(_x(-1), deadline=None))
        assert await engine.next_batch() == 1
        rest = [asyncio.create_task(batcher.embed(_x(i), deadline=None)) for i in range(40)]
        await _wait_queued(batcher, 40)
        engine.release()
        await asyncio.gather(first, *rest)
    assert engine.batch_sizes == [1, 32, 8]


async def test_request_expiring_while_queued_is_never_run() -> None:
    engine = FakeEngine(SHAPE)
    clock = FakeClock()
    registry = CollectorRegistry()
    async with _running(engine, registry, clock, max_batch_size=8) as batcher:
        engine.hold()
        running = asyncio.create_task(batcher.embed(_x(1), deadline=None))
        assert await engine.next_batch() == 1
        doomed = asyncio.create_task(batcher.embed(_x(2), deadline=clock.now + 5))
        survivor = asyncio.create_task(batcher.embed(_x(3), deadline=clock.now + 60))
        await _wait_queued(batcher, 2)
        clock.now += 10  # the doomed request's deadline passes while it waits
        engine.release()
        await running
        with pytest.raises(DeadlineExceeded, match="while queued"):
            await doomed
        np.testing.assert_array_equal(await survivor, engine.embedding_of(_x(3)))
    assert engine.batch_sizes == [1, 1]  # the survivor ran alone: the doomed one never ran
    assert _sample(registry, "bioauth_inference_rejected_total", reason="deadline") == 1


async def test_caller_wait_is_bounded_by_its_deadline_and_leaves_the_queue() -> None:
    engine = FakeEngine(SHAPE)
    async with _running(engine, max_batch_size=8) as batcher:
        engine.hold()
        running = asyncio.create_task(batcher.embed(_x(1), deadline=None))
        await engine.next_batch()
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="waited for inference"):
            await batcher.embed(_x(2), deadline=started + 0.05)
        assert batcher.queue_depth == 0
        engine.release()
        await running
    assert engine.batch_sizes == [1]


async def test_deadline_already_past_is_refused_without_queueing() -> None:
    engine = FakeEngine(SHAPE)
    async with _running(engine) as batcher:
        with pytest.raises(DeadlineExceeded, match="before the face could be queued"):
            await batcher.embed(_x(1), deadline=time.monotonic() - 0.001)
    assert engine.batch_sizes == []


async def test_cancelled_waiter_is_removed_and_others_are_unharmed() -> None:
    engine = FakeEngine(SHAPE)
    registry = CollectorRegistry()
    async with _running(engine, registry, max_batch_size=8) as batcher:
        engine.hold()
        running = asyncio.create_task(batcher.embed(_x(1), deadline=None))
        await engine.next_batch()
        cancelled = asyncio.create_task(batcher.embed(_x(2), deadline=None))
        kept = asyncio.create_task(batcher.embed(_x(3), deadline=None))
        await _wait_queued(batcher, 2)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert batcher.queue_depth == 1
        engine.release()
        await running
        np.testing.assert_array_equal(await kept, engine.embedding_of(_x(3)))
    assert engine.batch_sizes == [1, 1]
    assert _sample(registry, "bioauth_inference_rejected_total", reason="cancelled") == 1


async def test_full_queue_fails_fast_with_overloaded() -> None:
    engine = FakeEngine(SHAPE)
    registry = CollectorRegistry()
    async with _running(engine, registry, max_batch_size=4, max_queue_size=2) as batcher:
        engine.hold()
        running = asyncio.create_task(batcher.embed(_x(0), deadline=None))
        await engine.next_batch()
        queued = [asyncio.create_task(batcher.embed(_x(i), deadline=None)) for i in (1, 2)]
        await _wait_queued(batcher, 2)
        with pytest.raises(Overloaded, match="queue is full"):
            await batcher.embed(_x(3), deadline=None)
        assert _sample(registry, "bioauth_inference_rejected_total", reason="overloaded") == 1
        engine.release()
        await asyncio.gather(running, *queued)
    assert engine.batch_sizes == [1, 2]


async def test_failing_batch_fails_only_its_requests_and_the_worker_keeps_serving() -> None:
    engine = FakeEngine(SHAPE)
    registry = CollectorRegistry()
    async with _running(engine, registry, max_batch_size=4, max_queue_delay_ms=10_000) as batcher:
        engine.fail_next(InvalidInput("boom from the engine"))
        engine.fail_next(RuntimeError("a foreign error"))
        first = await asyncio.gather(
            *(batcher.embed(_x(i), deadline=None) for i in range(4)), return_exceptions=True
        )
        assert all(isinstance(e, InvalidInput) for e in first)
        second = await asyncio.gather(
            *(batcher.embed(_x(i), deadline=None) for i in range(4)), return_exceptions=True
        )
        # Foreign errors become InternalError with a message that reveals nothing.
        assert all(isinstance(e, InternalError) for e in second)
        assert {str(e) for e in second} == {"inference failed"}
        third = await asyncio.gather(*(batcher.embed(_x(i), deadline=None) for i in range(4)))
        np.testing.assert_array_equal(third[2], engine.embedding_of(_x(2)))
    assert engine.batch_sizes == [4, 4, 4]
    assert _sample(registry, "bioauth_inference_failed_batches_total") == 2


class _ShortEngine(FakeEngine):
    def run(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return super().run(batch)[:-1]


async def test_engine_answering_too_few_rows_fails_the_batch_instead_of_hanging() -> None:
    engine = _ShortEngine(SHAPE)
    async with _running(engine, max_batch_size=3, max_queue_delay_ms=10_000) as batcher:
        results = await asyncio.gather(
            *(batcher.embed(_x(i), deadline=None) for i in range(3)), return_exceptions=True
        )
    assert all(
        isinstance(e, InternalError) and "2 rows for a batch of 3" in str(e) for e in results
    )


async def test_close_drains_queued_requests_and_refuses_new_ones() -> None:
    engine = FakeEngine(SHAPE)
    batcher = DynamicBatcher(engine, BatcherSettings(max_batch_size=2))
    await batcher.start()
    engine.hold()
    running = asyncio.create_task(batcher.embed(_x(0), deadline=None))
    await engine.next_batch()
    queued = [asyncio.create_task(batcher.embed(_x(i), deadline=None)) for i in (1, 2, 3)]
    await _wait_queued(batcher, 3)
    closing = asyncio.create_task(batcher.close())
    await asyncio.sleep(0)
    with pytest.raises(Unavailable, match="not running"):
        await batcher.embed(_x(9), deadline=None)
    engine.release()
    await closing
    results = await asyncio.gather(running, *queued)
    assert len(results) == 4
    assert engine.batch_sizes == [1, 2, 1]
    await batcher.close()  # idempotent


async def test_wrong_input_shape_is_refused_before_it_can_poison_a_batch() -> None:
    engine = FakeEngine(SHAPE)
    async with _running(engine) as batcher:
        with pytest.raises(InternalError, match="model input must be float32"):
            await batcher.embed(np.zeros((3, 8, 9), dtype=np.float32), deadline=None)
        with pytest.raises(InternalError, match="model input must be float32"):
            await batcher.embed(np.zeros(SHAPE, dtype=np.float64), deadline=None)
    assert engine.batch_sizes == []


async def test_start_twice_and_embed_before_start_are_refused() -> None:
    engine = FakeEngine(SHAPE)
    batcher = DynamicBatcher(engine, BatcherSettings())
    with pytest.raises(Unavailable):
        await batcher.embed(_x(1), deadline=None)
    await batcher.start()
    with pytest.raises(InternalError, match="cannot start"):
        await batcher.start()
    await batcher.close()


async def test_worker_crash_fails_waiting_callers_instead_of_leaving_them_hanging() -> None:
    engine = FakeEngine(SHAPE)
    batcher = DynamicBatcher(engine, BatcherSettings(max_batch_size=1))
    await batcher.start()
    engine.hold()
    running = asyncio.create_task(batcher.embed(_x(0), deadline=None))
    await engine.next_batch()
    queued = asyncio.create_task(batcher.embed(_x(1), deadline=None))
    await _wait_queued(batcher, 1)
    worker = batcher._worker
    assert worker is not None
    worker.cancel()
    engine.release()
    for task in (running, queued):
        with pytest.raises(Unavailable, match="stopped"):
            await task
    await batcher.close()


async def test_default_metrics_land_on_the_process_registry_under_the_device_label() -> None:
    engine = FakeEngine(SHAPE)
    before = REGISTRY.get_sample_value(
        "bioauth_inference_batch_size_count", {"device": "default-test"}
    )
    for _ in range(2):  # a second batcher reuses the same families
        async with DynamicBatcher(engine, BatcherSettings(), device="default-test") as batcher:
            await batcher.embed(_x(1), deadline=None)
    after = REGISTRY.get_sample_value(
        "bioauth_inference_batch_size_count", {"device": "default-test"}
    )
    assert after == (before or 0) + 2
