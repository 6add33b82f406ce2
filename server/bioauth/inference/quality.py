"""Cheap capture-quality measures for enrolment crops and stream frames.

A template is only as good as the crop it came from: enrolling a blurred or dark face makes every
later verification of that person worse. These measures cost well under a millisecond on a chip.
Thresholds come from ``ImageSettings.quality`` (provisional values set on the face test set), never
from constants here. Blocking CPU work: async callers run it with ``asyncio.to_thread``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from bioauth.config import QualitySettings

__all__ = ["QualityIssue", "QualityReport", "assess_quality"]

# ITU-R BT.601 luma weights, the ones Pillow's "L" conversion uses.
_LUMA = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)


class QualityIssue(enum.StrEnum):
    TOO_SMALL = "TOO_SMALL"
    TOO_BLURRED = "TOO_BLURRED"
    TOO_DARK = "TOO_DARK"


@dataclass(frozen=True, slots=True)
class QualityReport:
    """The measures and, when the crop fails a gate, why (empty ``issues`` means usable)."""

    sharpness: float
    """Variance of the 4-neighbour Laplacian of the luma at the reference size."""
    mean_luma: float
    """Average luma, 0 (black) to 255 (white)."""
    issues: tuple[QualityIssue, ...]

    @property
    def ok(self) -> bool:
        return not self.issues


def assess_quality(rgb: npt.NDArray[np.uint8], settings: QualitySettings) -> QualityReport:
    """Measure an (H, W, 3) uint8 RGB crop against the quality gates.

    Sharpness is measured after resizing the crop to ``reference_side_px`` square, so the same
    face scores the same whether it arrives at 150 or 600 pixels. Blocking.
    """
    height, width = rgb.shape[:2]
    issues: list[QualityIssue] = []
    if min(width, height) < settings.min_side_px:
        issues.append(QualityIssue.TOO_SMALL)
    side = settings.reference_side_px
    if (height, width) != (side, side):
        # Area averaging when shrinking keeps edges as sharp as the reference size can show them.
        shrinking = min(width, height) > side
        method = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
        rgb = np.asarray(Image.fromarray(rgb, mode="RGB").resize((side, side), method))
    luma = rgb.astype(np.float32) @ _LUMA
    laplacian = (
        luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4.0 * luma[1:-1, 1:-1]
    )
    sharpness = float(laplacian.var())
    mean_luma = float(luma.mean())
    if sharpness < settings.min_sharpness:
        issues.append(QualityIssue.TOO_BLURRED)
    if mean_luma < settings.min_mean_luma:
        issues.append(QualityIssue.TOO_DARK)
    return QualityReport(sharpness=sharpness, mean_luma=mean_luma, issues=tuple(issues))
