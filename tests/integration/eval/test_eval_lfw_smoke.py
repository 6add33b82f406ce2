"""`bioauth eval lfw --smoke`: the whole evaluation pipeline end to end on a few hundred chips.

CI runs this, never the full set (that is ``make bench-accuracy``). It checks that the real
model embeds the chips (and reproduces dlib's reference descriptors), that a rerun is served from
the cache, and that the report, DET plot and calibration come out consistent with each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bioauth.cli.main import main
from bioauth.matching.decision import Decision
from bioauth.matching.operating_points import ComparisonMode, load_calibration
from bioauth.matching.policy import decide_verify
from tests.support.faces import lfw_dir

pytestmark = pytest.mark.integration

MANIFEST = Path(__file__).resolve().parents[3] / "models" / "dlib_resnet_v1" / "manifest.json"
SMOKE_CHIPS = 300


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = lfw_dir()
    cache = tmp_path_factory.mktemp("cache")
    out = tmp_path_factory.mktemp("eval")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BIOAUTH_LFW_DIR", str(root))
        patch.setenv("BIOAUTH_INFERENCE__CACHE_DIR", str(cache))
        args = [
            "eval",
            "lfw",
            "--smoke",
            str(SMOKE_CHIPS),
            "--out",
            str(out),
            "--bootstrap",
            "50",
            "--no-progress",
        ]
        assert main(args) == 0
        first = json.loads((out / "report.json").read_text())
        assert main([*args, "--out", str(out / "rerun")]) == 0
    rerun = json.loads((out / "rerun" / "report.json").read_text())
    return out, {"first": first, "rerun": rerun}


def test_model_embeds_every_chip_once_then_serves_the_cache(
    smoke_run: tuple[Path, dict[str, dict[str, Any]]],
) -> None:
    _, reports = smoke_run
    first = reports["first"]["embeddings"]
    rerun = reports["rerun"]["embeddings"]
    assert first["computed_now"] == reports["first"]["chips"] >= SMOKE_CHIPS * 0.9
    assert rerun["computed_now"] == 0
    assert first["max_abs_difference_to_reference"] < 1e-4


def test_report_has_every_part(smoke_run: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    out, reports = smoke_run
    report = reports["first"]
    for part in (
        "lfw_protocol",
        "fusion",
        "modes",
        "all_pairs_single_image",
        "per_fold",
        "held_out",
        "checks",
    ):
        assert part in report
    assert set(report["modes"]) == {m.key for m in ComparisonMode.all()}
    assert report["checks"]["lfw_protocol_within_0.1pp"]["passed"] is True
    assert (out / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_calibration_matches_the_report_and_drives_the_policy(
    smoke_run: tuple[Path, dict[str, dict[str, Any]]],
) -> None:
    out, reports = smoke_run
    manifest = json.loads(MANIFEST.read_text())
    calibration = load_calibration(
        out / "calibration.json",
        model_id=manifest["model_id"],
        model_sha256=manifest["onnx"]["sha256"],
    )
    e1p1 = ComparisonMode(1, 1)
    point = calibration.point(e1p1, "fmr_1e-3")
    assert point is not None, "a few hundred chips support FMR 1e-3 with all pairs"
    rates = reports["first"]["modes"]["e1p1"]["rates"]
    assert rates[0]["threshold"] == point.threshold
    assert calibration.point(e1p1, "fmr_1e-6") is None  # too few impostor pairs: refused
    assert (
        decide_verify(point.threshold, e1p1, calibration, "fmr_1e-3").decision is Decision.APPROVE
    )
    above = decide_verify(point.threshold * 1.0001, e1p1, calibration, "fmr_1e-3")
    assert above.decision is Decision.DECLINE
