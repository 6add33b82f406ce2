"""Each layer's serialized details are read into the right weights, or refused with a reason."""

from __future__ import annotations

import numpy as np
import pytest

from bioauth.modelbuild.dlib_format import DlibFormatError, DlibReader
from bioauth.modelbuild.dlib_layers import (
    Affine,
    AvgPool,
    Conv,
    FullyConnected,
    MaxPool,
    Relu,
    read_details,
)
from tests.unit.modelbuild import dlib_writer as w

_RATES = w.float_(1.0) * 2 + w.float_(0.0) * 2


def _con_bytes(
    version: str,
    weight: np.ndarray,
    bias: np.ndarray,
    stride: int,
    padding: int,
    tail: bytes = b"",
) -> bytes:
    filters, _, rows, cols = weight.shape
    params = np.concatenate([weight.reshape(-1), bias]).reshape(-1, 1, 1, 1)
    return (
        w.string(version)
        + w.tensor(params.astype(np.float32))
        + w.int_(filters)
        + w.int_(rows)
        + w.int_(cols)
        + w.int_(stride) * 2
        + w.int_(padding) * 2
        + w.alias_tensor(weight.shape)
        + w.alias_tensor((1, filters, 1, 1))
        + _RATES
        + tail
    )


def test_conv_weights_and_bias_come_from_one_params_tensor() -> None:
    rng = np.random.default_rng(1)
    weight = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    reader = DlibReader(_con_bytes("con_4", weight, bias, stride=2, padding=0))
    layer = read_details(reader, Conv(4, (3, 3), (2, 2)))
    assert isinstance(layer, Conv)
    np.testing.assert_array_equal(layer.weight, weight)
    assert layer.bias is not None
    np.testing.assert_array_equal(layer.bias, bias)
    assert layer.padding == (0, 0)
    assert not layer.fused_relu
    assert reader.at_end()


def test_conv_versions_5_and_6_flags() -> None:
    weight = np.ones((2, 1, 1, 1), np.float32)
    data = _con_bytes(
        "con_6", weight, np.zeros(2, np.float32), 1, 0, w.bool_(False) + w.bool_(True)
    )
    layer = read_details(DlibReader(data), Conv(2, (1, 1), (1, 1)))
    assert isinstance(layer, Conv)
    assert layer.bias is None
    assert layer.fused_relu


@pytest.mark.parametrize(
    ("stride", "padding", "message"),
    [
        (1, 1, r"conv stride: file has \(1, 1\), architecture expects \(2, 2\)"),
        (2, 1, r"conv padding: file has \(1, 1\), architecture expects \(0, 0\)"),
    ],
)
def test_conv_geometry_must_match_the_architecture(stride: int, padding: int, message: str) -> None:
    data = _con_bytes(
        "con_4", np.zeros((2, 1, 3, 3), np.float32), np.zeros(2, np.float32), stride, padding
    )
    with pytest.raises(DlibFormatError, match=message):
        read_details(DlibReader(data), Conv(2, (3, 3), (2, 2)))


def test_affine_versions() -> None:
    gamma = np.array([1.5, 2.0, -1.0], np.float32)
    beta = np.array([0.1, 0.2, 0.3], np.float32)
    params = np.concatenate([gamma, beta]).reshape(-1, 1, 1, 1)
    body = w.tensor(params) + w.alias_tensor((1, 3, 1, 1)) * 2 + w.int_(0)
    old = read_details(DlibReader(w.string("affine_") + body), Affine())
    new = read_details(DlibReader(w.string("affine_2") + body + w.bool_(True)), Affine())
    assert isinstance(old, Affine)
    assert isinstance(new, Affine)
    np.testing.assert_array_equal(old.gamma, gamma)
    np.testing.assert_array_equal(old.beta, beta)
    assert not old.disabled
    assert new.disabled
    with pytest.raises(DlibFormatError, match="only CONV_MODE"):
        read_details(DlibReader(w.string("affine_") + body[:-2] + w.int_(1)), Affine())


def test_pools_and_relu() -> None:
    pool = w.int_(3) * 2 + w.int_(2) * 2 + w.int_(0) * 2
    max_pool = read_details(DlibReader(w.string("max_pool_2") + pool), MaxPool((3, 3), (2, 2)))
    assert max_pool == MaxPool((3, 3), (2, 2), (0, 0))
    everything = w.int_(0) * 2 + w.int_(1) * 2 + w.int_(0) * 2
    avg = read_details(
        DlibReader(w.string("avg_pool_2") + everything), AvgPool((0, 0), (1, 1), (0, 0))
    )
    assert avg == AvgPool((0, 0), (1, 1), (0, 0))
    with pytest.raises(DlibFormatError, match="expected one of \\['avg_pool_2'\\]"):
        read_details(DlibReader(w.string("max_pool_2") + pool), AvgPool((3, 3), (2, 2)))
    assert read_details(DlibReader(w.string("relu_2") + w.bool_(False)), Relu()) == Relu()


def test_fc_without_bias() -> None:
    weight = np.arange(12, dtype=np.float32).reshape(4, 3)
    data = (
        w.string("fc_2")
        + w.int_(3)
        + w.int_(4)
        + w.tensor(weight.reshape(-1, 1, 1, 1))
        + w.alias_tensor((4, 3, 1, 1))
        + w.alias_tensor((1, 3, 1, 1))
        + w.int_(1)  # FC_NO_BIAS
        + _RATES
    )
    layer = read_details(DlibReader(data), FullyConnected(3))
    assert isinstance(layer, FullyConnected)
    np.testing.assert_array_equal(layer.weight, weight)
    assert layer.bias is None


def test_fc_with_bias() -> None:
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    bias = np.array([0.5, -0.5, 2.0], np.float32)
    params = np.concatenate([weight.reshape(-1), bias]).reshape(-1, 1, 1, 1)
    data = (
        w.string("fc_3")
        + w.int_(3)
        + w.int_(2)
        + w.tensor(params)
        + w.alias_tensor((2, 3, 1, 1))
        + w.alias_tensor((1, 3, 1, 1))
        + w.int_(0)  # FC_HAS_BIAS
        + _RATES
        + w.bool_(True)
    )
    layer = read_details(DlibReader(data), FullyConnected(3))
    assert isinstance(layer, FullyConnected)
    assert layer.bias is not None
    np.testing.assert_array_equal(layer.bias, bias)
    with pytest.raises(DlibFormatError, match="fc has 3 outputs, architecture expects 4"):
        read_details(DlibReader(data), FullyConnected(4))
