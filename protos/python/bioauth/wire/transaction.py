"""The one canonical byte encoding of a TransactionContext, which decision tokens bind.

Defined in protos/bioauth/v1/types.proto (TransactionContext); test vectors every SDK must
reproduce live in protos/bioauth/v1/testdata/transaction_vectors.json.
"""

from __future__ import annotations

import base64
import hashlib

import rfc8785

from bioauth.v1 import types_pb2

TRANSACTION_ENCODING_VERSION = 1
_MAX_SAFE_INTEGER = 2**53 - 1


class TransactionEncodingError(ValueError):
    """The context cannot be encoded (amount out of the exact-integer range, no timestamp)."""


def canonical_transaction_bytes(tx: types_pb2.TransactionContext) -> bytes:
    """RFC 8785 JSON of the context's fields, as the proto defines (version 1)."""
    if not 0 <= tx.amount_minor <= _MAX_SAFE_INTEGER:
        raise TransactionEncodingError("amount_minor must be in [0, 2^53)")
    if not tx.HasField("timestamp"):
        raise TransactionEncodingError("timestamp is required")
    # protobuf's own JSON mapping of Timestamp: UTC, "Z", 0/3/6/9 fractional digits.
    timestamp = tx.timestamp.ToJsonString()
    document: dict[str, str | int] = {
        "v": TRANSACTION_ENCODING_VERSION,
        "transaction_id": tx.transaction_id,
        "merchant_id": tx.merchant_id,
        "terminal_id": tx.terminal_id,
        "amount_minor": int(tx.amount_minor),
        "currency": tx.currency,
        "timestamp": timestamp,
        "nonce": tx.nonce,
    }
    return bytes(rfc8785.dumps(document))


def transaction_hash(tx: types_pb2.TransactionContext) -> bytes:
    """SHA-256 of the canonical encoding."""
    return hashlib.sha256(canonical_transaction_bytes(tx)).digest()


def transaction_hash_b64(tx: types_pb2.TransactionContext) -> str:
    """The token claim `txn`: base64url of the hash, no padding."""
    return base64.urlsafe_b64encode(transaction_hash(tx)).rstrip(b"=").decode("ascii")
