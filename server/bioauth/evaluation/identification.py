"""1:N: open-set identification against a gallery, FNIR at FPIR, and the ambiguity margin.

Protocol (per comparison mode e x p): people are split into two halves by name order
(alternately). For each half in turn, its people with at least e images are enrolled (first e
images fused into one template); mated probes are groups of p of their following images;
non-mated probes are groups of p images of the *other* half's people, who are not enrolled.
Both runs are pooled.

- FPIR: share of non-mated probes whose best gallery match is within the threshold.
- FNIR: share of mated probes not identified as themselves (best match wrong or over the
  threshold).
- Margin: a decision is AMBIGUOUS when the runner-up is within ``margin`` of the best. The
  margin is calibrated as the 1st percentile of the best-to-runner-up gap among mated probes
  correctly identified at the FPIR 1e-2 threshold: at most about 1% of correct identifications
  become AMBIGUOUS, and a look-alike that scores nearly as well as the true match never pays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bioauth.evaluation.rates import supports, threshold_at_fmr
from bioauth.evaluation.scoresets import mode_groups
from bioauth.matching.fusion import FusionRule, fused_cross_distances
from bioauth.matching.operating_points import ComparisonMode
from bioauth.matching.scores import Metric

__all__ = ["IdentificationResult", "MARGIN_QUANTILE", "identification"]

MARGIN_QUANTILE = 0.01
_MIN_MARGIN_SAMPLES = 100
_F = npt.NDArray[np.float64]


@dataclass(frozen=True)
class IdentificationResult:
    """Best and runner-up distances of every probe, and the figures derived from them."""

    mode: ComparisonMode
    gallery_sizes: tuple[int, int]
    mated_best: _F
    mated_gap: _F
    mated_correct: npt.NDArray[np.bool_]
    nonmated_best: _F
    nonmated_gap: _F
    margin: float | None

    def at_fpir(self, target: float) -> dict[str, Any]:
        """FNIR at ``target`` FPIR, without and with the margin, with counts."""
        n_non, n_mated = len(self.nonmated_best), len(self.mated_best)
        out: dict[str, Any] = {
            "target_fpir": target,
            "nonmated_probes": n_non,
            "mated_probes": n_mated,
            "supported": supports(n_non, target) and n_mated > 0,
        }
        if not out["supported"]:
            return out
        threshold = threshold_at_fmr(np.sort(self.nonmated_best), target)
        false_pos = self.nonmated_best <= threshold
        hit = self.mated_correct & (self.mated_best <= threshold)
        wrong = ~self.mated_correct & (self.mated_best <= threshold)
        out.update(
            threshold=threshold,
            false_positives=int(false_pos.sum()),
            fpir=float(false_pos.mean()),
            fnir=float(1 - hit.mean()),
            misidentified=int(wrong.sum()),
        )
        if self.margin is not None:
            clear_non = self.nonmated_gap >= self.margin
            clear_mated = self.mated_gap >= self.margin
            out.update(
                margin=self.margin,
                fpir_with_margin=float((false_pos & clear_non).mean()),
                false_positives_with_margin=int((false_pos & clear_non).sum()),
                fnir_with_margin=float(1 - (hit & clear_mated).mean()),
                misidentified_with_margin=int((wrong & clear_mated).sum()),
                ambiguous_mated=int((hit & ~clear_mated).sum()),
            )
        return out


def _best_two(distances: _F) -> tuple[npt.NDArray[np.intp], _F, _F]:
    """Per row: index of the best column, its distance, and the gap to the runner-up."""
    best = np.argmin(distances, axis=1)
    rows = np.arange(len(distances))
    best_d = distances[rows, best]
    if distances.shape[1] < 2:
        return best, best_d, np.full(len(distances), np.inf)
    second = np.partition(distances, 1, axis=1)[:, 1]
    return best, best_d, second - best_d


def identification(
    embeddings: _F,
    subject: npt.NDArray[np.int32],
    subjects: int,
    mode: ComparisonMode,
    rule: FusionRule,
    metric: Metric,
) -> IdentificationResult:
    """Run the two-half open-set protocol for ``mode`` and calibrate its margin."""
    templates, probes = mode_groups(subject, subjects, mode)
    p = mode.probe_images
    half = np.arange(subjects) % 2
    mated_best: list[_F] = []
    mated_gap: list[_F] = []
    mated_correct: list[npt.NDArray[np.bool_]] = []
    non_best: list[_F] = []
    non_gap: list[_F] = []
    sizes: list[int] = []
    order = np.argsort(subject, kind="stable")
    bounds = np.searchsorted(subject[order], np.arange(subjects + 1))
    for side in (0, 1):
        gallery = [(s, chips) for s, chips in templates if half[s] == side]
        mated = [(s, chips) for s, chips in probes if half[s] == side]
        strangers: list[tuple[int, list[int]]] = []
        for s in np.flatnonzero(half != side):
            images = [int(i) for i in order[bounds[s] : bounds[s + 1]]]
            strangers.extend((int(s), images[i : i + p]) for i in range(0, len(images) - p + 1, p))
        sizes.append(len(gallery))
        if len(gallery) < 2:
            continue
        g_subject = np.asarray([s for s, _ in gallery])
        enrol = embeddings[np.asarray([chips for _, chips in gallery])]
        for group, sink in ((mated, "mated"), (strangers, "non")):
            if not group:
                continue
            probe = embeddings[np.asarray([chips for _, chips in group])]
            distances = fused_cross_distances(probe, enrol, rule, metric)
            best, best_d, gap = _best_two(distances)
            if sink == "mated":
                mated_best.append(best_d)
                mated_gap.append(gap)
                mated_correct.append(g_subject[best] == np.asarray([s for s, _ in group]))
            else:
                non_best.append(best_d)
                non_gap.append(gap)

    def joined(parts: list[_F]) -> _F:
        return np.concatenate(parts) if parts else np.zeros(0)

    m_best, m_gap = joined(mated_best), joined(mated_gap)
    m_correct = np.concatenate(mated_correct) if mated_correct else np.zeros(0, dtype=bool)
    n_best, n_gap = joined(non_best), joined(non_gap)
    margin = _calibrate_margin(m_best, m_gap, m_correct, n_best)
    return IdentificationResult(
        mode, (sizes[0], sizes[1]), m_best, m_gap, m_correct, n_best, n_gap, margin
    )


def _calibrate_margin(
    mated_best: _F, mated_gap: _F, mated_correct: npt.NDArray[np.bool_], nonmated_best: _F
) -> float | None:
    """The 1st percentile of gaps of correct identifications at the FPIR 1e-2 threshold."""
    if not supports(len(nonmated_best), 1e-2):
        return None
    threshold = threshold_at_fmr(np.sort(nonmated_best), 1e-2)
    gaps = mated_gap[mated_correct & (mated_best <= threshold) & np.isfinite(mated_gap)]
    if len(gaps) < _MIN_MARGIN_SAMPLES:
        return None
    return float(np.quantile(gaps, MARGIN_QUANTILE))
