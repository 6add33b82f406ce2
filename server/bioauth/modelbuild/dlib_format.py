"""A reader for dlib's binary serialization format (``dlib/serialize.h``), written from its spec.

Only the primitives that dlib's DNN files use are read: variable-length integers, floats in
dlib's portable mantissa/exponent form, strings, ASCII booleans and DNN tensors (version 2:
four ``long long`` dimensions then raw little-endian IEEE float32 values). Every read checks
bounds, so a truncated or foreign file fails with the byte offset instead of garbage weights.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["DlibFormatError", "DlibReader"]

# float_details marks non-finite values with these exponents instead of a mantissa.
_EXP_INF = 32000
_EXP_NINF = 32001
_EXP_NAN = 32002
_TENSOR_VERSION = 2
_ALIAS_TENSOR_VERSION = 1


class DlibFormatError(ValueError):
    """The bytes are not what dlib would have written here."""


class DlibReader:
    """Sequential reader over one serialized dlib object."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    @property
    def offset(self) -> int:
        return self._pos

    def at_end(self) -> bool:
        return self._pos == len(self._data)

    def fail(self, message: str) -> DlibFormatError:
        return DlibFormatError(f"{message} (at byte {self._pos})")

    def _take(self, count: int) -> memoryview:
        if count < 0 or self._pos + count > len(self._data):
            raise self.fail(f"truncated: wanted {count} bytes, {len(self._data) - self._pos} left")
        chunk = self._data[self._pos : self._pos + count]
        self._pos += count
        return chunk

    def int_(self, *, max_bytes: int = 8, signed: bool = True) -> int:
        """dlib's packed integer: a control byte (low nibble: byte count, 0x80: negative) and
        that many little-endian magnitude bytes."""
        control = self._take(1)[0]
        size = control & 0x0F
        negative = bool(control & 0x80)
        if size == 0 or size > max_bytes or control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x}")
        if negative and not signed:
            raise self.fail("negative value for an unsigned integer")
        value = int.from_bytes(self._take(size), "little")
        return -value if negative else value

    def version(self, expected: range | int, what: str) -> int:
        allowed = range(expected, expected + 1) if isinstance(expected, int) else expected
        start = self._pos
        found = self.int_(max_bytes=4)
        if found not in allowed:
            self._pos = start
            raise self.fail(f"{what}: version {found} not in {list(allowed)}")
        return found

    def float_(self) -> float:
        """A float stored as ``mantissa * 2**exponent`` (int64, int16), as dlib's float_details."""
        first = self._data[self._pos] if self._pos < len(self._data) else 0
        if first & 0x70:
            raise self.fail("float in dlib's legacy ASCII form is not supported")
        mantissa = self.int_()
        exponent = self.int_(max_bytes=2)
        if exponent == _EXP_INF:
            return math.inf
        if exponent == _EXP_NINF:
            return -math.inf
        if exponent == _EXP_NAN:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def float32(self) -> np.float32:
        """A C++ ``float`` member: decoded exactly as dlib does, then held in single precision."""
        return np.float32(self.float_())

    def string(self) -> str:
        size = self.int_(signed=False)
        return bytes(self._take(size)).decode("latin-1")

    def expect_string(self, *allowed: str) -> str:
        start = self._pos
        found = self.string() if self._looks_like_string() else None
        if found not in allowed:
            self._pos = start
            raise self.fail(f"expected one of {list(allowed)}, found {found!r}")
        return found

    def _looks_like_string(self) -> bool:
        start = self._pos
        try:
            size = self.int_(signed=False)
            return 0 < size < 256 and self._pos + size <= len(self._data)
        except DlibFormatError:
            return False
        finally:
            self._pos = start

    def bool_(self) -> bool:
        char = bytes(self._take(1))
        if char == b"1":
            return True
        if char == b"0":
            return False
        self._pos -= 1
        raise self.fail(f"bad boolean byte {char!r}")

    def _dims(self) -> tuple[int, int, int, int]:
        dims = (self.int_(), self.int_(), self.int_(), self.int_())
        if any(d < 0 for d in dims):
            raise self.fail(f"negative tensor dimension in {dims}")
        return dims

    def tensor(self) -> npt.NDArray[np.float32]:
        """A dlib tensor as an (n, k, nr, nc) float32 array (a copy, detached from the file)."""
        self.version(_TENSOR_VERSION, "tensor")
        dims = self._dims()
        count = math.prod(dims)
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        """An alias_tensor: only the shape of a view into a layer's parameter tensor."""
        self.version(_ALIAS_TENSOR_VERSION, "alias_tensor")
        return self._dims()
