"""`bioauth serve`: run the server on the settings (embedded defaults when none are given)."""

from __future__ import annotations

import argparse
import asyncio

from bioauth.app import serve
from bioauth.config import load_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("serve", help="run the gRPC server until SIGTERM/SIGINT")
    parser.add_argument(
        "--port", type=int, default=None, help="override server.port (0: any free port)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    overrides = {}
    settings = load_settings(args.config)
    if args.port is not None:
        overrides["server"] = settings.server.model_copy(update={"port": args.port})
        settings = settings.model_copy(update=overrides)
    return asyncio.run(serve(settings))
