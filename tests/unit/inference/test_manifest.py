"""The manifest loader accepts a complete manifest and names the field when one is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bioauth.errors import FailedPrecondition
from bioauth.inference.manifest import ManifestError, ModelManifest, calibration_path, load_manifest


def _valid() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "model_id": "arcface-r100-0123456789ab",
        "name": "arcface_r100",
        "version": "1",
        "input": {
            "width": 112,
            "height": 112,
            "channels": 3,
            "channel_order": "BGR",
            "layout": "NCHW",
            "dtype": "float32",
            "mean": [127.5, 127.5, 127.5],
            "scale": [0.0078125, 0.0078125, 0.0078125],
        },
        "embedding_size": 512,
        "metric": "cosine",
        "onnx": {
            "file": "arcface_r100.onnx",
            "sha256": "ab" * 32,
            "input_name": "input.1",
            "output_name": "683",
        },
    }


def _write(tmp_path: Path, raw: Any) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def test_loads_a_model_without_converter(tmp_path: Path) -> None:
    manifest = load_manifest(_write(tmp_path, _valid()))
    assert manifest.source is None
    assert manifest.input.channel_order == "BGR"
    assert manifest.embedding_size == 512
    assert manifest.onnx.input_name == "input.1"


def test_round_trips_through_canonical_json(tmp_path: Path) -> None:
    manifest = load_manifest(_write(tmp_path, _valid()))
    again = ModelManifest.model_validate_json(manifest.to_json())
    assert again == manifest
    assert again.to_json() == manifest.to_json()


def test_is_frozen(tmp_path: Path) -> None:
    manifest = load_manifest(_write(tmp_path, _valid()))
    with pytest.raises(ValidationError):
        manifest.model_id = "other-id"


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("input", "mean"), [127.5, 127.5], "input: Value error, input.mean needs 3 values"),
        (("input", "scale"), [1.0, 0.0, 1.0], "input.scale values must be non-zero"),
        (("input", "layout"), "CHW", "input.layout"),
        (("metric",), "manhattan", "metric"),
        (("onnx", "sha256"), "ABC", "onnx.sha256"),
        (("onnx", "file"), "../evil.onnx", "onnx.file"),
        (("model_id",), "Has Spaces", "model_id"),
        (("unexpected",), 1, "unexpected"),
    ],
)
def test_names_the_bad_field(tmp_path: Path, path: tuple[str, ...], value: Any, field: str) -> None:
    raw = _valid()
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ManifestError, match="is invalid") as info:
        load_manifest(_write(tmp_path, raw))
    assert field in str(info.value)


def test_missing_field(tmp_path: Path) -> None:
    raw = _valid()
    del raw["embedding_size"]
    with pytest.raises(ManifestError, match="embedding_size: Field required"):
        load_manifest(_write(tmp_path, raw))


def test_unknown_schema_version(tmp_path: Path) -> None:
    raw = _valid()
    raw["schema_version"] = 2
    with pytest.raises(ManifestError, match="schema_version 2 is not supported"):
        load_manifest(_write(tmp_path, raw))


def test_not_json_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "manifest.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ManifestError, match="is not JSON"):
        load_manifest(bad)
    with pytest.raises(ManifestError, match="cannot be read"):
        load_manifest(tmp_path / "absent.json")
    with pytest.raises(ManifestError, match="must hold a JSON object"):
        load_manifest(_write(tmp_path, [1, 2]))


def test_is_a_failed_precondition() -> None:
    assert issubclass(ManifestError, FailedPrecondition)


def test_refuses_the_retired_provisional_threshold_and_says_where_thresholds_are(
    tmp_path: Path,
) -> None:
    raw = _valid()
    raw["provisional_threshold"] = {"distance": 0.6, "calibrated": False, "note": "old"}
    with pytest.raises(ManifestError, match="provisional_threshold") as info:
        load_manifest(_write(tmp_path, raw))
    assert "calibration.json" in str(info.value)


def test_calibration_sits_beside_the_manifest_unless_overridden(tmp_path: Path) -> None:
    manifest = tmp_path / "model" / "manifest.json"
    assert calibration_path(manifest) == tmp_path / "model" / "calibration.json"
    assert calibration_path(manifest, tmp_path / "other.json") == tmp_path / "other.json"
