"""Fusion: how up to three enrolment images and up to three probe frames become one distance.

The rules compared by the LFW evaluation (``docs/accuracy.md``):

- ``mean_l2_normalised``: scale every embedding to unit length, average them into one template
  (not re-normalised), compare templates. Measured best; the policy uses it.
- ``mean_raw``: average the raw embeddings.
- ``mean_distance``: compare every enrolment image with every probe frame, average the distances.
- ``best_of``: the same comparisons, keep the smallest distance.

The first two are template rules: a person's images fuse into one vector, so a 1:N gallery holds
one row per subject. The last two fuse scores and need every image kept. Which rule the policy
uses is not chosen here but recorded in the calibration file, since thresholds are only valid for
the rule they were measured with.
"""

from __future__ import annotations

import enum

import numpy as np
import numpy.typing as npt

from bioauth.errors import InvalidInput
from bioauth.matching.scores import Metric, cross_distances

__all__ = [
    "FusionRule",
    "as_embedding_group",
    "fuse_embeddings",
    "fused_cross_distances",
    "fused_distance",
]

_FloatArray = npt.NDArray[np.float64]


class FusionRule(enum.StrEnum):
    """A way to fuse several images on each side of a comparison into one distance."""

    MEAN_L2_NORMALISED = "mean_l2_normalised"
    MEAN_RAW = "mean_raw"
    MEAN_DISTANCE = "mean_distance"
    BEST_OF = "best_of"

    @property
    def fuses_embeddings(self) -> bool:
        """True when the rule builds one template vector per side (a gallery can hold it)."""
        return self in (FusionRule.MEAN_L2_NORMALISED, FusionRule.MEAN_RAW)

    @property
    def has_gallery_form(self) -> bool:
        """True when a 1:N gallery can compute this rule's distances exactly (the server can
        run it); mean of pairwise distances needs every pair and has none."""
        return self is FusionRule.BEST_OF or self.fuses_embeddings


def as_embedding_group(embeddings: npt.ArrayLike, field: str) -> _FloatArray:
    """A (k, d) float64 group of k >= 1 finite embeddings, or ``InvalidInput`` naming ``field``."""
    group = np.asarray(embeddings, dtype=np.float64)
    if group.ndim == 1:
        group = group[None, :]
    if group.ndim != 2 or group.shape[0] == 0 or group.shape[1] == 0:
        raise InvalidInput(
            f"expected (k, d) embeddings with k >= 1, got {group.shape}", field=field
        )
    if not np.all(np.isfinite(group)):
        raise InvalidInput("embeddings must be finite", field=field)
    return group


def _unit(rows: _FloatArray) -> _FloatArray:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise InvalidInput("an all-zero embedding cannot be normalised")
    result: _FloatArray = rows / norms
    return result


def fuse_embeddings(embeddings: npt.ArrayLike, rule: FusionRule) -> _FloatArray:
    """One template vector (d,) from k embeddings (k, d) under a template rule.

    A single embedding goes through the same transformation (for ``mean_l2_normalised`` it is
    scaled to unit length), so one-image and fused templates live in the same space.
    """
    group = as_embedding_group(embeddings, "embeddings")
    if rule is FusionRule.MEAN_L2_NORMALISED:
        fused: _FloatArray = _unit(group).mean(axis=0)
        return fused
    if rule is FusionRule.MEAN_RAW:
        raw: _FloatArray = group.mean(axis=0)
        return raw
    raise InvalidInput(f"fusion rule {rule.value} fuses scores, not embeddings", field="rule")


def fused_distance(
    enrolment: npt.ArrayLike, probes: npt.ArrayLike, rule: FusionRule, metric: Metric
) -> float:
    """The one distance between k enrolment embeddings (k, d) and m probe embeddings (m, d)."""
    left = as_embedding_group(enrolment, "enrolment")
    right = as_embedding_group(probes, "probes")
    return float(fused_cross_distances(left[None], right[None], rule, metric)[0, 0])


def fused_cross_distances(
    enrolment: npt.ArrayLike, probes: npt.ArrayLike, rule: FusionRule, metric: Metric
) -> _FloatArray:
    """(n, m) fused distances between n enrolment groups (n, k, d) and m probe groups (m, p, d).

    Groups on one side have the same size, as in one comparison mode of the evaluation.
    """
    left = np.asarray(enrolment, dtype=np.float64)
    right = np.asarray(probes, dtype=np.float64)
    if left.ndim != 3 or right.ndim != 3 or left.shape[2] != right.shape[2]:
        raise InvalidInput(
            f"expected (n, k, d) and (m, p, d) groups, got {left.shape}, {right.shape}"
        )
    if rule.fuses_embeddings:
        templates = np.stack([fuse_embeddings(group, rule) for group in left])
        probe_templates = np.stack([fuse_embeddings(group, rule) for group in right])
        return cross_distances(templates, probe_templates, metric)
    n, k, dim = left.shape
    m, p, _ = right.shape
    single = cross_distances(left.reshape(n * k, dim), right.reshape(m * p, dim), metric)
    blocks = single.reshape(n, k, m, p)
    if rule is FusionRule.MEAN_DISTANCE:
        averaged: _FloatArray = blocks.mean(axis=(1, 3))
        return averaged
    best: _FloatArray = blocks.min(axis=(1, 3))
    return best
