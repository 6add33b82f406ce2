"""From decoded RGB pixels to the tensor a model expects, exactly as its manifest describes.

The arithmetic is float32 throughout, in the order the manifest states (``(pixel - mean) *
scale``), so that a converted model sees the same numbers its original framework computed. All of
it is blocking CPU work: async callers run it with ``asyncio.to_thread``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

from bioauth.errors import InvalidInput
from bioauth.inference.manifest import InputSpec

__all__ = ["to_model_input"]


def to_model_input(rgb: npt.NDArray[np.uint8], spec: InputSpec) -> npt.NDArray[np.float32]:
    """One crop as the model's input tensor without the batch axis ((C, H, W) or (H, W, C)).

    ``rgb`` is (H, W, 3) uint8 as ``bioauth.inference.decode.decode_image`` returns it; a crop of
    another size is resized to the manifest's with bilinear filtering (aligned chips already have
    the right size and are not touched). Blocking: run it in a worker thread from async code.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InvalidInput(
            f"expected an (H, W, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}", field="image"
        )
    if rgb.shape[:2] != (spec.height, spec.width):
        resized = Image.fromarray(rgb, mode="RGB").resize(
            (spec.width, spec.height), Image.Resampling.BILINEAR
        )
        rgb = np.asarray(resized, dtype=np.uint8)
    pixels = rgb[:, :, ::-1] if spec.channel_order == "BGR" else rgb
    mean = np.asarray(spec.mean, dtype=np.float32)
    scale = np.asarray(spec.scale, dtype=np.float32)
    tensor = (pixels.astype(np.float32) - mean) * scale
    if spec.layout == "NCHW":
        tensor = tensor.transpose(2, 0, 1)
    return np.ascontiguousarray(tensor, dtype=np.float32)
