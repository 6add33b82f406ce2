"""`bioauth db ...`: schema migrations of the configured template store."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bioauth.config import load_settings
from bioauth.errors import BioauthError
from bioauth.store.factory import open_store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("db", help="template store administration")
    group = parser.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    migrate = group.add_parser(
        "migrate", help="apply pending schema migrations to the store named by store.url"
    )
    migrate.set_defaults(handler=_migrate)


async def _run_migrate(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    store = await open_store(settings.store, migrate=False, verify_schema=False)
    try:
        applied = await store.migrate()
        version = await store.schema_version()
    finally:
        await store.close()
    done = ", ".join(str(v) for v in applied) if applied else "none pending"
    print(f"{store.backend} store: applied {done}; schema version {version}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run_migrate(args))
    except BioauthError as exc:
        print(f"bioauth db migrate: {exc.message}", file=sys.stderr)
        return 1
