"""Distances between embeddings, in the metric the model's manifest names.

Every score in bioauth is a distance: smaller means more alike, and a comparison matches when its
distance is at or below an operating point's threshold. ``euclidean`` is the L2 distance of the
vectors as given; ``cosine`` is ``1 - cos(a, b)``. Fusion (``bioauth.matching.fusion``) decides
which vectors reach this module; here they are only compared.

Arithmetic is float64: thresholds are calibrated to many significant digits from millions of
impostor comparisons, and float32 rounding would move comparisons across them.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from bioauth.errors import InvalidInput

__all__ = ["METRICS", "Metric", "check_metric", "cross_distances", "paired_distances"]

Metric = Literal["euclidean", "cosine"]
METRICS: tuple[Metric, ...] = get_args(Metric)

_FloatArray = npt.NDArray[np.float64]


def check_metric(name: str) -> Metric:
    """``name`` as a ``Metric``, or ``InvalidInput`` naming the metrics this module knows."""
    for metric in METRICS:
        if name == metric:
            return metric
    raise InvalidInput(f"unknown metric {name!r}; known: {', '.join(METRICS)}", field="metric")


def _as_matrix(vectors: npt.ArrayLike, side: str) -> _FloatArray:
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise InvalidInput(f"expected (n, d) vectors, got shape {matrix.shape}", field=side)
    if not np.all(np.isfinite(matrix)):
        raise InvalidInput("vectors must be finite", field=side)
    return matrix


def cross_distances(a: npt.ArrayLike, b: npt.ArrayLike, metric: Metric) -> _FloatArray:
    """(n, m) distances between every row of ``a`` (n, d) and every row of ``b`` (m, d)."""
    left = _as_matrix(a, "a")
    right = _as_matrix(b, "b")
    if left.shape[1] != right.shape[1]:
        raise InvalidInput(f"dimension mismatch: {left.shape[1]} vs {right.shape[1]}")
    if metric == "euclidean":
        # |a|^2 + |b|^2 - 2ab is fast but loses digits for near-identical vectors; clamp at 0.
        squared = (
            np.einsum("ij,ij->i", left, left)[:, None]
            + np.einsum("ij,ij->i", right, right)[None, :]
            - 2.0 * (left @ right.T)
        )
        result: _FloatArray = np.sqrt(np.maximum(squared, 0.0))
        return result
    left_norm = np.linalg.norm(left, axis=1)
    right_norm = np.linalg.norm(right, axis=1)
    if np.any(left_norm == 0) or np.any(right_norm == 0):
        raise InvalidInput("cosine distance of a zero vector is undefined")
    cosine = (left @ right.T) / (left_norm[:, None] * right_norm[None, :])
    distances: _FloatArray = 1.0 - np.clip(cosine, -1.0, 1.0)
    return distances


def paired_distances(a: npt.ArrayLike, b: npt.ArrayLike, metric: Metric) -> _FloatArray:
    """(n,) distances between row i of ``a`` and row i of ``b``."""
    left = _as_matrix(a, "a")
    right = _as_matrix(b, "b")
    if left.shape != right.shape:
        raise InvalidInput(f"shape mismatch: {left.shape} vs {right.shape}")
    if metric == "euclidean":
        result: _FloatArray = np.linalg.norm(left - right, axis=1)
        return result
    left_norm = np.linalg.norm(left, axis=1)
    right_norm = np.linalg.norm(right, axis=1)
    if np.any(left_norm == 0) or np.any(right_norm == 0):
        raise InvalidInput("cosine distance of a zero vector is undefined")
    cosine = np.einsum("ij,ij->i", left, right) / (left_norm * right_norm)
    distances: _FloatArray = 1.0 - np.clip(cosine, -1.0, 1.0)
    return distances
