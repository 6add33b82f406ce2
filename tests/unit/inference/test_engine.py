"""The ONNX Runtime engine on a tiny real graph: numbers, contract checks against the manifest."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import onnx
import pytest

from bioauth.config import BatcherSettings, InferenceSettings
from bioauth.errors import InternalError, Unavailable
from bioauth.inference.batcher import DynamicBatcher
from bioauth.inference.engine import OnnxEngine, select_providers
from bioauth.inference.manifest import ManifestError, ModelManifest, OnnxSpec
from bioauth.testing import build_tiny_model, tiny_manifest

# CPU only: the numbers and the provider list must not depend on the machine running the tests.
SETTINGS = InferenceSettings(intra_op_threads=1, providers=["CPUExecutionProvider"])


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, ModelManifest]:
    data = build_tiny_model()
    path = tmp_path / "tiny.onnx"
    path.write_bytes(data)
    return path, tiny_manifest(data)


def _reference(batch: np.ndarray) -> np.ndarray:
    """The tiny graph in numpy: 4x4 average pool, flatten, the same seeded projection."""
    n = len(batch)
    pooled = batch.reshape(n, 3, 8, 4, 8, 4).mean(axis=(3, 5))
    weights = np.random.default_rng(0).standard_normal((3 * 8 * 8, 8)).astype(np.float32)
    result: np.ndarray = pooled.reshape(n, -1) @ weights
    return result


def _with_onnx(manifest: ModelManifest, **changes: str) -> ModelManifest:
    onnx_spec = OnnxSpec.model_validate({**manifest.onnx.model_dump(), **changes})
    return manifest.model_copy(update={"onnx": onnx_spec})


def test_engine_computes_the_graph_for_any_batch_size(tiny: tuple[Path, ModelManifest]) -> None:
    path, manifest = tiny
    engine = OnnxEngine(path, manifest, SETTINGS)
    assert engine.item_shape == (3, 32, 32)
    assert engine.providers == ["CPUExecutionProvider"]
    rng = np.random.default_rng(5)
    for n in (1, 3, 17):
        batch = rng.standard_normal((n, 3, 32, 32)).astype(np.float32)
        out = engine.run(batch)
        assert out.shape == (n, 8)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, _reference(batch), rtol=1e-4, atol=1e-4)


def test_file_that_does_not_match_the_manifest_hash_is_refused(
    tiny: tuple[Path, ModelManifest],
) -> None:
    path, manifest = tiny
    path.write_bytes(build_tiny_model(seed=1))
    with pytest.raises(ManifestError, match=r"has SHA-256 \w+, but model tiny-test-model"):
        OnnxEngine(path, manifest, SETTINGS)


def test_missing_file_names_the_fix(tiny: tuple[Path, ModelManifest]) -> None:
    path, manifest = tiny
    with pytest.raises(ManifestError, match="bioauth model build"):
        OnnxEngine(path.with_name("absent.onnx"), manifest, SETTINGS)


def test_tensor_names_must_match(tiny: tuple[Path, ModelManifest]) -> None:
    path, manifest = tiny
    with pytest.raises(ManifestError, match="no input 'data'"):
        OnnxEngine(path, _with_onnx(manifest, input_name="data"), SETTINGS)
    with pytest.raises(ManifestError, match="no output 'features'"):
        OnnxEngine(path, _with_onnx(manifest, output_name="features"), SETTINGS)


def test_sizes_must_match_the_manifest(tmp_path: Path) -> None:
    data = build_tiny_model(height=32, width=32, embedding_size=8)
    path = tmp_path / "tiny.onnx"
    path.write_bytes(data)
    with pytest.raises(ManifestError, match="input axis 2 is 32, the manifest says 40"):
        OnnxEngine(path, tiny_manifest(data, height=40), SETTINGS)
    with pytest.raises(ManifestError, match=r"output shape \['batch', 8\] is not \(batch, 16\)"):
        OnnxEngine(path, tiny_manifest(data, embedding_size=16), SETTINGS)


def test_fixed_batch_axis_is_refused(tmp_path: Path) -> None:
    model = onnx.load_from_string(build_tiny_model())
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    data = model.SerializeToString()
    path = tmp_path / "fixed.onnx"
    path.write_bytes(data)
    with pytest.raises(ManifestError, match="batch axis is fixed at 1"):
        OnnxEngine(path, tiny_manifest(data), SETTINGS)


def test_output_rows_of_the_wrong_size_are_an_internal_error(
    tiny: tuple[Path, ModelManifest],
) -> None:
    # Graphs often leave the embedding axis symbolic; run() checks every answer against the
    # manifest, so a model swapped under a manifest cannot hand out wrong-sized embeddings.
    path, manifest = tiny
    engine = OnnxEngine(path, manifest, SETTINGS)
    engine.manifest = manifest.model_copy(update={"embedding_size": 16})
    with pytest.raises(
        InternalError, match=r"returned shape \(2, 8\), its manifest says \(2, 16\)"
    ):
        engine.run(np.zeros((2, 3, 32, 32), dtype=np.float32))


def test_providers_keep_preference_order_and_skip_missing_ones() -> None:
    assert select_providers(["TensorrtExecutionProvider", "CPUExecutionProvider"]) == [
        "CPUExecutionProvider"
    ]
    with pytest.raises(Unavailable, match="none of the configured execution providers"):
        select_providers(["NoSuchExecutionProvider"])


def test_wrong_batch_shape_is_an_internal_error(tiny: tuple[Path, ModelManifest]) -> None:
    path, manifest = tiny
    engine = OnnxEngine(path, manifest, SETTINGS)
    with pytest.raises(InternalError, match="does not fit input"):
        engine.run(np.zeros((2, 3, 32, 31), dtype=np.float32))


async def test_batcher_over_the_real_session_returns_each_callers_row(
    tiny: tuple[Path, ModelManifest],
) -> None:
    path, manifest = tiny
    engine = OnnxEngine(path, manifest, SETTINGS)
    rng = np.random.default_rng(9)
    inputs = rng.standard_normal((24, 3, 32, 32)).astype(np.float32)
    settings = BatcherSettings(max_batch_size=8, max_queue_delay_ms=5)
    async with DynamicBatcher(engine, settings) as batcher:
        rows = await asyncio.gather(*(batcher.embed(x, deadline=None) for x in inputs))
    np.testing.assert_allclose(np.stack(rows), _reference(inputs), rtol=1e-4, atol=1e-4)
