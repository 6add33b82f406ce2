"""The dlib face ResNet converter: weights file in, ONNX bytes and a fresh manifest out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from bioauth.inference.manifest import (
    SCHEMA_VERSION,
    InputSpec,
    ModelManifest,
    OnnxSpec,
    SourceSpec,
)
from bioauth.modelbuild.dlib_resnet import DlibNetwork, read_network
from bioauth.modelbuild.onnx_export import INPUT_NAME, OUTPUT_NAME, to_onnx
from bioauth.modelbuild.sources import package_file, package_version, sha256_bytes

__all__ = [
    "CONVERTER",
    "PACKAGE",
    "WEIGHTS_FILE",
    "Converted",
    "convert",
    "fresh_manifest",
    "installed_weights",
]

CONVERTER: Final = "dlib-resnet"
PACKAGE = "face_recognition_models"
WEIGHTS_FILE = "models/dlib_face_recognition_resnet_model_v1.dat"
ONNX_FILE = "dlib_face_recognition_resnet_model_v1.onnx"
_ID_PREFIX = "dlib-resnet-v1-"
_ID_HASH_CHARS = 16
_SCALE = 1.0 / 256.0  # dlib's input layer divides by 256, not 255


@dataclass(frozen=True)
class Converted:
    onnx_bytes: bytes
    network: DlibNetwork
    source_sha256: str

    @property
    def model_id(self) -> str:
        """Derived from the weights alone, so rebuilding never changes template AAD or tokens."""
        return _ID_PREFIX + self.source_sha256[:_ID_HASH_CHARS]


def convert(weights: bytes) -> Converted:
    """Parse dlib's serialized network and write the equivalent ONNX model (deterministic)."""
    source_sha256 = sha256_bytes(weights)
    network = read_network(weights)
    model = to_onnx(
        network,
        doc=(
            "dlib_face_recognition_resnet_model_v1 converted by bioauth.modelbuild. Input: "
            "(pixel - mean) / 256 per RGB channel, NCHW float32, 150x150 aligned chips."
        ),
        metadata={
            "bioauth.model_id": _ID_PREFIX + source_sha256[:_ID_HASH_CHARS],
            "bioauth.source_sha256": source_sha256,
        },
    )
    return Converted(model.SerializeToString(deterministic=True), network, source_sha256)


def fresh_manifest(converted: Converted) -> ModelManifest:
    """The manifest that describes ``converted``; committed once, then only checked against."""
    network = converted.network
    mean = tuple(float(np.float32(v)) for v in network.input.mean_rgb)
    return ModelManifest(
        schema_version=SCHEMA_VERSION,
        model_id=converted.model_id,
        name="dlib_face_recognition_resnet_model_v1",
        version="1",
        input=InputSpec(
            width=network.input.cols,
            height=network.input.rows,
            channels=3,
            channel_order="RGB",
            layout="NCHW",
            dtype="float32",
            mean=mean,
            scale=(_SCALE, _SCALE, _SCALE),
        ),
        embedding_size=network.embedding_size,
        metric="euclidean",
        onnx=OnnxSpec(
            file=ONNX_FILE,
            sha256=sha256_bytes(converted.onnx_bytes),
            input_name=INPUT_NAME,
            output_name=OUTPUT_NAME,
        ),
        source=SourceSpec(
            converter=CONVERTER,
            package=PACKAGE,
            package_version=package_version(PACKAGE),
            file=WEIGHTS_FILE,
            sha256=converted.source_sha256,
        ),
    )


def installed_weights() -> bytes:
    """The weights file shipped by the installed ``face_recognition_models``."""
    return package_file(PACKAGE, WEIGHTS_FILE).read_bytes()
