"""`bioauth eval ...`: measuring the model on real faces (the module is not named eval.py, to keep
clear of the builtin).

``bioauth eval lfw`` embeds every LFW chip through the project's own model (cached, so a rerun
only hashes files), runs the LFW protocol, all-pairs error rates with intervals, fusion, 1:N and
per-fold figures, and writes ``report.json``, ``det.png`` and ``calibration.json`` to ``--out``.
The committed calibration beside the manifest is replaced only on ``--write-calibration``, and
only from a full run of a real model: a smoke subset or dlib's reference descriptors never
calibrate anything.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bioauth.config import load_settings
from bioauth.errors import BioauthError

__all__ = ["register"]

_DEFAULT_OUT = Path("build") / "accuracy" / "lfw"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("eval", help="accuracy evaluation")
    group = parser.add_subparsers(dest="eval_command", required=True, metavar="SUBCOMMAND")
    lfw = group.add_parser(
        "lfw",
        help="LFW evaluation: protocol, error rates, fusion, 1:N, DET plot, calibration",
        description=(
            "Evaluate the model on the LFW chips of $BIOAUTH_LFW_DIR and write report.json, "
            "det.png and calibration.json to --out."
        ),
    )
    lfw.add_argument(
        "--lfw-dir",
        type=Path,
        default=None,
        help="LFW set (default: $BIOAUTH_LFW_DIR, else ../shared/lfw)",
    )
    lfw.add_argument(
        "--out", type=Path, default=_DEFAULT_OUT, help=f"output folder (default: {_DEFAULT_OUT})"
    )
    lfw.add_argument(
        "--descriptors",
        choices=("model", "reference"),
        default="model",
        help="embed with the project's model (default) or use dlib's reference descriptors",
    )
    lfw.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="model manifest (default: settings inference.manifest)",
    )
    lfw.add_argument(
        "--smoke",
        type=int,
        default=None,
        metavar="N",
        help="only about N chips (whole people, every fold)",
    )
    lfw.add_argument(
        "--folds",
        type=_folds,
        default=None,
        metavar="LIST",
        help="only these official folds, e.g. 2,3,4,5 (default: all present)",
    )
    lfw.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="B",
        help="bootstrap resamples for intervals (default 1000)",
    )
    lfw.add_argument(
        "--batch-size", type=int, default=32, help="chips per inference batch (default 32)"
    )
    lfw.add_argument("--no-progress", action="store_true", help="no progress bar")
    lfw.add_argument("--strict", action="store_true", help="exit 1 when an acceptance check fails")
    lfw.add_argument(
        "--write-calibration",
        action="store_true",
        help="also write calibration.json beside the manifest (full run of a model only)",
    )
    lfw.set_defaults(handler=_lfw)


def _folds(text: str) -> tuple[int, ...]:
    try:
        folds = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"folds must be numbers like 2,3,4,5, got {text!r}"
        ) from exc
    if not folds or any(not 1 <= f <= 10 for f in folds):
        raise argparse.ArgumentTypeError(f"folds must be in 1..10, got {text!r}")
    return folds


def _lfw(args: argparse.Namespace) -> int:
    # Imported here so that other `bioauth` commands do not load numpy-heavy evaluation code.
    from bioauth.evaluation.dataset import default_lfw_dir, load_lfw
    from bioauth.evaluation.embeddings import embed_with_model, reference_embeddings
    from bioauth.evaluation.report import evaluate, write_report
    from bioauth.evaluation.summary import summary_lines
    from bioauth.inference.manifest import calibration_path

    partial = args.smoke is not None or args.folds is not None
    if args.write_calibration and (partial or args.descriptors != "model"):
        print(
            "bioauth eval lfw: --write-calibration needs a full run with --descriptors model",
            file=sys.stderr,
        )
        return 2
    if args.smoke is not None and args.smoke < 10:
        print("bioauth eval lfw: --smoke needs at least 10 chips", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        settings = load_settings(args.config)
        manifest_path: Path = args.manifest or settings.inference.manifest
        lfw = load_lfw(args.lfw_dir or default_lfw_dir(), smoke=args.smoke, folds=args.folds)
        reference = reference_embeddings(lfw)
        embed_started = time.perf_counter()
        run = (
            reference
            if args.descriptors == "reference"
            else embed_with_model(
                lfw,
                manifest_path,
                settings,
                batch_size=args.batch_size,
                progress=not args.no_progress,
            )
        )
        embed_wall = time.perf_counter() - embed_started
        output = evaluate(
            lfw,
            run,
            reference,
            args.out,
            bootstrap=args.bootstrap,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except (BioauthError, OSError) as exc:
        print(f"bioauth eval lfw: {exc}", file=sys.stderr)
        return 1
    output.report["timings_s"]["load_and_embed"] = round(embed_wall, 2)
    output.report["timings_s"]["total"] = round(time.perf_counter() - started, 2)
    write_report(output.report, output.files["report"])
    if args.write_calibration and output.calibration is not None:
        target = calibration_path(manifest_path)
        target.write_text(output.calibration.to_json())
        output.files["committed calibration"] = target
    for line in summary_lines(output.report):
        print(line)
    for name, path in output.files.items():
        print(f"{name}: {path}")
    print(f"total: {time.perf_counter() - started:.1f} s")
    failed = [k for k, v in output.report["checks"].items() if v.get("passed") is False]
    return 1 if failed and args.strict else 0
