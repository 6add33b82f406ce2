"""Genuine and impostor comparisons of one comparison mode, with the subjects behind each.

Two ways of forming comparisons:

- ``all_pairs``: every pair of chips once (single image against single image). Millions of
  impostor pairs, which is what FMR down to 1e-6 needs.
- ``mode_pairs``: the product's fusion protocol for a mode (e enrolment images, p probe frames):
  a person's images in file order, the first e fuse into the template, the following ones are
  cut into consecutive groups of p that fuse into probes. Every template is compared with every
  probe group; same person is genuine, different people impostor.

Each comparison keeps its subjects, so that confidence intervals can resample subjects (errors
of one person's images are not independent) and so that folds can be held out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from bioauth.matching.fusion import FusionRule, fused_cross_distances
from bioauth.matching.operating_points import ComparisonMode
from bioauth.matching.scores import Metric, cross_distances

__all__ = ["ScoreSet", "all_pairs", "mode_groups", "mode_pairs"]

_F = npt.NDArray[np.float64]
_I = npt.NDArray[np.int32]
_BLOCK = 512


@dataclass(frozen=True)
class ScoreSet:
    """Distances of one experiment, each with its subject(s)."""

    genuine: _F
    genuine_subject: _I
    impostor: _F
    impostor_left: _I
    impostor_right: _I
    left_count: npt.NDArray[np.int64]
    """Per subject: items on the left side (templates, or chips for all pairs)."""
    right_count: npt.NDArray[np.int64]
    """Per subject: items on the right side (probe groups, or chips for all pairs)."""
    symmetric: bool
    """True for all pairs within one set (each unordered pair once)."""

    @property
    def subjects(self) -> int:
        return len(self.left_count)

    def impostor_total(self, weights: _F) -> float:
        """Impostor comparisons when subject s appears ``weights[s]`` times (bootstrap)."""
        left = weights * self.left_count
        right = weights * self.right_count
        same = float(np.sum(weights * weights * self.left_count * self.right_count))
        cross = float(left.sum() * right.sum()) - same
        return cross / 2 if self.symmetric else cross

    def restrict(self, keep: npt.NDArray[np.bool_]) -> ScoreSet:
        """Only the comparisons whose subjects are all in ``keep`` (per-subject mask)."""
        g = keep[self.genuine_subject]
        i = keep[self.impostor_left] & keep[self.impostor_right]
        return replace(
            self,
            genuine=self.genuine[g],
            genuine_subject=self.genuine_subject[g],
            impostor=self.impostor[i],
            impostor_left=self.impostor_left[i],
            impostor_right=self.impostor_right[i],
            left_count=np.where(keep, self.left_count, 0),
            right_count=np.where(keep, self.right_count, 0),
        )


def all_pairs(
    embeddings: _F, subject: _I, subjects: int, rule: FusionRule, metric: Metric
) -> ScoreSet:
    """Every pair of chips once, each chip a one-image template under ``rule``."""
    vectors = (
        fused_cross_distances_vectors(embeddings, rule) if rule.fuses_embeddings else embeddings
    )
    n = len(vectors)
    gen: list[_F] = []
    gen_s: list[_I] = []
    imp: list[_F] = []
    imp_l: list[_I] = []
    imp_r: list[_I] = []
    for start in range(0, n, _BLOCK):
        stop = min(n, start + _BLOCK)
        block = cross_distances(vectors[start:stop], vectors[start + 1 :], metric)
        rows, cols = np.nonzero(np.arange(start + 1, n)[None, :] > np.arange(start, stop)[:, None])
        left = rows + start
        right = cols + start + 1
        values = block[rows, cols]
        same = subject[left] == subject[right]
        gen.append(values[same])
        gen_s.append(subject[left[same]])
        imp.append(values[~same])
        imp_l.append(subject[left[~same]])
        imp_r.append(subject[right[~same]])
    counts = np.bincount(subject, minlength=subjects).astype(np.int64)
    return ScoreSet(
        np.concatenate(gen),
        np.concatenate(gen_s).astype(np.int32),
        np.concatenate(imp),
        np.concatenate(imp_l).astype(np.int32),
        np.concatenate(imp_r).astype(np.int32),
        counts,
        counts,
        symmetric=True,
    )


def fused_cross_distances_vectors(embeddings: _F, rule: FusionRule) -> _F:
    """Each chip as a one-image template of ``rule`` (for unit-normalising rules, unit length)."""
    if rule is FusionRule.MEAN_L2_NORMALISED:
        normalised: _F = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
        return normalised
    return embeddings


def mode_groups(
    subject: _I, subjects: int, mode: ComparisonMode
) -> tuple[list[tuple[int, list[int]]], list[tuple[int, list[int]]]]:
    """(templates, probe groups) as (subject, chip indices) in file order, per the protocol."""
    templates: list[tuple[int, list[int]]] = []
    probes: list[tuple[int, list[int]]] = []
    e, p = mode.enrolment_images, mode.probe_images
    order = np.argsort(subject, kind="stable")
    bounds = np.searchsorted(subject[order], np.arange(subjects + 1))
    for s in range(subjects):
        images = [int(i) for i in order[bounds[s] : bounds[s + 1]]]
        if len(images) < e:
            continue
        templates.append((s, images[:e]))
        rest = images[e:]
        for start in range(0, len(rest) - p + 1, p):
            probes.append((s, rest[start : start + p]))
    return templates, probes


def mode_pairs(
    embeddings: _F,
    subject: _I,
    subjects: int,
    mode: ComparisonMode,
    rule: FusionRule,
    metric: Metric,
) -> ScoreSet:
    """Templates of the first e images against probe groups of p following images."""
    templates, probes = mode_groups(subject, subjects, mode)
    left_count = np.zeros(subjects, dtype=np.int64)
    right_count = np.zeros(subjects, dtype=np.int64)
    empty = np.zeros(0)
    if not templates or not probes:
        none = np.zeros(0, dtype=np.int32)
        return ScoreSet(empty, none, empty, none, none, left_count, right_count, symmetric=False)
    t_subject = np.asarray([s for s, _ in templates], dtype=np.int32)
    p_subject = np.asarray([s for s, _ in probes], dtype=np.int32)
    np.add.at(left_count, t_subject, 1)
    np.add.at(right_count, p_subject, 1)
    enrol = embeddings[np.asarray([chips for _, chips in templates])]
    probe = embeddings[np.asarray([chips for _, chips in probes])]
    matrix = fused_cross_distances(enrol, probe, rule, metric)
    same = t_subject[:, None] == p_subject[None, :]
    rows, cols = np.nonzero(same)
    irows, icols = np.nonzero(~same)
    return ScoreSet(
        matrix[rows, cols],
        t_subject[rows],
        matrix[irows, icols],
        t_subject[irows],
        p_subject[icols],
        left_count,
        right_count,
        symmetric=False,
    )
