"""`bioauth serve`: run the server on the settings (embedded defaults when none are given)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bioauth.app import serve
from bioauth.config import load_settings
from bioauth.errors import BioauthError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("serve", help="run the gRPC server until SIGTERM/SIGINT")
    parser.add_argument(
        "--port", type=int, default=None, help="override server.port (0: any free port)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    overrides = {} if args.port is None else {"server": {"port": args.port}}
    settings = load_settings(args.config, **overrides)  # validated like the file and environment
    try:
        return asyncio.run(serve(settings))
    except (OSError, BioauthError) as exc:
        # Start-up failures an operator fixes (port taken, key provider or store down): one line.
        message = exc.message if isinstance(exc, BioauthError) else str(exc)
        print(f"bioauth serve: {message}", file=sys.stderr)
        return 1
