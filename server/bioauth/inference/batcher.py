"""The dynamic batcher: many concurrent callers, one inference worker per device, full batches.

A caller queues one model input and awaits its embedding. One worker task per device takes the
oldest waiting inputs, up to ``max_batch_size``, once either that many are waiting or the oldest
has waited ``max_queue_delay_ms`` (Triton's rule: the window opens when the first crop arrives, so
nothing spins while idle), and runs the batch in the device's single inference thread.

Queue policy, in the spirit of Triton's ``ModelQueuePolicy``:

- the queue is bounded (``max_queue_size``); a caller that finds it full gets ``Overloaded`` at
  once (RESOURCE_EXHAUSTED at the API) instead of waiting without end;
- each request carries an absolute deadline (``time.monotonic()`` seconds). Work whose deadline has
  passed is dropped when the batch is formed, before inference, never after; the caller's wait is
  itself bounded by the deadline;
- a caller that is cancelled (or whose deadline fires) is removed from the queue at once;
- a batch that fails fails only its own requests; the worker keeps serving.

``close()`` stops taking requests, lets the worker finish what is queued, and returns once it has.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

import numpy as np
import numpy.typing as npt

from bioauth.config import BatcherSettings
from bioauth.errors import (
    BioauthError,
    DeadlineExceeded,
    InternalError,
    Overloaded,
    Unavailable,
)
from bioauth.inference.metrics import DeviceMetrics, RejectReason, process_metrics
from bioauth.observability.logging import get_logger

__all__ = ["DynamicBatcher", "EmbeddingEngine"]

_LOGGER = get_logger(__name__)


class EmbeddingEngine(Protocol):
    """What the batcher needs from a model runner (``OnnxEngine``, or a fake in tests)."""

    @property
    def item_shape(self) -> tuple[int, ...]:
        """Shape of one input without the batch axis, e.g. (3, 150, 150)."""
        ...

    def run(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Blocking: embeddings of a (N, *item_shape) batch, one row per input."""
        ...


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(eq=False, slots=True)
class _Request:
    # eq=False: the queue removes a request by identity, never by comparing arrays.
    x: npt.NDArray[np.float32]
    deadline: float | None
    future: asyncio.Future[npt.NDArray[np.float32]]
    queued_at: float
    """Event-loop time, for the batch window and the queue-wait metric."""
    taken: bool = field(default=False)


class DynamicBatcher:
    """Batches single embedding requests onto one engine; see the module docstring."""

    def __init__(
        self,
        engine: EmbeddingEngine,
        settings: BatcherSettings,
        *,
        device: str = "cpu",
        metrics: DeviceMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``metrics`` defaults to the process registry's families under this ``device`` label;
        ``clock`` reads the time that deadlines are expressed in (tests pass a fake one)."""
        self._engine = engine
        self._item_shape = tuple(engine.item_shape)
        self._max_batch = settings.max_batch_size
        self._delay_s = settings.max_queue_delay_ms / 1000.0
        self._max_queue = settings.max_queue_size
        self._device = device
        self._metrics = metrics or process_metrics().for_device(device)
        self._clock = clock
        self._queue: deque[_Request] = deque()
        self._arrived = asyncio.Event()
        self._state = _State.NEW
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight: list[_Request] = []

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    async def start(self) -> None:
        if self._state is not _State.NEW:
            raise InternalError(
                f"batcher for {self._device} cannot start: it is {self._state.value}"
            )
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"bioauth-inference-{self._device}"
        )
        self._worker = asyncio.create_task(self._serve(), name=f"batcher-{self._device}")
        self._state = _State.RUNNING

    async def close(self) -> None:
        """Refuse new requests, serve those already queued, then stop. Safe to call twice."""
        if self._state is _State.NEW:
            self._state = _State.CLOSED
            return
        if self._state is _State.RUNNING:
            self._state = _State.CLOSING
            self._arrived.set()
        if self._worker is not None:
            # asyncio.wait neither cancels the worker when this caller is cancelled (queued
            # requests are still served) nor re-raises a crash that the worker already reported.
            await asyncio.wait({self._worker})
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self._state = _State.CLOSED

    async def __aenter__(self) -> DynamicBatcher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def embed(
        self, x: npt.NDArray[np.float32], *, deadline: float | None
    ) -> npt.NDArray[np.float32]:
        """The embedding of one model input (``to_model_input``'s output).

        ``deadline`` is absolute, in the clock's seconds (``time.monotonic()`` by default).
        Raises ``Overloaded`` when the queue is full, ``DeadlineExceeded`` when the deadline
        passes before the result is ready, ``Unavailable`` when the batcher is not running, and
        whatever the engine raised when this request's batch failed.
        """
        if self._state is not _State.RUNNING:
            self._metrics.reject("closed")
            raise Unavailable(f"inference worker for {self._device} is not running")
        if x.shape != self._item_shape or x.dtype != np.float32:
            raise InternalError(
                f"model input must be float32 {self._item_shape}, got {x.dtype} {x.shape}"
            )
        now = self._clock()
        if deadline is not None and deadline <= now:
            self._metrics.reject("deadline")
            raise DeadlineExceeded("deadline passed before the face could be queued for inference")
        if len(self._queue) >= self._max_queue:
            self._metrics.reject("overloaded")
            raise Overloaded(
                f"inference queue is full ({self._max_queue} crops waiting); retry later"
            )
        loop = asyncio.get_running_loop()
        request = _Request(
            x=x, deadline=deadline, future=loop.create_future(), queued_at=loop.time()
        )
        self._queue.append(request)
        self._metrics.set_queue_depth(len(self._queue))
        self._arrived.set()
        try:
            if deadline is None:
                return await request.future
            async with asyncio.timeout(deadline - now):
                return await request.future
        except TimeoutError:
            self._forget(request, "deadline")
            raise DeadlineExceeded("deadline passed while the face waited for inference") from None
        except asyncio.CancelledError:
            self._forget(request, "cancelled")
            raise

    def _forget(self, request: _Request, reason: RejectReason) -> None:
        """Drop a request whose caller stopped waiting; a batch already running cannot be."""
        if request.taken:
            return
        try:
            self._queue.remove(request)
        except ValueError:
            return
        self._metrics.set_queue_depth(len(self._queue))
        self._metrics.reject(reason)

    async def _serve(self) -> None:
        try:
            while (batch := await self._next_batch()) is not None:
                await self._run_batch(batch)
        except BaseException as exc:
            # Our bug or the task being cancelled: nobody may be left waiting forever.
            self._state = _State.CLOSED
            error = Unavailable(f"inference worker for {self._device} stopped")
            for request in (*self._in_flight, *self._queue):
                _fail(request, error)
            self._queue.clear()
            self._metrics.set_queue_depth(0)
            if not isinstance(exc, asyncio.CancelledError):
                _LOGGER.error("inference_worker_crashed", device=self._device, exc_info=exc)
            raise

    async def _next_batch(self) -> list[_Request] | None:
        """Wait for a batch window to close; None once closing and the queue is drained."""
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                if self._state is not _State.RUNNING:
                    return None
                self._arrived.clear()
                await self._arrived.wait()
            window_end = self._queue[0].queued_at + self._delay_s
            while len(self._queue) < self._max_batch and self._state is _State.RUNNING:
                remaining = window_end - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._arrived.wait()
                except TimeoutError:
                    break
            batch = self._take()
            if batch:
                return batch

    def _take(self) -> list[_Request]:
        """Pop up to one batch of live requests, failing the expired ones without running them."""
        now = self._clock()
        batch: list[_Request] = []
        expired = 0
        while self._queue and len(batch) < self._max_batch:
            request = self._queue.popleft()
            if request.future.done():
                continue
            if request.deadline is not None and request.deadline <= now:
                _fail(request, DeadlineExceeded("deadline passed while queued for inference"))
                expired += 1
                continue
            request.taken = True
            batch.append(request)
        if expired:
            self._metrics.reject("deadline", expired)
        self._metrics.set_queue_depth(len(self._queue))
        return batch

    async def _run_batch(self, batch: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for request in batch:
            self._metrics.observe_queue_wait(started - request.queued_at)
        inputs = [request.x for request in batch]
        # Kept until the batch is answered, so that a crash of the worker fails these too.
        self._in_flight = batch
        t0 = time.perf_counter()
        try:
            outputs = await loop.run_in_executor(self._executor, self._stack_and_run, inputs)
            if (
                not isinstance(outputs, np.ndarray)
                or outputs.ndim < 1
                or len(outputs) != len(batch)
            ):
                # Without this check a short answer would leave some callers waiting forever.
                rows = len(outputs) if isinstance(outputs, np.ndarray) and outputs.ndim else "no"
                raise InternalError(f"engine returned {rows} rows for a batch of {len(batch)}")
        except Exception as exc:
            self._in_flight = []
            self._metrics.observe_batch(len(batch), time.perf_counter() - t0)
            self._metrics.failed_batch()
            error = exc if isinstance(exc, BioauthError) else InternalError("inference failed")
            _LOGGER.error(
                "inference_batch_failed",
                device=self._device,
                batch_size=len(batch),
                error=type(exc).__name__,
            )
            for request in batch:
                _fail(request, error)
            return
        self._in_flight = []
        self._metrics.observe_batch(len(batch), time.perf_counter() - t0)
        for request, row in zip(batch, outputs, strict=True):
            if not request.future.done():
                request.future.set_result(row.copy())

    def _stack_and_run(self, inputs: list[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
        # Stacked in the worker thread: copying a full batch is milliseconds the loop keeps.
        return self._engine.run(np.stack(inputs))


def _fail(request: _Request, error: BaseException) -> None:
    if not request.future.done():
        request.future.set_exception(error)
