"""A fake embedding engine that tests can hold, fail and inspect.

It answers instantly and deterministically (an input's embedding depends only on that input, so
a test can tell whether every caller got its own row back). ``hold()`` makes the next batches
block inside ``run`` until ``release()``; ``next_batch()`` waits, on the event loop, until a batch
has entered ``run``. Together they let batcher tests order events without sleeping.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

import numpy as np
import numpy.typing as npt

__all__ = ["FakeEngine"]

_GATE_TIMEOUT_S = 30.0


class FakeEngine:
    """Implements ``bioauth.inference.batcher.EmbeddingEngine``; create it inside a running loop
    to use ``next_batch()``."""

    def __init__(self, item_shape: tuple[int, ...] = (3, 8, 8), embedding_size: int = 4) -> None:
        self._item_shape = item_shape
        self.embedding_size = embedding_size
        self.batch_sizes: list[int] = []
        """Size of every batch that entered ``run``, in order (failed ones included)."""
        self._gate = threading.Event()
        self._gate.set()
        self._failures: deque[Exception] = deque()
        self._lock = threading.Lock()
        self._entered: asyncio.Queue[int] = asyncio.Queue()
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    @property
    def item_shape(self) -> tuple[int, ...]:
        return self._item_shape

    def hold(self) -> None:
        """Make ``run`` block (after recording its batch) until ``release``."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def fail_next(self, error: Exception) -> None:
        """The next batch raises ``error`` instead of answering."""
        with self._lock:
            self._failures.append(error)

    async def next_batch(self) -> int:
        """Wait until a batch enters ``run``; its size."""
        return await self._entered.get()

    def embedding_of(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """What ``run`` answers for one input."""
        row: npt.NDArray[np.float32] = self._embed(x[np.newaxis])[0]
        return row

    def run(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        with self._lock:
            self.batch_sizes.append(len(batch))
            failure = self._failures.popleft() if self._failures else None
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._entered.put_nowait, len(batch))
        if not self._gate.wait(_GATE_TIMEOUT_S):
            raise TimeoutError("FakeEngine was held and never released")
        if failure is not None:
            raise failure
        return self._embed(batch)

    def _embed(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        flat = batch.reshape(len(batch), -1).astype(np.float64)
        # Row k: sum of the input times (k + 1): distinct inputs give distinct, checkable rows.
        scales = np.arange(1, self.embedding_size + 1, dtype=np.float64)
        rows: npt.NDArray[np.float32] = (flat.sum(axis=1, keepdims=True) * scales).astype(
            np.float32
        )
        return rows
