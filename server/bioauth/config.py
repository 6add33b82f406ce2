"""The one typed settings object, read once at start-up from a TOML file and the environment.

Sources, later ones winning: embedded defaults, the TOML file named by ``--config`` or
``BIOAUTH_CONFIG``, then environment variables ``BIOAUTH_<SECTION>__<FIELD>`` (for example
``BIOAUTH_SERVER__PORT=50052``). Every section is a frozen model; each room of the server reads
only its own section, passed in by the composition root (``bioauth.app``).

Units are in field names (``_s``, ``_ms``, ``_bytes``). The embedded defaults run a development
server: SQLite file, local development keys, bundled model, one tenant ``dev`` with API key
``dev-key``. ``environment = "production"`` refuses the development-only parts.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bioauth.wire import MAX_FRAMES_PER_SESSION

__all__ = [
    "BatcherSettings",
    "ImageSettings",
    "InferenceSettings",
    "KeySettings",
    "LoggingSettings",
    "MatchingSettings",
    "Pkcs11Settings",
    "QualitySettings",
    "GallerySyncSettings",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "StreamSettings",
    "TenantSettings",
    "TokenSettings",
    "VaultSettings",
    "hash_api_key",
    "load_settings",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
_DEV_PSEUDONYM_KEY = "dev-log-pseudonym-key"


def hash_api_key(api_key: str) -> str:
    """Settings hold SHA-256 hex digests of API keys, never the keys themselves."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


_DEV_API_KEY_SHA256 = hash_api_key("dev-key")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    """Address to bind; loopback by default so a development server is never exposed."""
    port: int = Field(default=50051, ge=0, le=65535)
    """TCP port; 0 picks a free one (the bound port is logged and written to ``port_file``)."""
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Prometheus ``/metrics`` (RPC and batcher families) on ``metrics_host``; None: not served,
    0: any free port (logged as ``metrics_listening``)."""
    metrics_host: str = "127.0.0.1"
    port_file: Path | None = None
    """When set, the bound port is written here once the server accepts calls (tests use it)."""
    grace_period_s: float = Field(default=10.0, gt=0)
    """On SIGTERM/SIGINT: how long in-flight calls may take to finish before being cancelled."""
    default_deadline_s: float = Field(default=5.0, gt=0)
    """Deadline applied to calls that arrive without one."""
    max_receive_message_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """gRPC's own cap on one message: 3 images of 2 MiB plus fields."""
    drain_delay_s: float = Field(default=0.5, ge=0)
    """On shutdown: how long health answers NOT_SERVING before the server stops accepting calls."""
    reflection: bool = True
    """Serve gRPC server reflection."""
    max_concurrent_rpcs: int = Field(default=1000, ge=1)
    """Calls beyond this are refused by gRPC with RESOURCE_EXHAUSTED."""


class TenantSettings(_Section):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    """The tenant's id as stored and logged."""
    audience: str = ""
    """Token audience (the calling network); defaults to the tenant id."""
    api_key_sha256: list[str] = Field(default_factory=list)
    """SHA-256 hex digests of development API keys (``bioauth.config.hash_api_key``)."""
    verify_operating_point: str = "fmr_1e-4"
    """Named operating point for 1:1 verification (from the model's calibration file)."""
    identify_fpir_target: float = Field(default=1e-3, gt=0, lt=1)
    """Target false-positive identification rate for 1:N at the current gallery size."""

    @field_validator("api_key_sha256")
    @classmethod
    def _hex_digests(cls, value: list[str]) -> list[str]:
        for digest in value:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"api_key_sha256 must hold 64-char lower-case hex, got {digest!r}")
        return value

    @property
    def token_audience(self) -> str:
        return self.audience or self.id


class QualitySettings(_Section):
    """Provisional capture-quality gates (set on the face test set, not calibrated on LFW)."""

    min_side_px: int = Field(default=100, ge=1)
    """A crop whose shorter side is below this holds too little detail (TOO_SMALL)."""
    min_sharpness: float = Field(default=15.0, ge=0)
    """Variance of the Laplacian of the luma at ``reference_side_px``; below it: TOO_BLURRED."""
    min_mean_luma: float = Field(default=40.0, ge=0, le=255)
    """Mean luma (0-255) below which a crop is TOO_DARK."""
    reference_side_px: int = Field(default=150, ge=16)
    """Crops are measured at this size so that sharpness does not depend on resolution."""


class ImageSettings(_Section):
    max_encoded_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    """Largest encoded image accepted, checked before decoding (proto: MAX_ENCODED_IMAGE_BYTES)."""
    max_side_px: int = Field(default=2048, ge=64)
    """Largest width or height, read from the header before decoding."""
    min_side_px: int = Field(default=64, ge=16)
    """Smallest width or height of a usable crop."""
    max_pixels: int = Field(default=2048 * 2048, ge=64 * 64)
    """Largest width * height, against decompression bombs."""
    quality: QualitySettings = QualitySettings()
    """Gates for enrolment crops and stream frames (``bioauth.inference.quality``)."""


class BatcherSettings(_Section):
    max_batch_size: int = Field(default=32, ge=1, le=1024)
    """Most crops in one inference call."""
    max_queue_delay_ms: float = Field(default=2.0, ge=0)
    """How long the first queued crop waits for others before its batch runs."""
    max_queue_size: int = Field(default=256, ge=1)
    """Crops waiting beyond this are refused at once (RESOURCE_EXHAUSTED)."""


class InferenceSettings(_Section):
    manifest: Path = REPO_ROOT / "models" / "dlib_resnet_v1" / "manifest.json"
    """The model's committed manifest."""
    cache_dir: Path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bioauth"
    """Where ``bioauth model build`` writes the ONNX file."""
    providers: list[str] = Field(
        default_factory=lambda: [
            "TensorrtExecutionProvider",
            "CUDAExecutionProvider",
            "CPUExecutionProvider",
        ]
    )
    """ONNX Runtime execution providers in order of preference; those not present are skipped."""
    intra_op_threads: int = Field(default=1, ge=0)
    """ORT intra-op threads (0: ORT decides). On a 2-core machine 1 is often fastest."""
    warmup: bool = True
    """Run one batch at start-up so the first real call does not pay for graph setup."""
    batcher: BatcherSettings = BatcherSettings()


class MatchingSettings(_Section):
    calibration: Path | None = None
    """Calibration file with the named operating points; default: beside the manifest."""
    gallery_backend: Literal["numpy", "faiss"] = "numpy"
    """Exact 1:N search kernel; numpy/BLAS measured faster than faiss-cpu (docs/benchmarks.md)."""
    gallery_scan_threads: int | None = Field(default=None, ge=1, le=64)
    """Threads that scan the gallery for a batch of probes (None: CPU count, at most 8)."""
    gallery_single_probe_threads: int | None = Field(default=None, ge=1, le=64)
    """Threads for a one-probe scan, which is bound by memory bandwidth (None: all scan threads;
    1 keeps a loaded machine's other core free at the cost of a slower scan when it is idle)."""


DEV_EXTERNAL_REF_KEY = "bioauth-development-external-ref-key"
"""The development key of ``store.external_ref_key``: public, so refused in production."""


class StoreSettings(_Section):
    url: str = "sqlite:///" + str(Path("var") / "bioauth.sqlite3")
    """``sqlite:///relative/or/absolute/path`` or ``postgresql://user@host:port/db``."""
    migrate_on_start: bool = True
    """Apply pending migrations at start-up (production usually runs ``bioauth db migrate``)."""
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
    command_timeout_s: float = Field(default=5.0, gt=0)
    external_ref_key: str = Field(default=DEV_EXTERNAL_REF_KEY, min_length=16)
    """Secret for the keyed digest (HMAC-SHA256) of each subject's external reference, kept after
    opt-out so GetSubject can still report the withdrawal once the plaintext reference is gone.
    Never change it on a populated store (lookups by reference would stop finding subjects; the
    store refuses to open when it notices); production refuses the development default: pass it
    through the environment (``BIOAUTH_STORE__EXTERNAL_REF_KEY``)."""


class GallerySyncSettings(_Section):
    """How a replica's 1:N gallery follows the other replicas' enrolments and opt-outs
    (PostgreSQL only: LISTEN/NOTIFY, with catch-up from the audit chain after a lost connection)."""

    enabled: bool = True
    """Follow the shared store's changes; off, a replica sees others' changes only on restart."""
    listen_url: str | None = None
    """DSN of the LISTEN connection when ``store.url`` goes through a pooler that cannot LISTEN
    (transaction pooling); default: ``store.url``."""
    catch_up_interval_s: float = Field(default=30.0, ge=0)
    """Periodic catch-up even without a notification, against a lost one; 0 switches it off."""
    probe_interval_s: float = Field(default=5.0, gt=0)
    """How often the LISTEN connection is checked, so a silently dropped one is noticed."""
    reconnect_min_s: float = Field(default=0.2, gt=0)
    """First wait before reconnecting after the connection is lost; doubles up to the max."""
    reconnect_max_s: float = Field(default=5.0, gt=0)
    """Longest wait between reconnection attempts."""


class StreamSettings(_Section):
    """Budgets of one Authenticate session (frames and seconds)."""

    default_max_frames: int = Field(default=10, ge=1, le=int(MAX_FRAMES_PER_SESSION))
    """Frames a session may send when its SessionOpen leaves ``max_frames`` at 0
    (at most the API's MAX_FRAMES_PER_SESSION)."""
    budget_s: float = Field(default=10.0, gt=0)
    """Seconds from SessionOpen until the session is answered with what it has."""
    open_timeout_s: float = Field(default=5.0, gt=0)
    """How long a new stream may take to send its SessionOpen."""
    decision_reserve_s: float = Field(default=0.5, ge=0)
    """Time kept before the call's deadline for the final decision (audit row, token), so a
    session runs out of budget with an answer rather than with DEADLINE_EXCEEDED."""
    drain_s: float = Field(default=1.0, ge=0)
    """After the result is sent, how long the server keeps reading (and discarding) frames the
    client sent before it saw the result, waiting for its half-close. Ending the call while the
    client is still writing makes grpc report INTERNAL to the client instead of the result."""


class Pkcs11Settings(_Section):
    library: Path = Path("/usr/lib/softhsm/libsofthsm2.so")
    token_label: str = "bioauth"  # noqa: S105 - a label, not a secret
    user_pin: str = ""
    """In production pass it through the environment (``BIOAUTH_KEYS__PKCS11__USER_PIN``)."""
    signing_key_label: str = "bioauth-token-signing"


class VaultSettings(_Section):
    url: str = "http://127.0.0.1:8200"
    token: str = ""
    """In production pass it through the environment (``BIOAUTH_KEYS__VAULT__TOKEN``)."""
    mount: str = "transit"
    subject_key_prefix: str = "bioauth-subject-"
    signing_key_name: str = "bioauth-token-signing"
    timeout_s: float = Field(default=5.0, gt=0)


class KeySettings(_Section):
    provider: Literal["local", "pkcs11", "vault"] = "local"
    """Where subject keys and the token-signing key live."""
    local_path: Path = Path("var") / "dev-keys.json"
    """Local development provider's key file (0600); refused in production."""
    pkcs11: Pkcs11Settings = Pkcs11Settings()
    vault: VaultSettings = VaultSettings()


class TokenSettings(_Section):
    issuer: str = "bioauth-dev"
    """Token ``iss``."""
    ttl_s: int = Field(default=60, ge=5, le=600)
    """Token lifetime: a decision authorises one transaction, within about a minute."""
    jwks_max_age_s: int = Field(default=300, ge=0)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_output: bool = True
    """One JSON object per line (False: human-readable console output)."""
    pseudonym_key: str = Field(default=_DEV_PSEUDONYM_KEY, min_length=16)
    """HMAC key that turns subject ids into log pseudonyms; set a secret one in production."""


class Settings(BaseSettings):
    """Everything the server reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="BIOAUTH_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    environment: Literal["development", "production"] = "development"
    """Production refuses development-only parts (local keys, the public development API key
    and the public development secrets)."""
    server: ServerSettings = ServerSettings()
    tenants: list[TenantSettings] = Field(
        default_factory=lambda: [TenantSettings(id="dev", api_key_sha256=[_DEV_API_KEY_SHA256])]
    )
    image: ImageSettings = ImageSettings()
    inference: InferenceSettings = InferenceSettings()
    matching: MatchingSettings = MatchingSettings()
    store: StoreSettings = StoreSettings()
    gallery_sync: GallerySyncSettings = GallerySyncSettings()
    stream: StreamSettings = StreamSettings()
    keys: KeySettings = KeySettings()
    tokens: TokenSettings = TokenSettings()
    logging: LoggingSettings = LoggingSettings()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        ids = [t.id for t in self.tenants]
        if len(ids) != len(set(ids)):
            raise ValueError(f"tenant ids must be unique, got {ids}")
        digests = [d for t in self.tenants for d in t.api_key_sha256]
        if len(digests) != len(set(digests)):
            raise ValueError("one API key may belong to one tenant only")
        if self.environment == "production" and self.keys.provider == "local":
            raise ValueError(
                "keys.provider 'local' is for development only; production needs pkcs11 or vault"
            )
        if self.environment == "production" and self.store.external_ref_key == DEV_EXTERNAL_REF_KEY:
            raise ValueError(
                "store.external_ref_key is the public development default; production needs a "
                "secret of its own"
            )
        if self.environment == "production" and self.logging.pseudonym_key == _DEV_PSEUDONYM_KEY:
            raise ValueError(
                "logging.pseudonym_key is the public development default; production needs a "
                "secret of its own, or log pseudonyms could be reversed by trying subject ids"
            )
        if self.environment == "production" and _DEV_API_KEY_SHA256 in digests:
            raise ValueError(
                "tenants: the development API key ('dev-key') is public; production tenants need "
                "keys of their own"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = _CONFIG_FILE.get("path")
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    def tenant(self, tenant_id: str) -> TenantSettings:
        for tenant in self.tenants:
            if tenant.id == tenant_id:
                return tenant
        raise KeyError(tenant_id)


# pydantic-settings reads the TOML path at class level; load_settings sets it for one call.
_CONFIG_FILE: dict[str, Path | None] = {"path": None}


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings once: defaults, then the TOML file, then the environment, then overrides.

    ``config_file`` defaults to ``$BIOAUTH_CONFIG``. Overrides (keyword arguments) win over
    everything; tests use them instead of patching the environment.
    """
    path = config_file or (
        Path(os.environ["BIOAUTH_CONFIG"]) if os.environ.get("BIOAUTH_CONFIG") else None
    )
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"settings file not found: {path}")
    _CONFIG_FILE["path"] = path
    try:
        return Settings(**overrides)
    finally:
        _CONFIG_FILE["path"] = None
