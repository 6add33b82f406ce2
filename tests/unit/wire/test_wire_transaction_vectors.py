"""bioauth.wire reproduces the API's transaction-encoding test vectors byte for byte."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from bioauth.v1 import types_pb2
from bioauth.wire import (
    TransactionEncodingError,
    canonical_transaction_bytes,
    transaction_hash,
    transaction_hash_b64,
)

REPO = Path(__file__).resolve().parents[3]
VECTORS_FILE = REPO / "protos" / "bioauth" / "v1" / "testdata" / "transaction_vectors.json"
VECTORS = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))


def context(fields: dict[str, Any]) -> types_pb2.TransactionContext:
    values = {k: v for k, v in fields.items() if k != "timestamp"}
    tx = types_pb2.TransactionContext(**values)
    if "timestamp" in fields:
        tx.timestamp.CopyFrom(Timestamp(**fields["timestamp"]))
    return tx


def test_vectors_cover_the_promised_cases() -> None:
    """Fractional timestamps, unicode, zero and maximum amounts and escapes are all present."""
    names = {v["name"] for v in VECTORS["vectors"]}
    assert {
        "fraction_millis",
        "fraction_micros",
        "fraction_nanos",
        "unicode_merchant",
        "zero_amount_empty_optionals",
        "max_amount",
        "escapes",
    } <= names
    amounts = {v["context"]["amount_minor"] for v in VECTORS["vectors"]}
    assert {0, 2**53 - 1} <= amounts


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_canonical_bytes_match(vector: dict[str, Any]) -> None:
    """The encoder's bytes equal the vector's, and the vector's text is those bytes in UTF-8."""
    expected = bytes.fromhex(vector["canonical_hex"])
    assert vector["canonical"].encode("utf-8") == expected
    assert canonical_transaction_bytes(context(vector["context"])) == expected


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_hashes_match(vector: dict[str, Any]) -> None:
    """SHA-256 (hex) and the token claim (base64url, no padding) equal the vector's."""
    tx = context(vector["context"])
    assert (
        hashlib.sha256(bytes.fromhex(vector["canonical_hex"])).hexdigest() == vector["sha256_hex"]
    )
    assert transaction_hash(tx).hex() == vector["sha256_hex"]
    assert transaction_hash_b64(tx) == vector["txn_b64url"]


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_contexts_are_refused(vector: dict[str, Any]) -> None:
    """Contexts the encoding cannot represent exactly are refused, never encoded lossily."""
    with pytest.raises(TransactionEncodingError):
        canonical_transaction_bytes(context(vector["context"]))


def test_committed_vectors_are_what_the_generator_writes() -> None:
    """The file is generated, not hand-edited (the generator shares no code with bioauth.wire)."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_transaction_vectors.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
