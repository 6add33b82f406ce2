"""The evaluation report as short Markdown tables, for the terminal and for ``docs/accuracy.md``."""

from __future__ import annotations

from typing import Any

__all__ = ["summary_lines"]


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _ci(ci: list[float] | tuple[float, float] | None) -> str:
    return "" if ci is None else f" [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"


def _rates_row(label: str, rates: list[dict[str, Any]]) -> str:
    cells = []
    for rate in rates:
        if not rate["supported"]:
            cells.append(f"unsupported ({rate['impostors']:,} imp.)")
        else:
            cells.append(f"{_pct(rate['fnmr'])}{_ci(rate['fnmr_ci'])}")
    counts = f"{rates[0]['genuine']:,} / {rates[0]['impostors']:,}"
    return f"| {label} | {counts} | " + " | ".join(cells) + " |"


def summary_lines(report: dict[str, Any]) -> list[str]:
    """Markdown lines: protocol, single-image and fused rates, 1:N, checks."""
    lines: list[str] = [f"## {report['dataset']}, {report['embeddings']['model_id']}", ""]
    protocol = report["lfw_protocol"]
    rule = report["fusion"]["chosen_rule"]
    lines += [
        "| LFW protocol (pairs.txt, threshold from the other folds) | mean | std |",
        "|---|---|---|",
    ]
    for key, value in protocol.items():
        if key == "published_dlib":
            lines.append(
                f"| dlib published (10 folds, original images) | {_pct(value['mean'])} | {_pct(value['std'])} |"
            )
        else:
            lines.append(
                f"| {key} ({value['pairs']} pairs) | {_pct(value['mean'])} | {_pct(value['std'])} |"
            )
    lines += [
        "",
        f"FNMR at FMR [95% CI] (fusion rule {rule}); genuine / impostor comparisons",
        "",
        "| mode | genuine / impostor | FMR 1e-3 | FMR 1e-4 | FMR 1e-5 | FMR 1e-6 |",
        "|---|---|---|---|---|---|",
    ]
    single = report["all_pairs_single_image"]
    lines.append(_rates_row("1 vs 1, all pairs, raw metric", single["raw_metric"]))
    lines.append(_rates_row("1 vs 1, all pairs, dlib reference", single["reference_policy_form"]))
    for key, mode in report["modes"].items():
        lines.append(_rates_row(key, mode["rates"]))
    lines += [
        "",
        "Fusion rules, FNMR at FMR 1e-3 / 1e-4 (fusion protocol)",
        "",
        "| mode | " + " | ".join(report["fusion"]["rules"]) + " |",
        "|---|" + "---|" * len(report["fusion"]["rules"]),
    ]
    modes = next(iter(report["fusion"]["rules"].values())).keys()
    for key in modes:
        cells = []
        for per_mode in report["fusion"]["rules"].values():
            rates = per_mode[key]
            cells.append(
                " / ".join(_pct(r["fnmr"], 1) if r["supported"] else "n/a" for r in rates[:2])
            )
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "1:N (two-half open set): FNIR at FPIR, without / with the calibrated margin",
        "",
        "| mode | gallery | margin | FPIR 1e-2: FNIR | FPIR with margin | FPIR 1e-3: FNIR |",
        "|---|---|---|---|---|---|",
    ]
    for key, mode in report["modes"].items():
        ident = mode["identification"]
        at = ident["at_fpir"]
        first = at[0]
        second = at[1]
        margin = "n/a" if ident["margin"] is None else f"{ident['margin']:.4f}"
        fnir1 = (
            f"{_pct(first.get('fnir'))} / {_pct(first.get('fnir_with_margin'))}"
            if first["supported"]
            else "n/a"
        )
        fpir1 = (
            f"{_pct(first.get('fpir'))} / {_pct(first.get('fpir_with_margin'))}"
            if first["supported"]
            else "n/a"
        )
        fnir2 = (
            f"{_pct(second.get('fnir'))} / {_pct(second.get('fnir_with_margin'))}"
            if second["supported"]
            else "n/a"
        )
        gallery = "+".join(str(g) for g in ident["gallery_sizes"])
        lines.append(f"| {key} | {gallery} | {margin} | {fnir1} | {fpir1} | {fnir2} |")
    lines += ["", "| check | result | numbers |", "|---|---|---|"]
    for name, check in report["checks"].items():
        verdict = {True: "pass", False: "FAIL", None: "not measurable"}[check["passed"]]
        numbers = ", ".join(
            f"{k}={v}" for k, v in check.items() if k not in ("passed", "tolerance")
        )
        lines.append(f"| {name} | {verdict} | {numbers} |")
    return lines
