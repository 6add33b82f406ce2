"""Calibrated operating points: the committed file every decision takes its thresholds from.

``calibration.json`` sits beside a model's manifest and is written only by ``bioauth eval lfw``
(never by ``bioauth model build``): a threshold is a measurement of one model on real faces, not a
property of the weights. The file is keyed by the model's id and its ONNX file's SHA-256, so a
rebuilt or swapped model cannot silently inherit another model's thresholds.

Points are named after the false-match rate they target (``fmr_1e-4``) and exist per comparison
mode (1 to 3 enrolment images fused against 1 to 3 probe frames fused, ``e1p1`` .. ``e3p3``),
because fusion moves the score distributions: a single-image threshold applied to fused scores
misses its target. A point the data could not support in a mode is simply absent from that mode;
the policy refuses it there instead of guessing.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bioauth.errors import FailedPrecondition
from bioauth.matching.fusion import FusionRule
from bioauth.matching.scores import Metric

__all__ = [
    "CALIBRATION_SCHEMA_VERSION",
    "MAX_IMAGES_PER_SIDE",
    "Calibration",
    "CalibrationError",
    "ComparisonMode",
    "ModeCalibration",
    "OperatingPoint",
    "load_calibration",
    "point_name",
    "require_calibration",
]

CALIBRATION_SCHEMA_VERSION = 1
MAX_IMAGES_PER_SIDE = 3
"""The API fuses at most three images on each side (proto ``MAX_IMAGES_PER_REQUEST``)."""

_MODE_KEY = re.compile(r"^e([1-9])p([1-9])$")
_Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class CalibrationError(FailedPrecondition):
    """The calibration file is missing, invalid, or belongs to another model.

    Without calibrated points the server cannot decide anything, so this is a deployment
    precondition, raised at start-up.
    """


@dataclass(frozen=True, slots=True, order=True)
class ComparisonMode:
    """How many images were fused on each side: enrolment images and probe frames, 1 to 3."""

    enrolment_images: int
    probe_images: int

    def __post_init__(self) -> None:
        for side, count in (("enrolment", self.enrolment_images), ("probe", self.probe_images)):
            if not 1 <= count <= MAX_IMAGES_PER_SIDE:
                raise ValueError(f"{side} images must be 1..{MAX_IMAGES_PER_SIDE}, got {count}")

    @property
    def key(self) -> str:
        """The mode's name in the calibration file, e.g. ``e3p1``."""
        return f"e{self.enrolment_images}p{self.probe_images}"

    @classmethod
    def from_key(cls, key: str) -> ComparisonMode:
        match = _MODE_KEY.match(key)
        if match is None:
            raise ValueError(f"comparison mode key must look like 'e3p1', got {key!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def all(cls) -> tuple[ComparisonMode, ...]:
        """The nine modes, e1p1 first."""
        sides = range(1, MAX_IMAGES_PER_SIDE + 1)
        return tuple(cls(e, p) for e in sides for p in sides)


def point_name(target_fmr: float) -> str:
    """The conventional name of the point targeting ``target_fmr``: 1e-4 -> ``fmr_1e-4``."""
    exponent = math.log10(target_fmr)
    if abs(exponent - round(exponent)) < 1e-9:
        return f"fmr_1e{round(exponent)}"
    return f"fmr_{target_fmr:g}"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OperatingPoint(_Frozen):
    """One calibrated decision threshold in one comparison mode.

    A comparison matches when its fused distance is at or below ``threshold``.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.+-]{0,63}$")
    threshold: float = Field(gt=0)
    target_fmr: float = Field(gt=0, lt=1)
    measured_fmr: float = Field(ge=0, le=1)
    """False-match rate of ``threshold`` on the calibration data (at most ``target_fmr``)."""
    measured_fnmr: float = Field(ge=0, le=1)
    impostor_comparisons: int = Field(ge=1)
    genuine_comparisons: int = Field(ge=1)
    dataset: str = Field(min_length=1)


class ModeCalibration(_Frozen):
    """The points one comparison mode supports, loosest first, and its 1:N ambiguity margin."""

    points: tuple[OperatingPoint, ...]
    identify_margin: float | None = Field(default=None, ge=0)
    """1:N: a best match closer than this to the runner-up is AMBIGUOUS; None: not calibrated."""
    unsupported: tuple[str, ...] = ()
    """Points the data could not support in this mode (kept to say why they are missing)."""

    @model_validator(mode="after")
    def _ordered(self) -> ModeCalibration:
        names = [point.name for point in self.points]
        if len(names) != len(set(names)):
            raise ValueError(f"point names repeat: {names}")
        for looser, stricter in zip(self.points, self.points[1:], strict=False):
            if not stricter.target_fmr < looser.target_fmr:
                raise ValueError("points must be ordered loosest first (decreasing target_fmr)")
            if stricter.threshold > looser.threshold:
                raise ValueError(
                    f"{stricter.name} has a looser threshold than {looser.name}; "
                    "a stricter target can never accept more"
                )
        return self

    def point(self, name: str) -> OperatingPoint | None:
        for candidate in self.points:
            if candidate.name == name:
                return candidate
        return None


class Calibration(_Frozen):
    """The whole calibration file of one model."""

    schema_version: Literal[1]
    model_id: str = Field(min_length=1)
    model_sha256: _Sha256
    """SHA-256 of the ONNX file these points were measured with (the manifest's ``onnx.sha256``)."""
    metric: Metric
    fusion_rule: FusionRule
    dataset: str = Field(min_length=1)
    generated_by: str = Field(min_length=1)
    modes: dict[str, ModeCalibration]

    @model_validator(mode="after")
    def _mode_keys(self) -> Calibration:
        for key in self.modes:
            ComparisonMode.from_key(key)
        return self

    def mode(self, mode: ComparisonMode) -> ModeCalibration | None:
        """The mode's calibration, or None when the data did not cover it."""
        return self.modes.get(mode.key)

    def point(self, mode: ComparisonMode, name: str) -> OperatingPoint | None:
        """The named point in ``mode``, or None when it is not calibrated there."""
        calibrated = self.mode(mode)
        return None if calibrated is None else calibrated.point(name)

    def to_json(self) -> str:
        """Canonical text: sorted keys, two-space indent, trailing newline (diffs stay small)."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def load_calibration(path: Path, *, model_id: str, model_sha256: str) -> Calibration:
    """Read, validate and check that the file belongs to this exact model.

    Raises:
        CalibrationError: the file is unreadable or invalid, or was measured with another model
            (another id or other ONNX bytes); thresholds never carry over between models.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CalibrationError(
            f"calibration file {path} cannot be read: {exc.strerror} (run `bioauth eval lfw`)"
        ) from exc
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"calibration file {path} is not JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("schema_version") != CALIBRATION_SCHEMA_VERSION:
        raise CalibrationError(
            f"calibration file {path}: schema_version must be {CALIBRATION_SCHEMA_VERSION}"
        )
    try:
        calibration = Calibration.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise CalibrationError(f"calibration file {path} is invalid: {problems}") from exc
    if calibration.model_id != model_id or calibration.model_sha256 != model_sha256:
        raise CalibrationError(
            f"calibration file {path} was measured with model {calibration.model_id} "
            f"({calibration.model_sha256[:12]}...), not {model_id} ({model_sha256[:12]}...); "
            "recalibrate with `bioauth eval lfw`"
        )
    return calibration


def require_calibration(calibration: Calibration | None, model_id: str) -> Calibration:
    """Decisions need calibrated points; without them the server refuses rather than guess."""
    if calibration is None:
        raise FailedPrecondition(
            f"model {model_id} has no calibrated operating points on this server "
            "(calibration.json beside the manifest; `bioauth eval lfw` writes it)"
        )
    return calibration
