"""The shipped weights file parses completely into dlib's face ResNet, and damage is caught."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from bioauth.modelbuild import installed_weights
from bioauth.modelbuild.dlib_format import DlibFormatError
from bioauth.modelbuild.dlib_layers import AddPrev, Affine, AvgPool, Conv, FullyConnected, Skip
from bioauth.modelbuild.dlib_resnet import DlibNetwork, architecture, read_network


@pytest.fixture(scope="module")
def weights() -> bytes:
    return installed_weights()


@pytest.fixture(scope="module")
def network(weights: bytes) -> DlibNetwork:
    return read_network(weights)


def test_structure(network: DlibNetwork) -> None:
    kinds = Counter(type(layer).__name__ for layer in network.layers)
    # 1 stem conv + 14 residual units of 2 convs; 4 down-sampling units skip back and avg-pool.
    assert kinds["Conv"] == 29
    assert kinds["Affine"] == 29
    assert kinds["AddPrev"] == 14
    assert kinds["Skip"] == 4
    assert kinds["AvgPool"] == 5
    assert network.embedding_size == 128
    assert network.loss == "loss_metric_2"
    assert (network.input.rows, network.input.cols) == (150, 150)
    assert network.input.mean_rgb == (np.float32(122.782), np.float32(117.001), np.float32(104.298))


def test_strided_layers_are_unpadded(network: DlibNetwork) -> None:
    convs = [layer for layer in network.layers if isinstance(layer, Conv)]
    assert convs[0].kernel == (7, 7)
    for conv in convs:
        assert conv.padding == ((0, 0) if conv.stride == (2, 2) else (1, 1))
        assert conv.bias is not None
        assert np.all(np.isfinite(conv.weight))
    pools = [layer for layer in network.layers if isinstance(layer, AvgPool)]
    assert all(pool.padding == (0, 0) for pool in pools)


def test_down_sampling_units_add_mismatched_tensors(network: DlibNetwork) -> None:
    layers = network.layers
    downs = [i for i, layer in enumerate(layers) if isinstance(layer, Skip)]
    for index in downs:
        assert isinstance(layers[index + 1], AvgPool)
        assert isinstance(layers[index + 2], AddPrev)
        assert layers[index + 2] == AddPrev(2)
    final = layers[-1]
    assert isinstance(final, FullyConnected)
    assert final.weight.shape == (256, 128)
    assert final.bias is None
    assert all(
        isinstance(layer, Affine) and layer.gamma.size > 0
        for layer in layers
        if isinstance(layer, Affine)
    )


def test_architecture_has_no_weights() -> None:
    assert all(layer.weight.size == 0 for layer in architecture() if isinstance(layer, Conv))


def test_truncated_file(weights: bytes) -> None:
    with pytest.raises(DlibFormatError, match="truncated"):
        read_network(weights[: len(weights) // 2])


def test_trailing_bytes(weights: bytes) -> None:
    with pytest.raises(DlibFormatError, match="trailing bytes"):
        read_network(weights + b"\x00")


def test_foreign_file() -> None:
    with pytest.raises(DlibFormatError, match="add_loss_layer: version"):
        read_network(b"\x01\x07" + b"\x00" * 64)
