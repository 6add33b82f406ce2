"""`bioauth keys ...`: rotating subject keys and re-wrapping data keys while the server serves."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bioauth.config import load_settings
from bioauth.crypto.factory import open_key_provider
from bioauth.errors import BioauthError
from bioauth.service.rewrap import rewrap_templates, rotate_subject_keys
from bioauth.store.factory import open_store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("keys", help="key provider set-up and key rotation")
    group = parser.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    init = group.add_parser(
        "init",
        help="mark a new PKCS#11 token as bioauth's and create the signing key (once per token)",
    )
    init.set_defaults(handler=_init)
    rotate = group.add_parser(
        "rotate", help="add a new version to every enrolled subject's key (new wraps use it)"
    )
    rotate.add_argument("--concurrency", type=int, default=4, help="provider calls in flight")
    rotate.set_defaults(handler=_rotate)
    rewrap = group.add_parser(
        "rewrap", help="re-wrap every data key under its subject key's newest version, in batches"
    )
    rewrap.add_argument("--batch-size", type=int, default=500, help="templates per transaction")
    rewrap.add_argument("--concurrency", type=int, default=4, help="provider calls in flight")
    rewrap.add_argument(
        "--retire-old-versions",
        action="store_true",
        help="afterwards, disable versions no template uses any more (only keys fully moved)",
    )
    rewrap.set_defaults(handler=_rewrap)


async def _run_init(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    provider = await open_key_provider(settings, initialise=True)
    try:
        kid = await provider.signing_key_id()
    finally:
        await provider.close()
    print(f"key provider {provider.name} ready; signing key {kid}")
    return 0


async def _run(args: argparse.Namespace) -> int:
    if args.concurrency < 1 or getattr(args, "batch_size", 1) < 1:
        print("--concurrency and --batch-size must be at least 1", file=sys.stderr)
        return 2
    settings = load_settings(args.config)
    store = await open_store(settings.store, migrate=False)
    try:
        provider = await open_key_provider(settings)
        try:
            if args.keys_command == "rotate":
                rotated = await rotate_subject_keys(store, provider, concurrency=args.concurrency)
                print(f"rotated {rotated} subject keys ({provider.name})")
                return 0
            report = await rewrap_templates(
                store,
                provider,
                batch_size=args.batch_size,
                concurrency=args.concurrency,
                retire_old_versions=args.retire_old_versions,
            )
        finally:
            await provider.close()
    finally:
        await store.close()
    print(
        f"rewrap ({provider.name}, {store.backend}): {report.seen} templates, "
        f"{report.rewrapped} re-wrapped, {report.unchanged} already current, "
        f"{report.conflicts} changed meanwhile, {report.opted_out} opted out meanwhile, "
        f"{report.failed} failed, "
        f"{report.retired_keys} keys retired; {report.templates_per_s:.0f} templates/s"
    )
    return 1 if report.failed else 0


def _command(args: argparse.Namespace) -> int:
    run = _run_init if args.keys_command == "init" else _run
    try:
        return asyncio.run(run(args))
    except BioauthError as exc:
        print(f"bioauth keys {args.keys_command}: {exc.message}", file=sys.stderr)
        return 2


_init = _command
_rotate = _command
_rewrap = _command
