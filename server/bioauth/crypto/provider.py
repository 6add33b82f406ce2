"""The key-provider protocol: the one seam between bioauth and wherever its keys live.

Two kinds of key live behind it, and neither ever leaves the provider in the clear:

* **Subject keys** (key-encryption keys, one per enrolled person). They wrap the per-template data
  keys. Destroying a subject key makes every wrapped data key of that person, and with it every
  copy of their templates (rows, backups, WAL, replicas), unreadable: that is the opt-out.
  Subject keys are versioned: ``rotate_subject_key`` adds a version, ``wrap`` always uses the
  newest, ``unwrap`` uses the version recorded in the ``WrappedKey``, ``rewrap`` moves a wrapped
  key to the newest version without the data key ever leaving the provider where the provider can
  do that (Vault Transit), or only in memory for the duration of one call (PKCS#11, local).
* **The token-signing key** (EC P-256, ES256). Each version has its own ``kid``; ``public_jwks``
  lists every version still valid so verifiers can check tokens signed just before a rotation.

Implementations: ``Pkcs11KeyProvider`` (an HSM; SoftHSM2 in tests), ``VaultKeyProvider`` (Vault or
OpenBao Transit) and ``LocalKeyProvider`` (a 0600 key file, development only). Build one from
settings with ``bioauth.crypto.factory.open_key_provider``.

Errors (``bioauth.errors``): ``KeyProviderUnavailable`` when the provider cannot be reached or
cannot confirm an operation (fail closed: no decision, no token, opt-out retried);
``DecryptionFailed`` when a wrapped key does not open (wrong key, wrong AAD, tampered, or the
subject key was destroyed); ``InvalidInput`` for malformed ids.

All methods are coroutines; implementations run blocking library calls off the event loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bioauth.errors import InvalidInput

__all__ = [
    "DATA_KEY_BYTES",
    "KeyProvider",
    "KeyRef",
    "WrappedKey",
    "subject_key_id",
]

DATA_KEY_BYTES = 32
"""Data keys are AES-256 keys."""

_TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SUBJECT_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


@dataclass(frozen=True)
class KeyRef:
    """Names one version of one subject key."""

    key_id: str
    version: int


@dataclass(frozen=True)
class WrappedKey:
    """A data key wrapped under ``key_id`` at ``version``; ``blob`` is opaque, provider-specific."""

    key_id: str
    version: int
    blob: bytes = b""

    def __repr__(self) -> str:
        # The blob is not secret, but it has no business in logs either.
        blob = f"<{len(self.blob)} bytes>"
        return f"WrappedKey(key_id={self.key_id!r}, version={self.version}, blob={blob})"


def subject_key_id(tenant_id: str, subject_id: str) -> str:
    """The provider-independent id of a subject's key: ``<tenant>.<subject>``.

    Tenant ids cannot contain ``.`` (see ``TenantSettings.id``), so the split is unambiguous, and
    the id is a valid PKCS#11 label and Vault key name. The store may compute it without a
    provider (for example to destroy the key of a subject whose rows are already gone).
    """
    if not _TENANT_RE.fullmatch(tenant_id):
        raise InvalidInput("must match [a-z0-9][a-z0-9_-]{0,63}", field="tenant_id")
    if not _SUBJECT_RE.fullmatch(subject_id):
        raise InvalidInput("must match [A-Za-z0-9_-]{1,128}", field="subject_id")
    return f"{tenant_id}.{subject_id}"


@runtime_checkable
class KeyProvider(Protocol):
    """Subject keys (create, wrap, unwrap, rotate, rewrap, destroy) and the token-signing key."""

    @property
    def name(self) -> str:
        """Short provider name for logs and benchmarks: ``pkcs11``, ``vault`` or ``local``."""
        ...

    # --- subject keys -------------------------------------------------------------------------

    async def create_subject_key(self, tenant_id: str, subject_id: str) -> KeyRef:
        """Create the subject's key; idempotent (an existing key returns at its newest version)."""
        ...

    async def destroy_subject_key(self, key_id: str) -> None:
        """Destroy every version of the key. An absent key is success (idempotent).

        Raises ``KeyProviderUnavailable`` when the provider cannot confirm the key is gone; the
        caller (opt-out) must then retry and never report the opt-out done.
        """
        ...

    async def subject_key_exists(self, key_id: str) -> bool:
        """True when the provider holds any version of the key (asks the provider, no cache)."""
        ...

    async def generate_data_key(self, key_id: str, aad: bytes) -> tuple[bytearray, WrappedKey]:
        """A fresh AES-256 data key and its wrapping under the newest version of ``key_id``.

        The caller owns the returned ``bytearray`` and should zero it when done.
        """
        ...

    async def wrap(self, key_id: str, data_key: bytes | bytearray, aad: bytes) -> WrappedKey:
        """Wrap ``data_key`` under the newest version of ``key_id``, bound to ``aad``."""
        ...

    async def unwrap(self, wrapped: WrappedKey, aad: bytes) -> bytearray:
        """The data key in ``wrapped``; ``DecryptionFailed`` if the key or ``aad`` does not match.

        The caller owns the returned ``bytearray`` and should zero it when done.
        """
        ...

    async def rotate_subject_key(self, key_id: str) -> int:
        """Add a new version of the key and return its number; later wraps use it."""
        ...

    async def rewrap(self, wrapped: WrappedKey, aad: bytes) -> WrappedKey:
        """``wrapped`` re-wrapped under the newest version; ``DecryptionFailed`` if it does not open.

        Already at the newest version: the same ``WrappedKey`` or a fresh blob at that version
        (Transit always re-encrypts). Compare ``version`` to see whether anything moved.
        """
        ...

    async def retire_subject_key_versions(self, key_id: str, below_version: int) -> None:
        """Make versions older than ``below_version`` unusable (after a completed rewrap)."""
        ...

    # --- token signing ------------------------------------------------------------------------

    async def signing_key_id(self) -> str:
        """The ``kid`` of the newest signing-key version (created on first use)."""
        ...

    async def sign_es256(self, signing_input: bytes, *, kid: str | None = None) -> bytes:
        """Raw 64-byte ``r || s`` ES256 signature over SHA-256 of ``signing_input``.

        Pass the ``kid`` you put in the JWS header so a concurrent rotation cannot make the header
        and the signature disagree; ``None`` signs with the newest version.
        """
        ...

    async def public_jwks(self) -> list[dict[str, str]]:
        """EC P-256 JWKs (``use=sig``, ``alg=ES256``, a ``kid`` each), one per valid version."""
        ...

    async def rotate_signing_key(self) -> str:
        """Add a signing-key version and return its ``kid``; older versions stay published."""
        ...

    async def close(self) -> None:
        """Release sessions and threads; idempotent."""
        ...
