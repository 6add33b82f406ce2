"""Static int8 quantization on a small conv net built here, the quantized manifest schema, and the
build dispatch for quantized manifests; plus consistency checks of the committed int8 files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import quantize_static

from bioauth.inference.manifest import (
    ManifestError,
    QuantizedSourceSpec,
    load_manifest,
)
from bioauth.modelbuild import ModelBuildError, ensure_built
from bioauth.modelbuild.quantize import (
    _ChipReader,
    _preprocess,
    _recipe,
    calibrate,
    quantize,
    quantized_model_id,
    ranges_document,
    read_ranges,
)
from bioauth.modelbuild.sources import sha256_bytes, sha256_file

REPO_ROOT = Path(__file__).resolve().parents[3]
FP32_MANIFEST = REPO_ROOT / "models" / "dlib_resnet_v1" / "manifest.json"
INT8_MANIFEST = REPO_ROOT / "models" / "dlib_resnet_v1_int8" / "manifest.json"
SIZE = 16

Floats = npt.NDArray[np.float32]


def _tiny_model() -> onnx.ModelProto:
    """conv -> per-channel affine (dlib's Mul, Add) -> ReLU -> pooling -> projection: the dlib
    net's shape in miniature, with a dynamic batch axis."""
    rng = np.random.default_rng(0)
    weights = {
        "w": rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32),
        "gamma": rng.uniform(0.2, 3.0, (1, 8, 1, 1)).astype(np.float32),
        "beta": rng.normal(0, 0.1, (1, 8, 1, 1)).astype(np.float32),
        "w2": rng.normal(0, 0.3, (8, 8, 3, 3)).astype(np.float32),
        "proj": rng.normal(0, 0.5, (8, 4)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c1", "gamma"], ["m1"], name="scale1"),
        helper.make_node("Add", ["m1", "beta"], ["a1"], name="shift1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="pool"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "proj"], ["embedding"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _inputs(count: int, seed: int) -> list[Floats]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-0.5, 0.5, (3, SIZE, SIZE)).astype(np.float32) for _ in range(count)]


def _source(**changes: Any) -> QuantizedSourceSpec:
    fields: dict[str, Any] = {
        "quantizer": "onnxruntime-qdq-static",
        "package": "onnxruntime",
        "package_version": ort.__version__,
        "base_manifest": "base.json",
        "base_sha256": "0" * 64,
        "ranges_file": "ranges.json",
        "ranges_sha256": "1" * 64,
        "activation_type": "QUInt8",
        "weight_type": "QInt8",
        "per_channel": True,
        "reduce_range": True,
        "float_op_types": ["MatMul"],
    }
    fields.update(changes)
    return QuantizedSourceSpec.model_validate(fields)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(_tiny_model(), str(path))
    return path


@pytest.fixture(scope="module")
def ranges(base: Path) -> dict[str, tuple[float, float]]:
    return calibrate(base, "image", _inputs(24, seed=1))


def _run(model: bytes | str, batch: Floats) -> Floats:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["embedding"], {"image": batch})[0], dtype=np.float32)


def test_committed_ranges_build_exactly_what_calibrating_with_the_chips_builds(
    base: Path, ranges: dict[str, tuple[float, float]], tmp_path: Path
) -> None:
    source = _source()
    from_ranges = quantize(base, ranges, source)
    pre = _preprocess(base, tmp_path)
    direct = tmp_path / "direct.onnx"
    quantize_static(
        str(pre), str(direct), _ChipReader("image", _inputs(24, seed=1)), **_recipe(source, pre)
    )
    assert from_ranges == direct.read_bytes()


def test_quantizing_twice_gives_the_same_bytes(
    base: Path, ranges: dict[str, tuple[float, float]]
) -> None:
    assert quantize(base, ranges, _source()) == quantize(base, ranges, _source())


def test_the_graph_is_int8_with_7_bit_weights_and_a_float_projection(
    base: Path, ranges: dict[str, tuple[float, float]]
) -> None:
    model = onnx.load_from_string(quantize(base, ranges, _source()))
    ops = [node.op_type for node in model.graph.node]
    assert "QuantizeLinear" in ops
    assert "DequantizeLinear" in ops
    assert "Mul" not in ops, "the affine layer should be folded into the convolution"
    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    conv_weights = [v for v in initializers.values() if v.dtype == np.int8 and v.ndim == 4]
    assert len(conv_weights) == 2
    for weights in conv_weights:
        assert np.abs(weights.astype(np.int32)).max() <= 64  # reduce_range: 7-bit weights
    projection = next(n for n in model.graph.node if n.op_type == "MatMul")
    assert initializers[projection.input[1]].dtype == np.float32
    # Per-channel: a weight scale per output channel of each convolution.
    scales = [v for k, v in initializers.items() if k.endswith("_scale") and v.size == 8]
    assert len(scales) >= 2


def test_int8_output_stays_close_to_the_float_model(
    base: Path, ranges: dict[str, tuple[float, float]]
) -> None:
    batch = np.stack(_inputs(16, seed=2))  # not the calibration inputs
    want = _run(str(base), batch)
    got = _run(quantize(base, ranges, _source()), batch)
    cosine = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cosine.min() > 0.99
    assert not np.array_equal(got, want)


def test_the_activation_types_change_the_graph(
    base: Path, ranges: dict[str, tuple[float, float]]
) -> None:
    u8 = onnx.load_from_string(quantize(base, ranges, _source()))
    s8 = onnx.load_from_string(quantize(base, ranges, _source(activation_type="QInt8")))

    def zero_point_types(model: onnx.ModelProto) -> set[int]:
        return {t.data_type for t in model.graph.initializer if t.name.endswith("_zero_point")}

    assert TensorProto.UINT8 in zero_point_types(u8)
    assert TensorProto.UINT8 not in zero_point_types(s8)


def test_ranges_round_trip_exactly_and_are_checked_by_hash(
    ranges: dict[str, tuple[float, float]], tmp_path: Path
) -> None:
    data = ranges_document(ranges, {"calibration": {"set": "random"}})
    path = tmp_path / "ranges.json"
    path.write_bytes(data)
    assert read_ranges(path, sha256_bytes(data)) == ranges
    assert (
        ranges_document(read_ranges(path, sha256_bytes(data)), {"calibration": {"set": "random"}})
        == data
    )
    with pytest.raises(ModelBuildError, match="SHA-256"):
        read_ranges(path, "0" * 64)
    changed = json.loads(data)
    changed["method"] = "Entropy"
    path.write_text(json.dumps(changed), encoding="utf-8")
    with pytest.raises(ModelBuildError, match="unsupported"):
        read_ranges(path, sha256_file(path))


def test_the_model_id_follows_the_recipe_not_the_quantizer_version() -> None:
    same = quantized_model_id("m", _source(package_version="0.0.1"))
    assert quantized_model_id("m", _source()) == same
    assert quantized_model_id("m", _source(ranges_sha256="2" * 64)) != same
    assert quantized_model_id("m", _source(reduce_range=False)) != same


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_manifest", "/etc/manifest.json"),
        ("base_manifest", "../../elsewhere/manifest.json"),
        ("base_manifest", "a/../b.json"),
        ("ranges_file", "../ranges.json"),
        ("quantizer", "something-else"),
        ("activation_type", "QInt4"),
        ("package", "other"),
    ],
)
def test_a_bad_quantized_source_is_refused(field: str, value: str, tmp_path: Path) -> None:
    raw = json.loads(INT8_MANIFEST.read_text(encoding="utf-8"))
    raw["source"][field] = value
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ManifestError):
        load_manifest(path)


def _quantized_folder(
    tmp_path: Path, base: Path, ranges: dict[str, tuple[float, float]], **changes: Any
) -> Path:
    """A shipped tiny base model with its manifest, a ranges file and a quantized manifest."""
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "tiny.onnx").write_bytes(base.read_bytes())
    base_raw: dict[str, Any] = {
        "schema_version": 1,
        "model_id": "tiny-base",
        "name": "tiny",
        "version": "1",
        "input": {
            "width": SIZE,
            "height": SIZE,
            "channel_order": "RGB",
            "layout": "NCHW",
            "mean": [127.5] * 3,
            "scale": [1 / 255] * 3,
        },
        "embedding_size": 4,
        "metric": "euclidean",
        "onnx": {
            "file": "tiny.onnx",
            "sha256": sha256_file(base),
            "input_name": "image",
            "output_name": "embedding",
        },
    }
    (folder / "base.json").write_text(json.dumps(base_raw), encoding="utf-8")
    ranges_bytes = ranges_document(ranges, {})
    (folder / "ranges.json").write_bytes(ranges_bytes)
    source = _source(base_sha256=sha256_file(base), ranges_sha256=sha256_bytes(ranges_bytes))
    data = quantize(base, ranges, source)
    raw: dict[str, Any] = {
        **base_raw,
        "model_id": quantized_model_id("tiny-int8", source),
        "onnx": {**base_raw["onnx"], "file": "tiny_int8.onnx", "sha256": sha256_bytes(data)},
        "source": source.model_dump(mode="json"),
    }
    for dotted, value in changes.items():
        node: dict[str, Any] = raw
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    (folder / "int8.json").write_text(json.dumps(raw), encoding="utf-8")
    return folder / "int8.json"


def test_ensure_built_quantizes_a_quantized_manifest_once(
    base: Path, ranges: dict[str, tuple[float, float]], tmp_path: Path
) -> None:
    manifest_path = _quantized_folder(tmp_path, base, ranges)
    cache = tmp_path / "cache"
    built = ensure_built(manifest_path, cache)
    manifest = load_manifest(manifest_path)
    assert built == cache / manifest.model_id / "tiny_int8.onnx"
    assert sha256_file(built) == manifest.onnx.sha256
    stamp = built.stat().st_mtime_ns
    assert ensure_built(manifest_path, cache) == built
    assert built.stat().st_mtime_ns == stamp


def test_a_changed_ranges_file_is_refused(
    base: Path, ranges: dict[str, tuple[float, float]], tmp_path: Path
) -> None:
    manifest_path = _quantized_folder(tmp_path, base, ranges)
    (manifest_path.parent / "ranges.json").write_bytes(ranges_document(ranges, {"x": 1}))
    with pytest.raises(ModelBuildError, match="SHA-256"):
        ensure_built(manifest_path, tmp_path / "cache")


def test_a_changed_base_model_is_refused(
    base: Path, ranges: dict[str, tuple[float, float]], tmp_path: Path
) -> None:
    manifest_path = _quantized_folder(tmp_path, base, ranges, source__base_sha256="3" * 64)
    with pytest.raises(ModelBuildError, match="recalibrate"):
        ensure_built(manifest_path, tmp_path / "cache")


def test_a_build_that_hashes_differently_is_refused_and_names_the_quantizer_version(
    base: Path, ranges: dict[str, tuple[float, float]], tmp_path: Path
) -> None:
    manifest_path = _quantized_folder(
        tmp_path, base, ranges, onnx__sha256="4" * 64, source__package_version="0.0.1"
    )
    with pytest.raises(ModelBuildError, match=r"quantized with onnxruntime 0\.0\.1"):
        ensure_built(manifest_path, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*/tiny_int8.onnx"))


def test_the_committed_int8_manifest_is_consistent() -> None:
    fp32 = load_manifest(FP32_MANIFEST)
    int8 = load_manifest(INT8_MANIFEST)
    source = int8.source
    assert isinstance(source, QuantizedSourceSpec)
    assert (INT8_MANIFEST.parent / source.base_manifest).resolve() == FP32_MANIFEST.resolve()
    assert source.base_sha256 == fp32.onnx.sha256
    assert sha256_file(INT8_MANIFEST.parent / source.ranges_file) == source.ranges_sha256
    assert int8.model_id == quantized_model_id("dlib-resnet-v1-int8", source)
    assert int8.model_id != fp32.model_id
    assert int8.onnx.sha256 != fp32.onnx.sha256
    assert (int8.input, int8.metric, int8.embedding_size) == (
        fp32.input,
        fp32.metric,
        fp32.embedding_size,
    )
    assert (int8.onnx.input_name, int8.onnx.output_name) == ("image", "embedding")
    assert (source.activation_type, source.weight_type) == ("QUInt8", "QInt8")
    assert source.per_channel
    assert source.reduce_range
    ranges = read_ranges(INT8_MANIFEST.parent / source.ranges_file, source.ranges_sha256)
    assert "image" in ranges
    assert len(ranges) > 50
    document = json.loads((INT8_MANIFEST.parent / source.ranges_file).read_text(encoding="utf-8"))
    assert len(document["calibration"]["chips"]) == 200
    assert document["base_onnx_sha256"] == fp32.onnx.sha256
