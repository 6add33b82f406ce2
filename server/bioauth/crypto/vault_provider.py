"""Key provider on Vault Transit (or OpenBao, the open-source fork with the same API) via hvac.

One Transit key per subject, named ``<subject_key_prefix><key_id>``, type ``aes256-gcm96`` with
``derived=true``. AAD binding: every datakey, decrypt and rewrap call passes the envelope's AAD as
Transit ``context``, so Transit derives a key per (subject key, AAD) and a wrapped data key moved to
another row does not decrypt. We use ``context`` rather than ``associated_data`` because OpenBao's
``rewrap`` does not accept ``associated_data`` (measured: it fails authentication), while with
``context`` ``rewrap`` runs inside Transit and the data key never comes out during a rewrap.

Deletion is refused by Transit unless ``deletion_allowed`` is set in the key's config; it is set
only by ``destroy_subject_key`` (the opt-out), immediately before deleting. After deletion Transit
answers 404 for the key and "encryption key not found" for its ciphertexts; a key re-created
under the same name does not open them.

Upsert: Transit's ``encrypt`` creates a missing key when the token may ``create`` on that path,
which would quietly resurrect a destroyed subject key, so ``wrap`` checks the key exists first and
``generate_data_key`` uses ``datakey`` (which never creates). Production policies should grant
``update`` but not ``create`` on ``<mount>/encrypt/*``.

Signing: an ``ecdsa-p256`` key; ``sign`` with ``prehashed=true``, ``hash_algorithm=sha2-256`` and
``marshaling_algorithm=jws`` returns base64url of the raw ``r || s`` ES256 needs (the default is
DER). Public keys come from the key's info; versions below ``min_decryption_version`` are no
longer published.

Sentinel: ``bioauth keys init`` creates a Transit key named ``bioauth-sentinel`` in the mount;
opening a mount without it fails (``KeyProviderUnavailable``), so a server pointed at a fresh,
wiped or wrong mount does not start and treat every subject as opted out (as with PKCS#11).

Calls run on a small thread pool, one ``hvac.Client`` (one HTTP connection pool) per thread.
Connection failures, timeouts, 401/403 (token revoked or policy), 429 and 5xx mean "unavailable".
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bioauth.crypto._jwk import b64url_decode, jwk_from_public_key, make_kid, parse_kid
from bioauth.crypto.provider import KeyRef, WrappedKey, subject_key_id
from bioauth.errors import DecryptionFailed, InternalError, KeyProviderUnavailable, NotFound
from bioauth.observability.logging import get_logger

__all__ = ["VaultKeyProvider"]

_LOGGER = get_logger(__name__)
_T = TypeVar("_T")
_SENTINEL = "bioauth-sentinel"
_SIGNING_VERSION_TTL_S = 30.0  # like the PKCS#11 provider's _NEWEST_TTL_S

_UNAVAILABLE = (
    requests.exceptions.RequestException,
    hvac.exceptions.Unauthorized,
    hvac.exceptions.Forbidden,
    hvac.exceptions.RateLimitExceeded,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.VaultNotInitialized,
    hvac.exceptions.VaultDown,
    hvac.exceptions.BadGateway,
    hvac.exceptions.UnexpectedError,
)


def _b64(raw: bytes | bytearray) -> str:
    return base64.b64encode(raw).decode("ascii")


def _version_of(ciphertext: str) -> int:
    # "vault:v3:..." (OpenBao keeps Vault's prefix)
    parts = ciphertext.split(":", 2)
    if len(parts) != 3 or not parts[1].startswith("v") or not parts[1][1:].isdigit():
        raise DecryptionFailed("Transit returned a ciphertext in an unknown format")
    return int(parts[1][1:])


class VaultKeyProvider:
    """Subject keys and the signing key in Vault/OpenBao Transit. Open with ``await ...open()``."""

    def __init__(
        self,
        *,
        url: str,
        token: str,
        mount: str,
        subject_key_prefix: str,
        signing_key_name: str,
        timeout_s: float,
        max_threads: int,
    ) -> None:
        self._url = url
        self._token = token
        self._mount = mount.strip("/")
        self._prefix = subject_key_prefix
        self._signing_name = signing_key_name
        self._timeout_s = timeout_s
        self._local = threading.local()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_threads, thread_name_prefix="bioauth-vault"
        )
        self._closed = False
        self._signing_version: tuple[int, float] | None = None
        """(latest version, when read): saves a GET before every approval's sign call."""

    @property
    def name(self) -> str:
        return "vault"

    @classmethod
    async def open(
        cls,
        *,
        url: str,
        token: str,
        mount: str = "transit",
        subject_key_prefix: str = "bioauth-subject-",
        signing_key_name: str = "bioauth-token-signing",
        timeout_s: float = 5.0,
        max_threads: int = 8,
        initialise: bool = False,
    ) -> VaultKeyProvider:
        """Connect and check the token can use the Transit mount and that the mount is bioauth's
        (its sentinel key; ``initialise`` creates it, once); fails closed otherwise."""
        provider = cls(
            url=url,
            token=token,
            mount=mount,
            subject_key_prefix=subject_key_prefix,
            signing_key_name=signing_key_name,
            timeout_s=timeout_s,
            max_threads=max_threads,
        )
        try:
            await provider._check_sentinel(initialise)
        except BaseException:
            provider._executor.shutdown(wait=False)
            raise
        _LOGGER.info("vault_key_provider_open", url=url, mount=mount)
        return provider

    async def _check_sentinel(self, initialise: bool) -> None:
        path = f"/v1/{self._mount}/keys/{_SENTINEL}"
        try:
            await self._call(lambda c: c.adapter.get(path))
        except NotFound:
            if not initialise:
                raise KeyProviderUnavailable(
                    f"Vault Transit mount {self._mount!r} holds no {_SENTINEL} key: never "
                    "initialised (run `bioauth keys init`) or wiped"
                ) from None
            await self._post(path, {"type": "aes256-gcm96"})

    # --- plumbing ---------------------------------------------------------------------------------

    def _client(self) -> hvac.Client:
        client: hvac.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = hvac.Client(url=self._url, token=self._token, timeout=self._timeout_s)
            self._local.client = client
        return client

    async def _call(self, fn: Callable[[hvac.Client], _T]) -> _T:
        """Run ``fn(client)`` on a worker thread; transport/auth/server failures mean "down"."""
        if self._closed:
            raise KeyProviderUnavailable("key provider is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(self._client()))
        except _UNAVAILABLE as exc:
            raise KeyProviderUnavailable(
                f"Vault Transit unavailable: {type(exc).__name__}"
            ) from exc
        except hvac.exceptions.InvalidPath as exc:
            if "no handler for route" in str(exc):
                raise KeyProviderUnavailable(
                    "Transit is not mounted at the configured path"
                ) from exc
            raise NotFound("Transit key not found") from exc
        except hvac.exceptions.InvalidRequest as exc:
            raise _Refused(str(exc)) from exc
        except hvac.exceptions.VaultError as exc:
            raise KeyProviderUnavailable(f"Vault Transit failed: {type(exc).__name__}") from exc

    def _key_path(self, key_id: str, op: str = "keys") -> str:
        return f"/v1/{self._mount}/{op}/{self._prefix}{key_id}"

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._call(lambda c: c.adapter.post(path, json=body))
        if not isinstance(response, dict):
            return {}
        data: dict[str, Any] = response.get("data") or {}
        return data

    async def _key_info(self, key_id: str) -> dict[str, Any]:
        response = await self._call(lambda c: c.adapter.get(self._key_path(key_id)))
        data: dict[str, Any] = response["data"]
        return data

    # --- subject keys -----------------------------------------------------------------------------

    async def create_subject_key(self, tenant_id: str, subject_id: str) -> KeyRef:
        key_id = subject_key_id(tenant_id, subject_id)
        info = await self._post(self._key_path(key_id), {"type": "aes256-gcm96", "derived": True})
        if "latest_version" not in info:  # Vault answers 204 here, OpenBao returns the key
            info = await self._key_info(key_id)
        if not info.get("derived") or info.get("type") != "aes256-gcm96":
            raise InternalError("a Transit key with this subject's name exists with other settings")
        return KeyRef(key_id=key_id, version=int(info["latest_version"]))

    async def destroy_subject_key(self, key_id: str) -> None:
        try:
            await self._post(self._key_path(key_id) + "/config", {"deletion_allowed": True})
            await self._call(lambda c: c.adapter.delete(self._key_path(key_id)))
        except NotFound:
            pass
        except _Refused as exc:
            if "could be found" not in exc.detail and "not found" not in exc.detail:
                raise KeyProviderUnavailable("Transit refused to delete the subject key") from exc
        if await self.subject_key_exists(key_id):
            raise KeyProviderUnavailable("Transit still holds the subject key after delete")

    async def subject_key_exists(self, key_id: str) -> bool:
        try:
            await self._key_info(key_id)
        except NotFound:
            return False
        return True

    async def generate_data_key(self, key_id: str, aad: bytes) -> tuple[bytearray, WrappedKey]:
        try:
            data = await self._post(
                self._key_path(key_id, "datakey/plaintext"), {"context": _b64(aad), "bits": 256}
            )
        except _Refused as exc:
            raise NotFound("subject key not found") from exc
        ciphertext: str = data["ciphertext"]
        # The plaintext arrives as an immutable str in the JSON response; only our copy is zeroable.
        data_key = bytearray(base64.b64decode(data.pop("plaintext")))
        return data_key, WrappedKey(
            key_id=key_id, version=_version_of(ciphertext), blob=ciphertext.encode()
        )

    async def wrap(self, key_id: str, data_key: bytes | bytearray, aad: bytes) -> WrappedKey:
        if not await self.subject_key_exists(key_id):  # encrypt would create it (upsert)
            raise NotFound("subject key not found")
        data = await self._post(
            self._key_path(key_id, "encrypt"), {"plaintext": _b64(data_key), "context": _b64(aad)}
        )
        ciphertext: str = data["ciphertext"]
        return WrappedKey(key_id=key_id, version=_version_of(ciphertext), blob=ciphertext.encode())

    async def unwrap(self, wrapped: WrappedKey, aad: bytes) -> bytearray:
        body = {"ciphertext": wrapped.blob.decode("ascii", "replace"), "context": _b64(aad)}
        try:
            data = await self._post(self._key_path(wrapped.key_id, "decrypt"), body)
        except (_Refused, NotFound) as exc:
            # "encryption key not found" (destroyed), "message authentication failed" (moved or
            # tampered), "ciphertext version is disallowed" (retired): all one opaque failure.
            raise DecryptionFailed("wrapped key does not open under its key and AAD") from exc
        return bytearray(base64.b64decode(data.pop("plaintext")))

    async def rotate_subject_key(self, key_id: str) -> int:
        if not await self.subject_key_exists(key_id):
            raise NotFound("subject key not found")
        info = await self._post(self._key_path(key_id) + "/rotate", {})
        if "latest_version" not in info:
            info = await self._key_info(key_id)
        return int(info["latest_version"])

    async def rewrap(self, wrapped: WrappedKey, aad: bytes) -> WrappedKey:
        body = {"ciphertext": wrapped.blob.decode("ascii", "replace"), "context": _b64(aad)}
        try:
            data = await self._post(self._key_path(wrapped.key_id, "rewrap"), body)
        except (_Refused, NotFound) as exc:
            raise DecryptionFailed("wrapped key does not open under its key and AAD") from exc
        ciphertext: str = data["ciphertext"]
        return WrappedKey(
            key_id=wrapped.key_id, version=_version_of(ciphertext), blob=ciphertext.encode()
        )

    async def retire_subject_key_versions(self, key_id: str, below_version: int) -> None:
        try:
            info = await self._key_info(key_id)
        except NotFound:
            return
        keep = min(below_version, int(info["latest_version"]))
        if keep > int(info["min_decryption_version"]):
            await self._post(self._key_path(key_id) + "/config", {"min_decryption_version": keep})

    # --- token signing ----------------------------------------------------------------------------

    def _signing_path(self, op: str = "keys") -> str:
        return f"/v1/{self._mount}/{op}/{self._signing_name}"

    async def _signing_info(self) -> dict[str, Any]:
        try:
            response = await self._call(lambda c: c.adapter.get(self._signing_path()))
        except NotFound:
            await self._post(self._signing_path(), {"type": "ecdsa-p256"})
            response = await self._call(lambda c: c.adapter.get(self._signing_path()))
        data: dict[str, Any] = response["data"]
        if data.get("type") != "ecdsa-p256":
            raise InternalError("the Transit signing key is not an ecdsa-p256 key")
        return data

    async def _latest_signing_version(self) -> int:
        """The newest signing version, re-read at most every ``_SIGNING_VERSION_TTL_S``: a
        rotation made elsewhere is picked up within that time; until then tokens carry the
        previous version, which the JWKS still publishes."""
        cached = self._signing_version
        if cached is not None and time.monotonic() - cached[1] < _SIGNING_VERSION_TTL_S:
            return cached[0]
        version = int((await self._signing_info())["latest_version"])
        self._signing_version = (version, time.monotonic())
        return version

    async def signing_key_id(self) -> str:
        return make_kid(self._signing_name, await self._latest_signing_version())

    async def sign_es256(self, signing_input: bytes, *, kid: str | None = None) -> bytes:
        version = (
            await self._latest_signing_version()
            if kid is None
            else parse_kid(kid, self._signing_name)
        )
        body = {
            "input": _b64(hashlib.sha256(signing_input).digest()),
            "prehashed": True,
            "hash_algorithm": "sha2-256",
            "marshaling_algorithm": "jws",
            "key_version": version,
        }
        try:
            data = await self._post(self._signing_path("sign"), body)
        except _Refused as exc:
            raise NotFound("no such signing key version") from exc
        prefix, _, encoded = str(data["signature"]).rpartition(":")
        signature = b64url_decode(encoded)
        if prefix != f"vault:v{version}" or len(signature) != 64:
            raise InternalError("Transit returned a signature that is not a raw P-256 r||s")
        return signature

    async def public_jwks(self) -> list[dict[str, str]]:
        info = await self._signing_info()
        floor = int(info.get("min_decryption_version") or 1)
        jwks = []
        for version_text, key in sorted(info["keys"].items(), key=lambda kv: int(kv[0])):
            version = int(version_text)
            if version < floor:
                continue
            public = serialization.load_pem_public_key(key["public_key"].encode("ascii"))
            if not isinstance(public, ec.EllipticCurvePublicKey):
                raise InternalError("the Transit signing key is not an EC key")
            jwks.append(jwk_from_public_key(public, make_kid(self._signing_name, version)))
        return jwks

    async def rotate_signing_key(self) -> str:
        await self._signing_info()
        info = await self._post(self._signing_path() + "/rotate", {})
        if "latest_version" not in info:
            info = await self._signing_info()
        version = int(info["latest_version"])
        self._signing_version = (version, time.monotonic())
        return make_kid(self._signing_name, version)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=False)


class _Refused(InternalError):
    """Transit answered 400. Callers turn the ones they expect into the right error; any other
    reaches the caller as an ``InternalError`` with a generic message (the detail stays here)."""

    def __init__(self, detail: str) -> None:
        super().__init__("Vault Transit refused the request")
        self.detail = detail
