"""The whole LFW evaluation: from embeddings to the JSON report, the DET plot and the calibration.

One function, ``evaluate``, so that the CLI, the smoke test and ``make bench-accuracy`` run the
same code. Every number in the report comes with the counts behind it.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bioauth.evaluation.calibrate import (
    HELD_OUT_TOLERANCE,
    build_calibration,
    calibrate_mode,
    held_out,
)
from bioauth.evaluation.dataset import LfwSet
from bioauth.evaluation.det import DetCurve, det_curve, plot_det
from bioauth.evaluation.embeddings import EmbeddingRun
from bioauth.evaluation.identification import IdentificationResult, identification
from bioauth.evaluation.protocol import lfw_protocol
from bioauth.evaluation.rates import RateAtTarget, fnmr_at_targets
from bioauth.evaluation.scoresets import (
    ScoreSet,
    all_pairs,
    fused_cross_distances_vectors,
    mode_pairs,
)
from bioauth.inference.manifest import CALIBRATION_FILE
from bioauth.matching.fusion import FusionRule
from bioauth.matching.operating_points import Calibration, ComparisonMode, ModeCalibration
from bioauth.matching.policy import max_gallery_size
from bioauth.matching.scores import Metric, check_metric

__all__ = ["EvaluationOutput", "evaluate", "write_report"]

TARGETS = (1e-3, 1e-4, 1e-5, 1e-6)
FPIR_TARGETS = (1e-2, 1e-3)
TENANT_FPIR_TARGETS = (1e-2, 1e-3)
PUBLISHED_DLIB = {
    "mean": 0.9938,
    "std": 0.0027,
    "note": "dlib's figure, all 10 folds, original images",
}
PROTOCOL_TOLERANCE = 0.001
"""The model's LFW protocol accuracy must be within 0.1 percentage point of the reference's."""
HELD_OUT_CHECKS: dict[str, tuple[float, ...]] = {
    "e1p1": (1e-3, 1e-4, 1e-5),
    "e3p1": (1e-3, 1e-4, 1e-5),
    "e3p3": (1e-3,),
}
FNMR_CHECKS: tuple[tuple[str, float, float], ...] = (("e3p1", 1e-4, 0.10), ("e3p3", 1e-3, 0.03))
_E1P1 = ComparisonMode(1, 1)


@dataclass
class EvaluationOutput:
    """What ``evaluate`` produced: the report (also written as JSON) and the calibration."""

    report: dict[str, Any]
    calibration: Calibration | None
    files: dict[str, Path] = field(default_factory=dict)


class _Clock:
    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self._start = time.perf_counter()

    def stage(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = round(now - self._start, 2)
        self._start = now


def _machine() -> dict[str, Any]:
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def _rates_json(rates: list[RateAtTarget]) -> list[dict[str, Any]]:
    return [r.to_json() for r in rates]


def _choose_rule(
    table: dict[str, dict[str, list[RateAtTarget]]],
) -> tuple[FusionRule, dict[str, float]]:
    """The rule with the lowest mean FNMR over the fused modes at FMR 1e-3 and 1e-4, among the
    rules the server can run (a calibration naming another would not start); every rule is scored.

    Only targets every rule supports in a mode count (they share the same comparisons, so
    support is the same for all of them).
    """
    scores: dict[str, float] = {}
    for rule, per_mode in table.items():
        values = [
            r.fnmr
            for mode, rates in per_mode.items()
            if mode != _E1P1.key
            for r in rates
            if r.target_fmr in (1e-3, 1e-4) and r.supported and r.fnmr is not None
        ]
        scores[rule] = float(np.mean(values)) if values else float("inf")
    runnable = [r for r in scores if FusionRule(r).has_gallery_form]
    best = min(runnable, key=lambda r: (scores[r], r))
    return FusionRule(best), scores


def _policy_set(
    embeddings: np.ndarray[Any, np.dtype[np.float64]],
    lfw: LfwSet,
    mode: ComparisonMode,
    rule: FusionRule,
    metric: Metric,
) -> ScoreSet:
    """Single images use every pair (most impostors); fused modes use the fusion protocol."""
    if mode == _E1P1:
        return all_pairs(embeddings, lfw.subject, len(lfw.names), rule, metric)
    return mode_pairs(embeddings, lfw.subject, len(lfw.names), mode, rule, metric)


def _identification_json(result: IdentificationResult) -> dict[str, Any]:
    return {
        "gallery_sizes": list(result.gallery_sizes),
        "margin": result.margin,
        "at_fpir": [result.at_fpir(t) for t in FPIR_TARGETS],
    }


def evaluate(
    lfw: LfwSet,
    run: EmbeddingRun,
    reference: EmbeddingRun,
    out_dir: Path,
    *,
    bootstrap: int = 1000,
    log: Callable[[str], None] = print,
) -> EvaluationOutput:
    """Run every part of the evaluation on ``run``'s embeddings and write the results to ``out_dir``."""
    clock = _Clock()
    metric = check_metric(run.metric)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "dataset": lfw.description,
        "chips": len(lfw.chips),
        "people": len(lfw.names),
        "folds": list(lfw.folds),
        "embeddings": {
            "source": run.source,
            "model_id": run.model_id,
            "model_sha256": run.model_sha256,
            "metric": metric,
            "computed_now": run.computed,
            "model_seconds": round(run.seconds, 2),
            "chips_per_second": round(run.computed / run.seconds, 1) if run.seconds > 0 else None,
            "provider": run.provider,
        },
        "machine": _machine(),
    }
    if run.source == "model":
        diff = np.abs(run.embeddings - lfw.reference)
        report["embeddings"]["max_abs_difference_to_reference"] = float(diff.max())

    # 1. Fusion rules compared in every mode (point estimates; counts are the same per mode).
    log("comparing fusion rules")
    table: dict[str, dict[str, list[RateAtTarget]]] = {}
    for rule in FusionRule:
        table[rule.value] = {}
        for mode in ComparisonMode.all():
            scores = mode_pairs(run.embeddings, lfw.subject, len(lfw.names), mode, rule, metric)
            table[rule.value][mode.key] = fnmr_at_targets(scores, TARGETS[:3], bootstrap=0)
    rule, rule_scores = _choose_rule(table)
    report["fusion"] = {
        "protocol": "a person's images in file order: the first e enrol (fused), the following "
        "ones are cut into consecutive groups of p probe frames (fused); every template against "
        "every probe group",
        "chosen_rule": rule.value,
        "mean_fnmr_fused_modes_at_1e-3_1e-4": rule_scores,
        "rules": {r: {m: _rates_json(v) for m, v in modes.items()} for r, modes in table.items()},
    }
    clock.stage("fusion_rules")

    # 2. LFW protocol: the model and the reference descriptors, the policy's single-image form.
    log("LFW protocol")
    protocol: dict[str, Any] = {"published_dlib": PUBLISHED_DLIB}
    for name, emb in (
        ("model" if run.source == "model" else "evaluated", run.embeddings),
        ("reference", reference.embeddings),
    ):
        for form, vectors in (
            (rule.value, fused_cross_distances_vectors(emb, rule)),
            ("raw", emb),
        ):
            result = lfw_protocol(vectors, lfw.pairs, metric)
            protocol[f"{name}_{form}"] = {
                "mean": result.mean,
                "std": result.std,
                "per_fold": dict(zip([str(f) for f in result.folds], result.accuracy, strict=True)),
                "thresholds": list(result.thresholds),
                "pairs": result.pairs,
            }
    report["lfw_protocol"] = protocol
    clock.stage("lfw_protocol")

    # 3. Per mode with the chosen rule: rates with intervals, 1:N, calibration, held-out checks.
    modes: dict[ComparisonMode, ModeCalibration] = {}
    per_mode: dict[str, Any] = {}
    held: list[dict[str, Any]] = []
    sets: dict[str, ScoreSet] = {}
    for mode in ComparisonMode.all():
        log(f"mode {mode.key}: rates, 1:N, calibration")
        scores = _policy_set(run.embeddings, lfw, mode, rule, metric)
        rates = fnmr_at_targets(scores, TARGETS, bootstrap=bootstrap)
        ident = identification(run.embeddings, lfw.subject, len(lfw.names), mode, rule, metric)
        modes[mode] = calibrate_mode(scores, TARGETS, lfw.description, ident.margin)
        per_mode[mode.key] = {
            "comparisons": "all pairs of chips" if mode == _E1P1 else "fusion protocol",
            "genuine": len(scores.genuine),
            "impostor": len(scores.impostor),
            "rates": _rates_json(rates),
            "identification": _identification_json(ident),
        }
        for target in TARGETS:
            held.append(held_out(scores, lfw.subject_fold, mode, target).to_json())
        if mode.key in ("e1p1", "e2p2", "e3p1", "e3p3"):
            sets[mode.key] = scores
    report["modes"] = per_mode
    report["held_out"] = held
    clock.stage("modes")

    # 4. Single images, all pairs: the manifest's raw metric for both descriptor sets, for
    # comparison with dlib's usual practice; and the per-fold spread.
    log("all pairs: raw metric, reference, per fold")
    raw_model = all_pairs(run.embeddings, lfw.subject, len(lfw.names), FusionRule.MEAN_RAW, metric)
    ref_policy = all_pairs(reference.embeddings, lfw.subject, len(lfw.names), rule, metric)
    report["all_pairs_single_image"] = {
        "policy_form": per_mode[_E1P1.key]["rates"],
        "raw_metric": _rates_json(fnmr_at_targets(raw_model, TARGETS, bootstrap=bootstrap)),
        "reference_policy_form": _rates_json(fnmr_at_targets(ref_policy, TARGETS, bootstrap=0)),
    }
    per_fold: dict[str, Any] = {}
    for fold in lfw.folds:
        keep = lfw.subject_fold == fold
        per_fold[str(fold)] = {
            "people": int(keep.sum()),
            "lfw_protocol_accuracy": protocol[
                f"{'model' if run.source == 'model' else 'evaluated'}_{rule.value}"
            ]["per_fold"].get(str(fold)),
            **{
                key: _rates_json(fnmr_at_targets(sets[key].restrict(keep), TARGETS, bootstrap=0))
                for key in ("e1p1", "e3p1", "e3p3")
            },
        }
    report["per_fold"] = per_fold
    clock.stage("all_pairs_and_folds")

    # 5. DET plot.
    curves = [
        det_curve(f"1 vs 1, all pairs ({rule.value})", sets["e1p1"].genuine, sets["e1p1"].impostor),
        det_curve(
            "1 vs 1, all pairs, raw metric", raw_model.genuine, raw_model.impostor, style=":"
        ),
        det_curve(
            "1 vs 1, dlib reference descriptors",
            ref_policy.genuine,
            ref_policy.impostor,
            style="--",
        ),
        det_curve("2 enrol vs 2 probe", sets["e2p2"].genuine, sets["e2p2"].impostor),
        det_curve("3 enrol vs 1 probe", sets["e3p1"].genuine, sets["e3p1"].impostor),
        det_curve("3 enrol vs 3 probe", sets["e3p3"].genuine, sets["e3p3"].impostor),
    ]
    det_path = plot_det(
        [c for c in curves if _plottable(c)],
        out_dir / "det.png",
        f"{lfw.description.split(' (')[0]}\n{run.model_id}",
    )
    clock.stage("det_plot")

    # 6. Calibration (only a real model has a hash to key it by), gallery limits, checks.
    calibration: Calibration | None = None
    if run.model_sha256 is not None:
        calibration = build_calibration(
            model_id=run.model_id,
            model_sha256=run.model_sha256,
            metric=metric,
            rule=rule,
            dataset=lfw.description,
            modes=modes,
        )
    report["operating_points"] = {
        mode.key: {
            "points": [p.model_dump(mode="json") for p in modes[mode].points],
            "unsupported": list(modes[mode].unsupported),
            "identify_margin": modes[mode].identify_margin,
            "largest_gallery": {
                f"fpir_{t:g}": {p.name: max_gallery_size(p, t) for p in modes[mode].points}
                for t in TENANT_FPIR_TARGETS
            },
        }
        for mode in ComparisonMode.all()
    }
    report["checks"] = _checks(report, per_mode, held, run)
    report["timings_s"] = clock.stages
    files = {"det": det_path}
    report_path = write_report(report, out_dir / "report.json")
    files["report"] = report_path
    if calibration is not None:
        calibration_file = out_dir / CALIBRATION_FILE
        calibration_file.write_text(calibration.to_json())
        files["calibration"] = calibration_file
    return EvaluationOutput(report, calibration, files)


def write_report(report: dict[str, Any], path: Path) -> Path:
    """Write the report as indented JSON (numpy scalars as plain numbers)."""
    path.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    return path


def _plottable(curve: DetCurve) -> bool:
    return bool(np.any((curve.fmr > 0) & (curve.fnmr > 0)))


def _json_default(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _checks(
    report: dict[str, Any], per_mode: dict[str, Any], held: list[dict[str, Any]], run: EmbeddingRun
) -> dict[str, Any]:
    """The issue's acceptance checks, each with the numbers it was judged on."""
    checks: dict[str, Any] = {}
    protocol = report["lfw_protocol"]
    rule = report["fusion"]["chosen_rule"]
    if run.source == "model":
        model_acc = protocol[f"model_{rule}"]["mean"]
        ref_acc = protocol[f"reference_{rule}"]["mean"]
        checks["lfw_protocol_within_0.1pp"] = {
            "model": model_acc,
            "reference": ref_acc,
            "difference_pp": abs(model_acc - ref_acc) * 100,
            "passed": bool(abs(model_acc - ref_acc) <= PROTOCOL_TOLERANCE + 1e-12),
        }
    for key, targets in HELD_OUT_CHECKS.items():
        for target in targets:
            entry = next(h for h in held if h["mode"] == key and h["target_fmr"] == target)
            checks[f"held_out_{key}_fmr_{target:g}"] = {
                "tolerance": f"pooled FMR (rule of three if zero) <= {HELD_OUT_TOLERANCE:g} x target",
                "impostors": entry["impostors"],
                "false_matches": entry["false_matches"],
                "fmr": entry["fmr"],
                "fmr_upper_if_zero": entry["fmr_upper_if_zero"],
                "passed": entry["passed"],
            }
    for key, target, limit in FNMR_CHECKS:
        rates = per_mode[key]["rates"]
        entry = next(r for r in rates if r["target_fmr"] == target)
        checks[f"fnmr_{key}_at_fmr_{target:g}"] = {
            "limit": limit,
            "fnmr": entry["fnmr"],
            "fnmr_ci": entry["fnmr_ci"],
            "genuine": entry["genuine"],
            "impostors": entry["impostors"],
            "passed": None if entry["fnmr"] is None else bool(entry["fnmr"] <= limit),
        }
    return checks
