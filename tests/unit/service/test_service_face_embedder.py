"""Face embedding, for probes and enrolment samples alike: per-crop reasons, request limits, and
cancellation reaching inference."""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt
import pytest

from bioauth.config import ImageSettings
from bioauth.errors import DeadlineExceeded, InvalidInput
from bioauth.service.domain import SampleReason
from bioauth.service.face_embedder import FaceEmbedder
from tests.unit.service.conftest import DIM, World, deadline, face_png


class _Blocking:
    """Every call waits until released; records how each call ended."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.endings: list[str] = []
        self.fail_first: BaseException | None = None
        self.expected = 0
        self.all_started = asyncio.Event()

    async def embed(
        self, x: npt.NDArray[np.float32], *, deadline: float | None
    ) -> npt.NDArray[np.float32]:
        self.started += 1
        if self.started == self.expected:
            self.all_started.set()
        if self.fail_first is not None and self.started == 1:
            self.endings.append("failed")
            raise self.fail_first
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.endings.append("cancelled")
            raise
        self.endings.append("done")
        return np.ones(DIM, dtype=np.float32)


async def test_cancelling_the_request_cancels_every_queued_crop(world: World) -> None:
    blocking = _Blocking()
    blocking.expected = 2
    embedder = FaceEmbedder(blocking, world.manifest, ImageSettings())
    task = asyncio.create_task(embedder.embed_all([face_png(1), face_png(2)], deadline=deadline()))
    async with asyncio.timeout(10):
        await blocking.all_started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert blocking.endings == ["cancelled", "cancelled"]


async def test_one_crop_failing_cancels_the_others_and_raises_as_is(world: World) -> None:
    blocking = _Blocking()
    blocking.fail_first = DeadlineExceeded("deadline passed while queued")
    embedder = FaceEmbedder(blocking, world.manifest, ImageSettings())
    with pytest.raises(DeadlineExceeded):
        await embedder.embed_all([face_png(1), face_png(2), face_png(3)], deadline=deadline())
    assert sorted(blocking.endings) == ["cancelled", "cancelled", "failed"]


async def test_rejected_crops_never_reach_inference(world: World) -> None:
    blocking = _Blocking()
    blocking.release.set()
    embedder = FaceEmbedder(blocking, world.manifest, ImageSettings())
    outcomes = await embedder.embed_all(
        [b"\xff\xd8\xff broken", face_png(2, blur=True), face_png(3, dark=True)], deadline=None
    )
    assert [o.reason for o in outcomes] == [
        SampleReason.UNREADABLE,
        SampleReason.TOO_BLURRED,
        SampleReason.TOO_DARK,
    ]
    assert blocking.started == 0


async def test_implausible_embeddings_are_rejected(world: World) -> None:
    world.scripted.register(face_png(1), np.full(DIM, np.nan))
    world.scripted.register(face_png(2), np.zeros(DIM))
    embedder = FaceEmbedder(world.scripted, world.manifest, ImageSettings())
    outcomes = await embedder.embed_all([face_png(1), face_png(2)], deadline=None)
    assert [o.reason for o in outcomes] == [SampleReason.IMPLAUSIBLE_EMBEDDING] * 2
    assert all(o.embedding is None for o in outcomes)


async def test_an_oversized_file_is_refused_before_decoding(world: World) -> None:
    limits = ImageSettings(max_encoded_bytes=1024)
    embedder = FaceEmbedder(world.scripted, world.manifest, limits)
    with pytest.raises(InvalidInput):
        await embedder.embed_all([face_png(1)], deadline=None)
