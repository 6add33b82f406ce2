"""`ensure_built` and `bioauth model build`: deterministic, verified, idempotent, read-only
towards committed files."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bioauth.cli.main import main
from bioauth.inference.manifest import load_manifest
from bioauth.modelbuild import (
    CACHED_MANIFEST,
    ModelBuildError,
    cached_onnx_path,
    convert,
    ensure_built,
    fresh_manifest,
    installed_weights,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
COMMITTED = REPO_ROOT / "models" / "dlib_resnet_v1" / "manifest.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edited_manifest(tmp_path: Path, **changes: Any) -> Path:
    raw = json.loads(COMMITTED.read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def test_building_twice_gives_the_same_bytes_hash_and_id() -> None:
    weights = installed_weights()
    first, second = convert(weights), convert(weights)
    assert first.onnx_bytes == second.onnx_bytes
    assert first.model_id == second.model_id
    assert fresh_manifest(first).to_json() == fresh_manifest(second).to_json()


def test_committed_manifest_describes_the_build() -> None:
    fresh = fresh_manifest(convert(installed_weights()))
    assert COMMITTED.read_text(encoding="utf-8") == fresh.to_json()
    committed = load_manifest(COMMITTED)
    assert committed.model_id.startswith("dlib-resnet-v1-")
    assert "threshold" not in COMMITTED.read_text(encoding="utf-8")


def test_ensure_built_is_idempotent(tmp_path: Path) -> None:
    committed_before = COMMITTED.read_bytes()
    path = ensure_built(COMMITTED, tmp_path)
    manifest = load_manifest(COMMITTED)
    assert path == cached_onnx_path(manifest, tmp_path)
    assert _sha256(path) == manifest.onnx.sha256
    stat = path.stat()
    assert ensure_built(COMMITTED, tmp_path) == path
    again = path.stat()
    assert (again.st_ino, again.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert COMMITTED.read_bytes() == committed_before
    # The ONNX file and a copy of its manifest, no temporary files left behind.
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, CACHED_MANIFEST])
    copy = path.parent / CACHED_MANIFEST
    assert load_manifest(copy) == manifest
    assert ensure_built(copy, tmp_path / "elsewhere") == path  # the cache describes itself


def test_ensure_built_replaces_a_damaged_cache_file(tmp_path: Path) -> None:
    path = ensure_built(COMMITTED, tmp_path)
    path.write_bytes(b"not a model")
    assert ensure_built(COMMITTED, tmp_path) == path
    assert _sha256(path) == load_manifest(COMMITTED).onnx.sha256


def test_a_build_that_disagrees_with_the_manifest_is_refused(tmp_path: Path) -> None:
    manifest = _edited_manifest(tmp_path, onnx__sha256="0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(ModelBuildError, match="refusing to use it"):
        ensure_built(manifest, cache)
    assert not any(cache.rglob("*.onnx"))


def test_other_weights_are_refused(tmp_path: Path) -> None:
    manifest = _edited_manifest(tmp_path, source__sha256="1" * 64)
    with pytest.raises(ModelBuildError, match="a different weights file is installed"):
        ensure_built(manifest, tmp_path / "cache")


def test_missing_weights_package(tmp_path: Path) -> None:
    manifest = _edited_manifest(tmp_path, source__package="no_such_weights_package")
    with pytest.raises(ModelBuildError, match="pip install no_such_weights_package"):
        ensure_built(manifest, tmp_path / "cache")


def test_a_model_shipped_as_onnx_is_found_beside_its_manifest(tmp_path: Path) -> None:
    built = ensure_built(COMMITTED, tmp_path / "cache")
    model_dir = tmp_path / "arcface_like"
    model_dir.mkdir()
    manifest = _edited_manifest(model_dir, source=None, model_id="shipped-model")
    with pytest.raises(
        ModelBuildError, match=r"no file dlib_face_recognition_resnet_model_v1\.onnx"
    ):
        ensure_built(manifest, tmp_path / "other-cache")
    shutil.copyfile(built, model_dir / built.name)
    assert ensure_built(manifest, tmp_path / "other-cache") == model_dir / built.name


def test_cli_build_prints_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "build", "--manifest", str(COMMITTED), "--out", str(tmp_path)]) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert printed == cached_onnx_path(load_manifest(COMMITTED), tmp_path)
    assert printed.is_file()


def test_cli_build_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _edited_manifest(tmp_path, onnx__sha256="0" * 64)
    assert main(["model", "build", "--manifest", str(manifest), "--out", str(tmp_path)]) == 1
    assert "refusing to use it" in capsys.readouterr().err


def test_cli_print_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "build", "--print-manifest"]) == 0
    assert capsys.readouterr().out == COMMITTED.read_text(encoding="utf-8")
