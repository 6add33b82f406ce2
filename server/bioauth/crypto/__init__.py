"""Keys and encryption: template envelopes, key providers, token signing.

- ``provider``: the ``KeyProvider`` protocol (subject keys, wrap/unwrap, rotation, ES256 signing).
- ``envelope``: ``SealedTemplate``, ``seal_template`` / ``open_template`` (AES-256-GCM, AAD-bound).
- ``pkcs11_provider``, ``vault_provider``, ``local_provider``: the three providers.
- ``factory.open_key_provider(settings)``: the configured provider.
- ``tokens``: compact JWS authorization tokens signed through the provider.

Submodules are imported explicitly (``from bioauth.crypto.envelope import seal_template``) so
that importing one provider does not load the others' libraries.
"""
