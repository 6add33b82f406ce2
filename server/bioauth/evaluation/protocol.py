"""The standard LFW verification protocol on the official pairs of the folds present.

For each fold: choose the distance threshold that maximises accuracy on the pairs of the other
folds, report accuracy on the held fold; then the mean and standard deviation over folds. This
is the figure papers quote (dlib: 99.38% +- 0.27% on all ten folds); it says little about
payment-grade error rates, which ``rates`` measures, but it is the check that a converted model
reproduces its original.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bioauth.evaluation.dataset import LfwPair
from bioauth.matching.scores import Metric, paired_distances

__all__ = ["ProtocolResult", "best_threshold", "lfw_protocol"]

_F = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ProtocolResult:
    """Accuracy per held-out fold, and their mean and sample standard deviation."""

    folds: tuple[int, ...]
    accuracy: tuple[float, ...]
    thresholds: tuple[float, ...]
    pairs: int
    mean: float
    std: float


def best_threshold(distances: _F, genuine: npt.NDArray[np.bool_]) -> float:
    """The threshold (accept ``d <= t``) with the highest accuracy on these pairs.

    Candidates are midpoints between consecutive sorted distances, plus both ends; ties go to
    the smallest threshold (the stricter one).
    """
    order = np.argsort(distances, kind="stable")
    d = distances[order]
    g = genuine[order]
    # Accepting the first i pairs: correct = genuine among them + impostors among the rest.
    accepted_genuine = np.concatenate(([0], np.cumsum(g)))
    rejected_impostor = np.count_nonzero(~g) - np.concatenate(([0], np.cumsum(~g)))
    correct = accepted_genuine + rejected_impostor
    best = int(np.argmax(correct))
    if best == 0:
        return float(d[0] - 1e-6)
    if best == len(d):
        return float(d[-1] + 1e-6)
    return float((d[best - 1] + d[best]) / 2)


def lfw_protocol(vectors: _F, pairs: tuple[LfwPair, ...], metric: Metric) -> ProtocolResult:
    """Run the protocol with ``vectors`` (one row per chip, already in the policy's form)."""
    folds = np.asarray([p.fold for p in pairs])
    genuine = np.asarray([p.genuine for p in pairs], dtype=bool)
    left = vectors[np.asarray([p.left for p in pairs], dtype=np.intp)]
    right = vectors[np.asarray([p.right for p in pairs], dtype=np.intp)]
    distances = paired_distances(left, right, metric)
    present = tuple(sorted({int(f) for f in folds}))
    used: list[int] = []
    accuracy: list[float] = []
    thresholds: list[float] = []
    for fold in present:
        train = folds != fold
        if not train.any():
            continue  # a single fold has nothing to choose its threshold on
        threshold = best_threshold(distances[train], genuine[train])
        held = ~train
        correct = np.count_nonzero((distances[held] <= threshold) == genuine[held])
        accuracy.append(correct / int(np.count_nonzero(held)))
        thresholds.append(threshold)
        used.append(fold)
    values = np.asarray(accuracy)
    return ProtocolResult(
        folds=tuple(used),
        accuracy=tuple(accuracy),
        thresholds=tuple(thresholds),
        pairs=len(pairs),
        mean=float(values.mean()) if len(values) else float("nan"),
        std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
    )
