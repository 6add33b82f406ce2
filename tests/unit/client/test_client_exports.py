"""The SDK's public names are exactly the ones pinned here; adding or removing one is a decision."""

from __future__ import annotations

import bioauth.client

EXPECTED = {
    "DEFAULT_TIMEOUT_S",
    "AlreadyExists",
    "AsyncClient",
    "AuthenticateOutcome",
    "BioauthClientError",
    "BlockingTokenVerifier",
    "Cancelled",
    "Client",
    "ClientClosed",
    "DeadlineExceeded",
    "DecisionToken",
    "FailedPrecondition",
    "HealthStatus",
    "Internal",
    "InvalidArgument",
    "Jwks",
    "NotFound",
    "PermissionDenied",
    "RejectReason",
    "ResourceExhausted",
    "RpcError",
    "TLSConfig",
    "TokenRejected",
    "TokenVerifier",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "UnknownRpcError",
    "consent",
    "face_image_from_bytes",
    "face_image_from_path",
    "face_image_from_rgb",
    "frame_request",
    "new_nonce",
    "session_open_request",
    "transaction_context",
}


def test_all_is_pinned() -> None:
    """__all__ lists exactly the expected names."""
    assert set(bioauth.client.__all__) == EXPECTED
    assert len(bioauth.client.__all__) == len(EXPECTED)


def test_every_export_exists_and_is_public() -> None:
    """Each exported name resolves, and public objects claim the public module."""
    for name in bioauth.client.__all__:
        value = getattr(bioauth.client, name)
        assert not name.startswith("_")
        module = getattr(value, "__module__", "bioauth.client")
        assert module.startswith("bioauth.client"), (name, module)


def test_rpc_errors_share_one_root() -> None:
    """Every error class derives from BioauthClientError, so one except clause catches all."""
    for name in bioauth.client.__all__:
        value = getattr(bioauth.client, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, bioauth.client.BioauthClientError), name
