"""Builds ONNX face-embedding models from their original weights (no dlib at build or run time).

The public surface is :func:`ensure_built`, which the server and the ``bioauth model`` command
call to get a verified ONNX file for a manifest, and :func:`fresh_manifest` for writing the
manifest of a newly converted model. Manifests use the server's schema
(``bioauth.inference.manifest``); this package is installed alongside the server.
"""

from __future__ import annotations

from bioauth.modelbuild.build import (
    CACHED_MANIFEST,
    ModelBuildError,
    build_onnx,
    cached_onnx_path,
    ensure_built,
)
from bioauth.modelbuild.dlib_converter import convert, fresh_manifest, installed_weights

__all__ = [
    "CACHED_MANIFEST",
    "ModelBuildError",
    "build_onnx",
    "cached_onnx_path",
    "convert",
    "ensure_built",
    "fresh_manifest",
    "installed_weights",
]
