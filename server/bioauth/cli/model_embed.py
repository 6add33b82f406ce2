"""`bioauth model embed`: anyone can check the model on their own images.

Each image goes through exactly the server's path (decode with the configured limits, the
manifest's preprocessing, the same ONNX Runtime engine), so what it prints is what enrolment
would compute. One JSON object per line and per image, in argument order; an image that cannot
be used gets a line with ``error`` instead, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bioauth.config import load_settings
from bioauth.errors import BioauthError

__all__ = ["register_embed"]


def register_embed(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    embed = group.add_parser(
        "embed",
        help="print each image's embedding as one JSON line",
        description=(
            "Decode each image (JPEG or PNG; an aligned face crop), run the model and print one "
            'JSON line per image: {"file": ..., "model_id": ..., "embedding": [...]}.'
        ),
    )
    embed.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="MANIFEST",
        help="model manifest (default: settings inference.manifest)",
    )
    embed.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    embed.set_defaults(handler=_embed)


def _embed(args: argparse.Namespace) -> int:
    # Imported here so that other `bioauth` commands do not load ONNX Runtime.
    from bioauth.inference.decode import decode_image
    from bioauth.inference.engine import OnnxEngine
    from bioauth.inference.manifest import load_manifest
    from bioauth.inference.preprocess import to_model_input
    from bioauth.modelbuild import ensure_built

    try:
        settings = load_settings(args.config)
        manifest_path: Path = args.model or settings.inference.manifest
        manifest = load_manifest(manifest_path)
        engine = OnnxEngine(
            ensure_built(manifest_path, settings.inference.cache_dir), manifest, settings.inference
        )
    except (BioauthError, OSError, ValueError) as exc:
        print(f"bioauth model embed: {exc}", file=sys.stderr)
        return 1
    status = 0
    limit = settings.image.max_encoded_bytes
    for image in args.images:
        line: dict[str, object] = {"file": str(image)}
        try:
            with image.open("rb") as stream:
                data = stream.read(limit + 1)  # one byte over is enough for the size check
            rgb = decode_image(data, settings.image, field=str(image))
            embedding = engine.run(to_model_input(rgb, manifest.input)[None])[0]
            line["model_id"] = manifest.model_id
            line["embedding"] = [float(value) for value in embedding]
        except BioauthError as exc:
            line["error"] = exc.message
            status = 1
        except OSError as exc:
            line["error"] = f"{image}: cannot be read: {exc.strerror}"
            status = 1
        print(json.dumps(line), flush=True)
    return status
