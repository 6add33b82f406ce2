"""The model manifest: everything the server must know about a face-embedding model.

One JSON file per model, committed next to its calibration (``models/<name>/manifest.json``).
The server never guesses a model's contract from its graph: input size, channel order, layout,
normalisation, embedding size, metric, the graph's tensor names and the ONNX file's SHA-256 all
come from here, so that any ONNX embedding model (an ArcFace-class one, say) plugs in by writing a
manifest alone.

``model_id`` is bound into every template's AAD and every token. It must therefore stay the same
when the model is rebuilt from the same weights; for converted models it is derived from the
source weights' hash, never from the ONNX bytes or a build time.

Preprocessing contract: the preprocessor turns a crop of ``width`` x ``height`` pixels (values
0..255 in ``channel_order``) into a tensor of ``dtype`` in ``layout`` with, per channel,
``x = (pixel - mean[c]) * scale[c]``. For the dlib ResNet these are dlib's own input-layer
parameters read from the weights file (``mean`` is its float32 average colour, ``scale`` 1/256),
so computing in float32 reproduces dlib bit for bit.

Distances: every score is a distance, smaller means more alike. ``euclidean`` is the L2 distance
of the raw embeddings; ``cosine`` is ``1 - cos(a, b)``. A pair matches when its distance is below
a threshold, and no threshold lives here: a threshold is a measurement of one model on real faces,
not a property of its weights, so the calibrated operating points sit in ``calibration.json``
beside the manifest (``bioauth.matching.operating_points``, written by ``bioauth eval lfw``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bioauth.errors import FailedPrecondition

__all__ = [
    "CALIBRATION_FILE",
    "SCHEMA_VERSION",
    "InputSpec",
    "ManifestError",
    "ModelManifest",
    "OnnxSpec",
    "QuantizedSourceSpec",
    "SourceSpec",
    "calibration_path",
    "load_manifest",
]

SCHEMA_VERSION: Final = 1
CALIBRATION_FILE = "calibration.json"
"""Name of the calibrated operating points file that sits beside a manifest (its format is
``bioauth.matching.operating_points``)."""

_Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
_RETIRED_FIELDS: Final = {
    "provisional_threshold": (
        "decision thresholds no longer live in the manifest: the calibrated operating points are "
        f"in {CALIBRATION_FILE} beside it (`bioauth eval lfw --write-calibration`); "
        "delete the field"
    ),
}
"""Fields older manifests carried, refused with the reason instead of a bare 'extra field'."""


class ManifestError(FailedPrecondition):
    """A manifest is missing, unreadable or does not describe a usable model.

    The server cannot serve without a valid model, so this is a precondition failure of the
    deployment, not of any one request.
    """


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InputSpec(_Frozen):
    """What the graph's input tensor holds and how a crop becomes it."""

    width: int = Field(ge=16, le=4096)
    height: int = Field(ge=16, le=4096)
    channels: Literal[3] = 3
    """Only colour models for now; a grey model would need a conversion rule here."""
    channel_order: Literal["RGB", "BGR"]
    layout: Literal["NCHW", "NHWC"]
    dtype: Literal["float32"] = "float32"
    mean: tuple[float, ...]
    """Per channel, in ``channel_order`` order, in pixel units (0..255)."""
    scale: tuple[float, ...]
    """Per channel multiplier applied after subtracting ``mean``."""

    @model_validator(mode="after")
    def _per_channel(self) -> InputSpec:
        for name, values in (("mean", self.mean), ("scale", self.scale)):
            if len(values) != self.channels:
                raise ValueError(f"input.{name} needs {self.channels} values, got {len(values)}")
        if any(s == 0 for s in self.scale):
            raise ValueError("input.scale values must be non-zero")
        return self


class OnnxSpec(_Frozen):
    """The ONNX file and the names of its input and output tensors."""

    file: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\.onnx$")
    """A bare file name: found in the build cache or beside the manifest, never a path."""
    sha256: _Sha256
    input_name: str = Field(min_length=1)
    output_name: str = Field(min_length=1)


class SourceSpec(_Frozen):
    """Where the original weights come from, for models that a converter builds."""

    converter: Literal["dlib-resnet"]
    """Which converter of ``bioauth.modelbuild`` turns the weights into the ONNX file."""
    package: str
    package_version: str
    file: str
    """Path of the weights file inside the installed package."""
    sha256: _Sha256


class QuantizedSourceSpec(_Frozen):
    """A model made by quantizing another manifest's model (``bioauth.modelbuild.quantize``).

    The recipe is all here so the manifest alone says what the file is: the float model it
    starts from (by manifest and by ONNX hash), the committed activation ranges that stand in
    for calibration data at build time, and the quantizer's settings. Building it needs no data
    set; the quantizer's version is recorded because its output bytes depend on it.
    """

    quantizer: Literal["onnxruntime-qdq-static"]
    package: Literal["onnxruntime"]
    package_version: str
    """The version whose quantizer produced ``onnx.sha256``; another may produce other bytes."""
    base_manifest: str = Field(
        pattern=r"^(\.\./)?([A-Za-z0-9][A-Za-z0-9_-]*/)*[A-Za-z0-9][A-Za-z0-9._-]*\.json$"
    )
    """The float model's manifest, relative to this manifest's folder."""
    base_sha256: _Sha256
    """SHA-256 of the float model's ONNX file: a changed base model is refused."""
    ranges_file: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\.json$")
    """Committed activation ranges (from calibration), a bare file name beside this manifest."""
    ranges_sha256: _Sha256
    activation_type: Literal["QUInt8", "QInt8"]
    weight_type: Literal["QInt8", "QUInt8"]
    per_channel: bool
    reduce_range: bool
    """7-bit weights: avoids the int16 saturation of u8 x s8 products on CPUs without VNNI."""
    float_op_types: tuple[str, ...] = ()
    """Operator types left in float (for instance the final projection)."""


class ModelManifest(_Frozen):
    """The committed description of one face-embedding model."""

    schema_version: Literal[1]
    model_id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{2,63}$")
    """Stable identity bound into template AAD and tokens; same weights, same id."""
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    input: InputSpec
    embedding_size: int = Field(ge=2, le=4096)
    metric: Literal["euclidean", "cosine"]
    onnx: OnnxSpec
    source: SourceSpec | QuantizedSourceSpec | None = None
    """Absent for models shipped as ONNX; then the file must sit beside the manifest."""

    def to_json(self) -> str:
        """Canonical text form: sorted keys, two-space indent, trailing newline, so rebuilding
        from the same weights yields the same bytes."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def load_manifest(path: Path) -> ModelManifest:
    """Read and validate a manifest; every failure names the file and the offending field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"model manifest {path} cannot be read: {exc.strerror}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"model manifest {path} is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ManifestError(f"model manifest {path} must hold a JSON object")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"model manifest {path}: schema_version {version!r} is not supported "
            f"(this server reads {SCHEMA_VERSION})"
        )
    for field, why in _RETIRED_FIELDS.items():
        if field in raw:
            raise ManifestError(f"model manifest {path}: {field} is not supported: {why}")
    try:
        return ModelManifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ManifestError(f"model manifest {path} is invalid: {problems}") from exc


def calibration_path(manifest_path: Path, override: Path | None = None) -> Path:
    """Where a model's calibration lives: ``override`` (settings ``matching.calibration``) or
    ``calibration.json`` beside its manifest. The one place this rule is written."""
    return override if override is not None else manifest_path.parent / CALIBRATION_FILE
