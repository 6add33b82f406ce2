"""Building the configured template store (the composition root calls this)."""

from __future__ import annotations

from pathlib import Path

from bioauth.config import StoreSettings
from bioauth.errors import InvalidInput
from bioauth.store.postgres import PostgresTemplateStore
from bioauth.store.protocol import TemplateStore
from bioauth.store.sqlite import SqliteTemplateStore

__all__ = ["open_store", "sqlite_path"]

_SQLITE_PREFIX = "sqlite:///"


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL (relative or absolute), else ``None``."""
    if not url.startswith(_SQLITE_PREFIX):
        return None
    path = url[len(_SQLITE_PREFIX) :]
    if not path:
        raise InvalidInput("sqlite URL needs a file path", field="store.url")
    return Path(path)


async def open_store(
    settings: StoreSettings, *, migrate: bool | None = None, verify_schema: bool = True
) -> TemplateStore:
    """Open the store named by ``settings.url``; migrate when ``migrate`` (default: settings).

    Without migrating, a schema that is not current is refused (``StoreUnavailable``) unless
    ``verify_schema`` is False.
    """
    do_migrate = settings.migrate_on_start if migrate is None else migrate
    ref_key = settings.external_ref_key.encode("utf-8")
    path = sqlite_path(settings.url)
    if path is not None:
        return await SqliteTemplateStore.open(
            path,
            migrate=do_migrate,
            verify_schema=verify_schema,
            busy_timeout_s=settings.command_timeout_s,
            external_ref_key=ref_key,
        )
    if settings.url.startswith(("postgresql://", "postgres://")):
        return await PostgresTemplateStore.open(
            settings.url,
            migrate=do_migrate,
            verify_schema=verify_schema,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            command_timeout_s=settings.command_timeout_s,
            external_ref_key=ref_key,
        )
    raise InvalidInput("must start with sqlite:/// or postgresql://", field="store.url")
