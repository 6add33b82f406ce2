"""Row storage and exact maximum-inner-product search for the 1:N gallery.

Rows are stored *augmented*: ``dim + 1`` float32 values, the template and one extra column, so
that one inner product with an augmented probe ranks rows by the manifest's metric:

- euclidean: row ``[r, -||r||^2 / 2]``, probe ``[p, 1]``; their product is
  ``p.r - ||r||^2 / 2 = (||p||^2 - ||p - r||^2) / 2``, largest for the nearest row. The extra
  column is the stored norm, so ``||a||^2 + ||b||^2 - 2ab`` costs no pass beyond the matrix product.
- cosine: row ``[r / ||r||, 0]``, probe ``[p / ||p||, 0]``; the product is ``cos(p, r)``.

Storage is a list of blocks of ``block_rows`` rows each. Every block but the last is full; the
last grows in steps of 1/16 of the gallery (at least 256 rows) and shrinks once more than 1/10 of
the gallery is unused, so unused capacity stays within 10 % from a few thousand rows up, and a
growing gallery never copies more than one block nor holds two copies of itself. Removal moves
the last row into the freed one (swap-with-last).

Two interchangeable backends compute the top-k rows per probe over the blocks, each block scanned
by a one-thread kernel and the blocks shared among a few worker threads: numpy (BLAS matrix
product per block, then a threshold filter so only a slice of the first block is partitioned) and
faiss-cpu's brute-force ``knn`` over the same arrays (no copy). ``scripts/bench_gallery.py``
compares them; numpy was faster on the reference machine (see docs/benchmarks.md), so it is the
default, and faiss-cpu (a development extra) is imported only when asked for.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import accumulate
from typing import Final, Literal, Protocol

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

__all__ = [
    "DEFAULT_BACKEND",
    "BackendName",
    "FaissBackend",
    "NumpyBackend",
    "RowStore",
    "SearchBackend",
    "make_backend",
]

BackendName = Literal["numpy", "faiss"]
DEFAULT_BACKEND: Final[BackendName] = "numpy"

_MAX_THREADS: Final = 8
_SEED_COLUMNS: Final = 4096
_MIN_ROWS: Final = 256

Scores = NDArray[np.float32]
RowIds = NDArray[np.int64]


class RowStore:
    """Augmented float32 rows in blocks, each row tagged with its owner (a subject slot).

    Not thread-safe by itself: the gallery's lock guards it.
    """

    def __init__(self, dim: int, block_rows: int = 32768) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if block_rows < _MIN_ROWS:
            raise ValueError(f"block_rows must be >= {_MIN_ROWS}, got {block_rows}")
        self.dim = dim
        self.width = dim + 1
        self.block_rows = block_rows
        self._blocks: list[NDArray[np.float32]] = []
        self._owners: list[NDArray[np.int32]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def row_bytes(self) -> int:
        """Template values plus the norm column, at capacity."""
        return sum(block.nbytes for block in self._blocks)

    @property
    def owner_bytes(self) -> int:
        """The row -> subject slot map, at capacity."""
        return sum(owners.nbytes for owners in self._owners)

    def blocks(self) -> list[NDArray[np.float32]]:
        """Filled part of each block, in row order (views, valid while the lock is held)."""
        out: list[NDArray[np.float32]] = []
        remaining = self._count
        for block in self._blocks:
            used = min(remaining, block.shape[0])
            if used:
                out.append(block[:used])
            remaining -= used
        return out

    def append(self, row: NDArray[np.float32], owner: int) -> int:
        index = self._count
        block, offset = divmod(index, self.block_rows)
        if block == len(self._blocks):
            self._blocks.append(np.empty((min(_MIN_ROWS, self.block_rows), self.width), np.float32))
            self._owners.append(np.empty(self._blocks[-1].shape[0], np.int32))
        elif offset == self._blocks[block].shape[0]:
            self._resize_tail(min(self.block_rows, offset + max(_MIN_ROWS, self._count // 16)))
        self._blocks[block][offset] = row
        self._owners[block][offset] = owner
        self._count += 1
        return index

    def remove(self, index: int) -> tuple[int, int] | None:
        """Free row ``index``; the last row moves into it.

        Returns ``(moved_from, owner)`` for the moved row, or None when ``index`` was the last.
        """
        if not 0 <= index < self._count:
            raise IndexError("gallery row out of range")
        last = self._count - 1
        moved: tuple[int, int] | None = None
        if index != last:
            lb, lo = divmod(last, self.block_rows)
            ib, io = divmod(index, self.block_rows)
            self._blocks[ib][io] = self._blocks[lb][lo]
            owner = int(self._owners[lb][lo])
            self._owners[ib][io] = owner
            moved = (last, owner)
        self._count = last
        self._trim_tail()
        return moved

    def row(self, index: int) -> NDArray[np.float32]:
        block, offset = divmod(index, self.block_rows)
        row: NDArray[np.float32] = self._blocks[block][offset]
        return row

    def set_owner(self, index: int, owner: int) -> None:
        block, offset = divmod(index, self.block_rows)
        self._owners[block][offset] = owner

    def owners_of(self, indices: RowIds) -> NDArray[np.int64]:
        """Owner slot per row index; -1 stays -1 (a probe with fewer than k rows)."""
        out = np.full(indices.shape, -1, dtype=np.int64)
        valid = indices >= 0
        blocks, offsets = np.divmod(indices[valid], self.block_rows)
        values = np.empty(blocks.shape, dtype=np.int64)
        for block in np.unique(blocks):
            hit = blocks == block
            values[hit] = self._owners[int(block)][offsets[hit]]
        out[valid] = values
        return out

    def _resize_tail(self, rows: int) -> None:
        used = min(self._blocks[-1].shape[0], rows)
        block = np.empty((rows, self.width), np.float32)
        block[:used] = self._blocks[-1][:used]
        owners = np.empty(rows, np.int32)
        owners[:used] = self._owners[-1][:used]
        self._blocks[-1], self._owners[-1] = block, owners

    def _trim_tail(self) -> None:
        if not self._blocks:
            return
        used = self._count - (len(self._blocks) - 1) * self.block_rows
        if used <= 0:
            self._blocks.pop()
            self._owners.pop()
        elif self._blocks[-1].shape[0] - used > max(2 * _MIN_ROWS, self._count // 10):
            self._resize_tail(min(self.block_rows, used + max(_MIN_ROWS, self._count // 32)))


class SearchBackend(Protocol):
    """Exact top-k rows by inner product over consecutive blocks of augmented rows."""

    name: str
    threads: int
    single_probe_threads: int

    def top_k(
        self, blocks: Sequence[NDArray[np.float32]], queries: NDArray[np.float32], k: int
    ) -> tuple[Scores, RowIds]:
        """``(P, k)`` scores, largest first, and their row numbers (counted across blocks in
        order); where fewer than k rows exist the tail holds ``-inf`` and ``-1``."""
        ...

    def close(self) -> None:
        """Release worker threads; idempotent."""
        ...


def _empty(probes: int, k: int) -> tuple[Scores, RowIds]:
    return np.full((probes, k), -np.inf, np.float32), np.full((probes, k), -1, np.int64)


def _merge(
    best: tuple[Scores, RowIds],
    probe: NDArray[np.int64],
    scores: Scores,
    rows: RowIds,
    k: int,
) -> tuple[Scores, RowIds]:
    """Keep each probe's k largest among its current best and new candidates."""
    best_scores, best_rows = best
    count = best_scores.shape[0]
    all_probe = np.concatenate([np.repeat(np.arange(count), k), probe])
    all_scores = np.concatenate([best_scores.ravel(), scores])
    all_rows = np.concatenate([best_rows.ravel(), rows])
    order = np.lexsort((-all_scores, all_probe))
    all_probe, all_scores, all_rows = all_probe[order], all_scores[order], all_rows[order]
    rank = np.arange(all_probe.size) - np.searchsorted(all_probe, np.arange(count))[all_probe]
    keep = rank < k
    out_scores, out_rows = _empty(count, k)
    out_scores[all_probe[keep], rank[keep]] = all_scores[keep]
    out_rows[all_probe[keep], rank[keep]] = all_rows[keep]
    return out_scores, out_rows


class _BlockScanner:
    """Splits the blocks over a few worker threads, each scanning its share single-threaded.

    Measured on the shared 2-core machine (docs/benchmarks.md): multi-threaded BLAS and OpenMP
    kernels spin at a barrier per call, and when another process holds a core a one-probe scan
    went from about 55 ms to several hundred. Python threads that each run a one-thread kernel
    on whole blocks degrade gracefully instead, so the backends pin their library to one thread
    and parallelise here.

    A batch (compute-bound) is split over ``threads``; a single probe (memory-bound) over
    ``single_probe_threads``, default all of ``threads``: on the idle 2-core machine two shares
    read memory faster (1M templates: p50 about 44 ms against 64 ms with one), while with
    another process holding a core the answer waits for the slower share, so a loaded box may
    prefer 1 (settings: ``matching.gallery_single_probe_threads``).
    """

    def __init__(self, threads: int | None, single_probe_threads: int | None = None) -> None:
        count = threads if threads is not None else min(os.cpu_count() or 1, _MAX_THREADS)
        single = count if single_probe_threads is None else single_probe_threads
        if count < 1 or single < 1:
            raise ValueError(f"threads must be >= 1, got {count} and {single}")
        self.threads = count
        self.single_probe_threads = min(single, count)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def top_k(
        self, blocks: Sequence[NDArray[np.float32]], queries: NDArray[np.float32], k: int
    ) -> tuple[Scores, RowIds]:
        if not blocks:
            return _empty(queries.shape[0], k)
        starts = list(accumulate((block.shape[0] for block in blocks[:-1]), initial=0))
        wanted = self.single_probe_threads if queries.shape[0] == 1 else self.threads
        parts = min(wanted, len(blocks))
        if parts <= 1:
            return self._scan(blocks, starts, queries, k)
        shares = [(blocks[i::parts], starts[i::parts]) for i in range(parts)]
        best = _empty(queries.shape[0], k)
        for scores, rows in self._executor().map(
            lambda share: self._scan(share[0], share[1], queries, k), shares
        ):
            probe = np.repeat(np.arange(queries.shape[0]), k)
            valid = rows.ravel() >= 0
            best = _merge(best, probe[valid], scores.ravel()[valid], rows.ravel()[valid], k)
        return best

    def close(self) -> None:
        """Stop the worker threads (idempotent); a later search starts them again."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="gallery-scan")
            return self._pool

    def _scan(
        self,
        blocks: Sequence[NDArray[np.float32]],
        starts: Sequence[int],
        queries: NDArray[np.float32],
        k: int,
    ) -> tuple[Scores, RowIds]:
        raise NotImplementedError


class NumpyBackend(_BlockScanner):
    """BLAS matrix product per block (matrix-vector for one probe).

    Only a slice of the first block of each share is partitioned; everything else keeps just
    the entries above each probe's current k-th best score, which are very few, so the cost
    beyond the matrix product is about one pass over the scores. Constructing it pins the
    process's BLAS and OpenMP pools to one thread (see ``_BlockScanner``); nothing else in the
    server runs large BLAS products, and ONNX Runtime keeps its own thread pool.
    """

    name = "numpy"

    def __init__(self, threads: int | None = None, single_probe_threads: int | None = None) -> None:
        super().__init__(threads, single_probe_threads)
        threadpool_limits(limits=1)

    def _scan(
        self,
        blocks: Sequence[NDArray[np.float32]],
        starts: Sequence[int],
        queries: NDArray[np.float32],
        k: int,
    ) -> tuple[Scores, RowIds]:
        probes = queries.shape[0]
        best = _empty(probes, k)
        for block, start in zip(blocks, starts, strict=True):
            scores = (block @ queries[0])[None, :] if probes == 1 else queries @ block.T
            seeded = 0
            if not bool(np.isfinite(best[0][:, -1]).all()):
                # A first k-th best from a slice of the first block; partitioning the whole
                # block costs as much as its matrix product.
                seeded = min(scores.shape[1], _SEED_COLUMNS)
                best = _top_of(best, scores[:, :seeded], start, k)
            if seeded < scores.shape[1]:
                best = _above_kth(best, scores[:, seeded:], start + seeded, k)
        return best


def _top_of(
    best: tuple[Scores, RowIds], scores: Scores, start: int, k: int
) -> tuple[Scores, RowIds]:
    """Merge in each probe's k largest of ``scores`` (columns are rows ``start``...)."""
    probes, n = scores.shape
    take = min(k, n)
    cols = np.argpartition(scores, n - take, axis=1)[:, n - take :]
    values = np.take_along_axis(scores, cols, axis=1)
    return _merge(best, np.repeat(np.arange(probes), take), values.ravel(), cols.ravel() + start, k)


def _above_kth(
    best: tuple[Scores, RowIds], scores: Scores, start: int, k: int
) -> tuple[Scores, RowIds]:
    """Merge in the entries above each probe's current k-th best: usually none or a few."""
    kth = best[0][:, -1]
    # Row maxima first: most probes have nothing above their k-th best in a later block, and a
    # 2-D np.nonzero over the whole score matrix cost about 30 times the comparison.
    hit_rows = np.flatnonzero(scores.max(axis=1) > kth)
    if not hit_rows.size:
        return best
    width = scores.shape[1]
    candidates = scores[hit_rows]
    flat = np.flatnonzero(candidates > kth[hit_rows, None])
    return _merge(best, hit_rows[flat // width], candidates.ravel()[flat], flat % width + start, k)


class FaissBackend(_BlockScanner):
    """faiss-cpu's exact ``knn`` (the kernel behind IndexFlatIP) over the gallery's own blocks.

    Constructing it pins faiss's OpenMP and BLAS to one thread (see ``_BlockScanner``).
    """

    name = "faiss"

    def __init__(self, threads: int | None = None, single_probe_threads: int | None = None) -> None:
        super().__init__(threads, single_probe_threads)
        import faiss  # a development extra: imported only when chosen

        threadpool_limits(limits=1)  # faiss brings its own OpenMP and OpenBLAS
        self._faiss = faiss

    def _scan(
        self,
        blocks: Sequence[NDArray[np.float32]],
        starts: Sequence[int],
        queries: NDArray[np.float32],
        k: int,
    ) -> tuple[Scores, RowIds]:
        probes = queries.shape[0]
        best = _empty(probes, k)
        for block, start in zip(blocks, starts, strict=True):
            take = min(k, block.shape[0])
            scores, cols = self._faiss.knn(
                queries, block, take, metric=self._faiss.METRIC_INNER_PRODUCT
            )
            probe = np.repeat(np.arange(probes), take)
            valid = cols.ravel() >= 0
            best = _merge(
                best,
                probe[valid],
                scores.ravel()[valid].astype(np.float32),
                cols.ravel()[valid] + start,
                k,
            )
        return best


def make_backend(
    name: BackendName, threads: int | None = None, single_probe_threads: int | None = None
) -> SearchBackend:
    """A backend by name; ``threads`` scan threads for batches (default: CPU count, at most 8),
    ``single_probe_threads`` for a one-probe search."""
    if name == "numpy":
        return NumpyBackend(threads, single_probe_threads)
    if name == "faiss":
        return FaissBackend(threads, single_probe_threads)
    raise ValueError(f"unknown gallery backend {name!r}; expected 'numpy' or 'faiss'")
