"""Envelope encryption of face templates: AES-256-GCM under a fresh data key per template.

The data key is wrapped by the subject's key inside the key provider; only the wrapped form is
stored. The GCM AAD and the wrapping AAD both bind tenant, subject, template id, model id and
format version (with a different purpose label, so one can never stand in for the other), so a
ciphertext or wrapped key copied to another row, subject or tenant fails with ``DecryptionFailed``.

AAD encoding (unambiguous, no escaping): the ASCII label, then for each field a 4-byte big-endian
length followed by its UTF-8 bytes, in the order tenant, subject, template id, model id, then the
format version as a 2-byte big-endian integer.

Format versions: ``1`` is operator-held keys (the data key is wrapped by the subject key only).
Holder-bound templates (DESIGN.md, "Planned") will be a new version whose data key also needs a
share presented by the cardholder; the version is part of the AAD, so a record cannot be
downgraded to ``1`` by editing the column.

Zeroisation: data keys are ``bytearray``s zeroed after use, and plaintext embeddings are encrypted
from, and decrypted into, buffers this module owns and zeroes. Python gives no stronger guarantee
(OpenSSL's own copies are freed by the library; the returned array belongs to the caller).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bioauth.crypto.provider import DATA_KEY_BYTES, KeyProvider, KeyRef, WrappedKey
from bioauth.errors import DecryptionFailed, InvalidInput

__all__ = [
    "FORMAT_VERSION",
    "NONCE_BYTES",
    "SealedTemplate",
    "open_template",
    "seal_template",
    "template_aad",
    "wrap_aad",
]

FORMAT_VERSION = 1
"""Operator-held subject key, float32 little-endian embedding."""

NONCE_BYTES = 12
_TAG_BYTES = 16
_SUPPORTED_VERSIONS = frozenset({FORMAT_VERSION})
_TEMPLATE_LABEL = b"bioauth/template/v1"
_WRAP_LABEL = b"bioauth/data-key/v1"
_MAX_DIM = 4096


@dataclass(frozen=True)
class SealedTemplate:
    """What the store persists for one template: nothing in it is secret without the subject key."""

    template_id: str
    tenant_id: str
    subject_id: str
    model_id: str
    format_version: int
    nonce: bytes
    ciphertext: bytes
    """GCM ciphertext followed by the 16-byte tag."""
    wrapped_key: bytes
    key_id: str
    key_version: int
    quality: float
    created_at: datetime
    """Timezone-aware, UTC."""

    def __repr__(self) -> str:
        return (
            f"SealedTemplate(template_id={self.template_id!r}, tenant_id={self.tenant_id!r}, "
            f"model_id={self.model_id!r}, format_version={self.format_version}, "
            f"key_id=<{len(self.key_id)} chars>, key_version={self.key_version}, "
            f"ciphertext=<{len(self.ciphertext)} bytes>)"
        )

    @property
    def wrapped(self) -> WrappedKey:
        """The wrapped data key as the provider takes it."""
        return WrappedKey(key_id=self.key_id, version=self.key_version, blob=self.wrapped_key)


def _encode(
    label: bytes, tenant_id: str, subject_id: str, template_id: str, model_id: str, fmt: int
) -> bytes:
    parts = [label]
    for field in (tenant_id, subject_id, template_id, model_id):
        raw = field.encode("utf-8")
        parts.append(struct.pack(">I", len(raw)))
        parts.append(raw)
    parts.append(struct.pack(">H", fmt))
    return b"".join(parts)


def template_aad(
    *, tenant_id: str, subject_id: str, template_id: str, model_id: str, format_version: int
) -> bytes:
    """The AAD of the template ciphertext."""
    return _encode(_TEMPLATE_LABEL, tenant_id, subject_id, template_id, model_id, format_version)


def wrap_aad(
    *, tenant_id: str, subject_id: str, template_id: str, model_id: str, format_version: int
) -> bytes:
    """The AAD the data key is wrapped with (same binding, different label)."""
    return _encode(_WRAP_LABEL, tenant_id, subject_id, template_id, model_id, format_version)


def _zero(buf: bytearray | memoryview) -> None:
    view = memoryview(buf).cast("B")
    view[:] = bytes(len(view))


def _check_ids(**ids: str) -> None:
    for name, value in ids.items():
        if not value:
            raise InvalidInput("must not be empty", field=name)


async def seal_template(
    provider: KeyProvider,
    *,
    tenant_id: str,
    subject_id: str,
    template_id: str,
    model_id: str,
    key: KeyRef | str,
    embedding: npt.NDArray[np.floating],
    quality: float,
    created_at: datetime | None = None,
) -> SealedTemplate:
    """Encrypt one embedding under a fresh data key wrapped by the subject's key.

    ``key`` names the subject key (a ``KeyRef`` or its id; the newest version is used either way).
    """
    _check_ids(
        tenant_id=tenant_id, subject_id=subject_id, template_id=template_id, model_id=model_id
    )
    vector = np.asarray(embedding)
    if vector.ndim != 1 or not 0 < vector.shape[0] <= _MAX_DIM:
        raise InvalidInput(f"must be a 1-d vector of 1..{_MAX_DIM} values", field="embedding")
    if not np.all(np.isfinite(vector)):
        raise InvalidInput("must be finite", field="embedding")
    when = created_at or datetime.now(UTC)
    if when.tzinfo is None:
        raise InvalidInput("must be timezone-aware", field="created_at")
    key_id = key.key_id if isinstance(key, KeyRef) else key
    binding = (tenant_id, subject_id, template_id, model_id, FORMAT_VERSION)
    data_key, wrapped = await provider.generate_data_key(key_id, _encode(_WRAP_LABEL, *binding))
    plaintext = np.ascontiguousarray(vector, dtype="<f4").copy()  # our own buffer, zeroed below
    try:
        if len(data_key) != DATA_KEY_BYTES:
            raise DecryptionFailed("key provider returned a data key of the wrong size")
        nonce = os.urandom(NONCE_BYTES)
        out = bytearray(plaintext.nbytes + _TAG_BYTES)
        AESGCM(data_key).encrypt_into(
            nonce, plaintext.view(np.uint8).data, _encode(_TEMPLATE_LABEL, *binding), out
        )
    finally:
        _zero(data_key)
        plaintext.fill(0)
    return SealedTemplate(
        template_id=template_id,
        tenant_id=tenant_id,
        subject_id=subject_id,
        model_id=model_id,
        format_version=FORMAT_VERSION,
        nonce=nonce,
        ciphertext=bytes(out),
        wrapped_key=wrapped.blob,
        key_id=wrapped.key_id,
        key_version=wrapped.version,
        quality=float(quality),
        created_at=when.astimezone(UTC),
    )


async def open_template(provider: KeyProvider, sealed: SealedTemplate) -> npt.NDArray[np.float32]:
    """Decrypt one template; ``DecryptionFailed`` if anything about it was moved or altered."""
    if sealed.format_version not in _SUPPORTED_VERSIONS:
        raise DecryptionFailed(f"unsupported template format version {sealed.format_version}")
    body = len(sealed.ciphertext) - _TAG_BYTES
    if len(sealed.nonce) != NONCE_BYTES or body <= 0 or body % 4 or body // 4 > _MAX_DIM:
        raise DecryptionFailed("template record is malformed")
    binding = (
        sealed.tenant_id,
        sealed.subject_id,
        sealed.template_id,
        sealed.model_id,
        sealed.format_version,
    )
    data_key = await provider.unwrap(sealed.wrapped, _encode(_WRAP_LABEL, *binding))
    scratch = np.empty(body // 4, dtype="<f4")
    try:
        if len(data_key) != DATA_KEY_BYTES:
            raise DecryptionFailed("template data key has the wrong size")
        AESGCM(data_key).decrypt_into(
            sealed.nonce,
            sealed.ciphertext,
            _encode(_TEMPLATE_LABEL, *binding),
            scratch.view(np.uint8).data,
        )
        result = scratch.astype(np.float32)  # native order, owned by the caller
    except InvalidTag as exc:
        raise DecryptionFailed("template does not open under its key and AAD") from exc
    finally:
        _zero(data_key)
        scratch.fill(0)
    return result
