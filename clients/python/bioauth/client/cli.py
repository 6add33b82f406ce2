"""``bioauth-client``: call a bioauth server from a shell; every answer is printed as JSON.

Examples::

    export BIOAUTH_API_KEY=dev-key
    bioauth-client enroll acct-42 face1.jpg face2.jpg --policy-version 2026-10 --identification
    bioauth-client verify acct-42 probe.jpg --transaction-id tx-1 --amount 1250 --currency EUR \\
        > decision.json
    bioauth-client token verify --from decision.json --issuer bioauth-dev --audience dev

Exit status: 0 success, 1 the server refused the call or the token was rejected, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import functools
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from google.protobuf import json_format
from google.protobuf.message import Message

from bioauth.client._async_client import AsyncClient, Jwks
from bioauth.client._builders import consent, face_image_from_path, transaction_context
from bioauth.client._config import DEFAULT_TIMEOUT_S, TLSConfig
from bioauth.client._errors import BioauthClientError, RpcError, TokenRejected
from bioauth.client._jwks import static_jwks
from bioauth.client.tokens import TokenVerifier
from bioauth.v1 import types_pb2

__all__ = ["main"]

_DEFAULT_TARGET = "127.0.0.1:50051"


def _message(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _transaction_json(tx: types_pb2.TransactionContext) -> dict[str, Any]:
    """The context in the shape ``--transaction FILE`` reads back (amount as a JSON integer)."""
    return {
        "transaction_id": tx.transaction_id,
        "merchant_id": tx.merchant_id,
        "terminal_id": tx.terminal_id,
        "amount_minor": tx.amount_minor,
        "currency": tx.currency,
        "timestamp": tx.timestamp.ToJsonString(),
        "nonce": tx.nonce,
    }


def _transaction_from_json(document: dict[str, Any]) -> types_pb2.TransactionContext:
    timestamp = document.get("timestamp")
    moment = None
    if timestamp is not None:
        moment = dt.datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
    tx = transaction_context(
        str(document["transaction_id"]),
        int(document["amount_minor"]),
        str(document["currency"]),
        merchant_id=str(document.get("merchant_id", "")),
        terminal_id=str(document.get("terminal_id", "")),
        timestamp=moment,
        nonce=document.get("nonce"),
    )
    if timestamp is not None:
        tx.timestamp.FromJsonString(str(timestamp))  # keep the nanoseconds exactly
    return tx


def _transaction(args: argparse.Namespace) -> types_pb2.TransactionContext:
    if args.transaction is not None:
        document = json.loads(Path(args.transaction).read_text(encoding="utf-8"))
        return _transaction_from_json(document.get("transaction", document))
    if args.transaction_id is None or args.amount is None or args.currency is None:
        raise _UsageError("give --transaction FILE, or --transaction-id, --amount and --currency")
    moment = None if args.timestamp is None else dt.datetime.fromisoformat(args.timestamp)
    return transaction_context(
        args.transaction_id,
        args.amount,
        args.currency,
        merchant_id=args.merchant,
        terminal_id=args.terminal,
        timestamp=moment,
        nonce=args.nonce,
    )


class _UsageError(Exception):
    pass


def _add_transaction_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("transaction (what the token binds)")
    group.add_argument("--transaction", metavar="FILE", help="JSON file with the context")
    group.add_argument("--transaction-id")
    group.add_argument("--amount", type=int, help="amount in minor units (cents)")
    group.add_argument("--currency", help="ISO 4217 code, e.g. EUR")
    group.add_argument("--merchant", default="")
    group.add_argument("--terminal", default="")
    group.add_argument("--timestamp", help="RFC 3339 with offset; default now")
    group.add_argument("--nonce", help="default: a fresh random nonce")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bioauth-client", description="Call a bioauth server; answers are printed as JSON."
    )
    parser.add_argument(
        "--target", default=os.environ.get("BIOAUTH_TARGET", _DEFAULT_TARGET), help="host:port"
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("BIOAUTH_API_KEY"), help="or env BIOAUTH_API_KEY"
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds")
    parser.add_argument("--ca", metavar="PEM", help="CA bundle: use TLS")
    parser.add_argument("--cert", metavar="PEM", help="client certificate (mTLS)")
    parser.add_argument("--key", metavar="PEM", help="client private key (mTLS)")
    parser.add_argument("--server-name", help="name to expect in the server certificate")
    commands = parser.add_subparsers(dest="command", required=True)

    enroll = commands.add_parser("enroll", help="enrol a consenting person from face crops")
    enroll.add_argument("subject", help="the tenant's external reference")
    enroll.add_argument("images", nargs="+", type=Path, help="JPEG/PNG face crops (1 to 3)")
    enroll.add_argument("--policy-version", required=True, help="privacy policy accepted")
    enroll.add_argument("--purpose", default="payment-authentication")
    enroll.add_argument(
        "--channel", default="web", choices=["mobile_app", "bank_branch", "terminal", "web"]
    )
    enroll.add_argument(
        "--identification", action="store_true", help="the person also consents to 1:N"
    )
    enroll.add_argument("--idempotency-key", help="default: a fresh UUID (printed)")

    verify = commands.add_parser("verify", help="1:1 verification of a subject")
    verify.add_argument("subject")
    verify.add_argument("images", nargs="+", type=Path)
    _add_transaction_options(verify)

    identify = commands.add_parser("identify", help="1:N identification")
    identify.add_argument("images", nargs="+", type=Path)
    _add_transaction_options(identify)

    delete = commands.add_parser("delete", help="opt-out: destroy the subject's templates")
    delete.add_argument("subject")
    subject = commands.add_parser("subject", help="enrolment status and consent")
    subject.add_argument("subject")
    commands.add_parser("jwks", help="the keys that verify decision tokens")

    token = commands.add_parser("token", help="decision tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    verify_token = token_commands.add_parser("verify", help="verify a decision token offline")
    verify_token.add_argument("token", nargs="?", help="the token; or use --from")
    verify_token.add_argument(
        "--from", dest="from_file", metavar="FILE", help="output of verify/identify"
    )
    verify_token.add_argument("--issuer", required=True)
    verify_token.add_argument("--audience", required=True)
    verify_token.add_argument("--jwks", metavar="FILE", help="JWK Set file; default: the server's")
    _add_transaction_options(verify_token)
    return parser


def _tls(args: argparse.Namespace) -> TLSConfig | None:
    if args.ca is None and args.cert is None:
        return None
    return TLSConfig.from_files(args.ca, args.cert, args.key, args.server_name)


_Call = Callable[[AsyncClient], Awaitable[dict[str, Any]]]


def _token_verify(args: argparse.Namespace) -> _Call:
    token = args.token
    tx_source = args
    if args.from_file is not None:
        document = json.loads(Path(args.from_file).read_text(encoding="utf-8"))
        token = token or document.get("result", {}).get("token")
        if args.transaction is None and args.transaction_id is None:
            tx_source = argparse.Namespace(**{**vars(args), "transaction": args.from_file})
    if not token:
        raise _UsageError("no token: pass it as an argument or with --from")
    tx = _transaction(tx_source)
    pinned = None if args.jwks is None else Jwks.from_json(Path(args.jwks).read_text("utf-8"))

    async def call(client: AsyncClient) -> dict[str, Any]:
        source = client.get_jwks if pinned is None else static_jwks(pinned)
        verifier = TokenVerifier(source, issuer=args.issuer, audience=args.audience)
        decision = await verifier.verify(token, tx)
        return {"valid": True, "claims": dataclasses.asdict(decision)}

    return call


def _enroll(args: argparse.Namespace) -> _Call:
    key = args.idempotency_key or str(uuid.uuid4())
    record = consent(
        args.policy_version, args.purpose, channel=args.channel, identification=args.identification
    )
    images = [face_image_from_path(p) for p in args.images]

    async def call(client: AsyncClient) -> dict[str, Any]:
        response = await client.enroll(args.subject, images, record, idempotency_key=key)
        return {"idempotency_key": key, "response": _message(response)}

    return call


def _authorize(args: argparse.Namespace) -> _Call:
    tx = _transaction(args)
    images = [face_image_from_path(p) for p in args.images]

    async def call(client: AsyncClient) -> dict[str, Any]:
        if args.command == "verify":
            result = await client.verify(args.subject, images, tx)
        else:
            result = await client.identify(images, tx)
        return {"result": _message(result), "transaction": _transaction_json(tx)}

    return call


async def _delete(args: argparse.Namespace, client: AsyncClient) -> dict[str, Any]:
    return _message(await client.delete_subject(args.subject))


async def _subject(args: argparse.Namespace, client: AsyncClient) -> dict[str, Any]:
    return _message(await client.get_subject(args.subject))


async def _jwks(args: argparse.Namespace, client: AsyncClient) -> dict[str, Any]:
    jwks = await client.get_jwks()
    return {**jwks.document, "max_age_seconds": jwks.max_age_s}


def _prepare(args: argparse.Namespace) -> _Call:
    """Read every file and build every request before any I/O on the event loop."""
    match args.command:
        case "enroll":
            return _enroll(args)
        case "verify" | "identify":
            return _authorize(args)
        case "token":
            return _token_verify(args)
        case "delete":
            return functools.partial(_delete, args)
        case "subject":
            return functools.partial(_subject, args)
        case "jwks":
            return functools.partial(_jwks, args)
    raise _UsageError(f"unknown command {args.command}")


async def _main(args: argparse.Namespace, tls: TLSConfig | None, call: _Call) -> dict[str, Any]:
    async with AsyncClient(
        args.target, api_key=args.api_key, tls=tls, timeout=args.timeout
    ) as client:
        return await call(client)


def _print(document: dict[str, Any], stream: TextIO) -> None:
    stream.write(json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``bioauth-client``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        call = _prepare(args)
        _print(asyncio.run(_main(args, _tls(args), call)), sys.stdout)
    except TokenRejected as exc:
        _print({"valid": False, "reason": exc.reason.value, "detail": exc.detail}, sys.stdout)
        return 1
    except RpcError as exc:
        _print({"error": exc.code.name, "details": exc.details}, sys.stderr)
        return 1
    except (_UsageError, ValueError, OSError, KeyError) as exc:
        _print({"error": "usage", "details": str(exc)}, sys.stderr)
        return 2
    except BioauthClientError as exc:
        _print({"error": type(exc).__name__, "details": str(exc)}, sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
