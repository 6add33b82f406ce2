"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) and its file.

The architecture is dlib's ``anet_type`` from its face-recognition example, written out as data
in data-flow order. The file is dlib's ``serialize(net)``: nested layers write their version
first and their details after their sub-network, so the byte stream holds every layer's version
from the loss inwards, then the input layer, then each layer's details from the input outwards
(tag and skip layers only wrap their sub-network and write nothing else). Tag ids and skip
targets live in C++ template arguments, which is why the architecture comes from here and the
file is checked against it layer by layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bioauth.modelbuild.dlib_format import DlibFormatError, DlibReader
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
    read_details,
)

__all__ = ["DlibNetwork", "architecture", "read_network"]

_INPUT_SIZE = 150
_EMBEDDING_SIZE = 128


def _block(filters: int, stride: int) -> list[Layer]:
    """``block``: con(stride) -> affine -> relu -> con(1) -> affine."""
    return [
        Conv(filters, (3, 3), (stride, stride)),
        Affine(),
        Relu(),
        Conv(filters, (3, 3), (1, 1)),
        Affine(),
    ]


def _ares(filters: int) -> list[Layer]:
    """``ares``: relu(block(x) + x)."""
    return [Tag(1), *_block(filters, 1), AddPrev(1), Relu()]


def _ares_down(filters: int) -> list[Layer]:
    """``ares_down``: relu(block_stride2(x) + avg_pool_2x2(x)), zero-filled where they differ."""
    return [
        Tag(1),
        *_block(filters, 2),
        Tag(2),
        Skip(1),
        AvgPool((2, 2), (2, 2)),
        AddPrev(2),
        Relu(),
    ]


def architecture() -> list[Layer]:
    """The network in data-flow order, without weights (the input layer excluded)."""
    layers: list[Layer] = [
        Conv(32, (7, 7), (2, 2)),
        Affine(),
        Relu(),
        MaxPool((3, 3), (2, 2)),
    ]
    for filters, down, plain in ((32, False, 3), (64, True, 3), (128, True, 2), (256, True, 2)):
        if down:
            layers += _ares_down(filters)
        for _ in range(plain):
            layers += _ares(filters)
    layers += _ares_down(256)
    layers += [AvgPool((0, 0), (1, 1), (0, 0)), FullyConnected(_EMBEDDING_SIZE)]
    return layers


@dataclass(frozen=True)
class DlibNetwork:
    """A parsed network: the input layer, then every layer in data-flow order with weights."""

    input: InputRGB
    layers: tuple[Layer, ...]
    loss: str

    @property
    def embedding_size(self) -> int:
        last = self.layers[-1]
        if not isinstance(last, FullyConnected):
            raise DlibFormatError("the network does not end in a fully connected layer")
        return last.outputs


def _computational(layer: Layer) -> bool:
    return not isinstance(layer, Tag | Skip)


def _read_loss(reader: DlibReader) -> str:
    reader.version(1, "add_loss_layer")
    name = reader.expect_string("loss_metric_", "loss_metric_2")
    if name == "loss_metric_2":
        reader.float_()  # margin: training only
        reader.float_()  # distance threshold: training only
    return name


def _read_input(reader: DlibReader) -> InputRGB:
    reader.expect_string("input_rgb_image_sized")
    mean = (reader.float32(), reader.float32(), reader.float32())
    rows = reader.int_(signed=False)
    cols = reader.int_(signed=False)
    if (rows, cols) != (_INPUT_SIZE, _INPUT_SIZE):
        raise reader.fail(f"input is {rows}x{cols}, expected {_INPUT_SIZE}x{_INPUT_SIZE}")
    return InputRGB(mean, rows, cols)


def _read_layer_state(reader: DlibReader, version: int, bottom: bool) -> None:
    """Training state that follows each layer's details: flags, gradients, cached outputs."""
    for _ in range(3):  # setup called, gradient stale, output and gradient disabled
        reader.bool_()
    reader.tensor()  # x_grad
    reader.tensor()  # cached_output
    if bottom:
        reader.tensor()  # grad_final
        if version >= 3:
            reader.int_(signed=False)  # sample expansion factor
    elif version >= 2:
        reader.tensor()  # params_grad


def read_network(data: bytes) -> DlibNetwork:
    """Parse the serialized face ResNet, checking every layer against :func:`architecture`."""
    reader = DlibReader(data)
    spec = architecture()
    loss = _read_loss(reader)

    versions: dict[int, int] = {}
    for index in range(len(spec) - 1, -1, -1):
        layer = spec[index]
        if not _computational(layer):
            reader.version(1, f"{type(layer).__name__} layer {index}")
        elif index == 0:
            versions[index] = reader.version(range(2, 4), "input add_layer")
        else:
            versions[index] = reader.version(range(1, 3), f"add_layer {index}")

    input_layer = _read_input(reader)
    parsed: list[Layer] = []
    for index, layer in enumerate(spec):
        if not _computational(layer):
            parsed.append(layer)
            continue
        parsed.append(read_details(reader, layer))
        _read_layer_state(reader, versions[index], bottom=index == 0)
    if not reader.at_end():
        raise reader.fail("trailing bytes after the network")
    network = DlibNetwork(input_layer, tuple(parsed), loss)
    _check_channels(network)
    return network


def _check_channels(network: DlibNetwork) -> None:
    """Each layer's weights must fit the channel count flowing into it."""
    channels = 3
    tags: dict[int, int] = {}
    for layer in network.layers:
        match layer:
            case Conv():
                if layer.weight.shape[1] != channels:
                    raise DlibFormatError(
                        f"conv expects {layer.weight.shape[1]} channels, gets {channels}"
                    )
                channels = layer.filters
            case Affine():
                if layer.gamma.size != channels:
                    raise DlibFormatError(f"affine has {layer.gamma.size} gammas for {channels}")
            case Tag():
                tags[layer.id] = channels
            case Skip():
                channels = tags[layer.id]
            case AddPrev():
                channels = max(channels, tags[layer.id])
            case FullyConnected():
                if layer.weight.shape[0] != channels:
                    raise DlibFormatError(
                        f"fc expects {layer.weight.shape[0]} inputs, gets {channels}"
                    )
            case _:
                pass
    if not np.all(np.isfinite(network.input.mean_rgb)):
        raise DlibFormatError("input mean is not finite")
