"""The reader decodes dlib's primitives as dlib encodes them, and refuses malformed bytes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bioauth.modelbuild.dlib_format import DlibFormatError, DlibReader
from tests.unit.modelbuild import dlib_writer as w


@pytest.mark.parametrize(
    "value", [0, 1, 2, 127, 128, 255, 256, 65535, 2**40 + 7, -1, -300, -(2**62)]
)
def test_integers(value: int) -> None:
    reader = DlibReader(w.int_(value))
    assert reader.int_() == value
    assert reader.at_end()


def test_known_bytes_from_the_face_model() -> None:
    # The first bytes of dlib_face_recognition_resnet_model_v1.dat: version 1, "loss_metric_2",
    # margin 0.04 and distance threshold 0.6 as dlib wrote them.
    data = bytes.fromhex("0101010d6c6f73735f6d65747269635f32030ad7a3811c039a99998118")
    reader = DlibReader(data)
    assert reader.version(1, "loss") == 1
    assert reader.expect_string("loss_metric_2") == "loss_metric_2"
    assert reader.float32() == np.float32(0.04)
    assert reader.float32() == np.float32(0.6)
    assert reader.at_end()


@pytest.mark.parametrize("value", [0.0, 1.0, -2.5, 122.782, 1e-30, -3.4e38, 0.00390625])
def test_floats_round_trip_exactly(value: float) -> None:
    assert DlibReader(w.float_(value)).float32() == np.float32(value)


def test_non_finite_floats() -> None:
    data = w.float_(math.inf) + w.float_(-math.inf) + w.float_(math.nan)
    reader = DlibReader(data)
    assert reader.float_() == math.inf
    assert reader.float_() == -math.inf
    assert math.isnan(reader.float_())


def test_strings_bools_and_tensors() -> None:
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) - 5.5
    data = w.string("con_4") + w.bool_(True) + w.bool_(False) + w.tensor(array)
    data += w.alias_tensor((32, 3, 7, 7))
    reader = DlibReader(data)
    assert reader.expect_string("con_4", "con_5") == "con_4"
    assert reader.bool_() is True
    assert reader.bool_() is False
    decoded = reader.tensor()
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, array)
    assert reader.alias_tensor() == (32, 3, 7, 7)
    assert reader.at_end()


def test_truncated_tensor_names_the_offset() -> None:
    data = w.tensor(np.ones((1, 1, 2, 2), np.float32))[:-3]
    with pytest.raises(DlibFormatError, match=r"truncated.*\(at byte \d+\)"):
        DlibReader(data).tensor()


def test_rejects_wrong_versions_and_names() -> None:
    with pytest.raises(DlibFormatError, match="tensor: version 3"):
        DlibReader(w.int_(3)).tensor()
    reader = DlibReader(w.string("relu_"))
    with pytest.raises(DlibFormatError, match=r"expected one of \['con_4'\], found 'relu_'"):
        reader.expect_string("con_4")
    assert reader.offset == 0  # a failed expectation does not consume input


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00", "bad integer control byte 0x00"),
        (b"\x19\x00", "bad integer control byte 0x19"),
        (b"\x31\x00", "bad integer control byte 0x31"),
    ],
)
def test_rejects_bad_integers(data: bytes, message: str) -> None:
    with pytest.raises(DlibFormatError, match=message):
        DlibReader(data).int_()


def test_rejects_bad_bool_and_negative_unsigned() -> None:
    with pytest.raises(DlibFormatError, match="bad boolean byte"):
        DlibReader(b"x").bool_()
    with pytest.raises(DlibFormatError, match="negative value for an unsigned integer"):
        DlibReader(w.int_(-4)).int_(signed=False)
    with pytest.raises(DlibFormatError, match="legacy ASCII"):
        DlibReader(b"1.5 ").float_()
