"""The calibration file: validation, round trip, and refusal of another model's file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bioauth.errors import FailedPrecondition
from bioauth.matching.operating_points import (
    CalibrationError,
    ComparisonMode,
    ModeCalibration,
    load_calibration,
    point_name,
    require_calibration,
)
from tests.support.calibration import SHA, point, standard


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(standard().to_json())
    loaded = load_calibration(path, model_id="test-model", model_sha256=SHA)
    assert loaded == standard()
    assert loaded.point(ComparisonMode(3, 1), "fmr_1e-4") is not None
    assert loaded.point(ComparisonMode(3, 3), "fmr_1e-4") is None
    assert loaded.mode(ComparisonMode(2, 2)) is None


def test_another_models_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(standard().to_json())
    with pytest.raises(CalibrationError, match="recalibrate"):
        load_calibration(path, model_id="test-model", model_sha256="cd" * 32)
    with pytest.raises(CalibrationError):
        load_calibration(path, model_id="other-model", model_sha256=SHA)


def test_a_server_without_calibration_refuses_to_decide() -> None:
    """No calibrated points, no decision: FAILED_PRECONDITION, never a guessed threshold."""
    with pytest.raises(FailedPrecondition, match="model m-1 has no calibrated operating points"):
        require_calibration(None, "m-1")
    assert require_calibration(standard(), "m-1") == standard()


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="bioauth eval lfw"):
        load_calibration(tmp_path / "absent.json", model_id="m", model_sha256=SHA)
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "model_id": "m"}')
    with pytest.raises(CalibrationError, match="invalid"):
        load_calibration(bad, model_id="m", model_sha256=SHA)


def test_points_must_tighten_as_targets_fall() -> None:
    with pytest.raises(ValidationError):
        ModeCalibration(points=(point(1e-3, 0.4), point(1e-4, 0.5)))
    with pytest.raises(ValidationError):
        ModeCalibration(points=(point(1e-4, 0.4), point(1e-3, 0.5)))


def test_mode_keys() -> None:
    assert ComparisonMode.from_key("e3p1") == ComparisonMode(3, 1)
    assert [m.key for m in ComparisonMode.all()][:3] == ["e1p1", "e1p2", "e1p3"]
    with pytest.raises(ValueError, match=r"1\.\.3"):
        ComparisonMode(4, 1)
    with pytest.raises(ValueError, match="e3p1"):
        ComparisonMode.from_key("3x1")


def test_point_names() -> None:
    assert point_name(1e-4) == "fmr_1e-4"
    assert point_name(1e-3) == "fmr_1e-3"
    assert point_name(2e-4) == "fmr_0.0002"
