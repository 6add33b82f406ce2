"""A scripted stand-in for the batcher, for service-layer tests that must choose embeddings.

The real model cannot be told "these two crops are the same person"; this fake can. A test
registers the embedding it wants for an image (keyed by the exact model input that image becomes,
so the service's decoding and preprocessing still run for real); any other input gets a
deterministic pseudo-random unit vector. It records the deadline of every call, so tests can check
that the request's deadline reaches inference.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

from bioauth.config import ImageSettings
from bioauth.inference.decode import RawImage, decode_image
from bioauth.inference.manifest import ModelManifest
from bioauth.inference.preprocess import to_model_input

__all__ = ["ScriptedEmbedder"]


def _key(x: npt.NDArray[np.float32]) -> str:
    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes()).hexdigest()


class ScriptedEmbedder:
    """Implements ``bioauth.service.face_embedder.Embedder``."""

    def __init__(self, manifest: ModelManifest, images: ImageSettings | None = None) -> None:
        self._manifest = manifest
        self._images = images or ImageSettings()
        self._scripted: dict[str, npt.NDArray[np.float32]] = {}
        self.deadlines: list[float | None] = []
        """The deadline of every ``embed`` call, in call order."""

    def register(self, image: bytes | RawImage, embedding: npt.ArrayLike) -> None:
        """Make ``image`` embed to ``embedding``."""
        vector = np.asarray(embedding, dtype=np.float32)
        if vector.shape != (self._manifest.embedding_size,):
            raise ValueError(
                f"embedding must have shape ({self._manifest.embedding_size},), got {vector.shape}"
            )
        x = to_model_input(decode_image(image, self._images), self._manifest.input)
        self._scripted[_key(x)] = vector

    async def embed(
        self, x: npt.NDArray[np.float32], *, deadline: float | None
    ) -> npt.NDArray[np.float32]:
        self.deadlines.append(deadline)
        key = _key(x)
        scripted = self._scripted.get(key)
        if scripted is not None:
            return scripted.copy()
        rng = np.random.default_rng(int(key[:16], 16))
        vector = rng.standard_normal(self._manifest.embedding_size)
        unit: npt.NDArray[np.float32] = (vector / np.linalg.norm(vector)).astype(np.float32)
        return unit
