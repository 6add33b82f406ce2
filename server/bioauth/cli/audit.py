"""`bioauth audit ...`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("audit", help="audit commands")
    group = parser.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    del group  # subcommands land with their issues
