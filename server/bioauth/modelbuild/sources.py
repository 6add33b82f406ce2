"""Finding original weights inside installed packages, without importing those packages.

``face_recognition_models`` imports ``pkg_resources`` at import time (deprecated, and absent
from recent setuptools), so its files are located through the import system's spec alone.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

__all__ = ["SourceMissing", "package_file", "package_version", "sha256_bytes", "sha256_file"]


class SourceMissing(FileNotFoundError):
    """The package or file holding a model's original weights is not installed."""


def package_file(package: str, relative: str) -> Path:
    """Path of ``relative`` inside the installed top-level ``package`` (which is not imported)."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    raise SourceMissing(
        f"{relative} not found in package {package!r} (install it: pip install {package})"
    )


def package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError as exc:
        raise SourceMissing(f"package {package!r} is not installed") from exc


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
