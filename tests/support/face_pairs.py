"""The face set's 18 genuine and 153 impostor pairs, split at two thresholds.

Model-level tests check that a model separates every pair of the shared face set, at two points:

- ``DLIB_USUAL_THRESHOLD``, dlib's published Euclidean threshold on raw descriptors. It is test
  data, a reference the converted and quantized models must agree with dlib on, never a decision
  of the product (the manifest holds no threshold).
- the model's calibrated ``fmr_1e-3`` point in mode ``e1p1`` (``calibration.json`` beside the
  manifest), compared as the policy compares: fused embeddings, the calibration's metric. The
  end-to-end tests rely on this: every genuine pair of the face set below it, impostors above.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from bioauth.inference.manifest import calibration_path, load_manifest
from bioauth.matching.fusion import fused_distance
from bioauth.matching.operating_points import ComparisonMode, load_calibration

__all__ = [
    "CALIBRATED_POINT",
    "DLIB_USUAL_THRESHOLD",
    "FACE_SET_PAIRS",
    "Distance",
    "calibrated_split",
    "raw_euclidean",
    "split_pairs",
]

DLIB_USUAL_THRESHOLD: Final = 0.6
"""dlib's published threshold for its face descriptors (raw Euclidean distance); test data only."""
CALIBRATED_POINT: Final = "fmr_1e-3"
FACE_SET_PAIRS: Final = (18, 153)
"""Genuine and impostor pairs among the face set's 19 chips."""

Distance = Callable[[npt.NDArray[np.float32], npt.NDArray[np.float32]], float]


def raw_euclidean(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    """L2 distance of the descriptors as the model emits them (dlib's own comparison)."""
    return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))


def split_pairs(
    identities: Sequence[str], embeddings: npt.NDArray[np.float32], distance: Distance
) -> tuple[list[float], list[float]]:
    """Distances of every genuine and every impostor pair, in that order."""
    genuine: list[float] = []
    impostor: list[float] = []
    for i, j in itertools.combinations(range(len(identities)), 2):
        value = distance(embeddings[i], embeddings[j])
        (genuine if identities[i] == identities[j] else impostor).append(value)
    return genuine, impostor


def calibrated_split(manifest_path: Path) -> tuple[float, Distance]:
    """The model's calibrated e1p1 ``fmr_1e-3`` threshold and the distance it applies to."""
    manifest = load_manifest(manifest_path)
    calibration = load_calibration(
        calibration_path(manifest_path),
        model_id=manifest.model_id,
        model_sha256=manifest.onnx.sha256,
    )
    point = calibration.point(ComparisonMode(1, 1), CALIBRATED_POINT)
    assert point is not None, f"{manifest_path}: no e1p1 {CALIBRATED_POINT} point"
    rule, metric = calibration.fusion_rule, calibration.metric

    def fused(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
        return fused_distance(a[None, :], b[None, :], rule, metric)

    return point.threshold, fused
