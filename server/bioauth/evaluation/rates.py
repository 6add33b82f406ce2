"""Error rates at target false-match rates, with honest uncertainty.

Threshold rule (shared with the calibration file): at target FMR t over n impostor comparisons,
at most k = floor(t * n) false matches are allowed, and the threshold sits just below the
(k+1)-th smallest impostor distance, so that ``distance <= threshold`` accepts at most k of them.
A target is *supported* only when n >= 3 / t: with fewer comparisons even zero false matches
could not show the rate is below t (rule of three, 95%).

Confidence intervals (95%) come from a bootstrap over subjects: subjects are drawn with
replacement, every comparison is weighted by how often its subjects were drawn (a pair by the
product of its two subjects' counts), and the threshold is re-chosen on each resample, so the
interval on FNMR includes the threshold's own uncertainty. Where no error is seen the interval is
[0, 3/n] by the rule of three instead.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bioauth.evaluation.scoresets import ScoreSet

__all__ = [
    "RateAtTarget",
    "fnmr_at_targets",
    "rule_of_three",
    "supports",
    "threshold_at_fmr",
]

_F = npt.NDArray[np.float64]


def rule_of_three(trials: int) -> float:
    """95% upper bound of a rate when no error was seen in ``trials`` trials."""
    return 3.0 / trials if trials > 0 else 1.0


def supports(impostors: int, target: float) -> bool:
    """Whether ``impostors`` comparisons can show an FMR of ``target`` at all."""
    return impostors > 0 and impostors * target >= 3.0 - 1e-9


def threshold_at_fmr(impostor_sorted: _F, target: float) -> float:
    """The loosest threshold with at most floor(target * n) impostors at or below it."""
    allowed = math.floor(target * len(impostor_sorted) + 1e-9)
    if allowed >= len(impostor_sorted):
        return float(impostor_sorted[-1])
    return float(np.nextafter(impostor_sorted[allowed], -np.inf))


@dataclass(frozen=True)
class RateAtTarget:
    """FNMR at one target FMR of one experiment, with counts and 95% intervals."""

    target_fmr: float
    supported: bool
    impostors: int
    genuine: int
    threshold: float | None = None
    false_matches: int | None = None
    fmr: float | None = None
    fmr_ci: tuple[float, float] | None = None
    false_non_matches: int | None = None
    fnmr: float | None = None
    fnmr_ci: tuple[float, float] | None = None
    ci_method: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _percentiles(values: _F) -> tuple[float, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def fnmr_at_targets(
    scores: ScoreSet,
    targets: tuple[float, ...],
    *,
    bootstrap: int = 1000,
    seed: int = 20261123,
) -> list[RateAtTarget]:
    """FNMR and FMR at each target, with 95% intervals (``bootstrap=0``: rule of three only)."""
    impostor = np.sort(scores.impostor)
    genuine = scores.genuine
    n_imp, n_gen = len(impostor), len(genuine)
    chosen = {
        target: threshold_at_fmr(impostor, target)
        for target in targets
        if supports(n_imp, target) and n_gen > 0
    }
    boot = _bootstrap(scores, chosen, bootstrap, seed) if chosen and bootstrap > 0 else {}
    results: list[RateAtTarget] = []
    for target in targets:
        if target not in chosen:
            results.append(RateAtTarget(target, False, n_imp, n_gen))
            continue
        threshold = chosen[target]
        false_matches = int(np.searchsorted(impostor, threshold, side="right"))
        false_non = int(np.count_nonzero(genuine > threshold))
        fmr_ci, fnmr_ci, method = _intervals(
            false_matches, n_imp, false_non, n_gen, boot.get(target)
        )
        results.append(
            RateAtTarget(
                target,
                True,
                n_imp,
                n_gen,
                threshold,
                false_matches,
                false_matches / n_imp,
                fmr_ci,
                false_non,
                false_non / n_gen,
                fnmr_ci,
                method,
            )
        )
    return results


def _intervals(
    false_matches: int,
    impostors: int,
    false_non: int,
    genuine: int,
    boot: tuple[_F, _F] | None,
) -> tuple[tuple[float, float] | None, tuple[float, float] | None, str]:
    """Rule of three where no error was seen, else the bootstrap percentiles (if it ran)."""
    methods: list[str] = []
    fmr_ci: tuple[float, float] | None = None
    fnmr_ci: tuple[float, float] | None = None
    if false_matches == 0:
        fmr_ci = (0.0, rule_of_three(impostors))
        methods.append("fmr: rule of three")
    elif boot is not None:
        fmr_ci = _percentiles(boot[0])
        methods.append("fmr: subject bootstrap")
    if false_non == 0:
        fnmr_ci = (0.0, rule_of_three(genuine))
        methods.append("fnmr: rule of three")
    elif boot is not None:
        fnmr_ci = _percentiles(boot[1])
        methods.append("fnmr: subject bootstrap (threshold re-chosen)")
    return fmr_ci, fnmr_ci, "; ".join(methods) or "none (no bootstrap)"


def _bootstrap(
    scores: ScoreSet, chosen: dict[float, float], rounds: int, seed: int
) -> dict[float, tuple[_F, _F]]:
    """Per target: (FMR at the fixed threshold, FNMR at the re-chosen threshold) per resample."""
    rng = np.random.default_rng(seed)
    loosest = max(chosen)
    n_imp = len(scores.impostor)
    # Only the lower tail decides thresholds at small FMR; keep ten times the loosest target's
    # share so that every resample's threshold lies inside it (sorting millions would dominate).
    tail_size = min(n_imp, max(1000, math.ceil(10 * loosest * n_imp)))
    cut = np.partition(scores.impostor, tail_size - 1)[tail_size - 1]
    candidates = np.flatnonzero(scores.impostor <= cut)
    tail = candidates[np.argsort(scores.impostor[candidates], kind="stable")]
    tail_size = len(tail)
    tail_d = scores.impostor[tail]
    tail_l = scores.impostor_left[tail]
    tail_r = scores.impostor_right[tail]
    participants = np.flatnonzero((scores.left_count + scores.right_count) > 0)
    fmr_draws = {t: np.empty(rounds) for t in chosen}
    fnmr_draws = {t: np.empty(rounds) for t in chosen}
    genuine = scores.genuine
    genuine_s = scores.genuine_subject
    for b in range(rounds):
        drawn = rng.integers(0, len(participants), size=len(participants))
        weights = np.bincount(participants[drawn], minlength=scores.subjects).astype(np.float64)
        total = scores.impostor_total(weights)
        pair_w = weights[tail_l] * weights[tail_r]
        cumulative = np.cumsum(pair_w)
        gen_w = weights[genuine_s]
        gen_total = gen_w.sum()
        for target, fixed in chosen.items():
            allowed = math.floor(target * total + 1e-9)
            index = int(np.searchsorted(cumulative, allowed, side="right"))
            threshold = float(tail_d[min(index, tail_size - 1)])
            rejected = float(gen_w[genuine >= threshold].sum())
            fnmr_draws[target][b] = rejected / gen_total if gen_total > 0 else 0.0
            at_fixed = int(np.searchsorted(tail_d, fixed, side="right"))
            matched = float(cumulative[at_fixed - 1]) if at_fixed > 0 else 0.0
            fmr_draws[target][b] = matched / total if total > 0 else 0.0
    return {t: (fmr_draws[t], fnmr_draws[t]) for t in chosen}
