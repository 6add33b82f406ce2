"""The model benchmark script runs end to end and reports every configuration (tiny model)."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from bioauth.testing import build_tiny_model, tiny_manifest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "bench_model.py"


def _load_script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_model", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_model", module)  # dataclasses look themselves up
    spec.loader.exec_module(module)
    return module


def test_bench_reports_every_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = build_tiny_model()
    manifest = tiny_manifest(data)
    (tmp_path / manifest.onnx.file).write_bytes(data)
    (tmp_path / "manifest.json").write_text(manifest.to_json())
    chips = tmp_path / "faces" / "chips"
    chips.mkdir(parents=True)
    for k in range(3):
        out = io.BytesIO()
        pixels = np.random.default_rng(k).integers(0, 256, (72, 72, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(out, format="PNG")
        (chips / f"face{k}.png").write_bytes(out.getvalue())

    bench = _load_script(monkeypatch)
    argv = [
        "--manifest", str(tmp_path / "manifest.json"),
        "--faces-dir", str(tmp_path / "faces"),
        "--seconds", "0.02",
        "--rounds", "2",
        "--callers", "4",
        "--batch-sizes", "1,2",
        "--threads", "1",
        "--no-dlib",
    ]  # fmt: skip
    assert bench.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"]["model_id"] == "tiny-test-model"
    assert report["machine"]["onnxruntime"]
    configs = {(r["intra_op_threads"], r["batch_size"]) for r in report["onnxruntime"]}
    assert configs == {(1, 1), (1, 2), (1, 32)}  # the batcher's max_batch_size is added
    for row in report["onnxruntime"]:
        assert len(row["rounds_faces_per_s"]) == 2
        assert row["faces_per_s"] > 0
    (batcher,) = report["batcher"]
    assert batcher["callers"] == 4
    assert 1 <= batcher["mean_batch_size"] <= 4
    assert batcher["faces_per_s"] > 0
    assert len(batcher["ratio_to_direct_rounds"]) == 2
    assert 0 < batcher["worker_utilisation"] <= 1.01
    assert "batcher_vs_direct_1_threads" in report["targets"]
