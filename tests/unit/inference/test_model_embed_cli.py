"""`bioauth model embed` prints one JSON line per image, with the server's own numbers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bioauth.cli.main import main
from bioauth.config import ImageSettings, InferenceSettings
from bioauth.inference.decode import decode_image
from bioauth.inference.engine import OnnxEngine
from bioauth.inference.preprocess import to_model_input
from bioauth.testing import build_tiny_model, tiny_manifest


@pytest.fixture
def tiny_manifest_path(tmp_path: Path) -> Path:
    data = build_tiny_model()
    manifest = tiny_manifest(data)
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / manifest.onnx.file).write_bytes(data)  # a shipped model sits beside its manifest
    path = folder / "manifest.json"
    path.write_text(manifest.to_json())
    return path


def _png(path: Path, seed: int) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (72, 72, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    path.write_bytes(out.getvalue())
    return path


def test_one_json_line_per_image_in_order(
    tiny_manifest_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _png(tmp_path / "a.png", 1)
    second = _png(tmp_path / "b.png", 2)
    assert (
        main(["model", "embed", "--model", str(tiny_manifest_path), str(first), str(second)]) == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == [str(first), str(second)]
    manifest = tiny_manifest(build_tiny_model())
    engine = OnnxEngine(tiny_manifest_path.parent / "tiny.onnx", manifest, InferenceSettings())
    for line, path in zip(lines, (first, second), strict=True):
        assert line["model_id"] == "tiny-test-model"
        expected = engine.run(
            to_model_input(decode_image(path.read_bytes(), ImageSettings()), manifest.input)[None]
        )[0]
        np.testing.assert_allclose(line["embedding"], expected, rtol=1e-6)


def test_bad_images_get_an_error_line_and_exit_code_one(
    tiny_manifest_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _png(tmp_path / "good.png", 3)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    missing = tmp_path / "missing.png"
    argv = [
        "model",
        "embed",
        "--model",
        str(tiny_manifest_path),
        str(junk),
        str(missing),
        str(good),
    ]
    assert main(argv) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "could not be decoded" in lines[0]["error"]
    assert "cannot be read" in lines[1]["error"]
    assert len(lines[2]["embedding"]) == 8


def test_unusable_model_is_reported_once_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = _png(tmp_path / "a.png", 1)
    assert main(["model", "embed", "--model", str(tmp_path / "none.json"), str(image)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "cannot be read" in captured.err
