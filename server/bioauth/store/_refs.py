"""The keyed digest of a tenant's external reference, and the check that the key has not changed.

A subject row keeps ``HMAC-SHA256(key, tenant id, external reference)`` for life, while the
plaintext reference (an account or card number) is cleared at opt-out. Lookups by reference go
through the digest, so after opt-out GetSubject still finds the row and can show the withdrawal,
yet the store no longer holds the number itself; without the key the digest cannot be reversed by
trying account numbers. The tenant id is inside the MAC, so equal references of two tenants do not
share a digest.

Rows written before the digest existed are filled in from Python each time the store migrates
(SQL cannot compute an HMAC under a key it never sees); the column is nullable for that reason. Subjects that had already
completed opt-out then have no reference left to digest; they stay unfindable by reference.
"""

from __future__ import annotations

import hashlib
import hmac

from bioauth.config import DEV_EXTERNAL_REF_KEY
from bioauth.errors import StoreUnavailable

__all__ = ["DEV_KEY", "RefDigester"]

DEV_KEY = DEV_EXTERNAL_REF_KEY.encode("utf-8")
_DOMAIN = b"bioauth/external-ref/v1\x00"


def _part(value: str) -> bytes:
    raw = value.encode("utf-8")
    return len(raw).to_bytes(4, "big") + raw  # length-prefixed: ("ab", "c") != ("a", "bc")


class RefDigester:
    """Computes reference digests under one key; holds the key, never prints it."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the external reference key needs at least 16 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "RefDigester(key=<secret>)"

    def digest(self, tenant_id: str, external_ref: str) -> bytes:
        return hmac.new(
            self._key, _DOMAIN + _part(tenant_id) + _part(external_ref), hashlib.sha256
        ).digest()

    def check_sample(self, tenant_id: str, external_ref: str, stored: bytes) -> None:
        """Refuse to serve when a stored digest was made under another key.

        Lookups would silently miss every subject, and new enrolments would collide with the
        plaintext uniqueness of live rows; better to stop at start-up.
        """
        if not hmac.compare_digest(self.digest(tenant_id, external_ref), bytes(stored)):
            raise StoreUnavailable(
                "store.external_ref_key differs from the key this store's reference digests "
                "were written with; restore the original key"
            )
