"""The one table from bioauth's typed errors to gRPC status codes, and what the caller reads."""

from __future__ import annotations

import inspect

import grpc
import pytest

from bioauth import errors
from bioauth.api.status import status_for

# Every error type bioauth.errors defines, with the code a caller sees when it is raised.
EXPECTED: dict[type[errors.BioauthError], grpc.StatusCode] = {
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ImageOverLimit: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ImageTooSmall: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.KeyProviderUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Cancelled: grpc.StatusCode.CANCELLED,
    errors.IntegrityError: grpc.StatusCode.INTERNAL,
    errors.DecryptionFailed: grpc.StatusCode.INTERNAL,
    errors.NotImplementedYet: grpc.StatusCode.UNIMPLEMENTED,
    errors.InternalError: grpc.StatusCode.INTERNAL,
    # The family roots are never raised on purpose: one that is, is a bug.
    errors.BioauthError: grpc.StatusCode.INTERNAL,
    errors.CallerError: grpc.StatusCode.INTERNAL,
    errors.DependencyError: grpc.StatusCode.INTERNAL,
}
OPAQUE = {
    grpc.StatusCode.UNAUTHENTICATED: "authentication failed",
    grpc.StatusCode.INTERNAL: "internal error",
}


def test_every_error_type_is_in_this_test() -> None:
    """A new error type must be given its code here (and in the table) on purpose."""
    defined = {
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.BioauthError)
    }
    assert defined == set(EXPECTED)


@pytest.mark.parametrize("kind", list(EXPECTED), ids=lambda kind: kind.__name__)
def test_each_error_type_maps_to_its_code_and_message(kind: type[errors.BioauthError]) -> None:
    code, message = status_for(kind("what went wrong"))
    assert code == EXPECTED[kind]
    assert message == OPAQUE.get(code, "what went wrong")


def test_an_unknown_exception_is_internal_with_an_opaque_message() -> None:
    assert status_for(RuntimeError("secret detail")) == (
        grpc.StatusCode.INTERNAL,
        "internal error",
    )
