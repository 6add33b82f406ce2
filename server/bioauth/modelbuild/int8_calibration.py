"""The calibration chips of the int8 dlib model, and the maintainer's command that recalibrates it.

Which chips, and why LFW: MinMax ranges are only as wide as the data that set them. The 19 chips
of the shared face set (38 with mirror images) leave ranges too narrow for some faces: measured
on 309 LFW chips (every 20th), their int8 embeddings reached a worst cosine of only 0.992 with the
float model (largest Euclidean error 0.21), against 0.9991 (0.06) with 154 LFW chips. So the ranges come from
LFW: the first chip (in file-name order) of each of the first 200 people of fold 1 (names in
alphabetical order). They are computed once and committed (``int8_ranges.json``, with the chip
list and a digest of the chips' bytes), so building the model needs no data set; only
recalibrating needs ``BIOAUTH_LFW_DIR``. Those 200 chips are also in the LFW evaluation: accuracy
is reported on folds 1-5 (the overlap stated) and on folds 2-5 alone, which share nothing with
calibration. The face set stays out of calibration, so the tests that compare the int8 model with
the float one on it are held out.

``python -m bioauth.modelbuild.int8_calibration`` recomputes the ranges and compares them with
the committed ones; with ``--write`` it rewrites the ranges file and prints the matching manifest
(the committed manifest is never written).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from bioauth.config import ImageSettings
from bioauth.inference.decode import decode_image
from bioauth.inference.manifest import (
    InputSpec,
    ModelManifest,
    QuantizedSourceSpec,
    load_manifest,
)
from bioauth.inference.preprocess import to_model_input
from bioauth.modelbuild.build import ensure_built
from bioauth.modelbuild.quantize import (
    QUANTIZER,
    Ranges,
    calibrate,
    quantize,
    quantized_model_id,
    ranges_document,
    read_ranges,
)
from bioauth.modelbuild.sources import package_version, sha256_bytes

__all__ = [
    "CALIBRATION_COUNT",
    "CALIBRATION_FOLD",
    "INT8_DIR",
    "RANGES_FILE",
    "calibrate_on_lfw",
    "chip_inputs",
    "chips_digest",
    "fresh_int8_manifest",
    "lfw_calibration_chips",
    "main",
]

MODELS_ROOT = Path(__file__).resolve().parents[2]
INT8_DIR: Final = MODELS_ROOT / "dlib_resnet_v1_int8"
BASE_MANIFEST: Final = "../dlib_resnet_v1/manifest.json"
RANGES_FILE: Final = "int8_ranges.json"
CALIBRATION_FOLD: Final = 1
CALIBRATION_COUNT: Final = 200
MODEL_ID_PREFIX: Final = "dlib-resnet-v1-int8"

_RECIPE: Final[dict[str, Any]] = {
    "quantizer": QUANTIZER,
    "package": "onnxruntime",
    "activation_type": "QUInt8",
    "weight_type": "QInt8",
    "per_channel": True,
    "reduce_range": True,
    "float_op_types": ("MatMul",),
}


def default_lfw_dir() -> Path:
    return Path(os.environ.get("BIOAUTH_LFW_DIR", MODELS_ROOT.parent.parent / "shared" / "lfw"))


def lfw_calibration_chips(
    lfw_dir: Path, fold: int = CALIBRATION_FOLD, count: int = CALIBRATION_COUNT
) -> list[str]:
    """Chip paths (relative to ``lfw_dir``) of the documented calibration rule."""
    index = json.loads((lfw_dir / "lfw.json").read_text(encoding="utf-8"))
    first: dict[str, str] = {}
    for face in index["faces"]:
        if face["fold"] != fold:
            continue
        chip = str(face["chip"])
        name = str(face["identity"])
        if name not in first or chip < first[name]:
            first[name] = chip
    people = sorted(first)[:count]
    if len(people) < count:
        raise ValueError(f"fold {fold} of {lfw_dir} has {len(people)} people, {count} needed")
    return [first[name] for name in people]


def chips_digest(root: Path, chips: Sequence[str]) -> str:
    """One SHA-256 over the chips' names and bytes, in order: a changed chip changes it."""
    digest = hashlib.sha256()
    for chip in chips:
        digest.update(f"{chip}\n{sha256_bytes((root / chip).read_bytes())}\n".encode())
    return digest.hexdigest()


def chip_inputs(
    root: Path, chips: Sequence[str], spec: InputSpec
) -> Iterator[npt.NDArray[np.float32]]:
    """Each chip decoded and preprocessed exactly as the server does it."""
    limits = ImageSettings()
    for chip in chips:
        yield to_model_input(decode_image((root / chip).read_bytes(), limits), spec)


def calibrate_on_lfw(
    base_manifest_path: Path, cache_dir: Path, lfw_dir: Path
) -> tuple[Ranges, dict[str, Any]]:
    """Activation ranges of the base model over the calibration chips, and their provenance."""
    base = load_manifest(base_manifest_path)
    base_onnx = ensure_built(base_manifest_path, cache_dir)
    chips = lfw_calibration_chips(lfw_dir)
    ranges = calibrate(base_onnx, base.onnx.input_name, chip_inputs(lfw_dir, chips, base.input))
    about = {
        "base_model_id": base.model_id,
        "base_onnx_sha256": base.onnx.sha256,
        "calibration": {
            "set": "LFW deep-funneled chips (BIOAUTH_LFW_DIR)",
            "rule": (
                f"the first chip (file-name order) of each of the first {CALIBRATION_COUNT} "
                f"people (alphabetical) of fold {CALIBRATION_FOLD}"
            ),
            "chips": chips,
            "chips_sha256": chips_digest(lfw_dir, chips),
        },
    }
    return ranges, about


def fresh_int8_manifest(int8_dir: Path, cache_dir: Path) -> ModelManifest:
    """The manifest of the int8 model for the ranges file now in ``int8_dir``."""
    base_path = int8_dir / BASE_MANIFEST
    base = load_manifest(base_path)
    ranges_bytes = (int8_dir / RANGES_FILE).read_bytes()
    source = QuantizedSourceSpec(
        **_RECIPE,
        package_version=package_version("onnxruntime"),
        base_manifest=BASE_MANIFEST,
        base_sha256=base.onnx.sha256,
        ranges_file=RANGES_FILE,
        ranges_sha256=sha256_bytes(ranges_bytes),
    )
    ranges = read_ranges(int8_dir / RANGES_FILE, source.ranges_sha256)
    data = quantize(ensure_built(base_path, cache_dir), ranges, source)
    name = f"{base.name}_int8"
    fresh = base.model_copy(
        update={
            "model_id": quantized_model_id(MODEL_ID_PREFIX, source),
            "name": name,
            "onnx": base.onnx.model_copy(
                update={"file": f"{name}.onnx", "sha256": sha256_bytes(data)}
            ),
            "source": source,
        }
    )
    return ModelManifest.model_validate(fresh.model_dump(mode="json"))


def _compare(committed: Ranges, fresh: Ranges) -> float:
    if set(committed) != set(fresh):
        raise SystemExit(
            f"the tensors differ: {sorted(set(committed) ^ set(fresh))[:5]} (and maybe more)"
        )
    worst = 0.0
    for name, (low, high) in fresh.items():
        c_low, c_high = committed[name]
        span = max(c_high - c_low, 1e-12)
        worst = max(worst, abs(low - c_low) / span, abs(high - c_high) / span)
    return worst


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bioauth.modelbuild.int8_calibration",
        description="Recompute the int8 model's activation ranges on LFW and compare or rewrite them.",
    )
    parser.add_argument("--lfw-dir", type=Path, default=default_lfw_dir())
    parser.add_argument("--cache-dir", type=Path, required=True, help="model build cache")
    parser.add_argument("--int8-dir", type=Path, default=INT8_DIR)
    parser.add_argument(
        "--write",
        action="store_true",
        help=f"rewrite {RANGES_FILE} in --int8-dir and print the matching manifest on stdout",
    )
    args = parser.parse_args(argv)
    ranges, about = calibrate_on_lfw(args.int8_dir / BASE_MANIFEST, args.cache_dir, args.lfw_dir)
    if args.write:
        (args.int8_dir / RANGES_FILE).write_bytes(ranges_document(ranges, about))
        sys.stdout.write(fresh_int8_manifest(args.int8_dir, args.cache_dir).to_json())
        return 0
    manifest = load_manifest(args.int8_dir / "manifest.json")
    source = manifest.source
    if not isinstance(source, QuantizedSourceSpec):
        raise SystemExit(f"{args.int8_dir / 'manifest.json'} is not a quantized model")
    committed = read_ranges(args.int8_dir / source.ranges_file, source.ranges_sha256)
    worst = _compare(committed, ranges)
    print(
        f"{len(ranges)} tensors; largest difference from the committed ranges: {worst:.3g} of a span"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
