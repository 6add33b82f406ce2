"""Key provider on a PKCS#11 token (an HSM; SoftHSM2 in tests) through python-pkcs11.

Objects in the token:

* one AES-256 secret key per subject key version, label ``<key_id>``, ``CKA_ID`` ``<key_id>/v<n>``,
  generated inside the token with ``CKA_SENSITIVE`` true and ``CKA_EXTRACTABLE`` false;
* one EC P-256 key pair per signing-key version, label ``<signing label>``, id ``<label>/v<n>``,
  private half sensitive and non-extractable;
* a sentinel secret key (label ``bioauth-sentinel``) made once by ``bioauth keys init``. Opening
  a token without it fails (``KeyProviderUnavailable``): a wiped, replaced or wrong token must not
  start a server on which every subject looks opted out. A look-up that finds nothing checks the
  sentinel too: a missing key with the sentinel present means the key was destroyed
  (``DecryptionFailed``); without it the token itself is gone or replaced
  (``KeyProviderUnavailable``), so a wiped token fails closed instead of looking like an opt-out.

Wrapping a data key is ``CKM_AES_GCM`` encryption under the subject key with the caller's AAD as
GCM additional data (``C_WrapKey`` has no AAD; SoftHSM2 refuses GCM inside it), blob
``nonce (12) || ciphertext || tag``. Random 96-bit nonces are safe here: one subject key
encrypts a handful of data keys, far below the 2^32 limit. Signing is ``CKM_ECDSA`` over a SHA-256
digest computed here (SoftHSM2 refuses ``CKM_ECDSA_SHA256``); the token returns raw ``r || s``.

Threads: a PKCS#11 session must not be used by two threads at once, so every call runs on one
dedicated worker thread that owns the session. Object handles are cached (SoftHSM2 scans every
object on each find: about 127 ms at 10,000 objects) and refreshed on a miss or a stale handle.

Where per-subject objects stop scaling: SoftHSM2 keeps every object in memory and in two files,
so finds, destroys and opening the token grow linearly (opening takes about 9 s and 0.9 GiB at
100,000 keys); it is for tests and small deployments. Network HSMs cap token objects by their
secure storage, typically some thousands to a few hundred thousand objects per partition, and
replicate each object across an HA group (check the vendor's figures for the model and licence
in use). Beyond that, the design degrades to a two-level
hierarchy: one master key (or a few, by tenant) stays in the HSM and the subject keys become
AES keys wrapped under it (``C_WrapKey`` with ``CKM_AES_KEY_WRAP_PAD``) in a separate key table in
the database, with short backup retention. Destroying a subject key then deletes its row;
crypto-shredding of older backups happens only when those backups age out, or when the master
key is rotated and the old version destroyed, which re-wraps every other subject key. Vault
Transit (one key per subject, no growth in latency at 100,000 keys measured here) is the other
way out. The two-level fallback is described here, not built.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pkcs11
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, GCMParams, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import (
    EncryptedDataInvalid,
    EncryptedDataLenRange,
    GeneralError,
    ObjectHandleInvalid,
    PKCS11Error,
)
from pkcs11.util.ec import encode_named_curve_parameters

from bioauth.crypto._jwk import jwk_from_public_key, make_kid, parse_kid
from bioauth.crypto.provider import DATA_KEY_BYTES, KeyRef, WrappedKey, subject_key_id
from bioauth.errors import DecryptionFailed, KeyProviderUnavailable, NotFound
from bioauth.observability.logging import get_logger

__all__ = ["Pkcs11KeyProvider"]

_LOGGER = get_logger(__name__)
_T = TypeVar("_T")
_NONCE_BYTES = 12
_TAG_BYTES = 16
_SENTINEL_LABEL = "bioauth-sentinel"
_NEWEST_TTL_S = 30.0
"""How stale the cached version list may be when choosing the newest version (wrap, rewrap).

Another process (``bioauth keys rotate``) may add versions; unwrap refreshes on a miss, but wrap
would silently keep using the old newest version, so the choice of newest is re-checked this often.
"""
_SUBJECT_KEY_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.ENCRYPT: True,
    Attribute.DECRYPT: True,
    Attribute.WRAP: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
}
_EC_PRIVATE_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
}


def _object_id(name: str, version: int) -> bytes:
    return f"{name}/v{version}".encode()


def _version_of(obj: Any, name: str) -> int | None:
    raw = bytes(obj[Attribute.ID])
    prefix = f"{name}/v".encode()
    if not raw.startswith(prefix) or not raw[len(prefix) :].isdigit():
        return None
    return int(raw[len(prefix) :])


def _ec_point_to_public_key(ec_point: bytes) -> ec.EllipticCurvePublicKey:
    # CKA_EC_POINT is a DER OCTET STRING around the uncompressed point (0x04 || x || y).
    point = ec_point[2:] if len(ec_point) == 67 and ec_point[:2] == b"\x04\x41" else ec_point
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


class Pkcs11KeyProvider:
    """Subject keys and the signing key inside a PKCS#11 token. Open with ``await ...open()``."""

    def __init__(self, executor: concurrent.futures.ThreadPoolExecutor, signing_label: str) -> None:
        self._executor = executor
        self._signing_label = signing_label
        self._session: Any = None
        self._token_key: tuple[str, str] | None = None
        self._subject_cache: dict[str, dict[int, Any]] = {}
        self._found_at: dict[str, float] = {}
        self._signing_cache: dict[int, tuple[Any, ec.EllipticCurvePublicKey]] = {}
        self._closed = False

    @property
    def name(self) -> str:
        return "pkcs11"

    @classmethod
    async def open(
        cls,
        *,
        library: Path,
        token_label: str,
        user_pin: str,
        signing_key_label: str,
        initialise: bool = False,
    ) -> Pkcs11KeyProvider:
        """Log in to the token; ``KeyProviderUnavailable`` if the library, token or PIN is wrong,
        or if the token was never initialised for bioauth (``initialise`` does that, once)."""
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bioauth-pkcs11")
        provider = cls(executor, signing_key_label)

        def login() -> None:
            token = pkcs11.lib(str(library)).get_token(token_label=token_label)
            provider._token_key = _LOGINS.acquire(token, str(library), token_label, user_pin)
            try:
                provider._session = token.open(rw=True)
                if not provider._token_present():
                    if not initialise:
                        raise KeyProviderUnavailable(
                            f"PKCS#11 token {token_label!r} holds no bioauth sentinel: never "
                            "initialised (run `bioauth keys init`) or wiped"
                        )
                    provider._session.generate_key(
                        KeyType.AES,
                        256,
                        label=_SENTINEL_LABEL,
                        store=True,
                        template=_SUBJECT_KEY_TEMPLATE,
                    )
            except BaseException:
                _LOGINS.release(provider._token_key)
                raise

        try:
            await provider._call(login)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        _LOGGER.info("pkcs11_key_provider_open", token_label=token_label)
        return provider

    async def _call(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on the session thread; any PKCS#11 failure not handled inside is "down"."""
        if self._closed:
            raise KeyProviderUnavailable("key provider is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except (PKCS11Error, RuntimeError, OSError) as exc:
            raise KeyProviderUnavailable(
                f"PKCS#11 token unavailable: {type(exc).__name__}"
            ) from exc

    # --- object look-up (session thread only) ----------------------------------------------------

    def _token_present(self) -> bool:
        return bool(list(self._session.get_objects({Attribute.LABEL: _SENTINEL_LABEL})))

    def _find_subject(self, key_id: str) -> dict[int, Any]:
        """Fresh find of every version; refills the cache. Missing with no sentinel: token gone."""
        found: dict[int, Any] = {}
        for obj in self._session.get_objects(
            {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: key_id}
        ):
            version = _version_of(obj, key_id)
            if version is not None:
                found[version] = obj
        if not found and not self._token_present():
            raise KeyProviderUnavailable("PKCS#11 token lost its objects (removed or replaced)")
        if found:
            self._subject_cache[key_id] = found
            self._found_at[key_id] = time.monotonic()
        else:
            self._subject_cache.pop(key_id, None)
            self._found_at.pop(key_id, None)
        return found

    def _subject_versions(self, key_id: str, *, newest: bool = False) -> dict[int, Any]:
        cached = self._subject_cache.get(key_id)
        if cached and newest and time.monotonic() - self._found_at.get(key_id, 0.0) > _NEWEST_TTL_S:
            cached = None
        return cached if cached else self._find_subject(key_id)

    def _with_subject_key(
        self, key_id: str, version: int | None, op: Callable[[Any, int], _T]
    ) -> _T:
        """Run ``op(key, version)`` on the cached handle, refreshing once if it went stale."""
        for attempt in (0, 1):
            if attempt == 0:
                versions = self._subject_versions(key_id, newest=version is None)
            else:
                versions = self._find_subject(key_id)
            if not versions:
                raise _Missing
            chosen = max(versions) if version is None else version
            key = versions.get(chosen)
            if key is None:
                if attempt == 0:
                    continue
                raise _Missing
            try:
                return op(key, chosen)
            except ObjectHandleInvalid:
                if attempt == 1:
                    raise
        raise _Missing

    # --- subject keys -----------------------------------------------------------------------------

    async def create_subject_key(self, tenant_id: str, subject_id: str) -> KeyRef:
        key_id = subject_key_id(tenant_id, subject_id)

        def create() -> int:
            versions = self._find_subject(key_id)
            if versions:
                return max(versions)
            self._subject_cache[key_id] = {1: self._generate_subject_key(key_id, 1)}
            self._found_at[key_id] = time.monotonic()
            return 1

        return KeyRef(key_id=key_id, version=await self._call(create))

    def _generate_subject_key(self, key_id: str, version: int) -> Any:
        return self._session.generate_key(
            KeyType.AES,
            256,
            label=key_id,
            id=_object_id(key_id, version),
            store=True,
            template=_SUBJECT_KEY_TEMPLATE,
        )

    async def destroy_subject_key(self, key_id: str) -> None:
        def destroy() -> None:
            self._subject_cache.pop(key_id, None)
            for obj in self._find_subject(key_id).values():
                # A handle already invalid was destroyed by another session: what we want.
                with contextlib.suppress(ObjectHandleInvalid):
                    obj.destroy()
            self._subject_cache.pop(key_id, None)
            if self._find_subject(key_id):
                raise KeyProviderUnavailable(
                    "PKCS#11 token still holds the subject key after destroy"
                )

        await self._call(destroy)

    async def subject_key_exists(self, key_id: str) -> bool:
        return bool(await self._call(lambda: self._find_subject(key_id)))

    async def generate_data_key(self, key_id: str, aad: bytes) -> tuple[bytearray, WrappedKey]:
        data_key = bytearray(os.urandom(DATA_KEY_BYTES))
        return data_key, await self.wrap(key_id, data_key, aad)

    async def wrap(self, key_id: str, data_key: bytes | bytearray, aad: bytes) -> WrappedKey:
        def op(key: Any, version: int) -> WrappedKey:
            nonce = os.urandom(_NONCE_BYTES)
            sealed = key.encrypt(
                bytes(data_key), mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, aad)
            )
            return WrappedKey(key_id=key_id, version=version, blob=nonce + bytes(sealed))

        try:
            return await self._call(lambda: self._with_subject_key(key_id, None, op))
        except _Missing as exc:
            raise NotFound("subject key not found") from exc

    async def unwrap(self, wrapped: WrappedKey, aad: bytes) -> bytearray:
        if len(wrapped.blob) <= _NONCE_BYTES + _TAG_BYTES:
            raise DecryptionFailed("wrapped key is malformed")
        nonce, body = wrapped.blob[:_NONCE_BYTES], wrapped.blob[_NONCE_BYTES:]

        def op(key: Any, _version: int) -> bytearray:
            try:
                return bytearray(
                    key.decrypt(
                        body, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, aad)
                    )
                )
            except GeneralError as exc:
                # SoftHSM2 reports a failed GCM tag as CKR_GENERAL_ERROR, and so does a failing
                # device: only while the token still answers with its sentinel is it a bad tag.
                if not self._token_present():
                    raise KeyProviderUnavailable("PKCS#11 token lost its objects") from exc
                raise _BadTag from exc
            except (EncryptedDataInvalid, EncryptedDataLenRange) as exc:
                raise _BadTag from exc

        try:
            return await self._call(
                lambda: self._with_subject_key(wrapped.key_id, wrapped.version, op)
            )
        except _Missing as exc:
            raise DecryptionFailed("the subject key version is gone") from exc
        except _BadTag as exc:
            raise DecryptionFailed("wrapped key does not open under its key and AAD") from exc

    async def rotate_subject_key(self, key_id: str) -> int:
        def rotate() -> int:
            versions = self._find_subject(key_id)
            if not versions:
                raise _Missing
            version = max(versions) + 1
            versions[version] = self._generate_subject_key(key_id, version)
            return version

        try:
            return await self._call(rotate)
        except _Missing as exc:
            raise NotFound("subject key not found") from exc

    async def rewrap(self, wrapped: WrappedKey, aad: bytes) -> WrappedKey:
        data_key = await self.unwrap(wrapped, aad)
        try:
            versions = await self._call(lambda: self._subject_versions(wrapped.key_id, newest=True))
            if not versions:
                raise DecryptionFailed("the subject key is gone")
            newest = max(versions)
            if newest == wrapped.version:
                return wrapped
            return await self.wrap(wrapped.key_id, data_key, aad)
        finally:
            data_key[:] = bytes(len(data_key))

    async def retire_subject_key_versions(self, key_id: str, below_version: int) -> None:
        def retire() -> None:
            versions = self._find_subject(key_id)
            keep = min(below_version, max(versions)) if versions else below_version
            for version, obj in list(versions.items()):
                if version < keep:
                    obj.destroy()
                    del versions[version]

        await self._call(retire)

    # --- token signing ----------------------------------------------------------------------------

    def _find_signing(self) -> dict[int, tuple[Any, ec.EllipticCurvePublicKey]]:
        label = self._signing_label
        privates = {
            _version_of(o, label): o
            for o in self._session.get_objects(
                {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}
            )
        }
        publics = {
            _version_of(o, label): o
            for o in self._session.get_objects(
                {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: label}
            )
        }
        found = {
            v: (privates[v], _ec_point_to_public_key(bytes(publics[v][Attribute.EC_POINT])))
            for v in privates
            if v is not None and v in publics
        }
        if not found:
            found[1] = self._generate_signing_key(1)
        self._signing_cache = found
        return found

    def _generate_signing_key(self, version: int) -> tuple[Any, ec.EllipticCurvePublicKey]:
        params = self._session.create_domain_parameters(
            KeyType.EC,
            {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
            local=True,
        )
        oid = _object_id(self._signing_label, version)
        public, private = params.generate_keypair(
            store=True,
            label=self._signing_label,
            id=oid,
            public_template={Attribute.TOKEN: True, Attribute.VERIFY: True},
            private_template=_EC_PRIVATE_TEMPLATE,
        )
        return private, _ec_point_to_public_key(bytes(public[Attribute.EC_POINT]))

    def _signing_versions(self) -> dict[int, tuple[Any, ec.EllipticCurvePublicKey]]:
        return self._signing_cache or self._find_signing()

    async def signing_key_id(self) -> str:
        versions = await self._call(self._signing_versions)
        return make_kid(self._signing_label, max(versions))

    async def sign_es256(self, signing_input: bytes, *, kid: str | None = None) -> bytes:
        wanted = None if kid is None else parse_kid(kid, self._signing_label)
        digest = hashlib.sha256(signing_input).digest()

        def sign() -> bytes:
            for attempt in (0, 1):
                versions = self._signing_versions() if attempt == 0 else self._find_signing()
                version = max(versions) if wanted is None else wanted
                if version not in versions:
                    continue
                try:
                    return bytes(versions[version][0].sign(digest, mechanism=Mechanism.ECDSA))
                except ObjectHandleInvalid:
                    if attempt == 1:
                        raise
            raise _Missing

        try:
            return await self._call(sign)
        except _Missing as exc:
            raise NotFound("no such signing key version") from exc

    async def public_jwks(self) -> list[dict[str, str]]:
        versions = await self._call(self._find_signing)
        return [
            jwk_from_public_key(public, make_kid(self._signing_label, version))
            for version, (_, public) in sorted(versions.items())
        ]

    async def rotate_signing_key(self) -> str:
        def rotate() -> int:
            versions = self._find_signing()
            version = max(versions) + 1
            versions[version] = self._generate_signing_key(version)
            return version

        return make_kid(self._signing_label, await self._call(rotate))

    async def close(self) -> None:
        if self._closed:
            return
        session = self._session

        def logout() -> None:
            try:
                if session is not None:
                    session.close()  # opened without a PIN: closes, does not log out
            finally:
                if self._token_key is not None:
                    _LOGINS.release(self._token_key)

        try:
            await self._call(logout)
        except KeyProviderUnavailable:
            pass  # the token is gone already; nothing left to release
        finally:
            self._closed = True
            self._subject_cache.clear()
            self._signing_cache.clear()
            self._executor.shutdown(wait=False)


class _LoginRegistry:
    """One login per token per process, shared by every provider session on that token.

    PKCS#11 login state belongs to the application, not the session: a second ``C_Login`` fails
    with ``CKR_USER_ALREADY_LOGGED_IN`` and any ``C_Logout`` logs out every session. So one anchor
    session holds the login while any provider uses the token; providers open their own sessions
    without a PIN and the anchor logs out when the last of them closes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._anchors: dict[tuple[str, str], tuple[Any, int]] = {}

    def acquire(self, token: Any, library: str, label: str, user_pin: str) -> tuple[str, str]:
        key = (library, label)
        with self._lock:
            anchor, count = self._anchors.get(key, (None, 0))
            if anchor is None:
                anchor = token.open(user_pin=user_pin)
            self._anchors[key] = (anchor, count + 1)
        return key

    def release(self, key: tuple[str, str]) -> None:
        with self._lock:
            anchor, count = self._anchors.pop(key, (None, 0))
            if count > 1:
                self._anchors[key] = (anchor, count - 1)
            elif anchor is not None:
                anchor.close()


_LOGINS = _LoginRegistry()


class _Missing(Exception):
    """Internal: the key (version) is not in the token. Callers turn it into the right error."""


class _BadTag(Exception):
    """Internal: GCM authentication failed inside the token."""
