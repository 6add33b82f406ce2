"""The audit hash chain on its own: canonical hashing and the verifier's verdicts."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bioauth.errors import InvalidInput
from bioauth.store.audit import (
    GENESIS_HASH,
    ChainVerifier,
    canonical_time,
    chain_hash,
    decode_details,
    encode_details,
    verify_chain,
)
from bioauth.store.protocol import AuditEntry, AuditRecord

T0 = datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=UTC)


def _chain(n: int, tenant: str = "bank-a") -> list[AuditRecord]:
    records = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        entry = AuditEntry(
            tenant, "verify", T0 + timedelta(seconds=seq), subject_id=f"s{seq}", decision="approve",
            details={"attempt": seq},
        )  # fmt: skip
        row_hash = chain_hash(prev, entry, seq)
        records.append(AuditRecord(entry=entry, seq=seq, prev_hash=prev, row_hash=row_hash))
        prev = row_hash
    return records


def _verify(
    records: list[AuditRecord], head: tuple[int, bytes] | None = None
) -> tuple[bool, int | None]:
    verifier = ChainVerifier("bank-a")
    verifier.feed(records[:2])
    verifier.feed(records[2:])  # pages
    if head is None and records:
        head = (records[-1].seq, records[-1].row_hash)
    result = verifier.finish(head)
    return result.ok, result.bad_seq


def test_row_hash_is_sha256_over_previous_hash_and_canonical_content() -> None:
    """Known answer: the hash depends on prev hash, seq and content, not on dict order."""
    entry = AuditEntry("bank-a", "enroll", T0, subject_id="s1", details={"b": 1, "a": "x"})
    canonical = (
        b'{"at":"2026-11-23T08:00:00.123456+00:00","decision":null,"details":{"a":"x","b":1},'
        b'"format":1,"model_id":null,"operating_point":null,"operation":"enroll",'
        b'"score_band":null,"seq":1,"subject_id":"s1","tenant_id":"bank-a","token_jti":null}'
    )
    assert chain_hash(GENESIS_HASH, entry, 1) == hashlib.sha256(GENESIS_HASH + canonical).digest()
    reordered = dataclasses.replace(entry, details={"a": "x", "b": 1})
    assert chain_hash(GENESIS_HASH, reordered, 1) == chain_hash(GENESIS_HASH, entry, 1)
    assert chain_hash(GENESIS_HASH, entry, 2) != chain_hash(GENESIS_HASH, entry, 1)
    assert chain_hash(b"\x01" * 32, entry, 1) != chain_hash(GENESIS_HASH, entry, 1)


def test_times_hash_the_same_in_any_zone() -> None:
    """The same instant written in another zone hashes the same; naive times are refused."""
    other_zone = T0.astimezone(timezone(timedelta(hours=5)))
    assert canonical_time(other_zone) == canonical_time(T0) == "2026-11-23T08:00:00.123456+00:00"
    with pytest.raises(InvalidInput):
        canonical_time(T0.replace(tzinfo=None))


def test_an_intact_chain_verifies() -> None:
    assert _verify(_chain(5)) == (True, None)
    assert _verify([], None) == (True, None)


def test_a_modified_row_is_named() -> None:
    records = _chain(5)
    records[2] = dataclasses.replace(
        records[2], entry=dataclasses.replace(records[2].entry, decision="decline")
    )
    assert _verify(records) == (False, 3)


def test_a_modified_row_with_its_hash_recomputed_breaks_the_next_link() -> None:
    records = _chain(5)
    forged = dataclasses.replace(records[2].entry, decision="decline")
    records[2] = dataclasses.replace(
        records[2], entry=forged, row_hash=chain_hash(records[2].prev_hash, forged, 3)
    )
    assert _verify(records) == (False, 4)


def test_a_deleted_row_is_named() -> None:
    records = _chain(5)
    del records[1]
    assert _verify(records) == (False, 2)


def test_reordered_rows_are_caught() -> None:
    records = _chain(5)
    records[1], records[2] = (
        dataclasses.replace(records[2], seq=2),
        dataclasses.replace(records[1], seq=3),
    )
    assert _verify(records) == (False, 2)


def test_deleting_the_newest_rows_is_caught_by_the_head() -> None:
    records = _chain(5)
    assert _verify(records[:4], head=(5, records[4].row_hash)) == (False, 5)
    assert _verify(records, head=(5, b"\x00" * 32)) == (False, 5)


def test_a_row_of_another_tenant_is_caught() -> None:
    records = _chain(3)
    records[1] = dataclasses.replace(
        records[1], entry=dataclasses.replace(records[1].entry, tenant_id="bank-b")
    )
    assert _verify(records) == (False, 2)


def test_details_accept_scalars_only() -> None:
    """Details are canonical JSON of scalars; vectors, blobs and NaN are refused."""
    text = encode_details({"z": 1.5, "a": None, "m": True, "s": "x"})
    assert text == '{"a":null,"m":true,"s":"x","z":1.5}'
    assert decode_details(text) == {"a": None, "m": True, "s": "x", "z": 1.5}
    for bad in ({"v": [0.1]}, {"b": b"x"}, {"n": float("inf")}, {1: "x"}):
        with pytest.raises(InvalidInput):
            encode_details(bad)  # type: ignore[arg-type]


async def test_rows_appended_while_verifying_are_not_taken_for_deleted_ones() -> None:
    """A live server appends during the walk: the walk stops at the head it read first."""
    rows = _chain(5)
    head = (3, rows[2].row_hash)  # the head when verification began; rows 4-5 came after

    async def read_page(after: int) -> list[AuditRecord]:
        return [r for r in rows if r.seq > after][:2]

    async def read_head() -> tuple[int, bytes] | None:
        return head

    result = await verify_chain("bank-a", read_page, read_head)
    assert (result.ok, result.rows) == (True, 3)


async def test_rows_missing_below_the_head_are_still_caught() -> None:
    rows = _chain(5)

    async def read_page(after: int) -> list[AuditRecord]:
        return [r for r in rows[:3] if r.seq > after]

    async def read_head() -> tuple[int, bytes] | None:
        return (5, rows[4].row_hash)

    result = await verify_chain("bank-a", read_page, read_head)
    assert (result.ok, result.bad_seq) == (False, 4)
