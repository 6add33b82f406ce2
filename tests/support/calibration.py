"""Operating points constructed by a test from the served model's own distances on its faces.

The committed calibration (``bioauth eval lfw``) decides what production does; an end-to-end test
that must put a threshold between two particular distances (say, above three fused frames but
below each frame alone) measures those distances with the server's own model and preprocessing
and writes a calibration file for the server it starts. The file is bound to the real model's id
and ONNX hash, as the server requires; its points say ``dataset = "constructed"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bioauth.config import Settings
from bioauth.inference.decode import decode_image
from bioauth.inference.engine import OnnxEngine
from bioauth.inference.manifest import load_manifest
from bioauth.inference.preprocess import to_model_input
from bioauth.matching.fusion import FusionRule, fused_distance

__all__ = ["fused", "served_embeddings", "write_calibration"]

RULE = FusionRule.MEAN_L2_NORMALISED


def served_embeddings(paths: Sequence[Path]) -> npt.NDArray[np.float32]:
    """The embeddings the server computes for these crops (same manifest, model file, decoding
    and preprocessing as a server started on the default inference settings)."""
    from bioauth.modelbuild import ensure_built

    settings = Settings()
    manifest_path = settings.inference.manifest
    manifest = load_manifest(manifest_path)
    engine = OnnxEngine(
        ensure_built(manifest_path, settings.inference.cache_dir), manifest, settings.inference
    )
    batch = np.stack(
        [
            to_model_input(decode_image(p.read_bytes(), settings.image), manifest.input)
            for p in paths
        ]
    ).astype(np.float32)
    return np.asarray(engine.run(batch), dtype=np.float32)


def fused(enrolment: npt.ArrayLike, probes: npt.ArrayLike) -> float:
    """The fused distance as the server's policy computes it."""
    return fused_distance(enrolment, probes, RULE, "euclidean")


def write_calibration(
    path: Path, *, point: str, thresholds: Mapping[str, float], identify_margin: float
) -> Path:
    """A calibration file for the served model with one point, ``point``, in each mode of
    ``thresholds`` (``{"e1p1": 0.4, ...}``), all targeting an FMR of 1e-3."""
    settings = Settings()
    manifest = load_manifest(settings.inference.manifest)
    modes = {
        key: {
            "points": [
                {
                    "name": point,
                    "threshold": threshold,
                    "target_fmr": 1e-3,
                    "measured_fmr": 0.0,
                    "measured_fnmr": 0.0,
                    "impostor_comparisons": 1,
                    "genuine_comparisons": 1,
                    "dataset": "constructed",
                }
            ],
            "identify_margin": identify_margin,
        }
        for key, threshold in thresholds.items()
    }
    document = {
        "schema_version": 1,
        "model_id": manifest.model_id,
        "model_sha256": manifest.onnx.sha256,
        "metric": manifest.metric,
        "fusion_rule": RULE.value,
        "dataset": "constructed",
        "generated_by": "tests.support.calibration",
        "modes": modes,
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path
