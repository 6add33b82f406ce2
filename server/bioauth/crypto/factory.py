"""Build the configured key provider from settings (called by the composition root and the CLI)."""

from __future__ import annotations

from bioauth.config import Settings
from bioauth.crypto.local_provider import LocalKeyProvider
from bioauth.crypto.pkcs11_provider import Pkcs11KeyProvider
from bioauth.crypto.provider import KeyProvider
from bioauth.crypto.vault_provider import VaultKeyProvider

__all__ = ["open_key_provider"]


async def open_key_provider(settings: Settings, *, initialise: bool = False) -> KeyProvider:
    """Open ``settings.keys.provider``; ``KeyProviderUnavailable`` if it cannot be used.

    ``initialise`` (``bioauth keys init`` only) marks a new PKCS#11 token or Transit mount as
    bioauth's; the server never does, so a wiped or replaced one fails closed at start-up.

    The caller owns the provider and must ``await provider.close()`` at shutdown. The local
    development provider is refused when ``settings.environment`` is ``production``.
    """
    keys = settings.keys
    if keys.provider == "pkcs11":
        return await Pkcs11KeyProvider.open(
            library=keys.pkcs11.library,
            token_label=keys.pkcs11.token_label,
            user_pin=keys.pkcs11.user_pin,
            signing_key_label=keys.pkcs11.signing_key_label,
            initialise=initialise,
        )
    if keys.provider == "vault":
        return await VaultKeyProvider.open(
            url=keys.vault.url,
            token=keys.vault.token,
            mount=keys.vault.mount,
            subject_key_prefix=keys.vault.subject_key_prefix,
            signing_key_name=keys.vault.signing_key_name,
            timeout_s=keys.vault.timeout_s,
            initialise=initialise,
        )
    return await LocalKeyProvider.open(keys.local_path, environment=settings.environment)
