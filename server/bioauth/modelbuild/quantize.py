"""Static int8 quantization of a float ONNX model with ONNX Runtime's QDQ quantizer.

Why QDQ static int8: on the CPU, ONNX Runtime fuses ``DequantizeLinear -> Conv ->
QuantizeLinear`` into integer convolutions (u8 activations x s8 weights, int32 accumulation),
so the arithmetic really is 8-bit; fp16 on a CPU would only add casts around float kernels.

The recipe (all of it in the manifest's ``source``, see ``QuantizedSourceSpec``):

- the float graph is first pre-processed by ONNX Runtime (shape inference and the basic graph
  optimizations), which folds each dlib ``affine`` layer (``Mul``, ``Add``) into the convolution
  before it, so one quantized convolution replaces conv + scale + shift;
- activations are ``QUInt8`` (asymmetric: after ReLU a zero point of 0 keeps all 256 levels),
  weights ``QInt8`` symmetric and per output channel (the folded affine scales differ by channel,
  so a per-tensor scale would waste most levels on the small channels);
- ``reduce_range``: weights use 7 bits. Without VNNI (AVX2, AVX-512 without VNNI) the u8 x s8
  kernels sum pairs of products in int16 (``vpmaddubsw``), which saturates with full-range
  weights: measured on this model, the integer kernels then drift to a cosine of 0.9945 with
  the float model while the same QDQ graph evaluated in float gives 0.9994. With 7-bit weights
  no sum can saturate, so every x86 CPU computes the same integers;
- the final projection (``MatMul``, 256 -> 128) stays float: it is 0.2% of the work, and
  quantizing it puts an 8-bit grid on the embedding itself;
- MinMax calibration. The activation ranges are computed once from a fixed, documented set of
  chips and committed beside the manifest (``ranges_file``); a build feeds them to
  ``quantize_static`` through its calibration cache instead of running the chips again. So a
  build needs no data set and never depends on a CPU's float rounding: the same base model, the
  same ranges and the same ONNX Runtime give the same bytes on any machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.calibrate import TensorsData, load_tensors_data, save_tensors_data
from onnxruntime.quantization.shape_inference import quant_pre_process

from bioauth.inference.manifest import QuantizedSourceSpec
from bioauth.modelbuild.errors import ModelBuildError
from bioauth.modelbuild.sources import sha256_bytes

__all__ = [
    "QUANTIZER",
    "RANGES_SCHEMA",
    "Ranges",
    "quantize_base",
    "calibrate",
    "quantize",
    "quantized_model_id",
    "ranges_document",
    "read_ranges",
]

QUANTIZER: Final = "onnxruntime-qdq-static"
RANGES_SCHEMA: Final = 1

Ranges = dict[str, tuple[float, float]]
"""Activation tensor name -> (lowest, highest) seen in calibration, float32 values."""

_log = logging.getLogger(__name__)


class _ChipReader(CalibrationDataReader):
    """Feeds calibration inputs one at a time, in the given (fixed) order."""

    def __init__(self, input_name: str, inputs: Iterable[npt.NDArray[np.float32]]) -> None:
        self._input_name = input_name
        self._inputs: Iterator[npt.NDArray[np.float32]] = iter(inputs)

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        item = next(self._inputs, None)
        if item is None:
            return None
        return {self._input_name: np.ascontiguousarray(item[np.newaxis], dtype=np.float32)}


def _preprocess(base_onnx: Path, work: Path) -> Path:
    out = work / "preprocessed.onnx"
    quant_pre_process(str(base_onnx), str(out), skip_symbolic_shape=True)
    return out


def _recipe(source: QuantizedSourceSpec, model: Path) -> dict[str, Any]:
    graph = onnx.load(str(model), load_external_data=False).graph
    excluded = [node.name for node in graph.node if node.op_type in source.float_op_types]
    return {
        "quant_format": QuantFormat.QDQ,
        "per_channel": source.per_channel,
        "reduce_range": source.reduce_range,
        "activation_type": QuantType[source.activation_type],
        "weight_type": QuantType[source.weight_type],
        "calibrate_method": CalibrationMethod.MinMax,
        "nodes_to_exclude": excluded,
        "calibration_providers": ["CPUExecutionProvider"],
    }


def calibrate(
    base_onnx: Path, input_name: str, inputs: Iterable[npt.NDArray[np.float32]]
) -> Ranges:
    """MinMax activation ranges of the pre-processed ``base_onnx`` over ``inputs`` (each one
    preprocessed crop without the batch axis), exactly as ``quantize_static`` computes them.

    All outputs are kept in memory until the end (a peak of about 300 MB for 200 chips here):
    ONNX Runtime's ``CalibMaxIntermediateOutputs``, which merges them in chunks, gave narrower
    ranges here (1.32.0) and int8 embeddings with a cosine of 0.991 instead of 0.999 with the
    float ones.
    """
    with tempfile.TemporaryDirectory(prefix="bioauth-calibrate-") as tmp:
        work = Path(tmp)
        pre = _preprocess(base_onnx, work)
        cache = work / "ranges.json"
        quantize_static(
            str(pre),
            str(work / "unused.onnx"),
            _ChipReader(input_name, inputs),
            quant_format=QuantFormat.QDQ,
            calibrate_method=CalibrationMethod.MinMax,
            calibration_providers=["CPUExecutionProvider"],
            calibration_cache_path=cache,
        )
        data = load_tensors_data(cache)
    return {
        name: (_scalar(data[name].range_value[0]), _scalar(data[name].range_value[1]))
        for name in data
    }


def _scalar(value: Any) -> float:
    """The calibrator's one-element float32 array as a Python float (exact)."""
    array = np.asarray(value, dtype=np.float32)
    if array.size != 1:
        raise ValueError(f"expected one per-tensor value, got shape {array.shape}")
    return float(array.reshape(()))


def _array(value: float) -> npt.NDArray[np.float32]:
    """Back to the calibrator's own form (shape (1,)), so a cached range quantizes alike."""
    return np.array([value], dtype=np.float32)


def quantize(
    base_onnx: Path, ranges: Mapping[str, tuple[float, float]], source: QuantizedSourceSpec
) -> bytes:
    """The int8 QDQ model of ``base_onnx`` with the given activation ranges (no data needed)."""
    tensors = TensorsData(
        CalibrationMethod.MinMax,
        {name: (_array(low), _array(high)) for name, (low, high) in sorted(ranges.items())},
    )
    with tempfile.TemporaryDirectory(prefix="bioauth-quantize-") as tmp:
        work = Path(tmp)
        pre = _preprocess(base_onnx, work)
        cache = work / "ranges.json"
        save_tensors_data(tensors, cache)
        out = work / "quantized.onnx"
        quantize_static(
            str(pre),
            str(out),
            None,
            calibration_cache_path=cache,
            **_recipe(source, pre),
        )
        return out.read_bytes()


def ranges_document(ranges: Mapping[str, tuple[float, float]], about: Mapping[str, Any]) -> bytes:
    """Canonical bytes of a ranges file: ``about`` (where the ranges come from) and the ranges.

    Values are float32 numbers written as the shortest decimal of their float64 value, which
    reads back to the very same float32, so the file is an exact record.
    """
    document = {
        "schema_version": RANGES_SCHEMA,
        **about,
        "method": "MinMax",
        "ranges": {name: [low, high] for name, (low, high) in sorted(ranges.items())},
    }
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode("utf-8")


def read_ranges(path: Path, sha256: str) -> Ranges:
    """The ranges of a committed ranges file, refused unless it hashes to ``sha256``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelBuildError(f"quantization ranges {path} cannot be read: {exc.strerror}") from exc
    found = sha256_bytes(data)
    if found != sha256:
        raise ModelBuildError(
            f"quantization ranges {path} have SHA-256 {found}, the manifest expects {sha256}"
        )
    document = json.loads(data)
    if document.get("schema_version") != RANGES_SCHEMA or document.get("method") != "MinMax":
        raise ModelBuildError(f"quantization ranges {path}: unsupported schema or method")
    return {
        str(name): (float(low), float(high)) for name, (low, high) in document["ranges"].items()
    }


def quantized_model_id(prefix: str, source: QuantizedSourceSpec) -> str:
    """A stable id for a quantized model: ``prefix`` and a hash of the whole recipe.

    Same base model, ranges and settings, same id (so rebuilding never changes it); the
    quantizer's version is left out, since a version that produced other bytes is refused by
    the manifest's file hash anyway.
    """
    recipe = source.model_dump(mode="json", exclude={"package_version"})
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode("utf-8")).hexdigest()
    return f"{prefix}-{digest[:16]}"


def quantize_base(
    manifest_path: Path, source: QuantizedSourceSpec, base_model_id: str, base_onnx: Path
) -> bytes:
    """Quantize the already built base model with the committed ranges the manifest names."""
    ranges = read_ranges(manifest_path.parent / source.ranges_file, source.ranges_sha256)
    _log.info("quantizing %s with %d activation ranges", base_model_id, len(ranges))
    return quantize(base_onnx, ranges, source)
