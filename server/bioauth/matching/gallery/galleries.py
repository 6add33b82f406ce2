"""The 1:N gallery: per-tenant, in-memory, decrypted templates of subjects who consented to 1:N.

Decrypted templates live only here, in process memory; nothing is written anywhere. Each tenant
has its own ``Gallery`` object with its own arrays (``TenantGalleries``), so a search can only
ever return a subject of the tenant whose gallery it searched.

Search is exact: one matrix product per block of rows for the whole batch of probes, then for
each probe the best and the runner-up *subject* (never two templates of one subject) with their
distances in the manifest's metric. Distances are recomputed in float64 for the two winners, so
they agree with ``bioauth.matching.scores`` to float32 storage precision.

Memory (``Gallery.memory()``) counts, at allocated capacity: the stored rows (float32 template
plus one float32 norm column), the row -> subject map (int32), and the subject table (id bytes,
row numbers, image counts, hash index). ``raw_template_bytes`` is stored rows x dim x 4: per-sample
templates under ``PerSampleMin``, fused per-subject templates under ``FusedTemplate``. From 4,096
rows up the counted total stays below 1.25x of it, even at one row per subject with the store's
22-byte ids (measured worst case about 1.22x while growing and shrinking; 1.08x for the benchmark's
1-3 templates per subject). Below that, minimum allocations (256 rows, 64 subjects) dominate:
a few hundred KiB at most.

Concurrency: searches run in worker threads (``search_async`` uses ``asyncio.to_thread``; BLAS
calls release the GIL) while enrolment and opt-out mutate. A readers-writer lock lets several
searches share the arrays and gives a mutation exclusive use for the few microseconds it needs;
a waiting mutation blocks new searches, so a stream of searches cannot starve opt-out. A search
therefore sees the gallery either wholly before or wholly after a change.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

from bioauth.errors import InternalError, InvalidInput
from bioauth.matching.gallery.ids import SubjectSlots
from bioauth.matching.gallery.index import (
    DEFAULT_BACKEND,
    BackendName,
    RowStore,
    SearchBackend,
    make_backend,
)
from bioauth.matching.gallery.reduce import MAX_ENROLMENT_IMAGES, PerSampleMin, TemplateReducer
from bioauth.matching.policy import Candidate
from bioauth.matching.scores import Metric, check_metric, paired_distances

__all__ = ["Gallery", "GalleryMemory", "GalleryResult", "TenantGalleries"]

_PROBE_CHUNK = 256  # probes per pass: bounds the (probes x block) score matrix to 32 MiB


@dataclass(frozen=True, slots=True)
class GalleryResult:
    """One probe's two closest subjects (None where the gallery holds fewer)."""

    best: Candidate | None
    runner_up: Candidate | None

    @property
    def candidates(self) -> list[Candidate]:
        """What ``policy.decide_identify`` takes."""
        return [c for c in (self.best, self.runner_up) if c is not None]


@dataclass(frozen=True, slots=True)
class GalleryMemory:
    """What the gallery holds in bytes, every array counted at its allocated capacity."""

    subjects: int
    rows: int
    dim: int
    row_bytes: int
    """Stored rows: float32 template values plus the float32 norm column."""
    owner_bytes: int
    """Row -> subject slot map (int32 per row)."""
    subject_bytes: int
    """Subject ids, each subject's row numbers and image count, the id -> slot hash index."""

    @property
    def raw_template_bytes(self) -> int:
        """The float32 bytes of the stored templates alone: what the 1.25x bound is against."""
        return self.rows * self.dim * 4

    @property
    def total_bytes(self) -> int:
        return self.row_bytes + self.owner_bytes + self.subject_bytes

    @property
    def ratio(self) -> float:
        raw = self.raw_template_bytes
        return self.total_bytes / raw if raw else 0.0


class _ReadWriteLock:
    """Shared for searches, exclusive for mutations; a waiting writer holds off new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class Gallery:
    """One tenant's 1:N gallery. Subject ids are the server's pseudonymous ids.

    Args:
        dim: embedding size from the model manifest.
        metric: the manifest's metric, ``euclidean`` or ``cosine``.
        reducer: how enrolment templates become rows (default ``PerSampleMin``); must match the
            fusion rule the policy is calibrated with (``reduce.reducer_for_rule``).
        backend: ``"numpy"`` (default, measured faster), ``"faiss"``, or a ``SearchBackend``.
        block_rows: rows per storage block.
    """

    def __init__(
        self,
        *,
        dim: int,
        metric: Metric = "euclidean",
        reducer: TemplateReducer | None = None,
        backend: BackendName | SearchBackend = DEFAULT_BACKEND,
        block_rows: int = 32768,
    ) -> None:
        self.dim = dim
        self.metric = check_metric(metric)
        self.reducer: TemplateReducer = reducer if reducer is not None else PerSampleMin()
        self._owns_backend = isinstance(backend, str)
        self.backend = make_backend(backend) if isinstance(backend, str) else backend
        self._rows = RowStore(dim, block_rows)
        self._subjects = SubjectSlots(self.reducer.max_rows)
        self._lock = _ReadWriteLock()

    def __len__(self) -> int:
        """Subjects held: the gallery size the policy's operating-point rule needs."""
        return len(self._subjects)

    def __contains__(self, subject_id: object) -> bool:
        if not isinstance(subject_id, str):
            return False
        with self._lock.reading():
            try:
                return self._subjects.find(subject_id) is not None
            except ValueError:  # not a storable id, so not here
                return False

    @property
    def template_count(self) -> int:
        return len(self._rows)

    def upsert(self, subject_id: str, templates: npt.ArrayLike) -> None:
        """Add a subject, or replace all of its templates (re-enrolment), atomically."""
        matrix = self._matrix(templates, "templates")
        if not 1 <= matrix.shape[0] <= MAX_ENROLMENT_IMAGES:
            raise InvalidInput(
                f"expected 1 to {MAX_ENROLMENT_IMAGES} templates, got {matrix.shape[0]}",
                field="templates",
            )
        reduced = self.reducer.rows(matrix)
        if not (
            reduced.ndim == 2
            and 1 <= reduced.shape[0] <= self.reducer.max_rows
            and reduced.shape[1] == self.dim
        ):
            raise InternalError(f"reducer {self.reducer.name} returned rows of {reduced.shape}")
        if not np.all(np.isfinite(reduced)) or (
            self.metric == "cosine" and np.any(np.linalg.norm(reduced, axis=1) == 0)
        ):
            raise InvalidInput("templates fuse to an unusable vector", field="templates")
        rows = self._augment_rows(reduced)
        try:
            with self._lock.writing():
                slot = self._subjects.find(subject_id)
                if slot is None:
                    slot = self._subjects.add(subject_id)
                else:
                    self._drop_rows(slot)
                placed = [self._rows.append(row, slot) for row in rows]
                self._subjects.set_rows(slot, placed, matrix.shape[0])
        except ValueError as exc:
            raise InvalidInput(str(exc), field="subject_id") from exc

    def remove(self, subject_id: str) -> bool:
        """Opt-out: forget the subject's templates; False if it was not here."""
        try:
            with self._lock.writing():
                slot = self._subjects.find(subject_id)
                if slot is None:
                    return False
                self._drop_rows(slot)
                freed_moved = self._subjects.remove(subject_id)
                if freed_moved is not None and freed_moved[0] != freed_moved[1]:
                    freed = freed_moved[0]
                    for row in self._subjects.rows_of(freed):
                        self._rows.set_owner(int(row), freed)
                return True
        except ValueError as exc:
            raise InvalidInput(str(exc), field="subject_id") from exc

    def search(self, probes: npt.ArrayLike) -> list[GalleryResult]:
        """Best and runner-up subject for each probe of a ``(P, dim)`` batch (or one ``(dim,)``).

        Blocking (one scan of the gallery per call): call it through ``search_async`` or a
        worker thread from async code.
        """
        matrix = self._matrix(probes, "probes")
        queries = self._augment_probes(matrix)
        k = self.reducer.max_rows + 1  # guarantees a second subject among the top rows
        results: list[GalleryResult] = []
        with self._lock.reading():
            blocks = self._rows.blocks()
            for start in range(0, queries.shape[0], _PROBE_CHUNK):
                chunk = slice(start, start + _PROBE_CHUNK)
                _, rows = self.backend.top_k(blocks, queries[chunk], k)
                results.extend(self._pick(matrix[chunk], rows))
        return results

    async def search_async(self, probes: npt.ArrayLike) -> list[GalleryResult]:
        """``search`` on a worker thread, so the event loop keeps serving."""
        return await asyncio.to_thread(self.search, probes)

    def close(self) -> None:
        """Stop the scan threads of a backend this gallery created (idempotent)."""
        if self._owns_backend:
            self.backend.close()

    def memory(self) -> GalleryMemory:
        with self._lock.reading():
            return GalleryMemory(
                subjects=len(self._subjects),
                rows=len(self._rows),
                dim=self.dim,
                row_bytes=self._rows.row_bytes,
                owner_bytes=self._rows.owner_bytes,
                subject_bytes=self._subjects.nbytes,
            )

    def _drop_rows(self, slot: int) -> None:
        # Highest row first: the row moved into a freed place is then never one still to drop.
        for row in sorted(self._subjects.rows_of(slot).tolist(), reverse=True):
            moved = self._rows.remove(row)
            if moved is not None:
                moved_from, owner = moved
                self._subjects.replace_row(owner, moved_from, row)
        self._subjects.set_rows(slot, [], 0)

    def _pick(self, probes: NDArray[np.float32], rows: NDArray[np.int64]) -> list[GalleryResult]:
        owners = self._rows.owners_of(rows)
        chosen = np.full((rows.shape[0], 2), -1, dtype=np.int64)
        chosen[:, 0] = rows[:, 0]
        for i in range(rows.shape[0]):
            other = np.flatnonzero((owners[i] >= 0) & (owners[i] != owners[i, 0]))
            if other.size:
                chosen[i, 1] = rows[i, other[0]]
        found = chosen >= 0
        candidates: list[Candidate | None] = [None] * chosen.size
        if found.any():
            templates = np.stack([self._rows.row(int(r))[: self.dim] for r in chosen[found]])
            probe_index = np.nonzero(found)[0]  # row-major, like chosen[found]
            distances = paired_distances(probes[probe_index], templates, self.metric)
            slots = self._rows.owners_of(chosen)[found]
            names = self._subjects.ids_at(slots)
            images = self._subjects.images_at(slots).tolist()
            for flat, name, dist, count in zip(
                np.flatnonzero(found.ravel()), names, distances, images, strict=True
            ):
                candidates[int(flat)] = Candidate(name, float(dist), int(count))
        return [
            GalleryResult(candidates[2 * i], candidates[2 * i + 1]) for i in range(rows.shape[0])
        ]

    def _matrix(self, values: npt.ArrayLike, field: str) -> NDArray[np.float32]:
        matrix = np.asarray(values, dtype=np.float32)
        if matrix.ndim == 1:
            matrix = matrix[None, :]
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise InvalidInput(f"expected (n, {self.dim}) vectors, got {matrix.shape}", field=field)
        if not np.all(np.isfinite(matrix)):
            raise InvalidInput("vectors must be finite", field=field)
        if self.metric == "cosine" and np.any(np.linalg.norm(matrix, axis=1) == 0):
            raise InvalidInput("cosine needs non-zero vectors", field=field)
        return matrix

    def _augment_rows(self, rows: NDArray[np.float32]) -> NDArray[np.float32]:
        out = np.zeros((rows.shape[0], self.dim + 1), dtype=np.float32)
        if self.metric == "euclidean":
            out[:, : self.dim] = rows
            out[:, self.dim] = -0.5 * np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
        else:
            out[:, : self.dim] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        return out

    def _augment_probes(self, probes: NDArray[np.float32]) -> NDArray[np.float32]:
        out = np.zeros((probes.shape[0], self.dim + 1), dtype=np.float32)
        if self.metric == "euclidean":
            out[:, : self.dim] = probes
            out[:, self.dim] = 1.0
        else:
            out[:, : self.dim] = probes / np.linalg.norm(probes, axis=1, keepdims=True)
        return out


class TenantGalleries:
    """One ``Gallery`` per tenant, created on first use with the same settings.

    Nothing is shared between tenants' galleries but these construction settings.
    """

    def __init__(
        self,
        *,
        dim: int,
        metric: Metric = "euclidean",
        reducer: TemplateReducer | None = None,
        backend: BackendName | SearchBackend = DEFAULT_BACKEND,
    ) -> None:
        self._dim = dim
        self._metric = check_metric(metric)
        self._reducer = reducer
        self._backend = make_backend(backend) if isinstance(backend, str) else backend
        self._galleries: dict[str, Gallery] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: str) -> Gallery:
        """The tenant's gallery, created empty the first time."""
        with self._lock:
            gallery = self._galleries.get(tenant_id)
            if gallery is None:
                gallery = Gallery(
                    dim=self._dim,
                    metric=self._metric,
                    reducer=self._reducer,
                    backend=self._backend,
                )
                self._galleries[tenant_id] = gallery
            return gallery

    def find(self, tenant_id: str) -> Gallery | None:
        with self._lock:
            return self._galleries.get(tenant_id)

    def drop(self, tenant_id: str) -> None:
        """Forget a tenant's gallery (its templates go with the arrays)."""
        with self._lock:
            self._galleries.pop(tenant_id, None)

    def tenants(self) -> list[str]:
        with self._lock:
            return sorted(self._galleries)

    def close(self) -> None:
        """Stop the shared backend's scan threads (idempotent)."""
        self._backend.close()
