"""The ONNX graph computes what dlib computes, layer kind by layer kind, on a small network.

The reference below is a direct numpy transcription of dlib's layer semantics (unpadded strided
windows, per-channel affine, add_prev zero-filling the smaller tensor), independent of ONNX.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest

from bioauth.modelbuild.dlib_layers import (
    AddPrev,
    Affine,
    AvgPool,
    Conv,
    FullyConnected,
    InputRGB,
    Layer,
    MaxPool,
    Relu,
    Skip,
    Tag,
)
from bioauth.modelbuild.dlib_resnet import DlibNetwork
from bioauth.modelbuild.onnx_export import INPUT_NAME, IR_VERSION, OPSET, OUTPUT_NAME, to_onnx

Array = npt.NDArray[np.float32]


def _conv(rng: np.random.Generator, cin: int, cout: int, k: int, s: int, pad: int) -> Conv:
    weight = rng.normal(size=(cout, cin, k, k)).astype(np.float32) * 0.3
    bias = rng.normal(size=cout).astype(np.float32)
    return Conv(cout, (k, k), (s, s), weight, bias, (pad, pad))


def _affine(rng: np.random.Generator, channels: int) -> Affine:
    gamma = rng.uniform(0.5, 1.5, size=channels).astype(np.float32)
    return Affine(gamma, rng.normal(size=channels).astype(np.float32))


def _network(rng: np.random.Generator) -> DlibNetwork:
    layers: list[Layer] = [
        _conv(rng, 3, 4, 3, 1, 1),
        _affine(rng, 4),
        Relu(),
        MaxPool((3, 3), (2, 2), (0, 0)),  # 17 -> 8
        Tag(1),
        _conv(rng, 4, 6, 3, 2, 0),  # 8 -> 3 rows, 6 channels
        _affine(rng, 6),
        Tag(2),
        Skip(1),
        AvgPool((2, 2), (2, 2), (0, 0)),  # 8 -> 4 rows, 4 channels
        AddPrev(2),  # zero-fill both ways: 6 channels, 4 rows
        Relu(),
        Tag(1),
        _conv(rng, 6, 6, 3, 1, 1),
        AddPrev(1),  # same shapes: a plain sum
        AvgPool((0, 0), (1, 1), (0, 0)),
        FullyConnected(5, rng.normal(size=(6, 5)).astype(np.float32), None),
    ]
    mean = (np.float32(122.782), np.float32(117.001), np.float32(104.298))
    return DlibNetwork(InputRGB(mean, 17, 17), tuple(layers), "loss_metric_2")


def _ref_conv(x: Array, layer: Conv) -> Array:
    assert layer.padding is not None
    pad, stride, k = layer.padding[0], layer.stride[0], layer.kernel[0]
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    size = 1 + (x.shape[2] + 2 * pad - k) // stride
    out = np.zeros((x.shape[0], layer.filters, size, size), np.float64)
    for r in range(size):
        for c in range(size):
            window = padded[:, :, r * stride : r * stride + k, c * stride : c * stride + k]
            out[:, :, r, c] = np.einsum("nchw,fchw->nf", window, layer.weight)
    if layer.bias is not None:
        out += layer.bias.reshape(1, -1, 1, 1)
    return out.astype(np.float32)


def _ref_pool(x: Array, layer: MaxPool | AvgPool) -> Array:
    if layer.window == (0, 0):
        return np.asarray(x.mean(axis=(2, 3), keepdims=True), np.float32)
    k, stride = layer.window[0], layer.stride[0]
    size = 1 + (x.shape[2] - k) // stride
    out = np.zeros((*x.shape[:2], size, size), np.float32)
    for r in range(size):
        for c in range(size):
            window = x[:, :, r * stride : r * stride + k, c * stride : c * stride + k]
            out[:, :, r, c] = (
                window.max(axis=(2, 3)) if isinstance(layer, MaxPool) else window.mean(axis=(2, 3))
            )
    return out


def _ref_add(a: Array, b: Array) -> Array:
    shape = tuple(max(x, y) for x, y in zip(a.shape, b.shape, strict=True))
    out = np.zeros(shape, np.float32)
    out[tuple(slice(0, d) for d in a.shape)] += a
    out[tuple(slice(0, d) for d in b.shape)] += b
    return out


def _reference(network: DlibNetwork, x: Array) -> Array:
    tags: dict[int, Array] = {}
    for layer in network.layers:
        match layer:
            case Conv():
                x = _ref_conv(x, layer)
            case Affine():
                x = x * layer.gamma.reshape(1, -1, 1, 1) + layer.beta.reshape(1, -1, 1, 1)
            case Relu():
                x = np.maximum(x, 0)
            case MaxPool() | AvgPool():
                x = _ref_pool(x, layer)
            case Tag():
                tags[layer.id] = x
            case Skip():
                x = tags[layer.id]
            case AddPrev():
                x = _ref_add(x, tags[layer.id])
            case FullyConnected():
                x = x.reshape(x.shape[0], -1) @ layer.weight
    return x


@pytest.fixture(scope="module")
def network() -> DlibNetwork:
    return _network(np.random.default_rng(7))


@pytest.fixture(scope="module")
def session(network: DlibNetwork) -> ort.InferenceSession:
    model = to_onnx(network, doc="test", metadata={"k": "v"})
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch", [1, 3])
def test_matches_dlib_semantics(
    network: DlibNetwork, session: ort.InferenceSession, batch: int
) -> None:
    x = np.random.default_rng(batch).normal(size=(batch, 3, 17, 17)).astype(np.float32)
    (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x})
    want = _reference(network, x)
    assert got.shape == (batch, 5)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_zero_fill_is_not_broadcasting(network: DlibNetwork) -> None:
    model = to_onnx(network, doc="test", metadata={})
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("Pad") == 2  # the 4-channel pooled path and the 3-row conv path
    pads = {
        t.name: onnx.numpy_helper.to_array(t).tolist()
        for t in model.graph.initializer
        if t.name.endswith(".pads")
    }
    assert sorted(pads.values()) == [[0, 0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 2, 0, 0]]


def test_graph_contract_and_determinism(network: DlibNetwork) -> None:
    first = to_onnx(network, doc="test", metadata={"b": "2", "a": "1"})
    second = to_onnx(network, doc="test", metadata={"a": "1", "b": "2"})
    assert first.SerializeToString(deterministic=True) == second.SerializeToString(
        deterministic=True
    )
    assert first.ir_version == IR_VERSION
    assert [(o.domain, o.version) for o in first.opset_import] == [("", OPSET)]
    (graph_input,) = first.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == [3, 17, 17]
    assert {p.key: p.value for p in first.metadata_props} == {"a": "1", "b": "2"}
    onnx.checker.check_model(first, full_check=True)


def test_fused_relu_and_disabled_layers() -> None:
    rng = np.random.default_rng(3)
    conv = _conv(rng, 3, 2, 1, 1, 0)
    fused = Conv(conv.filters, conv.kernel, conv.stride, conv.weight, conv.bias, conv.padding, True)
    layers: tuple[Layer, ...] = (
        fused,
        Affine(np.full(2, 5.0, np.float32), np.ones(2, np.float32), disabled=True),
        Relu(disabled=True),
        AvgPool((0, 0), (1, 1), (0, 0)),
        FullyConnected(2, np.eye(2, dtype=np.float32), np.array([10.0, 20.0], np.float32)),
    )
    net = DlibNetwork(InputRGB((np.float32(0),) * 3, 4, 4), layers, "loss_metric_2")
    session = ort.InferenceSession(
        to_onnx(net, doc="", metadata={}).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    x = rng.normal(size=(2, 3, 4, 4)).astype(np.float32)
    (got,) = session.run(None, {INPUT_NAME: x})
    want = np.maximum(_ref_conv(x, conv), 0).mean(axis=(2, 3)) + np.array([10.0, 20.0])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
