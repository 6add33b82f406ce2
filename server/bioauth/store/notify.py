"""Telling every replica that a tenant's 1:N gallery changed: PostgreSQL NOTIFY, in the writer's
transaction.

Enrolment and each opt-out step append an audit row in the same transaction as the change
(``bioauth.store.postgres``); the same transaction also runs ``pg_notify`` here. PostgreSQL delivers
a notification only when its transaction commits, and never one of a transaction that rolled back,
so a replica is never told of a change it cannot yet read, nor of one that did not happen.

The notification is only a wake-up: it names the tenant and the audit sequence number of the
change. What changed is read back from the audit chain (``bioauth.store.change_feed``), whose
per-tenant sequence numbers are assigned under the chain's row lock and so become visible in
order, without gaps: a follower that has applied every gallery change up to number N of a tenant
needs only the rows after N, whether it was woken by a notification, came back from a lost
connection, or checks periodically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bioauth.store.protocol import GALLERY_OPERATIONS, AuditEntry

__all__ = [
    "GALLERY_CHANNEL",
    "GalleryChange",
    "notify_gallery_change",
    "parse_gallery_notification",
]

GALLERY_CHANNEL = "bioauth_gallery"


@dataclass(frozen=True, slots=True)
class GalleryChange:
    tenant_id: str
    seq: int
    """The audit row's sequence number in the tenant's chain."""


async def notify_gallery_change(conn: Any, entry: AuditEntry, seq: int) -> None:
    """Queue the notification for ``entry`` (audit row ``seq``) on ``conn``'s open transaction.

    Does nothing for operations that leave the gallery as it was (decisions, key rotation).
    """
    if entry.operation not in GALLERY_OPERATIONS or entry.subject_id is None:
        return
    await conn.execute("SELECT pg_notify($1, $2)", GALLERY_CHANNEL, f"{entry.tenant_id} {seq}")


def parse_gallery_notification(payload: str) -> GalleryChange | None:
    """The change a notification names, or None for a payload this version does not read."""
    tenant_id, _, seq = payload.partition(" ")
    if not tenant_id or not seq.isdigit():
        return None
    return GalleryChange(tenant_id, int(seq))
