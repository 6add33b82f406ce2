"""Development key provider: every key in one JSON file with 0600 permissions.

This exists so that ``make run`` works on a laptop with no HSM and no Vault. It is NOT a secure
key store: keys sit in a plain file, so destroying one only protects against readers of later
copies of that file. It logs a warning every time it is opened and refuses to open when the
settings say ``environment = "production"``.

The file is rewritten atomically (temporary file, fsync, rename) on every change, under an
exclusive ``flock`` on a side lock file, and re-read first, so the server and a ``bioauth keys``
command can share one file. A miss in memory re-reads the file once before failing.

Wrapping: AES-256-GCM under the subject key version with the caller's AAD; the blob is
``nonce (12) || ciphertext || tag``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bioauth.crypto._jwk import der_to_raw_signature, jwk_from_public_key, make_kid, parse_kid
from bioauth.crypto.provider import DATA_KEY_BYTES, KeyRef, WrappedKey, subject_key_id
from bioauth.errors import DecryptionFailed, KeyProviderUnavailable, NotFound
from bioauth.observability.logging import get_logger

__all__ = ["LocalKeyProvider"]

_LOGGER = get_logger(__name__)
_FILE_FORMAT = 1
_NONCE_BYTES = 12
_TAG_BYTES = 16
_SIGNING_NAME = "bioauth-local-signing"
_RELOAD_AFTER_S = 30.0
"""Re-read the file this often before choosing a newest version, to see another process's rotation."""

# {"format": 1, "subject_keys": {key_id: {"min": 1, "versions": {"1": b64}}},
#  "signing": {"min": 1, "versions": {"1": PKCS#8 PEM}}}
_KeyFile = dict[str, Any]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _newest(entry: dict[str, Any]) -> int:
    return max(int(v) for v in entry["versions"])


class LocalKeyProvider:
    """Keys in a local file (development only). Open with ``await LocalKeyProvider.open(path)``."""

    def __init__(self, path: Path, data: _KeyFile) -> None:
        self._path = path
        self._data = data
        self._lock = asyncio.Lock()
        self._closed = False
        self._loaded_at = time.monotonic()

    @property
    def name(self) -> str:
        return "local"

    @classmethod
    async def open(
        cls, path: Path, *, environment: Literal["development", "production"] = "development"
    ) -> LocalKeyProvider:
        """Open (creating on first run) the key file; refused in production."""
        if environment == "production":
            raise KeyProviderUnavailable(
                "the local development key provider is refused in production"
            )
        _LOGGER.warning(
            "development_key_provider_in_use",
            key_file=str(path),
            detail="keys are kept in a plain file; never use it for real people's templates",
        )
        provider = cls(path, {})
        provider._data = await asyncio.to_thread(provider._load_or_create)
        return provider

    # --- file handling (runs in a worker thread) --------------------------------------------------

    @contextlib.contextmanager
    def _flock(self) -> Iterator[None]:
        lock_path = self._path.with_name(self._path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> _KeyFile:
        try:
            mode = self._path.stat().st_mode & 0o777
            if mode & 0o077:
                raise KeyProviderUnavailable(f"key file must be mode 0600, it is {mode:04o}")
            data: _KeyFile = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            raise KeyProviderUnavailable(f"cannot read the local key file: {exc}") from exc
        if data.get("format") != _FILE_FORMAT:
            raise KeyProviderUnavailable("local key file has an unknown format")
        return data

    def _write(self, data: _KeyFile) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=self._path.name + ".")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _load_or_create(self) -> _KeyFile:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._flock():
            try:
                return self._read()
            except FileNotFoundError:
                data: _KeyFile = {"format": _FILE_FORMAT, "subject_keys": {}, "signing": None}
                self._write(data)
                return data

    def _modify(self, change: Any) -> Any:
        """Re-read, apply ``change(data)``, write back; all under the file lock."""
        with self._flock():
            try:
                data = self._read()
            except FileNotFoundError as exc:
                raise KeyProviderUnavailable("the local key file disappeared") from exc
            result = change(data)
            self._write(data)
            self._data = data
            self._loaded_at = time.monotonic()
            return result

    def _reload(self) -> None:
        with self._flock():
            try:
                self._data = self._read()
                self._loaded_at = time.monotonic()
            except FileNotFoundError as exc:
                raise KeyProviderUnavailable("the local key file disappeared") from exc

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._closed:
            raise KeyProviderUnavailable("key provider is closed")
        async with self._lock:
            return await asyncio.to_thread(fn, *args)

    async def _subject_entry(self, key_id: str, *, newest: bool = False) -> dict[str, Any] | None:
        if newest and time.monotonic() - self._loaded_at > _RELOAD_AFTER_S:
            await self._run(self._reload)
        entry: dict[str, Any] | None = self._data["subject_keys"].get(key_id)
        if entry is None:
            await self._run(self._reload)
            entry = self._data["subject_keys"].get(key_id)
        return entry

    async def _key_bytes(self, key_id: str, version: int) -> bytes | None:
        entry = await self._subject_entry(key_id)
        if entry is None:
            return None
        if str(version) not in entry["versions"]:
            await self._run(self._reload)
            entry = self._data["subject_keys"].get(key_id)
        if entry is None or version < entry["min"] or str(version) not in entry["versions"]:
            return None
        return base64.b64decode(entry["versions"][str(version)])

    # --- subject keys ---------------------------------------------------------------------------

    async def create_subject_key(self, tenant_id: str, subject_id: str) -> KeyRef:
        key_id = subject_key_id(tenant_id, subject_id)

        def change(data: _KeyFile) -> int:
            entry = data["subject_keys"].setdefault(
                key_id, {"min": 1, "versions": {"1": _b64(AESGCM.generate_key(256))}}
            )
            return _newest(entry)

        version: int = await self._run(self._modify, change)
        return KeyRef(key_id=key_id, version=version)

    async def destroy_subject_key(self, key_id: str) -> None:
        def change(data: _KeyFile) -> None:
            data["subject_keys"].pop(key_id, None)

        await self._run(self._modify, change)

    async def subject_key_exists(self, key_id: str) -> bool:
        await self._run(self._reload)
        return key_id in self._data["subject_keys"]

    async def generate_data_key(self, key_id: str, aad: bytes) -> tuple[bytearray, WrappedKey]:
        data_key = bytearray(os.urandom(DATA_KEY_BYTES))
        return data_key, await self.wrap(key_id, data_key, aad)

    async def wrap(self, key_id: str, data_key: bytes | bytearray, aad: bytes) -> WrappedKey:
        entry = await self._subject_entry(key_id, newest=True)
        if entry is None:
            raise NotFound("subject key not found")
        version = _newest(entry)
        kek = base64.b64decode(entry["versions"][str(version)])
        nonce = os.urandom(_NONCE_BYTES)
        blob = nonce + AESGCM(kek).encrypt(nonce, bytes(data_key), aad)
        return WrappedKey(key_id=key_id, version=version, blob=blob)

    async def unwrap(self, wrapped: WrappedKey, aad: bytes) -> bytearray:
        kek = await self._key_bytes(wrapped.key_id, wrapped.version)
        if kek is None:
            raise DecryptionFailed("the subject key version is gone")
        if len(wrapped.blob) <= _NONCE_BYTES + _TAG_BYTES:
            raise DecryptionFailed("wrapped key is malformed")
        out = bytearray(len(wrapped.blob) - _NONCE_BYTES - _TAG_BYTES)
        try:
            AESGCM(kek).decrypt_into(
                wrapped.blob[:_NONCE_BYTES], wrapped.blob[_NONCE_BYTES:], aad, out
            )
        except InvalidTag as exc:
            raise DecryptionFailed("wrapped key does not open under its key and AAD") from exc
        return out

    async def rotate_subject_key(self, key_id: str) -> int:
        def change(data: _KeyFile) -> int:
            entry = data["subject_keys"].get(key_id)
            if entry is None:
                raise NotFound("subject key not found")
            version = _newest(entry) + 1
            entry["versions"][str(version)] = _b64(AESGCM.generate_key(256))
            return version

        result: int = await self._run(self._modify, change)
        return result

    async def rewrap(self, wrapped: WrappedKey, aad: bytes) -> WrappedKey:
        entry = await self._subject_entry(wrapped.key_id, newest=True)
        if entry is not None and _newest(entry) == wrapped.version:
            await self.unwrap(wrapped, aad)  # still prove it opens
            return wrapped
        data_key = await self.unwrap(wrapped, aad)
        try:
            return await self.wrap(wrapped.key_id, data_key, aad)
        finally:
            data_key[:] = bytes(len(data_key))

    async def retire_subject_key_versions(self, key_id: str, below_version: int) -> None:
        def change(data: _KeyFile) -> None:
            entry = data["subject_keys"].get(key_id)
            if entry is None:
                return
            keep = min(below_version, _newest(entry))
            entry["versions"] = {v: k for v, k in entry["versions"].items() if int(v) >= keep}
            entry["min"] = max(entry["min"], keep)

        await self._run(self._modify, change)

    # --- token signing ----------------------------------------------------------------------------

    async def _signing(self) -> dict[str, Any]:
        if self._data.get("signing") is None:

            def change(data: _KeyFile) -> None:
                if data.get("signing") is None:
                    data["signing"] = {"min": 1, "versions": {"1": _new_ec_pem()}}

            await self._run(self._modify, change)
        signing: dict[str, Any] = self._data["signing"]
        return signing

    async def signing_key_id(self) -> str:
        return make_kid(_SIGNING_NAME, _newest(await self._signing()))

    async def sign_es256(self, signing_input: bytes, *, kid: str | None = None) -> bytes:
        signing = await self._signing()
        version = _newest(signing) if kid is None else parse_kid(kid, _SIGNING_NAME)
        if str(version) not in signing["versions"]:
            await self._run(self._reload)
            signing = self._data["signing"]
        pem = signing["versions"].get(str(version))
        if pem is None:
            raise NotFound("no such signing key version")
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeyProviderUnavailable("local signing key is not an EC key")
        return der_to_raw_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))

    async def public_jwks(self) -> list[dict[str, str]]:
        signing = await self._signing()
        jwks = []
        for version in sorted(int(v) for v in signing["versions"]):
            if version < signing["min"]:
                continue
            key = serialization.load_pem_private_key(
                signing["versions"][str(version)].encode("ascii"), password=None
            )
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            jwks.append(jwk_from_public_key(key.public_key(), make_kid(_SIGNING_NAME, version)))
        return jwks

    async def rotate_signing_key(self) -> str:
        await self._signing()

        def change(data: _KeyFile) -> int:
            version = _newest(data["signing"]) + 1
            data["signing"]["versions"][str(version)] = _new_ec_pem()
            return version

        version: int = await self._run(self._modify, change)
        return make_kid(_SIGNING_NAME, version)

    async def close(self) -> None:
        self._closed = True


def _new_ec_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
