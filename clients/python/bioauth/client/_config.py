"""Connection settings of the SDK: TLS material and how a channel is opened from them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

__all__ = ["DEFAULT_TIMEOUT_S", "TLSConfig", "open_channel"]

DEFAULT_TIMEOUT_S = 10.0
"""Deadline of a call that names none: long enough for a CPU-only server under load, short
enough that a terminal never waits on a dead connection."""


@dataclass(frozen=True)
class TLSConfig:
    """TLS for the channel; set both ``certificate_chain`` and ``private_key`` for mTLS.

    Attributes:
        root_certificates: PEM CA bundle that signs the server's certificate; None uses the
            system roots.
        certificate_chain: PEM client certificate chain (mTLS: it names the tenant).
        private_key: PEM private key of the client certificate.
        server_hostname: the name to check in the server's certificate when it differs from the
            target's host (for example when connecting by IP address).
    """

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    server_hostname: str | None = None

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("mTLS needs both certificate_chain and private_key, or neither")

    def __repr__(self) -> str:
        # Never print key material.
        return (
            f"TLSConfig(root_certificates={'set' if self.root_certificates else None}, "
            f"client_certificate={'set' if self.certificate_chain else None}, "
            f"server_hostname={self.server_hostname!r})"
        )

    @classmethod
    def from_files(
        cls,
        root_certificates: str | Path | None = None,
        certificate_chain: str | Path | None = None,
        private_key: str | Path | None = None,
        server_hostname: str | None = None,
    ) -> TLSConfig:
        """Read the PEM files named; None leaves that part unset."""

        def read(path: str | Path | None) -> bytes | None:
            return None if path is None else Path(path).read_bytes()

        return cls(
            read(root_certificates), read(certificate_chain), read(private_key), server_hostname
        )


def open_channel(
    target: str, tls: TLSConfig | None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """A grpc.aio channel to ``target``: TLS when ``tls`` is given, plaintext otherwise.

    Must be called with the event loop that will use the channel running.
    """
    channel_options: list[tuple[str, Any]] = list(options)
    if tls is None:
        return grpc.aio.insecure_channel(target, options=channel_options)
    if tls.server_hostname is not None:
        channel_options.append(("grpc.ssl_target_name_override", tls.server_hostname))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.root_certificates,
        private_key=tls.private_key,
        certificate_chain=tls.certificate_chain,
    )
    return grpc.aio.secure_channel(target, credentials, options=channel_options)
