"""`bioauth keys ...`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("keys", help="keys commands")
    group = parser.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    del group  # subcommands land with their issues
