"""DET curves (FNMR against FMR on normal-deviate axes) as a PNG, with matplotlib's Agg backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

__all__ = ["DetCurve", "det_curve", "plot_det"]

_F = npt.NDArray[np.float64]
_TICKS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 0.5)
_NORMAL = NormalDist()


@dataclass(frozen=True)
class DetCurve:
    label: str
    fmr: _F
    fnmr: _F
    style: str = "-"


def det_curve(
    label: str, genuine: _F, impostor: _F, *, style: str = "-", points: int = 400
) -> DetCurve:
    """FMR/FNMR pairs at thresholds spread evenly in log FMR down to one false match."""
    imp = np.sort(impostor)
    gen = np.sort(genuine)
    smallest = max(1.0 / len(imp), 1e-7)
    targets = np.logspace(np.log10(smallest), np.log10(0.5), points)
    thresholds = imp[np.minimum((targets * len(imp)).astype(np.int64), len(imp) - 1)]
    fmr = np.searchsorted(imp, thresholds, side="right") / len(imp)
    fnmr = 1.0 - np.searchsorted(gen, thresholds, side="right") / len(gen)
    return DetCurve(label, fmr, fnmr, style)


def _probit(values: _F) -> _F:
    clipped = np.clip(values, 1e-7, 1 - 1e-7)
    return np.asarray([_NORMAL.inv_cdf(float(v)) for v in clipped])


def plot_det(curves: Sequence[DetCurve], path: Path, title: str) -> Path:
    """Write the curves to ``path`` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6), dpi=110)
    for curve in curves:
        keep = (curve.fmr > 0) & (curve.fnmr > 0)
        ax.plot(
            _probit(curve.fmr[keep]),
            _probit(curve.fnmr[keep]),
            curve.style,
            label=curve.label,
            lw=1.6,
        )
    ticks = _probit(np.asarray(_TICKS))
    labels = ["1e-6", "1e-5", "1e-4", "1e-3", "1%", "10%", "50%"]
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels)
    ax.set_xlim(float(ticks[0]), float(ticks[-1]))
    ax.set_ylim(float(_probit(np.asarray([1e-3]))[0]), float(ticks[-1]))
    ax.set_xlabel("false match rate (FMR)")
    ax.set_ylabel("false non-match rate (FNMR)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
