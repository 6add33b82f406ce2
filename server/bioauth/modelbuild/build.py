"""Getting a manifest's ONNX file onto disk, checked against the committed manifest.

The committed manifest is the authority: a build writes only into the cache, and a file is
handed out only when its SHA-256 equals the manifest's. A model shipped as ONNX (no ``source``)
is looked up beside its manifest and in the cache; a converted one is rebuilt from the
installed weights when the cache lacks it, a quantized one from its base model and committed
activation ranges (``quantize``), and a copy of its manifest is kept beside it so a cache folder
describes itself. Committed files are never written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from bioauth.inference.manifest import (
    ModelManifest,
    QuantizedSourceSpec,
    SourceSpec,
    load_manifest,
)
from bioauth.modelbuild import dlib_converter
from bioauth.modelbuild.errors import ModelBuildError
from bioauth.modelbuild.sources import (
    SourceMissing,
    package_file,
    package_version,
    sha256_bytes,
    sha256_file,
)

__all__ = ["CACHED_MANIFEST", "ModelBuildError", "build_onnx", "cached_onnx_path", "ensure_built"]

CACHED_MANIFEST = "manifest.json"

_CONVERTERS: dict[str, Callable[[bytes], bytes]] = {
    dlib_converter.CONVERTER: lambda weights: dlib_converter.convert(weights).onnx_bytes,
}


def cached_onnx_path(manifest: ModelManifest, cache_dir: Path) -> Path:
    """Where the build puts a manifest's ONNX file: one folder per model id."""
    return cache_dir / manifest.model_id / manifest.onnx.file


def _read_source(source: SourceSpec) -> bytes:
    try:
        weights = package_file(source.package, source.file).read_bytes()
    except SourceMissing as exc:
        raise ModelBuildError(str(exc)) from exc
    found = sha256_bytes(weights)
    if found != source.sha256:
        raise ModelBuildError(
            f"{source.package}/{source.file} has SHA-256 {found}, the manifest expects "
            f"{source.sha256}: a different weights file is installed"
        )
    return weights


def build_onnx(source: SourceSpec) -> bytes:
    """Convert the installed weights named by ``source`` (their hash checked first)."""
    weights = _read_source(source)
    return _CONVERTERS[source.converter](weights)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # a cache others may read; mkstemp's default is 0600
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _matches(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_file(path) == sha256


def ensure_built(manifest_path: Path, cache_dir: Path) -> Path:
    """Path of the manifest's ONNX file, verified by SHA-256; builds it into the cache if needed.

    Idempotent and cheap when the file is already there (one hash of the file). Raises
    :class:`ModelBuildError` when the file cannot be found or built, or when what was built does
    not hash to the committed value (the converter or the weights changed).
    """
    manifest = load_manifest(manifest_path)
    expected = manifest.onnx.sha256
    beside = manifest_path.parent / manifest.onnx.file
    cached = cached_onnx_path(manifest, cache_dir)
    if _matches(cached, expected):
        _keep_manifest_copy(manifest, cached)
        return cached
    if _matches(beside, expected):
        return beside
    if manifest.source is None:
        raise ModelBuildError(
            f"model {manifest.model_id}: no file {manifest.onnx.file} with SHA-256 {expected} "
            f"beside {manifest_path} or in {cached.parent}"
        )
    data = _build(manifest_path, manifest.source, cache_dir)
    found = sha256_bytes(data)
    if found != expected:
        raise ModelBuildError(
            f"model {manifest.model_id}: the build hashes to {found}, the manifest {manifest_path} "
            f"expects {expected}; refusing to use it{_mismatch_hint(manifest.source)}"
        )
    _write_atomically(cached, data)
    _keep_manifest_copy(manifest, cached)
    return cached


def _build(manifest_path: Path, source: SourceSpec | QuantizedSourceSpec, cache_dir: Path) -> bytes:
    if isinstance(source, QuantizedSourceSpec):
        # Imported here: ONNX Runtime's quantizer is needed only for quantized models.
        from bioauth.modelbuild.quantize import quantize_base

        base_path = manifest_path.parent / source.base_manifest
        base = load_manifest(base_path)
        if base.onnx.sha256 != source.base_sha256:
            raise ModelBuildError(
                f"{manifest_path} quantizes the model with SHA-256 {source.base_sha256}, but "
                f"{base_path} now describes {base.onnx.sha256}: recalibrate the quantized model"
            )
        return quantize_base(
            manifest_path, source, base.model_id, ensure_built(base_path, cache_dir)
        )
    return build_onnx(source)


def _mismatch_hint(source: SourceSpec | QuantizedSourceSpec) -> str:
    """Why a quantized build may differ: its bytes depend on the quantizer's version."""
    if not isinstance(source, QuantizedSourceSpec):
        return ""
    try:
        installed = package_version(source.package)
    except SourceMissing:
        return ""
    if installed == source.package_version:
        return ""
    return (
        f" (the manifest's file was quantized with {source.package} {source.package_version}, "
        f"this is {installed}: rebuild and re-measure it, then update the manifest)"
    )


def _keep_manifest_copy(manifest: ModelManifest, cached: Path) -> None:
    copy = cached.parent / CACHED_MANIFEST
    text = manifest.to_json().encode("utf-8")
    if not copy.is_file() or copy.read_bytes() != text:
        _write_atomically(copy, text)
