"""`bioauth audit ...`: checking the per-tenant hash chains of the audit log."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bioauth.config import load_settings
from bioauth.errors import BioauthError
from bioauth.store.factory import open_store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("audit", help="audit log checks")
    group = parser.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    verify = group.add_parser(
        "verify",
        help="walk each tenant's audit chain; exit 1 naming the first row that fails",
    )
    verify.add_argument(
        "--tenant",
        action="append",
        default=None,
        help="tenant to check (repeatable; default: every tenant with an audit chain)",
    )
    verify.set_defaults(handler=_verify)


async def _run_verify(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    store = await open_store(settings.store, migrate=False)
    failures = 0
    try:
        tenants = args.tenant or await store.audit_tenants()
        if not tenants:
            print("no audit chains in the store")
        for tenant_id in tenants:
            result = await store.verify_audit_chain(tenant_id)
            if result.ok:
                head = (await store.read_audit(tenant_id, after_seq=result.rows - 1, limit=1))[:1]
                head_hash = head[0].row_hash.hex() if head else "-"
                print(f"tenant {tenant_id}: ok, {result.rows} rows, head {result.rows} {head_hash}")
            else:
                failures += 1
                print(
                    f"tenant {tenant_id}: TAMPERED at row seq={result.bad_seq}: {result.reason} "
                    f"({result.rows} rows read)"
                )
    finally:
        await store.close()
    return 1 if failures else 0


def _verify(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run_verify(args))
    except BioauthError as exc:
        print(f"bioauth audit verify: {exc.message}", file=sys.stderr)
        return 2
