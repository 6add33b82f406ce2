"""A tiny ONNX embedding model and its manifest, built in memory for tests.

It has the real model's contract (NCHW float input with a dynamic batch axis, one
(batch, embedding_size) output, a manifest with the file's SHA-256) and runs in microseconds, so
engine, batcher and CLI tests exercise real ONNX Runtime sessions without the real network.
"""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bioauth.inference.manifest import InputSpec, ModelManifest, OnnxSpec

__all__ = ["build_tiny_model", "tiny_manifest"]

_OPSET = 17


def build_tiny_model(
    *,
    height: int = 32,
    width: int = 32,
    embedding_size: int = 8,
    input_name: str = "image",
    output_name: str = "embedding",
    seed: int = 0,
) -> bytes:
    """Serialized ONNX graph: average pool -> flatten -> fixed random projection.

    Deterministic: the same arguments give the same bytes.
    """
    pool = max(1, min(height, width) // 8)
    features = 3 * ((height - pool) // pool + 1) * ((width - pool) // pool + 1)
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((features, embedding_size)).astype(np.float32)
    nodes = [
        helper.make_node(
            "AveragePool", [input_name], ["pooled"], kernel_shape=[pool, pool], strides=[pool, pool]
        ),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "weights"], [output_name]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_embedding",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", 3, height, width])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", embedding_size])],
        initializer=[numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(
        graph, producer_name="bioauth-tests", opset_imports=[helper.make_opsetid("", _OPSET)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def tiny_manifest(
    model_bytes: bytes,
    *,
    height: int = 32,
    width: int = 32,
    embedding_size: int = 8,
    input_name: str = "image",
    output_name: str = "embedding",
    file: str = "tiny.onnx",
) -> ModelManifest:
    """A manifest describing ``build_tiny_model``'s output (dlib-style normalisation)."""
    return ModelManifest(
        schema_version=1,
        model_id="tiny-test-model",
        name="tiny test model",
        version="1",
        input=InputSpec(
            width=width,
            height=height,
            channel_order="RGB",
            layout="NCHW",
            mean=(122.782, 117.001, 104.298),
            scale=(1 / 256, 1 / 256, 1 / 256),
        ),
        embedding_size=embedding_size,
        metric="euclidean",
        onnx=OnnxSpec(
            file=file,
            sha256=hashlib.sha256(model_bytes).hexdigest(),
            input_name=input_name,
            output_name=output_name,
        ),
    )
