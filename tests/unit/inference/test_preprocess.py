"""Model input follows the manifest exactly; quality gates follow the settings."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from bioauth.config import QualitySettings
from bioauth.errors import InvalidInput
from bioauth.inference.manifest import InputSpec
from bioauth.inference.preprocess import to_model_input
from bioauth.inference.quality import QualityIssue, assess_quality

DLIB_MEAN = (122.782, 117.001, 104.298)


def _spec(**changes: object) -> InputSpec:
    fields: dict[str, object] = {
        "width": 32,
        "height": 24,
        "channel_order": "RGB",
        "layout": "NCHW",
        "mean": DLIB_MEAN,
        "scale": (1 / 256, 1 / 256, 1 / 256),
    }
    fields.update(changes)
    return InputSpec.model_validate(fields)


def _noise(side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


def test_nchw_rgb_is_pixel_minus_mean_times_scale_in_float32() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    tensor = to_model_input(rgb, _spec())
    assert tensor.dtype == np.float32
    assert tensor.shape == (3, 24, 32)
    assert tensor.flags.c_contiguous
    for channel in range(3):
        expected = (rgb[:, :, channel].astype(np.float32) - np.float32(DLIB_MEAN[channel])) * (
            np.float32(1 / 256)
        )
        np.testing.assert_array_equal(tensor[channel], expected)


def test_bgr_nhwc_reverses_channels_and_keeps_channels_last() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    spec = _spec(channel_order="BGR", layout="NHWC", mean=(10.0, 20.0, 30.0), scale=(1.0, 2.0, 4.0))
    tensor = to_model_input(rgb, spec)
    assert tensor.shape == (24, 32, 3)
    np.testing.assert_array_equal(tensor[:, :, 0], (rgb[:, :, 2].astype(np.float32) - 10) * 1)
    np.testing.assert_array_equal(tensor[:, :, 2], (rgb[:, :, 0].astype(np.float32) - 30) * 4)


def test_other_sizes_are_resized_to_the_manifest_size() -> None:
    flat = np.full((96, 80, 3), 200, dtype=np.uint8)
    tensor = to_model_input(flat, _spec())
    assert tensor.shape == (3, 24, 32)
    np.testing.assert_allclose(tensor[0], (200 - DLIB_MEAN[0]) / 256, rtol=1e-6)


def test_wrong_array_is_refused() -> None:
    with pytest.raises(InvalidInput, match="uint8 RGB"):
        to_model_input(np.zeros((24, 32), dtype=np.uint8), _spec())
    with pytest.raises(InvalidInput, match="uint8 RGB"):
        to_model_input(np.zeros((24, 32, 3), dtype=np.float32), _spec())


def test_sharp_well_lit_crop_passes() -> None:
    report = assess_quality(_noise(150), QualitySettings())
    assert report.ok
    assert report.issues == ()
    assert report.sharpness > 1000
    assert 100 < report.mean_luma < 160


def test_blurred_crop_is_too_blurred() -> None:
    blurred = np.asarray(Image.fromarray(_noise(150)).filter(ImageFilter.GaussianBlur(4)))
    report = assess_quality(blurred, QualitySettings())
    assert report.issues == (QualityIssue.TOO_BLURRED,)
    # The threshold is a setting, not a constant.
    assert assess_quality(blurred, QualitySettings(min_sharpness=0.0)).ok


def test_dark_crop_is_too_dark() -> None:
    dark = (_noise(150) // 8).astype(np.uint8)
    report = assess_quality(dark, QualitySettings(min_sharpness=0.0))
    assert report.issues == (QualityIssue.TOO_DARK,)
    assert report.mean_luma < 20


def test_small_crop_is_too_small_and_sharpness_is_size_independent() -> None:
    small = _noise(80)
    report = assess_quality(small, QualitySettings())
    assert QualityIssue.TOO_SMALL in report.issues
    assert assess_quality(small, QualitySettings(min_side_px=64)).ok
    big = np.asarray(
        Image.fromarray(_noise(150, seed=3)).resize((600, 600), Image.Resampling.NEAREST)
    )
    assert assess_quality(big, QualitySettings()).sharpness == pytest.approx(
        assess_quality(_noise(150, seed=3), QualitySettings()).sharpness, rel=0.35
    )
