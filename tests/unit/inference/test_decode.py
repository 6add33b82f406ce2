"""Decoding untrusted images: limits hold before any pixel is decoded, and garbage never crashes."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from bioauth.config import ImageSettings
from bioauth.errors import ImageOverLimit, ImageTooSmall, InvalidInput
from bioauth.inference.decode import RawImage, decode_image

LIMITS = ImageSettings()


def _encode(pixels: np.ndarray, image_format: str, **params: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=image_format, **params)
    return out.getvalue()


def _rgb(height: int = 80, width: int = 96, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose pixel data is garbage."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"not zlib at all")
        + _png_chunk(b"IEND", b"")
    )


def test_png_round_trips_exactly() -> None:
    pixels = _rgb()
    decoded = decode_image(_encode(pixels, "PNG"), LIMITS)
    assert decoded.dtype == np.uint8
    assert decoded.shape == (80, 96, 3)
    np.testing.assert_array_equal(decoded, pixels)


def test_jpeg_decodes_to_rgb_of_the_header_size() -> None:
    pixels = np.full((70, 90, 3), (200, 40, 10), dtype=np.uint8)
    decoded = decode_image(_encode(pixels, "JPEG", quality=95), LIMITS)
    assert decoded.shape == (70, 90, 3)
    assert np.abs(decoded.astype(int) - pixels.astype(int)).max() < 8


def test_greyscale_and_palette_become_rgb() -> None:
    grey = np.random.default_rng(1).integers(0, 256, (64, 64), dtype=np.uint8)
    decoded = decode_image(_encode(grey, "PNG"), LIMITS)
    assert decoded.shape == (64, 64, 3)
    np.testing.assert_array_equal(decoded[:, :, 0], grey)
    palette = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).convert("P").save(palette, format="PNG")
    assert decode_image(palette.getvalue(), LIMITS).shape == (64, 64, 3)


def test_raw_rgb8_must_be_exactly_width_by_height_by_three() -> None:
    pixels = _rgb(64, 70)
    decoded = decode_image(RawImage(pixels.tobytes(), width=70, height=64), LIMITS)
    np.testing.assert_array_equal(decoded, pixels)
    with pytest.raises(InvalidInput, match=r"needs exactly 13440") as info:
        decode_image(RawImage(pixels.tobytes()[:-1], width=70, height=64), LIMITS, field="raw")
    assert info.value.field == "raw"


def test_raw_dimensions_are_checked_before_the_length() -> None:
    with pytest.raises(InvalidInput, match="largest side allowed is 2048"):
        decode_image(RawImage(b"", width=4096, height=64), LIMITS)
    with pytest.raises(InvalidInput, match="width and height must be > 0"):
        decode_image(RawImage(b"", width=0, height=64), LIMITS)


def test_oversize_file_is_refused_by_its_byte_count() -> None:
    limits = ImageSettings(max_encoded_bytes=4096)
    big = _encode(_rgb(128, 128), "PNG")
    assert len(big) > 4096
    with pytest.raises(ImageOverLimit, match=rf"is {len(big)} bytes; the limit is 4096"):
        decode_image(big, limits, field="images[0]")


def test_unknown_format_is_refused_by_magic_bytes() -> None:
    gif = _encode(_rgb(), "GIF")
    with pytest.raises(InvalidInput, match="not a JPEG or PNG"):
        decode_image(gif, LIMITS)
    with pytest.raises(InvalidInput, match="not a JPEG or PNG"):
        decode_image(b"", LIMITS)


@pytest.mark.parametrize(
    ("width", "height", "kind", "message"),
    [
        (100_000, 100_000, ImageOverLimit, "more than 4194304 pixels"),
        (60_000, 64, ImageOverLimit, "largest side allowed is 2048"),
        (2048, 2048 * 2, ImageOverLimit, "largest side allowed is 2048"),
        (60_000, 8, ImageOverLimit, "largest side allowed is 2048"),  # over a limit wins
        (32, 512, ImageTooSmall, "smallest side allowed is 64"),
        (8, 8, ImageTooSmall, "smallest side allowed is 64"),
    ],
)
def test_header_dimensions_are_refused_before_decoding(
    width: int, height: int, kind: type[InvalidInput], message: str
) -> None:
    """Each limit says which it is, so callers tell a refused request (over a limit) from a
    crop that is only too small; the pixel data is garbage, so nothing was decoded."""
    with pytest.raises(kind, match=message):
        decode_image(_png_header_only(width, height), LIMITS)


def test_pixel_count_is_refused_before_decoding() -> None:
    limits = ImageSettings(max_pixels=100 * 100)
    with pytest.raises(InvalidInput, match=r"= 12000 pixels; the limit is 10000"):
        decode_image(_png_header_only(120, 100), limits)


def test_garbage_after_a_valid_header_is_an_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="could not be decoded"):
        decode_image(_png_header_only(100, 100), LIMITS)


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_truncated_files_are_invalid_input(image_format: str) -> None:
    data = _encode(_rgb(128, 128), image_format)
    for cut in (12, 40, len(data) // 2, len(data) * 3 // 4):
        with pytest.raises(InvalidInput):
            decode_image(data[:cut], LIMITS)


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_random_corruption_never_escapes_as_anything_but_invalid_input(image_format: str) -> None:
    data = bytearray(_encode(_rgb(96, 96), image_format))
    rng = np.random.default_rng(7)
    for _ in range(150):
        mutated = bytearray(data)
        for position in rng.integers(3, len(mutated), size=int(rng.integers(1, 12))):
            mutated[position] = int(rng.integers(0, 256))
        try:
            decoded = decode_image(bytes(mutated), LIMITS)
        except InvalidInput:
            continue
        assert decoded.shape == (96, 96, 3)


def test_sixteen_bit_png_is_refused_by_mode() -> None:
    deep = Image.fromarray(np.zeros((64, 64), dtype=np.uint16))
    out = io.BytesIO()
    deep.save(out, format="PNG")
    with pytest.raises(InvalidInput, match="pixel mode"):
        decode_image(out.getvalue(), LIMITS)
