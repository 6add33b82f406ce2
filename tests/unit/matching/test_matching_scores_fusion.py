"""Distances and fusion rules against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from bioauth.errors import InvalidInput
from bioauth.matching.fusion import (
    FusionRule,
    fuse_embeddings,
    fused_cross_distances,
    fused_distance,
)
from bioauth.matching.scores import check_metric, cross_distances, paired_distances


def test_euclidean_and_cosine_distances() -> None:
    a = np.array([[3.0, 4.0], [1.0, 0.0]])
    b = np.array([[0.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(
        cross_distances(a, b, "euclidean"), [[5.0, np.hypot(3, 2)], [1.0, np.sqrt(5)]]
    )
    np.testing.assert_allclose(paired_distances(a, a[::-1], "euclidean"), [np.hypot(2, 4)] * 2)
    cos = cross_distances(
        np.array([[1.0, 0.0]]), np.array([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), "cosine"
    )
    np.testing.assert_allclose(cos, [[0.0, 1.0, 2.0]], atol=1e-12)


def test_identical_vectors_are_at_distance_zero() -> None:
    v = np.random.default_rng(0).normal(size=(5, 128))
    assert np.all(np.diag(cross_distances(v, v, "euclidean")) < 1e-6)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidInput):
        check_metric("manhattan")
    with pytest.raises(InvalidInput):
        cross_distances(np.zeros((1, 3)), np.zeros((1, 4)), "euclidean")
    with pytest.raises(InvalidInput):
        cross_distances(np.array([[np.nan, 1.0]]), np.ones((1, 2)), "euclidean")
    with pytest.raises(InvalidInput):
        cross_distances(np.zeros((1, 2)), np.ones((1, 2)), "cosine")


def test_template_rules() -> None:
    group = np.array([[2.0, 0.0], [0.0, 4.0]])
    np.testing.assert_allclose(fuse_embeddings(group, FusionRule.MEAN_RAW), [1.0, 2.0])
    np.testing.assert_allclose(fuse_embeddings(group, FusionRule.MEAN_L2_NORMALISED), [0.5, 0.5])
    np.testing.assert_allclose(
        fuse_embeddings(group[:1], FusionRule.MEAN_L2_NORMALISED), [1.0, 0.0]
    )
    with pytest.raises(InvalidInput):
        fuse_embeddings(group, FusionRule.BEST_OF)


def test_score_rules() -> None:
    enrol = np.array([[0.0, 0.0], [10.0, 0.0]])
    probes = np.array([[1.0, 0.0], [0.0, 3.0]])
    # distances: (0,0)-(1,0)=1, (0,0)-(0,3)=3, (10,0)-(1,0)=9, (10,0)-(0,3)=sqrt(109)
    assert fused_distance(enrol, probes, FusionRule.BEST_OF, "euclidean") == pytest.approx(1.0)
    expected_mean = (1 + 3 + 9 + np.sqrt(109)) / 4
    assert fused_distance(enrol, probes, FusionRule.MEAN_DISTANCE, "euclidean") == pytest.approx(
        expected_mean
    )


@pytest.mark.parametrize("rule", list(FusionRule))
def test_cross_distances_match_one_by_one(rule: FusionRule) -> None:
    rng = np.random.default_rng(3)
    enrol = rng.normal(size=(4, 3, 8))
    probes = rng.normal(size=(5, 2, 8))
    matrix = fused_cross_distances(enrol, probes, rule, "euclidean")
    for i in range(4):
        for j in range(5):
            assert matrix[i, j] == pytest.approx(
                fused_distance(enrol[i], probes[j], rule, "euclidean")
            )
