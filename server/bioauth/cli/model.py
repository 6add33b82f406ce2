"""`bioauth model ...`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("model", help="model commands")
    group = parser.add_subparsers(dest="model_command", required=True, metavar="SUBCOMMAND")
    del group  # subcommands land with their issues
