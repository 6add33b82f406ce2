"""`bioauth eval ...` (the module is not named eval.py to keep clear of the builtin)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("eval", help="accuracy evaluation")
    group = parser.add_subparsers(dest="eval_command", required=True, metavar="SUBCOMMAND")
    del group  # subcommands land with their issues
