"""Embeddings of every chip, through the project's own model or from dlib's reference descriptors.

The model path is exactly the server's (decode with the configured limits, the manifest's
preprocessing, the ONNX Runtime engine), run in batches. Results are cached per model (its id
and ONNX SHA-256) and per chip (the SHA-256 of the chip's bytes), so a rerun only hashes files,
and a changed chip or model is never served a stale embedding. The cache holds embeddings of
public evaluation images only, never anything a user sent.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from bioauth.config import Settings
from bioauth.evaluation.dataset import LfwSet

__all__ = ["EmbeddingRun", "embed_with_model", "reference_embeddings"]


@dataclass(frozen=True)
class EmbeddingRun:
    """Embeddings (n, d) in chip order and how they were obtained."""

    embeddings: npt.NDArray[np.float64]
    source: str
    """``reference`` or ``model``."""
    model_id: str
    model_sha256: str | None
    metric: str
    computed: int
    """Chips run through the model in this call (0 on a fully cached rerun)."""
    seconds: float
    """Wall time of the model runs (not of hashing or cache reads)."""
    provider: str | None = None


def reference_embeddings(lfw: LfwSet) -> EmbeddingRun:
    """dlib's own descriptors shipped with the set (compared with euclidean distance)."""
    return EmbeddingRun(
        lfw.reference, "reference", "dlib-reference-descriptors", None, "euclidean", 0, 0.0
    )


def _cache_file(cache_dir: Path, model_id: str, sha256: str) -> Path:
    return cache_dir / "eval-embeddings" / f"{model_id}-{sha256[:16]}.npz"


def _read_cache(path: Path) -> dict[str, npt.NDArray[np.float32]]:
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as data:
        hashes = [str(h) for h in data["hashes"]]
        rows = np.asarray(data["embeddings"], dtype=np.float32)
    return dict(zip(hashes, rows, strict=True))


def _write_cache(path: Path, cache: dict[str, npt.NDArray[np.float32]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    hashes = np.asarray(sorted(cache), dtype="U64")
    rows = np.stack([cache[h] for h in hashes]).astype(np.float32)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            np.savez(stream, hashes=hashes, embeddings=rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def embed_with_model(
    lfw: LfwSet,
    manifest_path: Path,
    settings: Settings,
    *,
    batch_size: int = 32,
    progress: bool = True,
) -> EmbeddingRun:
    """Every chip through the model of ``manifest_path`` (built into the cache if needed)."""
    # Imported here so that `bioauth eval` with reference descriptors does not load ORT.
    from bioauth.inference.decode import decode_image
    from bioauth.inference.engine import OnnxEngine
    from bioauth.inference.manifest import load_manifest
    from bioauth.inference.preprocess import to_model_input
    from bioauth.modelbuild import ensure_built

    manifest = load_manifest(manifest_path)
    cache_path = _cache_file(settings.inference.cache_dir, manifest.model_id, manifest.onnx.sha256)
    cache = _read_cache(cache_path)
    contents: list[bytes] = []
    hashes: list[str] = []
    for chip in lfw.chips:
        data = (lfw.root / chip).read_bytes()
        contents.append(data)
        hashes.append(hashlib.sha256(data).hexdigest())
    missing = [i for i, h in enumerate(hashes) if h not in cache]
    seconds = 0.0
    provider: str | None = None
    if missing:
        engine = OnnxEngine(
            ensure_built(manifest_path, settings.inference.cache_dir), manifest, settings.inference
        )
        provider = engine.providers[0]
        bar = tqdm(
            total=len(missing),
            desc=f"embedding with {manifest.model_id}",
            unit="chip",
            disable=not progress,
        )
        try:
            for start in range(0, len(missing), batch_size):
                chunk = missing[start : start + batch_size]
                batch = np.stack(
                    [
                        to_model_input(decode_image(contents[i], settings.image), manifest.input)
                        for i in chunk
                    ]
                )
                began = time.perf_counter()
                out = engine.run(batch)
                seconds += time.perf_counter() - began
                for i, row in zip(chunk, out, strict=True):
                    cache[hashes[i]] = row
                bar.update(len(chunk))
                if start // batch_size % 20 == 19:
                    _write_cache(cache_path, cache)  # an interrupted run keeps its work
        finally:
            bar.close()
        _write_cache(cache_path, cache)
    embeddings = np.stack([cache[h] for h in hashes]).astype(np.float64)
    return EmbeddingRun(
        embeddings,
        "model",
        manifest.model_id,
        manifest.onnx.sha256,
        manifest.metric,
        len(missing),
        seconds,
        provider,
    )
