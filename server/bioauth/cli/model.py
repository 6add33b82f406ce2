"""`bioauth model ...`: getting a model's ONNX file and checking it.

``build`` converts the original weights into the cache (or ``--out``), checks the result
against the committed manifest and prints the file's path; a second run only re-hashes the
file. ``build --print-manifest`` writes a fresh manifest for the installed weights to stdout,
for committing a new model; committed files are never written by this command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bioauth.cli.model_embed import register_embed
from bioauth.config import load_settings
from bioauth.errors import BioauthError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("model", help="build and check face-embedding models")
    group = parser.add_subparsers(dest="model_command", required=True, metavar="SUBCOMMAND")
    _register_build(group)
    register_embed(group)


def _register_build(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    build = group.add_parser(
        "build",
        help="convert the model into the cache, verify its SHA-256, print its path",
        description=(
            "Convert the model named by the manifest into the cache (idempotent: an existing "
            "file with the right hash is reused), verify it and print its path."
        ),
    )
    build.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="model manifest (default: settings inference.manifest)",
    )
    build.add_argument(
        "--out",
        type=Path,
        default=None,
        help="cache folder to build into (default: settings inference.cache_dir)",
    )
    build.add_argument(
        "--print-manifest",
        action="store_true",
        help="print a fresh manifest for the installed dlib weights instead of building",
    )
    build.set_defaults(handler=_build)


def _build(args: argparse.Namespace) -> int:
    # Imported here so that other `bioauth` commands do not load onnx.
    from bioauth.modelbuild import convert, ensure_built, fresh_manifest, installed_weights

    try:
        if args.print_manifest:
            sys.stdout.write(fresh_manifest(convert(installed_weights())).to_json())
            return 0
        settings = load_settings(args.config)
        manifest = args.manifest or settings.inference.manifest
        cache_dir = args.out or settings.inference.cache_dir
        print(ensure_built(manifest, cache_dir))
    except (BioauthError, OSError) as exc:
        print(f"bioauth model build: {exc}", file=sys.stderr)
        return 1
    return 0
