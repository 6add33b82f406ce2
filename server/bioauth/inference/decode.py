"""Turn untrusted image bytes into RGB pixels without letting them cost more than the limits allow.

Every check that can be made from the bytes or the header (encoded size, format, width, height,
pixel count) is made before any pixel is decoded, so a decompression bomb or a truncated file costs
a header parse, not memory. Everything here is blocking CPU work: callers on the event loop run it
with ``asyncio.to_thread``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from bioauth.config import ImageSettings
from bioauth.errors import ImageOverLimit, ImageTooSmall, InvalidInput

__all__ = ["RawImage", "decode_image"]

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Modes Pillow converts to RGB without guessing (16-bit and float modes would need a scale).
_CONVERTIBLE_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"})
# Pillow's own exceptions for broken or hostile files; all mean "the caller sent a bad image".
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    UnidentifiedImageError,
)


@dataclass(frozen=True, slots=True)
class RawImage:
    """Uncompressed 8-bit RGB pixels, row-major without padding (the API's ``RawImage``)."""

    rgb8: bytes
    width: int
    height: int


def decode_image(
    image: bytes | RawImage, limits: ImageSettings, *, field: str = "image"
) -> npt.NDArray[np.uint8]:
    """Decode a JPEG/PNG file (``bytes``, recognised by magic bytes) or raw RGB8 into (H, W, 3) RGB.

    Raises ``InvalidInput`` naming ``field`` for anything outside ``limits`` or not decodable, so
    the API can answer INVALID_ARGUMENT; it never lets a Pillow error escape. Two subclasses say
    which limit: ``ImageOverLimit`` (too many bytes or pixels, a side too long) and
    ``ImageTooSmall`` (a side shorter than ``limits.min_side_px``). Blocking: run it in a
    worker thread from async code.
    """
    if isinstance(image, RawImage):
        return _decode_raw(image, limits, field)
    return _decode_encoded(image, limits, field)


def _decode_raw(image: RawImage, limits: ImageSettings, field: str) -> npt.NDArray[np.uint8]:
    _check_dimensions(image.width, image.height, limits, field)
    expected = image.width * image.height * 3
    if len(image.rgb8) != expected:
        raise InvalidInput(
            f"raw RGB8 image holds {len(image.rgb8)} bytes, but width {image.width} x height "
            f"{image.height} x 3 needs exactly {expected}",
            field=field,
        )
    pixels = np.frombuffer(image.rgb8, dtype=np.uint8).reshape(image.height, image.width, 3)
    return pixels.copy()


def _decode_encoded(data: bytes, limits: ImageSettings, field: str) -> npt.NDArray[np.uint8]:
    if len(data) > limits.max_encoded_bytes:
        raise ImageOverLimit(
            f"encoded image is {len(data)} bytes; the limit is {limits.max_encoded_bytes}",
            field=field,
        )
    if data.startswith(_JPEG_MAGIC):
        image_format = "JPEG"
    elif data.startswith(_PNG_MAGIC):
        image_format = "PNG"
    else:
        raise InvalidInput("not a JPEG or PNG file (unrecognised magic bytes)", field=field)
    try:
        # Image.open parses only the header (and refuses Pillow's own bomb sizes); no pixel is
        # decoded before the checks below.
        with Image.open(io.BytesIO(data), formats=[image_format]) as img:
            width, height = img.size
            _check_dimensions(width, height, limits, field)
            if img.mode not in _CONVERTIBLE_MODES:
                raise InvalidInput(
                    f"{image_format} pixel mode {img.mode!r} is not supported; send 8-bit "
                    "RGB or greyscale",
                    field=field,
                )
            img.load()
            rgb = img if img.mode == "RGB" else img.convert("RGB")
            pixels = np.asarray(rgb, dtype=np.uint8)
    except InvalidInput:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow refuses headers far beyond any sane size while opening, before our own check.
        raise ImageOverLimit(
            f"{image_format} header claims more than {limits.max_pixels} pixels", field=field
        ) from exc
    except _DECODE_ERRORS as exc:
        raise InvalidInput(
            f"{image_format} file could not be decoded (corrupt or truncated)", field=field
        ) from exc
    if pixels.shape != (height, width, 3):
        raise InvalidInput(f"{image_format} file decoded to an unexpected shape", field=field)
    return np.ascontiguousarray(pixels)


def _check_dimensions(width: int, height: int, limits: ImageSettings, field: str) -> None:
    if width <= 0 or height <= 0:
        raise InvalidInput(f"image is {width}x{height}; width and height must be > 0", field=field)
    if max(width, height) > limits.max_side_px:
        raise ImageOverLimit(
            f"image is {width}x{height}; the largest side allowed is {limits.max_side_px} px",
            field=field,
        )
    if width * height > limits.max_pixels:
        raise ImageOverLimit(
            f"image is {width}x{height} = {width * height} pixels; the limit is "
            f"{limits.max_pixels}",
            field=field,
        )
    if min(width, height) < limits.min_side_px:
        raise ImageTooSmall(
            f"image is {width}x{height}; the smallest side allowed is {limits.min_side_px} px",
            field=field,
        )
