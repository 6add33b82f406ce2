"""A test-side encoder of dlib's serialization format, written from dlib/serialize.h.

The converter only reads the format; encoding it independently here lets the tests build
small dlib files and prove the reader decodes what dlib would have written.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


def int_(value: int) -> bytes:
    negative = value < 0
    magnitude = -value if negative else value
    body = bytearray()
    while True:
        body.append(magnitude & 0xFF)
        magnitude >>= 8
        if magnitude == 0:
            break
    return bytes([len(body) | (0x80 if negative else 0)]) + bytes(body)


def float_(value: float) -> bytes:
    """dlib's float_details for a C++ float: a 24-bit mantissa with low zero bytes shifted off."""
    if math.isinf(value):
        return int_(0) + int_(32000 if value > 0 else 32001)
    if math.isnan(value):
        return int_(0) + int_(32002)
    fraction, exp = math.frexp(float(np.float32(value)))
    mantissa = int(fraction * (1 << 24))
    exponent = exp - 24
    for _ in range(8):
        if mantissa & 0xFF:
            break
        mantissa >>= 8
        exponent += 8
    return int_(mantissa) + int_(exponent)


def string(text: str) -> bytes:
    raw = text.encode("latin-1")
    return int_(len(raw)) + raw


def bool_(value: bool) -> bytes:
    return b"1" if value else b"0"


def tensor(array: npt.NDArray[np.float32]) -> bytes:
    shape = (*array.shape, 1, 1, 1, 1)[:4] if array.ndim < 4 else array.shape
    head = int_(2) + b"".join(int_(d) for d in shape)
    return head + np.ascontiguousarray(array, dtype="<f4").tobytes()


def alias_tensor(shape: tuple[int, int, int, int]) -> bytes:
    return int_(1) + b"".join(int_(d) for d in shape)
