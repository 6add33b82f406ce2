"""The dlib DNN layers that the face ResNet uses, and how each one's details are serialized.

A layer here is a plain value in data-flow order (input first). Parameters are float32 arrays
in the shapes dlib itself uses: convolution filters (out, in, rows, cols), per-channel affine
gamma/beta, fully connected weights (inputs, outputs) so that ``y = x @ W``.

Structural layers (tag, skip, add_prev) carry only their tag id: dlib keeps those ids in C++
template arguments, not in the file, so they come from the architecture, not the bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from bioauth.modelbuild.dlib_format import DlibFormatError, DlibReader

__all__ = [
    "Affine",
    "AddPrev",
    "AvgPool",
    "Conv",
    "FullyConnected",
    "InputRGB",
    "Layer",
    "MaxPool",
    "Relu",
    "Skip",
    "Tag",
    "default_padding",
    "read_details",
]

Floats = npt.NDArray[np.float32]


def _empty() -> Floats:
    return np.zeros(0, np.float32)


def default_padding(window: int, stride: int) -> int:
    """dlib's template default: strided convolutions and pools are unpadded, others keep size."""
    return 0 if stride != 1 else window // 2


@dataclass(frozen=True)
class InputRGB:
    """``input_rgb_image_sized``: x = (pixel - mean) / 256 per channel, R, G, B planes."""

    mean_rgb: tuple[np.float32, np.float32, np.float32]
    rows: int
    cols: int


@dataclass(frozen=True, eq=False)
class Conv:
    filters: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    weight: Floats = field(default_factory=_empty)
    bias: Floats | None = None
    padding: tuple[int, int] | None = None
    """None in an architecture: dlib's default for the kernel and stride."""
    fused_relu: bool = False


@dataclass(frozen=True, eq=False)
class Affine:
    """Per-channel ``y = gamma * x + beta`` (batch norm frozen for inference)."""

    gamma: Floats = field(default_factory=_empty)
    beta: Floats = field(default_factory=_empty)
    disabled: bool = False


@dataclass(frozen=True)
class Relu:
    disabled: bool = False


@dataclass(frozen=True)
class MaxPool:
    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] | None = None


@dataclass(frozen=True)
class AvgPool:
    """A window of (0, 0) averages over the whole plane (``avg_pool_everything``)."""

    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] | None = None


@dataclass(frozen=True, eq=False)
class FullyConnected:
    outputs: int
    weight: Floats = field(default_factory=_empty)
    bias: Floats | None = None


@dataclass(frozen=True)
class Tag:
    id: int


@dataclass(frozen=True)
class Skip:
    id: int


@dataclass(frozen=True)
class AddPrev:
    """Adds the tensor tagged ``id``; mismatched shapes are zero-filled to the larger one."""

    id: int


Layer = InputRGB | Conv | Affine | Relu | MaxPool | AvgPool | FullyConnected | Tag | Skip | AddPrev


def _expect_pair(
    reader: DlibReader, what: str, found: tuple[int, int], wanted: tuple[int, int]
) -> None:
    if found != wanted:
        raise reader.fail(f"{what}: file has {found}, architecture expects {wanted}")


def _pool_geometry(
    reader: DlibReader, spec: MaxPool | AvgPool
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    window = (reader.int_(), reader.int_())
    stride = (reader.int_(max_bytes=4), reader.int_(max_bytes=4))
    padding = (reader.int_(max_bytes=4), reader.int_(max_bytes=4))
    name = type(spec).__name__
    _expect_pair(reader, f"{name} window", window, spec.window)
    _expect_pair(reader, f"{name} stride", stride, spec.stride)
    wanted = spec.padding or (
        default_padding(window[0], stride[0]),
        default_padding(window[1], stride[1]),
    )
    _expect_pair(reader, f"{name} padding", padding, wanted)
    return window, stride, padding


def _skip_learning_rates(reader: DlibReader, count: int) -> None:
    for _ in range(count):
        reader.float_()


def _view(
    reader: DlibReader, params: Floats, offset: int, shape: tuple[int, ...]
) -> tuple[Floats, int]:
    size = math.prod(shape)
    flat = params.reshape(-1)
    if offset + size > flat.size:
        raise reader.fail(f"parameter view {shape} at {offset} exceeds {flat.size} values")
    return flat[offset : offset + size].reshape(shape).copy(), offset + size


def _read_conv(reader: DlibReader, spec: Conv) -> Conv:
    version = reader.expect_string("con_4", "con_5", "con_6")
    params = reader.tensor()
    filters = reader.int_()
    kernel = (reader.int_(), reader.int_())
    stride = (reader.int_(max_bytes=4), reader.int_(max_bytes=4))
    padding = (reader.int_(max_bytes=4), reader.int_(max_bytes=4))
    _expect_pair(reader, "conv filters", (filters, 0), (spec.filters, 0))
    _expect_pair(reader, "conv kernel", kernel, spec.kernel)
    _expect_pair(reader, "conv stride", stride, spec.stride)
    wanted_padding = spec.padding or (
        default_padding(kernel[0], stride[0]),
        default_padding(kernel[1], stride[1]),
    )
    _expect_pair(reader, "conv padding", padding, wanted_padding)
    filter_shape = reader.alias_tensor()
    bias_shape = reader.alias_tensor()
    _skip_learning_rates(reader, 4)
    use_bias = reader.bool_() if version in ("con_5", "con_6") else True
    fused_relu = reader.bool_() if version == "con_6" else False
    if filter_shape[0] != filters or filter_shape[2:] != kernel:
        raise reader.fail(f"conv filter shape {filter_shape} disagrees with {filters}x{kernel}")
    weight, offset = _view(reader, params, 0, filter_shape)
    bias: Floats | None = None
    if use_bias:
        bias, _ = _view(reader, params, offset, bias_shape)
        bias = bias.reshape(-1)
        if bias.size != filters:
            raise reader.fail(f"conv has {bias.size} biases for {filters} filters")
    return Conv(filters, kernel, stride, weight, bias, padding, fused_relu)


def _read_affine(reader: DlibReader) -> Affine:
    version = reader.expect_string("affine_", "affine_2")
    params = reader.tensor()
    gamma_shape = reader.alias_tensor()
    beta_shape = reader.alias_tensor()
    mode = reader.int_(max_bytes=4)
    if mode != 0:
        raise reader.fail(f"affine layer in mode {mode}; only CONV_MODE (0) is supported")
    disabled = reader.bool_() if version == "affine_2" else False
    gamma, offset = _view(reader, params, 0, gamma_shape)
    beta, _ = _view(reader, params, offset, beta_shape)
    if gamma.size != beta.size:
        raise reader.fail(f"affine gamma ({gamma.size}) and beta ({beta.size}) differ in size")
    return Affine(gamma.reshape(-1), beta.reshape(-1), disabled)


def _read_relu(reader: DlibReader) -> Relu:
    version = reader.expect_string("relu_", "relu_2")
    return Relu(disabled=reader.bool_() if version == "relu_2" else False)


def _read_fc(reader: DlibReader, spec: FullyConnected) -> FullyConnected:
    version = reader.expect_string("fc_2", "fc_3")
    outputs = reader.int_(signed=False)
    inputs = reader.int_(signed=False)
    params = reader.tensor()
    weight_shape = reader.alias_tensor()
    bias_shape = reader.alias_tensor()
    bias_mode = reader.int_(max_bytes=4)
    _skip_learning_rates(reader, 4)
    use_bias = reader.bool_() if version == "fc_3" else True
    if outputs != spec.outputs:
        raise reader.fail(f"fc has {outputs} outputs, architecture expects {spec.outputs}")
    if weight_shape[:2] != (inputs, outputs):
        raise reader.fail(f"fc weight shape {weight_shape} disagrees with {inputs}x{outputs}")
    weight, offset = _view(reader, params, 0, (inputs, outputs))
    bias: Floats | None = None
    if bias_mode == 0 and use_bias:  # FC_HAS_BIAS
        if bias_shape[:2] != (1, outputs):
            raise reader.fail(f"fc bias shape {bias_shape} disagrees with {outputs} outputs")
        bias, _ = _view(reader, params, offset, (outputs,))
    return FullyConnected(outputs, weight, bias)


def read_details(reader: DlibReader, spec: Layer) -> Layer:
    """Read one computational layer's details, checked against the architecture's ``spec``."""
    match spec:
        case Conv():
            return _read_conv(reader, spec)
        case Affine():
            return _read_affine(reader)
        case Relu():
            return _read_relu(reader)
        case MaxPool():
            reader.expect_string("max_pool_2")
            window, stride, padding = _pool_geometry(reader, spec)
            return MaxPool(window, stride, padding)
        case AvgPool():
            reader.expect_string("avg_pool_2")
            window, stride, padding = _pool_geometry(reader, spec)
            return AvgPool(window, stride, padding)
        case FullyConnected():
            return _read_fc(reader, spec)
        case AddPrev():
            reader.expect_string("add_prev_")
            return spec
        case _:
            raise DlibFormatError(f"{type(spec).__name__} has no serialized details")
