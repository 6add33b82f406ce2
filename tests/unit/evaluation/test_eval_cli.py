"""`bioauth eval lfw` refuses what would calibrate from partial data, before reading any."""

from __future__ import annotations

from pathlib import Path

import pytest

from bioauth.cli.main import build_parser, main


@pytest.mark.parametrize(
    "extra",
    [
        ["--smoke", "300"],
        ["--folds", "2,3,4,5"],
        ["--descriptors", "reference"],
    ],
)
def test_write_calibration_needs_a_full_model_run(
    extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["eval", "lfw", "--write-calibration", "--out", str(tmp_path), *extra])
    assert code == 2
    assert "--write-calibration needs a full run" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_bad_folds_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "lfw", "--folds", "0,11"])
    assert "folds must be in 1..10" in capsys.readouterr().err


def test_missing_data_set_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "eval",
            "lfw",
            "--descriptors",
            "reference",
            "--lfw-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 1
    assert "BIOAUTH_LFW_DIR" in capsys.readouterr().err
