"""How the evaluation report picks the fusion rule it writes into a calibration."""

from __future__ import annotations

from bioauth.evaluation.rates import RateAtTarget
from bioauth.evaluation.report import _choose_rule
from bioauth.matching.fusion import FusionRule


def test_the_evaluation_only_chooses_a_rule_the_server_can_run() -> None:
    """mean_distance has no gallery form: even when it scores best, the calibration names the
    best runnable rule, so `bioauth eval lfw` never writes a calibration the server refuses."""

    def rates(fnmr: float) -> dict[str, list[RateAtTarget]]:
        at = RateAtTarget(target_fmr=1e-3, supported=True, impostors=1000, genuine=100, fnmr=fnmr)
        return {"e3p1": [at]}

    table = {
        FusionRule.MEAN_DISTANCE.value: rates(0.01),
        FusionRule.MEAN_L2_NORMALISED.value: rates(0.02),
        FusionRule.BEST_OF.value: rates(0.03),
    }
    chosen, scores = _choose_rule(table)
    assert chosen is FusionRule.MEAN_L2_NORMALISED
    assert scores[FusionRule.MEAN_DISTANCE.value] == 0.01  # still reported
    assert [r for r in FusionRule if not r.has_gallery_form] == [FusionRule.MEAN_DISTANCE]
