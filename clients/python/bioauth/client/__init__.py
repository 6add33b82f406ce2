"""bioauth Python SDK: async and blocking clients, request builders, typed errors.

Quick start::

    from bioauth.client import AsyncClient, face_image_from_path, transaction_context

    async with AsyncClient("127.0.0.1:50051", api_key="dev-key") as client:
        print(await client.health())
        tx = transaction_context("tx-1", 1250, "EUR", merchant_id="m-1")
        result = await client.verify("acct-42", [face_image_from_path("probe.jpg")], tx)

Decision tokens are verified offline with :class:`bioauth.client.tokens.TokenVerifier`.
"""

from bioauth.client._async_client import (
    AsyncClient,
    AuthenticateOutcome,
    HealthStatus,
    Jwks,
    frame_request,
    session_open_request,
)
from bioauth.client._builders import (
    consent,
    face_image_from_bytes,
    face_image_from_path,
    face_image_from_rgb,
    new_nonce,
    transaction_context,
)
from bioauth.client._config import DEFAULT_TIMEOUT_S, TLSConfig
from bioauth.client._errors import (
    AlreadyExists,
    BioauthClientError,
    Cancelled,
    ClientClosed,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RejectReason,
    ResourceExhausted,
    RpcError,
    TokenRejected,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    UnknownRpcError,
)
from bioauth.client._sync_client import BlockingTokenVerifier, Client
from bioauth.client.tokens import DecisionToken, TokenVerifier

__all__ = [
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
]
