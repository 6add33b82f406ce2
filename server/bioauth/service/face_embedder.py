"""From untrusted face crops to embeddings, with a reason for every crop that is not used.

Each crop is decoded within the image limits, measured against the quality gates, turned into the
model's input tensor (all blocking CPU work, in one worker thread) and then embedded through the
batcher, which shares one inference worker among all concurrent requests and honours the request's
deadline. Crops are independent: one bad crop costs only itself, unless it breaks the request's own
limits (too many bytes or pixels), which is the caller's error for the whole request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from bioauth.config import ImageSettings
from bioauth.errors import ImageOverLimit, ImageTooSmall, InvalidInput
from bioauth.inference.decode import decode_image
from bioauth.inference.manifest import ModelManifest
from bioauth.inference.preprocess import to_model_input
from bioauth.inference.quality import QualityIssue, QualityReport, assess_quality
from bioauth.service.domain import FaceInput, SampleOutcome, SampleReason

__all__ = ["Embedder", "FaceEmbedder"]

_MIN_NORM = 1e-6
_ISSUE_REASON = {
    QualityIssue.TOO_SMALL: SampleReason.TOO_SMALL,
    QualityIssue.TOO_BLURRED: SampleReason.TOO_BLURRED,
    QualityIssue.TOO_DARK: SampleReason.TOO_DARK,
}


class Embedder(Protocol):
    """What the service needs from inference: ``DynamicBatcher.embed``."""

    async def embed(
        self, x: npt.NDArray[np.float32], *, deadline: float | None
    ) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True, slots=True)
class _Prepared:
    index: int
    reason: SampleReason | None
    quality: float
    tensor: npt.NDArray[np.float32] | None


class FaceEmbedder:
    """Turns up to a request's worth of crops into ``SampleOutcome``s, in request order."""

    def __init__(self, batcher: Embedder, manifest: ModelManifest, images: ImageSettings) -> None:
        self._batcher = batcher
        self._manifest = manifest
        self._images = images

    @property
    def model_id(self) -> str:
        return self._manifest.model_id

    async def embed_all(
        self, crops: Sequence[FaceInput], *, deadline: float | None
    ) -> list[SampleOutcome]:
        """One outcome per crop. Raises ``InvalidInput`` for a crop beyond the request limits,
        and what the batcher raises (``Overloaded``, ``DeadlineExceeded``, ``Unavailable``)."""
        prepared = await asyncio.to_thread(self._prepare_all, crops)
        usable = [p for p in prepared if p.tensor is not None]
        embeddings = await _gather_all(
            [
                self._batcher.embed(p.tensor, deadline=deadline)
                for p in usable
                if p.tensor is not None
            ]
        )
        by_index = {p.index: e for p, e in zip(usable, embeddings, strict=True)}
        outcomes: list[SampleOutcome] = []
        for p in prepared:
            embedding = by_index.get(p.index)
            if embedding is None:
                outcomes.append(SampleOutcome(p.index, p.reason, p.quality))
            elif not _plausible(embedding, self._manifest.embedding_size):
                outcomes.append(SampleOutcome(p.index, SampleReason.IMPLAUSIBLE_EMBEDDING, 0.0))
            else:
                vector = np.asarray(embedding, dtype=np.float32)
                outcomes.append(SampleOutcome(p.index, None, p.quality, vector))
        return outcomes

    def _prepare_all(self, crops: Sequence[FaceInput]) -> list[_Prepared]:
        return [self._prepare(index, crop) for index, crop in enumerate(crops)]

    def _prepare(self, index: int, crop: FaceInput) -> _Prepared:
        try:
            rgb = decode_image(crop, self._images, field=f"image[{index}]")
        except ImageOverLimit:
            raise  # the request's own limits: INVALID_ARGUMENT for the whole request
        except ImageTooSmall:
            return _Prepared(index, SampleReason.TOO_SMALL, 0.0, None)
        except InvalidInput:
            return _Prepared(index, SampleReason.UNREADABLE, 0.0, None)
        report = assess_quality(rgb, self._images.quality)
        quality = _quality_score(report, self._images.quality.min_sharpness)
        if not report.ok:
            return _Prepared(index, _ISSUE_REASON[report.issues[0]], quality, None)
        return _Prepared(index, None, quality, to_model_input(rgb, self._manifest.input))


def _quality_score(report: QualityReport, min_sharpness: float) -> float:
    """A coarse [0, 1] quality from sharpness: 0.5 at the gate, approaching 1 well above it."""
    if min_sharpness <= 0:
        return 1.0
    return float(report.sharpness / (report.sharpness + min_sharpness))


def _plausible(embedding: npt.NDArray[np.float32], size: int) -> bool:
    vector = np.asarray(embedding)
    return bool(
        vector.shape == (size,)
        and np.all(np.isfinite(vector))
        and float(np.linalg.norm(vector)) > _MIN_NORM
    )


async def _gather_all(
    calls: Sequence[Coroutine[Any, Any, npt.NDArray[np.float32]]],
) -> list[npt.NDArray[np.float32]]:
    """Await every call; on the first failure cancel the others (so their queue slots free at
    once) and raise that failure as it is, not wrapped in an ExceptionGroup."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
