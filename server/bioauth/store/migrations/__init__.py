"""Versioned schema migrations, one folder of numbered SQL files per backend.

``NNNN_name.sql`` files apply in order, each in its own transaction, and are recorded with a
SHA-256 checksum in ``schema_migrations``; a migration edited after it was applied is refused
rather than silently diverging between databases. Never edit an applied migration: add the next
number.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from bioauth.errors import StoreUnavailable

__all__ = ["Migration", "check_applied", "load_migrations", "require_current"]

_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def load_migrations(backend: Literal["sqlite", "postgresql"]) -> list[Migration]:
    """The backend's migrations in version order; gaps and duplicates are a packaging bug."""
    folder = resources.files(__name__).joinpath(backend)
    found: list[Migration] = []
    for item in folder.iterdir():
        match = _NAME_RE.match(item.name)
        if match is None:
            continue
        found.append(Migration(int(match.group(1)), match.group(2), item.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(
            f"{backend} migrations must be numbered 1..n without gaps, got {versions}"
        )
    return found


def check_applied(applied: dict[int, str], known: list[Migration]) -> None:
    """Refuse a database ahead of this server, or one whose applied migration was edited since;
    ``applied`` maps each recorded version to its checksum (same rule for every backend)."""
    by_version = {m.version: m for m in known}
    for version, checksum in applied.items():
        migration = by_version.get(version)
        if migration is None:
            raise StoreUnavailable(
                f"database schema has migration {version}, newer than this server knows "
                f"({len(known)}); upgrade the server"
            )
        if migration.checksum != checksum:
            raise StoreUnavailable(f"migration {version} was edited after it was applied")


def require_current(version: int, backend: Literal["sqlite", "postgresql"]) -> None:
    """Refuse to serve from a database whose schema is not the one this server's code expects."""
    latest = len(load_migrations(backend))
    if version != latest:
        raise StoreUnavailable(
            f"database schema is at version {version}, this server needs {latest}: "
            "run `bioauth db migrate`"
        )
