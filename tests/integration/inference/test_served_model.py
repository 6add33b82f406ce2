"""The real model through the server's own path: decode, preprocess, batcher, ONNX Runtime.

The converter's tests compare the raw graph with dlib; these check that what the server serves
(bytes in, embedding out, many concurrent callers batched together) still reproduces dlib's
descriptors and still separates the face set's genuine and impostor pairs.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from bioauth.cli.main import main
from bioauth.config import BatcherSettings, ImageSettings, InferenceSettings, QualitySettings
from bioauth.inference.batcher import DynamicBatcher
from bioauth.inference.decode import decode_image
from bioauth.inference.engine import OnnxEngine
from bioauth.inference.manifest import ModelManifest, load_manifest
from bioauth.inference.preprocess import to_model_input
from bioauth.inference.quality import assess_quality
from bioauth.modelbuild import ensure_built
from tests.support.face_pairs import (
    DLIB_USUAL_THRESHOLD,
    FACE_SET_PAIRS,
    calibrated_split,
    raw_euclidean,
    split_pairs,
)
from tests.support.faces import FaceSet, face_set

pytestmark = pytest.mark.integration

MANIFEST = Path(__file__).resolve().parents[3] / "models" / "dlib_resnet_v1" / "manifest.json"
MIN_COSINE = 0.99999
MAX_ABS_DIFF = 1e-4


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def engine(cache_dir: Path) -> OnnxEngine:
    manifest = load_manifest(MANIFEST)
    path = ensure_built(MANIFEST, cache_dir)
    return OnnxEngine(path, manifest, InferenceSettings(intra_op_threads=1))


@pytest.fixture(scope="module")
def faces() -> FaceSet:
    return face_set()


@pytest.fixture(scope="module")
def chip_bytes(faces: FaceSet) -> list[bytes]:
    """Each chip's encoded bytes, as a client sends them, in the face set's order."""
    return [face.chip.read_bytes() for face in faces]


def _check_parity(got: npt.NDArray[np.float32], want: npt.NDArray[np.float32]) -> None:
    cosine = (got * want).sum(axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    assert cosine.min() >= MIN_COSINE
    assert np.abs(got - want).max() <= MAX_ABS_DIFF


async def _serve(engine: OnnxEngine, chips: list[bytes]) -> npt.NDArray[np.float32]:
    manifest: ModelManifest = engine.manifest
    limits = ImageSettings()

    async def one(data: bytes) -> npt.NDArray[np.float32]:
        rgb = await asyncio.to_thread(decode_image, data, limits)
        x = await asyncio.to_thread(to_model_input, rgb, manifest.input)
        return await batcher.embed(x, deadline=None)

    settings = BatcherSettings(max_batch_size=8, max_queue_delay_ms=20)
    async with DynamicBatcher(engine, settings) as batcher:
        rows = await asyncio.gather(*(one(data) for data in chips))
    return np.stack(rows)


async def test_served_embeddings_match_dlib(
    engine: OnnxEngine, faces: FaceSet, chip_bytes: list[bytes]
) -> None:
    served = await _serve(engine, chip_bytes)
    _check_parity(served, np.stack([f.descriptor for f in faces]).astype(np.float32))


async def test_served_embeddings_split_pairs_at_dlibs_usual_and_the_calibrated_point(
    engine: OnnxEngine, faces: FaceSet, chip_bytes: list[bytes]
) -> None:
    served = await _serve(engine, chip_bytes)
    identities = [face.identity for face in faces]
    genuine, impostor = split_pairs(identities, served, raw_euclidean)
    assert (len(genuine), len(impostor)) == FACE_SET_PAIRS
    assert max(genuine) < DLIB_USUAL_THRESHOLD < min(impostor)
    threshold, distance = calibrated_split(MANIFEST)
    genuine, impostor = split_pairs(identities, served, distance)
    assert max(genuine) < threshold < min(impostor)


def test_every_reference_chip_passes_the_default_quality_gates(
    faces: FaceSet, chip_bytes: list[bytes]
) -> None:
    for face, data in zip(faces, chip_bytes, strict=True):
        report = assess_quality(decode_image(data, ImageSettings()), QualitySettings())
        assert report.ok, (face.chip, report)


def test_embed_command_prints_dlib_descriptors(
    cache_dir: Path,
    faces: FaceSet,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BIOAUTH_INFERENCE__CACHE_DIR", str(cache_dir))
    chosen = faces.faces[:3]
    assert main(["model", "embed", *(str(face.chip) for face in chosen)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == [str(face.chip) for face in chosen]
    _check_parity(
        np.asarray([line["embedding"] for line in lines], dtype=np.float32),
        np.stack([face.descriptor for face in chosen]).astype(np.float32),
    )
