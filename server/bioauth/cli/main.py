"""Entry point of the admin command ``bioauth``.

Each subcommand group lives in its own module with a ``register(subparsers)`` function, so that
work on different groups never touches the same file. A handler returns the process exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bioauth.cli import audit, db, eval_cmd, keys, model, serve

_GROUPS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    serve.register,
    model.register,
    db.register,
    keys.register,
    audit.register,
    eval_cmd.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bioauth", description="bioauth server and admin tasks")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML settings file (default: $BIOAUTH_CONFIG, else embedded defaults)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _GROUPS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
