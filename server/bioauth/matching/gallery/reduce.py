"""How a subject's enrolment templates become the rows the 1:N gallery searches.

The gallery scores a subject by the smallest distance between the probe and any of the subject's
stored rows. What it stores is this strategy's choice, and must be the fusion rule the policy's
thresholds were calibrated with (``bioauth.matching.fusion``):

- ``PerSampleMin``: one row per enrolment image; a subject's score is its nearest image
  (fusion rule ``best_of`` for a single probe vector).
- ``FusedTemplate``: one row per subject, the images fused by a template rule (for example
  ``mean_l2_normalised``, what the evaluation measured best); a third of the memory for
  three-image enrolments and a third of the scan.

``mean_distance`` fuses scores over every image pair and has no exact "nearest row" form, so it
has no reducer; ``reducer_for_rule`` refuses it.
"""

from __future__ import annotations

from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

from bioauth.matching.fusion import FusionRule, fuse_embeddings

__all__ = [
    "MAX_ENROLMENT_IMAGES",
    "FusedTemplate",
    "PerSampleMin",
    "TemplateReducer",
    "reducer_for_rule",
]

MAX_ENROLMENT_IMAGES: Final = 3


class TemplateReducer(Protocol):
    """Turns one subject's ``(n, d)`` enrolment templates into at most ``max_rows`` rows."""

    @property
    def name(self) -> str: ...

    @property
    def max_rows(self) -> int: ...

    def rows(self, templates: NDArray[np.float32]) -> NDArray[np.float32]:
        """``(m, d)`` float32 rows, ``1 <= m <= max_rows``, for ``1 <= n <= 3`` templates."""
        ...


class PerSampleMin:
    """Every enrolment image is a row; the subject's distance is its nearest image."""

    name = "per_sample_min"
    max_rows = MAX_ENROLMENT_IMAGES

    def rows(self, templates: NDArray[np.float32]) -> NDArray[np.float32]:
        return np.array(templates, dtype=np.float32, copy=True)


class FusedTemplate:
    """One row per subject: the images fused under a template rule of the policy."""

    max_rows = 1

    def __init__(self, rule: FusionRule = FusionRule.MEAN_L2_NORMALISED) -> None:
        if not rule.fuses_embeddings:
            raise ValueError(f"fusion rule {rule.value} fuses scores, not templates")
        self.rule = rule

    @property
    def name(self) -> str:
        return f"fused_{self.rule.value}"

    def rows(self, templates: NDArray[np.float32]) -> NDArray[np.float32]:
        # Fused in float64 by the policy's own function, then stored as float32 like any row.
        return fuse_embeddings(templates, self.rule).astype(np.float32)[None, :]


def reducer_for_rule(rule: FusionRule) -> TemplateReducer:
    """The reducer whose gallery distances are the distances ``rule`` calibrates."""
    if not rule.has_gallery_form:
        raise ValueError(f"fusion rule {rule.value} has no exact 1:N gallery form")
    return PerSampleMin() if rule is FusionRule.BEST_OF else FusedTemplate(rule)
