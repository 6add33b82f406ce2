"""The per-tenant hash chain behind the append-only audit log.

Each row's hash is SHA-256 over the previous row's hash followed by the row's canonical content
(RFC 8785 JSON of every column but the hashes, tenant and sequence number included). Editing a row
breaks its own hash; deleting one leaves a gap in ``seq`` and a ``prev_hash`` that points nowhere;
swapping two rows breaks both hashes, because ``seq`` is hashed. Deleting the newest rows is caught
by the chain head (``audit_heads``), which the same transaction moves forward. Someone who can
rewrite the whole table and its head can forge a consistent chain, which is why operators should
copy heads out of the database now and then (``bioauth audit verify`` prints them).

One chain per tenant, so replicas appending for different tenants never wait for each other.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime

import rfc8785

from bioauth.errors import InvalidInput
from bioauth.store.protocol import AuditEntry, AuditRecord, AuditVerification, JsonScalar

__all__ = [
    "GENESIS_HASH",
    "ChainVerifier",
    "canonical_time",
    "chain_hash",
    "decode_details",
    "encode_details",
    "verify_chain",
]

GENESIS_HASH = bytes(32)
"""``prev_hash`` of a tenant's first row."""

_FORMAT = 1


def canonical_time(at: datetime) -> str:
    """UTC, microseconds: what both backends store exactly, so the hash survives a round trip."""
    if at.tzinfo is None:
        raise InvalidInput("timestamps must be timezone-aware", field="at")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _check_details(details: Mapping[str, JsonScalar]) -> dict[str, JsonScalar]:
    out: dict[str, JsonScalar] = {}
    for key, value in details.items():
        if not isinstance(key, str):
            raise InvalidInput("audit detail keys must be strings", field="details")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidInput(f"audit detail {key!r} must be a scalar", field="details")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"audit detail {key!r} must be finite", field="details")
        out[key] = value
    return out


def encode_details(details: Mapping[str, JsonScalar]) -> str:
    """The stored form of ``details``: canonical JSON text, identical in both backends."""
    return rfc8785.dumps(_check_details(details)).decode("utf-8")


def decode_details(text: str) -> dict[str, JsonScalar]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("audit details must be a JSON object")
    return value


def _canonical_content(entry: AuditEntry, seq: int) -> bytes:
    return rfc8785.dumps(
        {
            "format": _FORMAT,
            "tenant_id": entry.tenant_id,
            "seq": seq,
            "at": canonical_time(entry.at),
            "operation": entry.operation,
            "subject_id": entry.subject_id,
            "decision": entry.decision,
            "score_band": entry.score_band,
            "operating_point": entry.operating_point,
            "model_id": entry.model_id,
            "token_jti": entry.token_jti,
            "details": _check_details(entry.details),
        }
    )


def chain_hash(prev_hash: bytes, entry: AuditEntry, seq: int) -> bytes:
    """The hash of row ``seq`` of ``entry.tenant_id``'s chain, following ``prev_hash``."""
    if len(prev_hash) != 32:
        raise ValueError("prev_hash must be 32 bytes")
    return hashlib.sha256(prev_hash + _canonical_content(entry, seq)).digest()


class ChainVerifier:
    """Walks one tenant's rows in ``seq`` order, page by page, and remembers the first failure."""

    def __init__(self, tenant_id: str) -> None:
        self._tenant_id = tenant_id
        self._rows = 0
        self._expected_seq = 1
        self._prev_hash = GENESIS_HASH
        self._bad_seq: int | None = None
        self._reason = ""

    @property
    def failed(self) -> bool:
        return self._bad_seq is not None

    @property
    def last_seq(self) -> int:
        return self._expected_seq - 1

    def feed(self, records: Iterable[AuditRecord]) -> None:
        for record in records:
            if self.failed:
                return
            self._rows += 1
            self._check(record)

    def _fail(self, seq: int, reason: str) -> None:
        self._bad_seq = seq
        self._reason = reason

    def _check(self, record: AuditRecord) -> None:
        seq = record.seq
        if record.entry.tenant_id != self._tenant_id:
            self._fail(seq, "row belongs to another tenant")
        elif seq > self._expected_seq:
            self._fail(self._expected_seq, f"row missing (deleted?): the next row is seq {seq}")
        elif seq < self._expected_seq:
            self._fail(seq, f"seq {seq} out of order after seq {self._expected_seq - 1}")
        elif record.prev_hash != self._prev_hash:
            self._fail(
                seq, "prev_hash does not match the previous row's hash (row deleted or moved)"
            )
        else:
            try:
                expected = chain_hash(record.prev_hash, record.entry, seq)
            except (InvalidInput, ValueError) as exc:
                self._fail(seq, f"row content is not canonical: {exc}")
                return
            if expected != record.row_hash:
                self._fail(seq, "row_hash does not match the row's content (row modified)")
                return
            self._prev_hash = record.row_hash
            self._expected_seq += 1

    def finish(self, head: tuple[int, bytes] | None) -> AuditVerification:
        """Compare the end of the walk with the chain head stored beside the rows."""
        if not self.failed:
            head_seq, head_hash = head if head is not None else (0, GENESIS_HASH)
            if head_seq != self.last_seq:
                self._fail(
                    self.last_seq + 1,
                    f"chain head says {head_seq} rows, found {self.last_seq} (newest rows deleted?)",
                )
            elif head_hash != self._prev_hash:
                self._fail(head_seq, "chain head hash does not match the last row")
        return AuditVerification(
            tenant_id=self._tenant_id,
            ok=not self.failed,
            rows=self._rows,
            bad_seq=self._bad_seq,
            reason=self._reason,
        )


async def verify_chain(
    tenant_id: str,
    read_page: Callable[[int], Awaitable[list[AuditRecord]]],
    read_head: Callable[[], Awaitable[tuple[int, bytes] | None]],
) -> AuditVerification:
    """Walk a tenant's chain page by page (``read_page(after_seq)``), stopping at the first
    failure, and hold it against the stored head (``None`` where the tenant has none).

    The head is read first and only rows up to it are walked: a live server keeps appending
    while this runs, and a row committed after the head was read is not a deleted one.
    """
    head = await read_head()
    head_seq = 0 if head is None else head[0]
    verifier = ChainVerifier(tenant_id)
    after = 0
    while not verifier.failed and after < head_seq:
        page = [record for record in await read_page(after) if record.seq <= head_seq]
        if not page:
            break
        verifier.feed(page)
        after = page[-1].seq
    return verifier.finish(head)
