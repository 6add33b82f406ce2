"""Write the transaction-encoding test vectors: protos/bioauth/v1/testdata/transaction_vectors.json.

Usage: python scripts/gen_transaction_vectors.py [--check]

The expected bytes are computed here independently of ``bioauth.wire``: the timestamp is
formatted from seconds and nanos by this script's own RFC 3339 writer (not protobuf's), and the
document is canonicalised with the rfc8785 package. Tests then require ``bioauth.wire`` (and every
other SDK) to reproduce the file byte for byte. ``--check`` exits 1 if the committed file differs.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import rfc8785

OUT = Path(__file__).resolve().parent.parent / "protos" / "bioauth" / "v1" / "testdata"
OUT_FILE = OUT / "transaction_vectors.json"


def _ts(iso: str, nanos: int = 0) -> dict[str, int]:
    moment = dt.datetime.fromisoformat(iso).replace(tzinfo=dt.UTC)
    return {"seconds": int(moment.timestamp()), "nanos": nanos}


# name, description, context (timestamp as seconds + nanos, as in google.protobuf.Timestamp)
CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "basic",
        "all fields set, whole-second timestamp",
        {
            "transaction_id": "tx-0001",
            "merchant_id": "merchant-42",
            "terminal_id": "term-7",
            "amount_minor": 4999,
            "currency": "EUR",
            "timestamp": _ts("2026-11-23T08:00:00"),
            "nonce": "n-0123456789abcdef",
        },
    ),
    (
        "fraction_millis",
        "nanos a multiple of 1e6: three fractional digits",
        {
            "transaction_id": "tx-0002",
            "merchant_id": "merchant-42",
            "terminal_id": "term-7",
            "amount_minor": 1250,
            "currency": "EUR",
            "timestamp": _ts("2026-11-23T08:00:00", 120_000_000),
            "nonce": "n-fedcba9876543210",
        },
    ),
    (
        "fraction_micros",
        "nanos a multiple of 1e3: six fractional digits",
        {
            "transaction_id": "tx-0003",
            "merchant_id": "merchant-42",
            "terminal_id": "term-7",
            "amount_minor": 1,
            "currency": "USD",
            "timestamp": _ts("2026-11-23T08:00:59", 123_456_000),
            "nonce": "n-aaaaaaaaaaaaaaaa",
        },
    ),
    (
        "fraction_nanos",
        "one nanosecond: nine fractional digits",
        {
            "transaction_id": "tx-0004",
            "merchant_id": "merchant-42",
            "terminal_id": "term-7",
            "amount_minor": 700,
            "currency": "GBP",
            "timestamp": _ts("2026-11-23T23:59:59", 1),
            "nonce": "n-bbbbbbbbbbbbbbbb",
        },
    ),
    (
        "unicode_merchant",
        "non-ASCII merchant (Latin, CJK, astral plane) is written as UTF-8, not escaped",
        {
            "transaction_id": "tx-0005",
            "merchant_id": "Café Zürich — 東京 🚀",
            "terminal_id": "term-7",
            "amount_minor": 350,
            "currency": "CHF",
            "timestamp": _ts("2026-11-23T08:00:00", 999_000_000),
            "nonce": "n-cccccccccccccccc",
        },
    ),
    (
        "zero_amount_empty_optionals",
        "amount 0 and empty merchant and terminal are still present",
        {
            "transaction_id": "tx-0006",
            "merchant_id": "",
            "terminal_id": "",
            "amount_minor": 0,
            "currency": "EUR",
            "timestamp": _ts("2026-01-01T00:00:00"),
            "nonce": "n-dddddddddddddddd",
        },
    ),
    (
        "max_amount",
        "largest amount, 2^53 - 1, is an exact JSON integer",
        {
            "transaction_id": "tx-0007",
            "merchant_id": "merchant-42",
            "terminal_id": "term-7",
            "amount_minor": 2**53 - 1,
            "currency": "JPY",
            "timestamp": _ts("2028-02-29T12:34:56", 500_000_000),
            "nonce": "n-eeeeeeeeeeeeeeee",
        },
    ),
    (
        "escapes",
        "quote, backslash, tab, newline and a control character as RFC 8785 escapes them",
        {
            "transaction_id": "tx-0008",
            "merchant_id": 'quote " and \\ backslash',
            "terminal_id": "tab\tnewline\ncontrol\u0001",
            "amount_minor": 10,
            "currency": "EUR",
            "timestamp": _ts("2026-11-23T08:00:00"),
            "nonce": "n-ffffffffffffffff",
        },
    ),
]

INVALID: list[tuple[str, str, dict[str, Any]]] = [
    (
        "amount_too_large",
        "2^53 is not an exact JSON number in every language",
        {**CASES[0][2], "amount_minor": 2**53},
    ),
    ("amount_negative", "amounts are never negative", {**CASES[0][2], "amount_minor": -1}),
    (
        "no_timestamp",
        "the timestamp is required",
        {k: v for k, v in CASES[0][2].items() if k != "timestamp"},
    ),
]


def rfc3339(seconds: int, nanos: int) -> str:
    """UTC, 'Z', and 0, 3, 6 or 9 fractional digits (the fewest that are exact)."""
    base = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos == 0:
        return base + "Z"
    if nanos % 1_000_000 == 0:
        return f"{base}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{base}.{nanos // 1_000:06d}Z"
    return f"{base}.{nanos:09d}Z"


def vector(name: str, description: str, context: dict[str, Any]) -> dict[str, Any]:
    document = {
        "v": 1,
        "transaction_id": context["transaction_id"],
        "merchant_id": context["merchant_id"],
        "terminal_id": context["terminal_id"],
        "amount_minor": context["amount_minor"],
        "currency": context["currency"],
        "timestamp": rfc3339(context["timestamp"]["seconds"], context["timestamp"]["nanos"]),
        "nonce": context["nonce"],
    }
    canonical = bytes(rfc8785.dumps(document))
    digest = hashlib.sha256(canonical).digest()
    return {
        "name": name,
        "description": description,
        "context": context,
        "canonical": canonical.decode("utf-8"),
        "canonical_hex": canonical.hex(),
        "sha256_hex": digest.hex(),
        "txn_b64url": base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"),
    }


def render() -> str:
    document = {
        "encoding_version": 1,
        "about": (
            "Canonical encoding of bioauth.v1.TransactionContext (see types.proto): RFC 8785 JSON "
            "of the fields, then SHA-256; tokens carry base64url(SHA-256) as claim 'txn'. "
            "'canonical' is the UTF-8 text of the bytes, 'canonical_hex' the bytes themselves. "
            "Contexts give the timestamp as google.protobuf.Timestamp seconds and nanos. "
            "Generated by scripts/gen_transaction_vectors.py; every SDK must reproduce each "
            "vector byte for byte and refuse each entry of 'invalid'."
        ),
        "vectors": [vector(*case) for case in CASES],
        "invalid": [
            {"name": name, "description": description, "context": context}
            for name, description, context in INVALID
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed file differs")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = OUT_FILE.read_text(encoding="utf-8") if OUT_FILE.exists() else ""
        if current != text:
            print(f"{OUT_FILE} is stale: run python scripts/gen_transaction_vectors.py")
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    OUT_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {OUT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
