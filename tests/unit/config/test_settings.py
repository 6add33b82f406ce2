"""The one settings object: defaults, TOML file, environment, overrides, and what production refuses."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from bioauth.config import (
    KeySettings,
    LoggingSettings,
    Settings,
    StoreSettings,
    TenantSettings,
    hash_api_key,
    load_settings,
)

_TOML = """
[server]
port = 6000
grace_period_s = 7.5

[[tenants]]
id = "acme"
api_key_sha256 = ["{digest}"]
verify_operating_point = "fmr_1e-3"
"""


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "bioauth.toml"
    path.write_text(_TOML.format(digest=hash_api_key("acme-key")))
    return path


def test_embedded_defaults_run_a_development_server() -> None:
    """Without file or environment: loopback, SQLite, local keys, one dev tenant keyed dev-key."""
    settings = load_settings()
    assert settings.environment == "development"
    assert settings.server.host == "127.0.0.1"
    assert settings.store.url.startswith("sqlite:///")
    assert settings.keys.provider == "local"
    assert [t.id for t in settings.tenants] == ["dev"]
    assert settings.tenants[0].api_key_sha256 == [hash_api_key("dev-key")]


def test_file_then_environment_then_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TOML file sets values, the environment wins over it, explicit overrides win over both."""
    monkeypatch.setenv("BIOAUTH_SERVER__GRACE_PERIOD_S", "3")
    settings = load_settings(_write(tmp_path))
    assert settings.server.port == 6000  # file
    assert settings.server.grace_period_s == 3.0  # environment over file
    assert settings.tenant("acme").verify_operating_point == "fmr_1e-3"
    overridden = load_settings(_write(tmp_path), environment="development", tenants=[])
    assert overridden.tenants == []


def test_the_config_file_may_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BIOAUTH_CONFIG names the file when no path is given."""
    monkeypatch.setenv("BIOAUTH_CONFIG", str(_write(tmp_path)))
    assert load_settings().server.port == 6000


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    """A named file that does not exist is refused, never silently replaced by defaults."""
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "nope.toml")


def test_settings_are_immutable() -> None:
    """Read once at start-up: nobody changes them afterwards."""
    settings = load_settings()
    with pytest.raises(pydantic.ValidationError):
        settings.server.port = 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"server": {"port": 70000}}, "port"),
        ({"server": {"unknown_field": 1}}, "unknown_field"),
        ({"tenants": [{"id": "a"}, {"id": "a"}]}, "unique"),
        ({"tenants": [{"id": "a", "api_key_sha256": ["not-hex"]}]}, "api_key_sha256"),
        ({"tenants": [{"id": "Bad Id"}]}, "id"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(
    kwargs: dict[str, object], message: str
) -> None:
    """Validation errors name the field and show the bad value."""
    with pytest.raises(pydantic.ValidationError, match=message):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_one_api_key_belongs_to_one_tenant_only() -> None:
    """Two tenants with the same key would make authentication ambiguous."""
    digest = hash_api_key("shared")
    with pytest.raises(pydantic.ValidationError, match="one tenant only"):
        Settings(
            tenants=[
                TenantSettings(id="a", api_key_sha256=[digest]),
                TenantSettings(id="b", api_key_sha256=[digest]),
            ]
        )


def test_production_refuses_every_development_default() -> None:
    """Local keys, the public external-reference key and the public log pseudonym key are
    development-only; production names its own."""
    vault = KeySettings(provider="vault")
    store = StoreSettings(external_ref_key="a-secret-of-the-deployment-0123456789")
    logs = LoggingSettings(pseudonym_key="another-secret-of-the-deployment")
    with pytest.raises(pydantic.ValidationError, match="local"):
        Settings(environment="production", store=store, logging=logs)
    with pytest.raises(pydantic.ValidationError, match="external_ref_key"):
        Settings(environment="production", keys=vault, logging=logs)
    with pytest.raises(pydantic.ValidationError, match="pseudonym_key"):
        Settings(environment="production", keys=vault, store=store)
    with pytest.raises(pydantic.ValidationError, match="development API key"):
        Settings(environment="production", keys=vault, store=store, logging=logs)
    own = [TenantSettings(id="bank-a", api_key_sha256=[hash_api_key("bank-a-key")])]
    assert (
        Settings(
            environment="production", keys=vault, store=store, logging=logs, tenants=own
        ).environment
        == "production"
    )


def test_an_empty_or_short_log_pseudonym_key_is_refused() -> None:
    """An empty key would fall back to a pseudonymisation anyone can reverse."""
    for key in ("", "short"):
        with pytest.raises(pydantic.ValidationError, match="pseudonym_key"):
            LoggingSettings(pseudonym_key=key)
