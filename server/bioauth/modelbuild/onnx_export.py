"""Turns a parsed dlib network into an ONNX graph, one ONNX construct per dlib layer.

The graph input is the normalised image, float32 NCHW with a dynamic batch dimension; the
input layer's normalisation (``(pixel - mean) / 256``) is published in the model manifest so
that every model, converted or not, shares one preprocessing contract. Shapes are tracked while
building because dlib's ``add_prev`` needs them: where the two tensors differ in channels, rows
or columns, the smaller is zero-filled at the end of each axis before the sum, exactly as dlib's
``tt::add`` does, instead of relying on broadcasting (which would be wrong).

The output is deterministic: names derive from layer positions, the opset and IR version are
pinned, and nothing depends on time, paths or the installed onnx version's defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bioauth.modelbuild.dlib_layers import (
    AddPrev,
    Affine,
    AvgPool,
    Conv,
    FullyConnected,
    MaxPool,
    Relu,
    Skip,
    Tag,
)
from bioauth.modelbuild.dlib_resnet import DlibNetwork

__all__ = ["INPUT_NAME", "IR_VERSION", "OPSET", "OUTPUT_NAME", "to_onnx"]

INPUT_NAME = "image"
OUTPUT_NAME = "embedding"
OPSET = 17
"""Opset 17 runs on every ONNX Runtime and TensorRT release still in use."""
IR_VERSION = 8
"""The IR version that goes with opset 17, pinned so a newer onnx package writes the same bytes."""
_BATCH = "batch"


@dataclass(frozen=True)
class _Value:
    name: str
    shape: tuple[int, int, int]  # channels, rows, cols; the batch axis is dynamic


def _out_size(size: int, window: int, stride: int, padding: int) -> int:
    """dlib's (and ONNX's floor-mode) output size of a window sliding over one axis."""
    return 1 + (size + 2 * padding - window) // stride


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def constant(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: Sequence[str], name: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, list(inputs), [name], name=name, **attrs))
        return name

    def conv(self, index: int, layer: Conv, x: _Value) -> _Value:
        if layer.padding is None:
            raise ValueError(f"layer {index}: conv without weights")
        inputs = [x.name, self.constant(f"l{index}.conv.weight", layer.weight)]
        if layer.bias is not None:
            inputs.append(self.constant(f"l{index}.conv.bias", layer.bias))
        (py, px), (sy, sx), (ky, kx) = layer.padding, layer.stride, layer.kernel
        out = self.node(
            "Conv",
            inputs,
            f"l{index}.conv",
            kernel_shape=[ky, kx],
            strides=[sy, sx],
            pads=[py, px, py, px],
        )
        shape = (
            layer.filters,
            _out_size(x.shape[1], ky, sy, py),
            _out_size(x.shape[2], kx, sx, px),
        )
        if layer.fused_relu:
            out = self.node("Relu", [out], f"l{index}.conv.relu")
        return _Value(out, shape)

    def affine(self, index: int, layer: Affine, x: _Value) -> _Value:
        if layer.disabled:
            return x
        per_channel = (1, layer.gamma.size, 1, 1)
        gamma = self.constant(f"l{index}.affine.gamma", layer.gamma.reshape(per_channel))
        beta = self.constant(f"l{index}.affine.beta", layer.beta.reshape(per_channel))
        scaled = self.node("Mul", [x.name, gamma], f"l{index}.affine.mul")
        return _Value(self.node("Add", [scaled, beta], f"l{index}.affine.add"), x.shape)

    def pool(self, index: int, layer: MaxPool | AvgPool, x: _Value) -> _Value:
        if layer.padding is None:
            raise ValueError(f"layer {index}: pool without geometry")
        if layer.window == (0, 0):
            out = self.node("GlobalAveragePool", [x.name], f"l{index}.avg_pool_everything")
            return _Value(out, (x.shape[0], 1, 1))
        (py, px), (sy, sx), (ky, kx) = layer.padding, layer.stride, layer.window
        attrs: dict[str, Any] = {
            "kernel_shape": [ky, kx],
            "strides": [sy, sx],
            "pads": [py, px, py, px],
        }
        if isinstance(layer, MaxPool):
            out = self.node("MaxPool", [x.name], f"l{index}.max_pool", **attrs)
        else:
            # dlib averages only the in-bounds values of a padded window.
            out = self.node(
                "AveragePool", [x.name], f"l{index}.avg_pool", count_include_pad=0, **attrs
            )
        shape = (x.shape[0], _out_size(x.shape[1], ky, sy, py), _out_size(x.shape[2], kx, sx, px))
        return _Value(out, shape)

    def zero_fill(self, index: int, role: str, x: _Value, shape: tuple[int, int, int]) -> str:
        if x.shape == shape:
            return x.name
        grow = [want - have for want, have in zip(shape, x.shape, strict=True)]
        pads = np.array([0, 0, 0, 0, 0, *grow], dtype=np.int64)
        pads_name = self.constant(f"l{index}.add_prev.{role}.pads", pads)
        return self.node("Pad", [x.name, pads_name], f"l{index}.add_prev.{role}.zero_fill")

    def add_prev(self, index: int, x: _Value, tagged: _Value) -> _Value:
        shape = (
            max(x.shape[0], tagged.shape[0]),
            max(x.shape[1], tagged.shape[1]),
            max(x.shape[2], tagged.shape[2]),
        )
        left = self.zero_fill(index, "x", x, shape)
        right = self.zero_fill(index, "tagged", tagged, shape)
        return _Value(self.node("Add", [left, right], f"l{index}.add_prev"), shape)

    def fully_connected(self, index: int, layer: FullyConnected, x: _Value) -> _Value:
        flat = self.node("Flatten", [x.name], f"l{index}.fc.flatten", axis=1)
        weight = self.constant(f"l{index}.fc.weight", layer.weight)
        out = self.node("MatMul", [flat, weight], f"l{index}.fc")
        if layer.bias is not None:
            bias = self.constant(f"l{index}.fc.bias", layer.bias)
            out = self.node("Add", [out, bias], f"l{index}.fc.bias_add")
        return _Value(out, (layer.outputs, 1, 1))


def to_onnx(network: DlibNetwork, *, doc: str, metadata: dict[str, str]) -> onnx.ModelProto:
    """Build and check the ONNX model; ``metadata`` lands in the model's metadata_props."""
    builder = _GraphBuilder()
    current = _Value(INPUT_NAME, (3, network.input.rows, network.input.cols))
    tags: dict[int, _Value] = {}
    for index, layer in enumerate(network.layers):
        match layer:
            case Conv():
                current = builder.conv(index, layer, current)
            case Affine():
                current = builder.affine(index, layer, current)
            case Relu():
                if not layer.disabled:
                    current = _Value(
                        builder.node("Relu", [current.name], f"l{index}.relu"), current.shape
                    )
            case MaxPool() | AvgPool():
                current = builder.pool(index, layer, current)
            case Tag():
                tags[layer.id] = current
            case Skip():
                current = tags[layer.id]
            case AddPrev():
                current = builder.add_prev(index, current, tags[layer.id])
            case FullyConnected():
                current = builder.fully_connected(index, layer, current)
            case _:
                raise ValueError(f"layer {index}: {type(layer).__name__} has no ONNX form")
    builder.nodes.append(helper.make_node("Identity", [current.name], [OUTPUT_NAME], name="output"))

    graph = helper.make_graph(
        builder.nodes,
        "dlib_face_resnet",
        [
            helper.make_tensor_value_info(
                INPUT_NAME,
                TensorProto.FLOAT,
                [_BATCH, 3, network.input.rows, network.input.cols],
            )
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [_BATCH, current.shape[0]])],
        initializer=builder.initializers,
        doc_string=doc,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="bioauth.modelbuild",
        producer_version="1",
    )
    helper.set_model_props(model, dict(sorted(metadata.items())))
    onnx.checker.check_model(model, full_check=True)
    return model
