"""Calibrations that tests construct: one way to say "a calibration with these points".

The committed calibration (``bioauth eval lfw``) decides what production does. A test that must
decide at known thresholds builds its own: ``point`` / ``mode`` / ``calibration`` give the
in-memory ``Calibration`` a unit test hands to the policy or the services (bound to a made-up
model), ``served_calibration`` the same bound to the real served model's id and ONNX hash (as the
server requires), and ``write_calibration`` the file a test server is started with. Points say
``dataset = "constructed"``: their thresholds are chosen, not measured.

An end-to-end test that must put a threshold between two particular distances (say, above three
fused frames but below each frame alone) measures them first with ``served_embeddings`` and
``fused``: the server's own model, preprocessing and fusion rule.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from bioauth.config import Settings
from bioauth.inference.decode import decode_image
from bioauth.inference.engine import OnnxEngine
from bioauth.inference.manifest import load_manifest
from bioauth.inference.preprocess import to_model_input
from bioauth.matching.fusion import FusionRule, fused_distance
from bioauth.matching.operating_points import Calibration, ModeCalibration, OperatingPoint
from bioauth.matching.scores import Metric
from tests.support.environment import REPO_ROOT, missing

__all__ = [
    "RULE",
    "SHA",
    "TEST_MODEL",
    "calibration",
    "committed_calibration",
    "fused",
    "mode",
    "point",
    "served_calibration",
    "served_embeddings",
    "standard",
    "write_calibration",
]

RULE: Final = FusionRule.MEAN_L2_NORMALISED
TEST_MODEL: Final = "test-model"
SHA: Final = "ab" * 32
"""The ONNX hash a constructed calibration claims when no real model is involved."""

_NAMES: Final = {1e-3: "fmr_1e-3", 1e-4: "fmr_1e-4", 1e-5: "fmr_1e-5", 1e-6: "fmr_1e-6"}
"""Written out rather than computed with ``point_name``, which the unit tests check."""


def point(target_fmr: float, threshold: float) -> OperatingPoint:
    """A constructed point named after its target (``fmr_1e-3`` .. ``fmr_1e-6``)."""
    return OperatingPoint(
        name=_NAMES[target_fmr],
        threshold=threshold,
        target_fmr=target_fmr,
        measured_fmr=target_fmr / 2,
        measured_fnmr=0.1,
        impostor_comparisons=10_000_000,
        genuine_comparisons=1000,
        dataset="constructed",
    )


def mode(*points: OperatingPoint, margin: float | None = 0.05) -> ModeCalibration:
    """One comparison mode's points (loosest first) and its 1:N ambiguity margin."""
    return ModeCalibration(points=points, identify_margin=margin)


def calibration(
    modes: Mapping[str, ModeCalibration] | None = None,
    /,
    *,
    model_id: str = TEST_MODEL,
    model_sha256: str = SHA,
    metric: Metric = "euclidean",
    **named: ModeCalibration,
) -> Calibration:
    """A calibration with these modes (``{"e1p1": mode(...)}`` or ``e1p1=mode(...)``), nothing
    else."""
    return Calibration(
        schema_version=1,
        model_id=model_id,
        model_sha256=model_sha256,
        metric=metric,
        fusion_rule=RULE,
        dataset="constructed",
        generated_by="tests",
        modes={**(modes or {}), **named},
    )


def standard() -> Calibration:
    """e1p1 with four points, e3p1 with three (other thresholds), e3p3 with one; nothing else."""
    return calibration(
        e1p1=mode(point(1e-3, 0.50), point(1e-4, 0.45), point(1e-5, 0.40), point(1e-6, 0.35)),
        e3p1=mode(point(1e-3, 0.40), point(1e-4, 0.36), point(1e-5, 0.33), margin=0.04),
        e3p3=mode(point(1e-3, 0.30), margin=0.03),
    )


def served_calibration(
    modes: Mapping[str, ModeCalibration] | None = None, /, **named: ModeCalibration
) -> Calibration:
    """A calibration bound to the model a server on the default inference settings serves."""
    manifest = load_manifest(Settings().inference.manifest)
    return calibration(
        modes,
        model_id=manifest.model_id,
        model_sha256=manifest.onnx.sha256,
        metric=manifest.metric,
        **named,
    )


def write_calibration(path: Path, constructed: Calibration) -> Path:
    """The calibration file a test server reads (``matching.calibration``)."""
    path.write_text(constructed.to_json())
    return path


def committed_calibration() -> Path:
    """The served model's committed calibration file (or ``BIOAUTH_MATCHING__CALIBRATION``'s),
    which tests that decide at production's points need."""
    override = os.environ.get("BIOAUTH_MATCHING__CALIBRATION")
    path = (
        Path(override) if override else REPO_ROOT / "models" / "dlib_resnet_v1" / "calibration.json"
    )
    if not path.is_file():
        missing(f"calibration file {path}", "run `bioauth eval lfw` (it writes calibration.json)")
    return path


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
