"""The keyed digest that finds a subject by reference after its plaintext reference is gone."""

from __future__ import annotations

import pydantic
import pytest

from bioauth.config import (
    DEV_EXTERNAL_REF_KEY,
    KeySettings,
    LoggingSettings,
    Settings,
    StoreSettings,
    TenantSettings,
    hash_api_key,
)
from bioauth.errors import StoreUnavailable
from bioauth.store._refs import DEV_KEY, RefDigester

_KEY = b"k" * 32


def test_digest_is_keyed_tenant_scoped_and_unambiguous() -> None:
    refs = RefDigester(_KEY)
    digest = refs.digest("bank-a", "card-1")
    assert len(digest) == 32
    assert digest == RefDigester(_KEY).digest("bank-a", "card-1")
    others = {
        refs.digest("bank-b", "card-1"),
        refs.digest("bank-a", "card-2"),
        refs.digest("bank-ac", "ard-1"),  # the boundary between the parts matters
        RefDigester(b"x" * 32).digest("bank-a", "card-1"),
        RefDigester(DEV_KEY).digest("bank-a", "card-1"),
    }
    assert digest not in others
    assert len(others) == 5
    assert "k" * 16 not in repr(refs)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        RefDigester(b"short")
    with pytest.raises(pydantic.ValidationError):
        StoreSettings(external_ref_key="short")


def test_a_digest_under_another_key_is_refused() -> None:
    stored = RefDigester(_KEY).digest("bank-a", "card-1")
    RefDigester(_KEY).check_sample("bank-a", "card-1", stored)
    with pytest.raises(StoreUnavailable, match="external_ref_key"):
        RefDigester(b"y" * 32).check_sample("bank-a", "card-1", stored)


def test_production_refuses_the_development_key() -> None:
    """Like the local key provider, the public default key is for development only."""
    vault = KeySettings(provider="vault")
    with pytest.raises(pydantic.ValidationError, match="external_ref_key"):
        Settings(environment="production", keys=vault)
    settings = Settings(
        environment="production",
        keys=vault,
        store=StoreSettings(external_ref_key="a-secret-of-the-deployment-0123456789"),
        logging=LoggingSettings(pseudonym_key="another-secret-of-the-deployment"),
        tenants=[TenantSettings(id="bank-a", api_key_sha256=[hash_api_key("bank-a-key")])],
    )
    assert settings.store.external_ref_key != DEV_EXTERNAL_REF_KEY
    assert Settings().store.external_ref_key == DEV_EXTERNAL_REF_KEY
