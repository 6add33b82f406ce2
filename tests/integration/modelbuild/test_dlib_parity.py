"""The converted ONNX model reproduces dlib's face descriptors on real face chips.

The reference descriptors in faces.json were computed by dlib 20.0.1 from the same weights on
the same 150x150 chips; the chips are decoded here with Pillow as RGB uint8 and normalised by
the committed manifest alone, so these checks cover the manifest as well as the graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
from PIL import Image

from bioauth.inference.manifest import ModelManifest, load_manifest
from bioauth.modelbuild import ensure_built
from bioauth.modelbuild.dlib_converter import PACKAGE, WEIGHTS_FILE
from bioauth.modelbuild.sources import package_file
from tests.support.environment import missing
from tests.support.face_pairs import (
    DLIB_USUAL_THRESHOLD,
    FACE_SET_PAIRS,
    calibrated_split,
    raw_euclidean,
    split_pairs,
)
from tests.support.faces import FaceSet, face_set

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]
MANIFEST = REPO_ROOT / "models" / "dlib_resnet_v1" / "manifest.json"
MIN_COSINE = 0.99999
MAX_ABS_DIFF = 1e-4

Floats = npt.NDArray[np.float32]
Pixels = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def manifest() -> ModelManifest:
    return load_manifest(MANIFEST)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    path = ensure_built(MANIFEST, tmp_path_factory.mktemp("model-cache"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def faces() -> FaceSet:
    faces = face_set()
    assert faces.model.startswith("dlib_face_recognition_resnet_model_v1")
    return faces


@pytest.fixture(scope="module")
def pixels(faces: FaceSet) -> list[Pixels]:
    """Each chip decoded with Pillow as RGB uint8, in the face set's order."""
    decoded: list[Pixels] = []
    for face in faces:
        with Image.open(face.chip) as image:
            decoded.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
    return decoded


def _tensor(manifest: ModelManifest, images: list[Pixels]) -> Floats:
    """Normalise HWC RGB uint8 crops exactly as the manifest says (float32 arithmetic)."""
    spec = manifest.input
    batch = np.stack(images).astype(np.float32)
    assert batch.shape[1:] == (spec.height, spec.width, spec.channels)
    if spec.channel_order == "BGR":
        batch = batch[..., ::-1]
    mean = np.asarray(spec.mean, np.float32)
    scale = np.asarray(spec.scale, np.float32)
    batch = (batch - mean) * scale
    if spec.layout == "NCHW":
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32)


def _embed(session: ort.InferenceSession, manifest: ModelManifest, images: list[Pixels]) -> Floats:
    (out,) = session.run(
        [manifest.onnx.output_name], {manifest.onnx.input_name: _tensor(manifest, images)}
    )
    assert out.shape == (len(images), manifest.embedding_size)
    return np.asarray(out, np.float32)


def _compare(got: Floats, want: Floats) -> tuple[float, float]:
    cosine = float(np.dot(got, want) / (np.linalg.norm(got) * np.linalg.norm(want)))
    return cosine, float(np.max(np.abs(got - want)))


def test_every_chip_matches_dlib(
    session: ort.InferenceSession, manifest: ModelManifest, faces: FaceSet, pixels: list[Pixels]
) -> None:
    embeddings = _embed(session, manifest, pixels)
    worst_cosine, worst_diff, failures = 1.0, 0.0, []
    for face, got in zip(faces, embeddings, strict=True):
        cosine, diff = _compare(got, face.descriptor.astype(np.float32))
        worst_cosine, worst_diff = min(worst_cosine, cosine), max(worst_diff, diff)
        if cosine < MIN_COSINE or diff > MAX_ABS_DIFF:
            failures.append(f"{face.chip}: cosine {cosine:.7f}, max abs diff {diff:.2e}")
    print(f"{len(faces)} chips: min cosine {worst_cosine:.8f}, max abs diff {worst_diff:.2e}")
    assert len(faces) == 19
    assert not failures, "\n".join(failures)


def test_pairs_split_at_dlibs_usual_threshold(
    session: ort.InferenceSession, manifest: ModelManifest, faces: FaceSet, pixels: list[Pixels]
) -> None:
    assert manifest.metric == "euclidean"
    embeddings = _embed(session, manifest, pixels)
    identities = [face.identity for face in faces]
    genuine, impostor = split_pairs(identities, embeddings, raw_euclidean)
    print(f"genuine max {max(genuine):.4f}, impostor min {min(impostor):.4f}")
    assert (len(genuine), len(impostor)) == FACE_SET_PAIRS
    assert max(genuine) < DLIB_USUAL_THRESHOLD < min(impostor)


def test_pairs_split_at_the_calibrated_fmr_1e_3_point(
    session: ort.InferenceSession, manifest: ModelManifest, faces: FaceSet, pixels: list[Pixels]
) -> None:
    threshold, distance = calibrated_split(MANIFEST)
    embeddings = _embed(session, manifest, pixels)
    genuine, impostor = split_pairs([face.identity for face in faces], embeddings, distance)
    print(f"genuine max {max(genuine):.4f}, impostor min {min(impostor):.4f}, e1p1 {threshold}")
    assert (len(genuine), len(impostor)) == FACE_SET_PAIRS
    assert max(genuine) < threshold < min(impostor)


def test_batch_size_does_not_change_an_embedding(
    session: ort.InferenceSession, manifest: ModelManifest, pixels: list[Pixels]
) -> None:
    images = pixels
    together = _embed(session, manifest, images)
    for index in (0, len(images) - 1):
        alone = _embed(session, manifest, [images[index]])[0]
        np.testing.assert_allclose(alone, together[index], atol=1e-5)


def test_agrees_with_dlib_beyond_the_reference_set(
    session: ort.InferenceSession, manifest: ModelManifest, pixels: list[Pixels]
) -> None:
    """dlib itself (test-only) on inputs faces.json does not cover: noise, flat grey, mirrored."""
    try:
        import dlib
    except ImportError:
        missing("dlib (package dlib-bin)", "pip install -e '.[dev]' installs it for cross-checks")
    model = dlib.face_recognition_model_v1(str(package_file(PACKAGE, WEIGHTS_FILE)))
    rng = np.random.default_rng(2026)
    images: list[Pixels] = [
        rng.integers(0, 256, size=(150, 150, 3), dtype=np.uint8),
        np.full((150, 150, 3), 128, np.uint8),
        np.ascontiguousarray(pixels[0][:, ::-1]),
        pixels[-1],
    ]
    ours = _embed(session, manifest, images)
    for image, got in zip(images, ours, strict=True):
        want = np.asarray(model.compute_face_descriptor(image), np.float32)
        cosine, diff = _compare(got, want)
        assert cosine >= MIN_COSINE
        assert diff <= MAX_ABS_DIFF
