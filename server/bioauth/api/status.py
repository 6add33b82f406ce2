"""The one place where bioauth's typed errors become gRPC status codes.

Servicers never pick a status code themselves: they raise ``bioauth.errors`` types (or let them
propagate) and ``ErrorMappingInterceptor`` turns each into its code with the error's safe
message. Anything else is a bug: INTERNAL with an opaque message, the detail only in the log.
"""

from __future__ import annotations

import grpc

from bioauth import errors

__all__ = ["status_for"]

# Most specific first: the first isinstance match wins.
_TABLE: tuple[tuple[type[errors.BioauthError], grpc.StatusCode], ...] = (
    (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.Cancelled, grpc.StatusCode.CANCELLED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.NotImplementedYet, grpc.StatusCode.UNIMPLEMENTED),
    (errors.IntegrityError, grpc.StatusCode.INTERNAL),
    (errors.InternalError, grpc.StatusCode.INTERNAL),
)

_OPAQUE = {
    grpc.StatusCode.UNAUTHENTICATED: "authentication failed",
    grpc.StatusCode.INTERNAL: "internal error",
}


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and the message the caller may see."""
    if isinstance(exc, errors.BioauthError):
        for kind, code in _TABLE:
            if isinstance(exc, kind):
                return code, _OPAQUE.get(code, exc.message)
    return grpc.StatusCode.INTERNAL, _OPAQUE[grpc.StatusCode.INTERNAL]
