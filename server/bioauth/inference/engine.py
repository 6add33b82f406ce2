"""The ONNX Runtime session behind the batcher: one per device, checked against its manifest.

The manifest is the contract; the graph must agree with it before the server takes a request: the
file's SHA-256, the input and output names, the input's fixed sizes with a free batch axis, and the
embedding size (checked on a warm-up run, since graphs often leave it symbolic). A mismatch is a
deployment error raised at start-up, never a wrong embedding later.

Execution providers come from settings in order of preference; those this build of ONNX Runtime
lacks are skipped, so one setting serves the GPU image (TensorRT, CUDA) and the CPU image alike.
Every ONNX Runtime error is translated into a ``bioauth.errors`` type here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from bioauth.config import InferenceSettings
from bioauth.errors import InternalError, Unavailable
from bioauth.inference.manifest import ManifestError, ModelManifest

__all__ = ["OnnxEngine", "select_providers"]

_ORT_FLOAT = "tensor(float)"


def select_providers(preferred: Sequence[str]) -> list[str]:
    """The preferred providers this ONNX Runtime build has, in the preferred order."""
    available = set(ort.get_available_providers())
    chosen = [name for name in preferred if name in available]
    if not chosen:
        raise Unavailable(
            f"none of the configured execution providers {list(preferred)} is available "
            f"(this ONNX Runtime has {sorted(available)})"
        )
    return chosen


class OnnxEngine:
    """A checked, warmed-up ONNX Runtime session for one face-embedding model.

    ``run`` is blocking and meant for one thread at a time (the batcher's worker thread).
    """

    def __init__(
        self, model_path: Path, manifest: ModelManifest, settings: InferenceSettings
    ) -> None:
        self.manifest = manifest
        spec = manifest.input
        self._item_shape: tuple[int, ...] = (
            (spec.channels, spec.height, spec.width)
            if spec.layout == "NCHW"
            else (spec.height, spec.width, spec.channels)
        )
        model_bytes = _read_checked(model_path, manifest)
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        providers = select_providers(settings.providers)
        try:
            self._session = ort.InferenceSession(
                model_bytes, sess_options=options, providers=providers
            )
        except Exception as exc:
            raise ManifestError(
                f"ONNX Runtime cannot load {model_path.name} for model {manifest.model_id}"
            ) from exc
        self._check_signature()
        if settings.warmup:
            self.warm_up()

    @property
    def item_shape(self) -> tuple[int, ...]:
        return self._item_shape

    @property
    def providers(self) -> list[str]:
        """The providers the session actually uses (ORT may drop one that fails to start)."""
        names: list[str] = self._session.get_providers()
        return names

    def warm_up(self) -> None:
        """Run one zero crop so that graph setup is paid before the first real call; it also
        checks the embedding size, which graphs often leave symbolic."""
        self.run(np.zeros((1, *self._item_shape), dtype=np.float32))

    def run(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Embeddings (N, embedding_size) float32 of a (N, *item_shape) float32 batch. Blocking."""
        if batch.ndim != len(self._item_shape) + 1 or batch.shape[1:] != self._item_shape:
            raise InternalError(f"batch shape {batch.shape} does not fit input {self._item_shape}")
        onnx_spec = self.manifest.onnx
        try:
            outputs = self._session.run(
                [onnx_spec.output_name],
                {onnx_spec.input_name: batch.astype(np.float32, copy=False)},
            )
        except Exception as exc:
            raise InternalError(
                f"ONNX Runtime failed on a batch of {len(batch)} ({type(exc).__name__})"
            ) from exc
        embeddings = np.asarray(outputs[0])
        expected = (len(batch), self.manifest.embedding_size)
        if embeddings.shape != expected:
            raise InternalError(
                f"model {self.manifest.model_id} returned shape {embeddings.shape}, "
                f"its manifest says {expected}"
            )
        return embeddings.astype(np.float32, copy=False)

    def _check_signature(self) -> None:
        onnx_spec = self.manifest.onnx
        inputs = {node.name: node for node in self._session.get_inputs()}
        outputs = {node.name: node for node in self._session.get_outputs()}
        if onnx_spec.input_name not in inputs:
            raise ManifestError(
                f"model {self.manifest.model_id}: no input {onnx_spec.input_name!r} "
                f"(graph inputs: {sorted(inputs)})"
            )
        if onnx_spec.output_name not in outputs:
            raise ManifestError(
                f"model {self.manifest.model_id}: no output {onnx_spec.output_name!r} "
                f"(graph outputs: {sorted(outputs)})"
            )
        node = inputs[onnx_spec.input_name]
        if node.type != _ORT_FLOAT:
            raise ManifestError(
                f"model {self.manifest.model_id}: input is {node.type}, expected {_ORT_FLOAT}"
            )
        shape = list(node.shape)
        if len(shape) != len(self._item_shape) + 1:
            raise ManifestError(
                f"model {self.manifest.model_id}: input shape {shape} has rank {len(shape)}, "
                f"the manifest describes (batch, *{self._item_shape})"
            )
        if isinstance(shape[0], int):
            raise ManifestError(
                f"model {self.manifest.model_id}: batch axis is fixed at {shape[0]}; the batcher "
                "needs a dynamic batch dimension"
            )
        for axis, (actual, wanted) in enumerate(zip(shape[1:], self._item_shape, strict=True)):
            if isinstance(actual, int) and actual != wanted:
                raise ManifestError(
                    f"model {self.manifest.model_id}: input axis {axis + 1} is {actual}, "
                    f"the manifest says {wanted} ({self.manifest.input.layout})"
                )
        out_shape = list(outputs[onnx_spec.output_name].shape)
        if len(out_shape) != 2 or (
            isinstance(out_shape[1], int) and out_shape[1] != self.manifest.embedding_size
        ):
            raise ManifestError(
                f"model {self.manifest.model_id}: output shape {out_shape} is not "
                f"(batch, {self.manifest.embedding_size})"
            )


def _read_checked(model_path: Path, manifest: ModelManifest) -> bytes:
    """The file's bytes, once, so the session loads exactly the bytes whose hash was checked."""
    try:
        data = model_path.read_bytes()
    except OSError as exc:
        raise ManifestError(
            f"ONNX file for model {manifest.model_id} cannot be read at {model_path}: "
            f"{exc.strerror} (run `bioauth model build`)"
        ) from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest.onnx.sha256:
        raise ManifestError(
            f"ONNX file {model_path} has SHA-256 {digest}, but model {manifest.model_id}'s "
            f"manifest says {manifest.onnx.sha256}; rebuild it with `bioauth model build`"
        )
    return data
