"""The SDK's errors: one root, one class per gRPC status, and the one place that maps them.

    BioauthClientError
    ├── ClientClosed               the client was used after close()
    ├── RpcError                   the server (or the transport) answered with a non-OK status
    │   ├── InvalidArgument        INVALID_ARGUMENT: fix the request; retrying it unchanged fails
    │   ├── Unauthenticated        UNAUTHENTICATED: unknown API key or certificate
    │   ├── PermissionDenied       PERMISSION_DENIED
    │   ├── NotFound               NOT_FOUND: unknown subject for this tenant
    │   ├── AlreadyExists          ALREADY_EXISTS: idempotency key reused with other content
    │   ├── FailedPrecondition     FAILED_PRECONDITION: no consent, subject opted out
    │   ├── ResourceExhausted      RESOURCE_EXHAUSTED: overloaded, retry later with backoff
    │   ├── Unavailable            UNAVAILABLE: server or one of its dependencies down
    │   ├── DeadlineExceeded       DEADLINE_EXCEEDED
    │   ├── Cancelled              CANCELLED
    │   ├── Unimplemented          UNIMPLEMENTED
    │   ├── Internal               INTERNAL, DATA_LOSS
    │   └── UnknownRpcError        any other status
    └── TokenRejected              a decision token failed verification; ``reason`` says why

Only :func:`map_rpc_error` turns gRPC errors into these; callers catch at the level they need
(``RpcError`` for "the call failed", ``Unavailable`` to retry elsewhere, and so on).
"""

from __future__ import annotations

import enum

import grpc
import grpc.aio

__all__ = [
    "AlreadyExists",
    "BioauthClientError",
    "Cancelled",
    "ClientClosed",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "RejectReason",
    "ResourceExhausted",
    "RpcError",
    "TokenRejected",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "UnknownRpcError",
    "map_rpc_error",
]


class BioauthClientError(Exception):
    """Root of every error the SDK raises on purpose."""


class ClientClosed(BioauthClientError):
    """The client was used after ``close()``; open a new one."""


class RpcError(BioauthClientError):
    """A call ended with a non-OK gRPC status.

    Attributes:
        code: the gRPC status code.
        details: the server's message (safe to log: the server never puts secrets in it).
    """

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}" if details else code.name)
        self.code = code
        self.details = details


class InvalidArgument(RpcError):
    """The request is malformed or out of bounds."""


class Unauthenticated(RpcError):
    """The credentials were refused (the server never says why)."""


class PermissionDenied(RpcError):
    """Authenticated, but not allowed to do this."""


class NotFound(RpcError):
    """The subject is unknown to this tenant."""


class AlreadyExists(RpcError):
    """The idempotency key was used before with other content."""


class FailedPrecondition(RpcError):
    """The subject's state forbids the call (no consent, opted out)."""


class ResourceExhausted(RpcError):
    """The server is overloaded; retry later with backoff."""


class Unavailable(RpcError):
    """The server or one of its dependencies is down; no decision was taken."""


class DeadlineExceeded(RpcError):
    """The call's deadline passed before an answer arrived."""


class Cancelled(RpcError):
    """The call was cancelled."""


class Unimplemented(RpcError):
    """The server does not offer this call (yet)."""


class Internal(RpcError):
    """The server failed (a bug or lost data on its side)."""


class UnknownRpcError(RpcError):
    """A status this SDK has no dedicated class for."""


_BY_CODE: dict[grpc.StatusCode, type[RpcError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.DATA_LOSS: Internal,
}


def map_rpc_error(exc: grpc.aio.AioRpcError) -> RpcError:
    """The SDK error for a failed call; raise it ``from exc`` so the gRPC error stays attached."""
    code = exc.code()
    details = exc.details() or ""
    return _BY_CODE.get(code, UnknownRpcError)(code, details)


class RejectReason(enum.StrEnum):
    """Why a decision token was refused. Values are stable strings, safe to log and count."""

    MALFORMED = "malformed"
    """Not a compact JWS with JSON header and claims."""
    ALGORITHM = "algorithm"
    """``alg`` is not ES256 (``none``, HMAC, RSA, other curves, EdDSA...)."""
    TYPE = "type"
    """``typ`` is not the decision-token type."""
    CRITICAL_HEADER = "critical_header"
    """``crit`` names an extension this verifier does not implement."""
    FORBIDDEN_HEADER = "forbidden_header"
    """A header points at or embeds a key (``jku``, ``x5u``, ``jwk``, ``x5c``...)."""
    UNKNOWN_KEY = "unknown_key"
    """No key with the token's ``kid`` in the key set, even after a refresh."""
    KEYS_UNAVAILABLE = "keys_unavailable"
    """The key set could not be fetched; fail closed."""
    SIGNATURE = "signature"
    """The signature does not verify under the named key."""
    MISSING_CLAIM = "missing_claim"
    """A required claim is absent or has the wrong type."""
    ISSUER = "issuer"
    AUDIENCE = "audience"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    """Issued in the future beyond the allowed clock skew."""
    LIFETIME = "lifetime"
    """``exp - iat`` is longer than any decision token may live."""
    DECISION = "decision"
    """The token does not carry an approval."""
    TRANSACTION = "transaction"
    """``txn`` is not the hash of the transaction the gateway holds."""
    REPLAYED = "replayed"
    """This ``jti`` was accepted before."""
    REPLAY_CHECK_UNAVAILABLE = "replay_check_unavailable"
    """The shared replay cache could not be asked; fail closed."""


class TokenRejected(BioauthClientError):
    """A decision token failed verification; treat the transaction as not authenticated.

    Attributes:
        reason: the failed check, one of :class:`RejectReason`.
    """

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        super().__init__(f"token rejected ({reason.value})" + (f": {detail}" if detail else ""))
        self.reason = reason
        self.detail = detail
