"""bioauth's typed errors: one root, families by who is at fault.

Every layer below the API raises these (adapters translate foreign errors such as asyncpg's,
ONNX Runtime's or PKCS#11's into them with ``raise ... from exc``); the API layer maps each family
to exactly one gRPC status in one table (``bioauth.api.status``). Messages are safe to show to the
caller: they never carry images, embeddings, templates, key material or external references.

    BioauthError
    ├── CallerError                  the request is wrong; retrying it unchanged will not help
    │   ├── InvalidInput             INVALID_ARGUMENT (bad field, oversize image, too many crops)
    │   ├── Unauthenticated          UNAUTHENTICATED (opaque: the cause is only logged)
    │   ├── PermissionDenied         PERMISSION_DENIED (scope or tenant not allowed)
    │   ├── NotFound                 NOT_FOUND (unknown subject for this tenant)
    │   ├── AlreadyExists            ALREADY_EXISTS (idempotency key reused with other content)
    │   └── FailedPrecondition       FAILED_PRECONDITION (no consent, subject opted out)
    ├── DependencyError              something we rely on failed; fail closed
    │   ├── Unavailable              UNAVAILABLE (store, HSM, Vault down)
    │   │   ├── StoreUnavailable
    │   │   └── KeyProviderUnavailable
    │   ├── Overloaded               RESOURCE_EXHAUSTED (batcher queue full, rate limit)
    │   ├── DeadlineExceeded         DEADLINE_EXCEEDED (budget spent before the work ran)
    │   └── Cancelled                CANCELLED (the caller went away)
    ├── IntegrityError               DATA_LOSS is never shown: INTERNAL with an opaque message
    │   └── DecryptionFailed         a ciphertext does not open under its key and AAD
    ├── NotImplementedYet            UNIMPLEMENTED (an RPC whose issue has not landed)
    └── InternalError                INTERNAL (our bug)
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "BioauthError",
    "CallerError",
    "Cancelled",
    "DeadlineExceeded",
    "DecryptionFailed",
    "DependencyError",
    "FailedPrecondition",
    "ImageOverLimit",
    "ImageTooSmall",
    "IntegrityError",
    "InternalError",
    "InvalidInput",
    "KeyProviderUnavailable",
    "NotFound",
    "NotImplementedYet",
    "Overloaded",
    "PermissionDenied",
    "StoreUnavailable",
    "Unauthenticated",
    "Unavailable",
]


class BioauthError(Exception):
    """Root of every error bioauth raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CallerError(BioauthError):
    """The request itself is at fault."""


class InvalidInput(CallerError):
    """A field is missing, malformed, too large or out of range."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message if field is None else f"{field}: {message}")
        self.field = field


class ImageOverLimit(InvalidInput):
    """An image beyond the request's size limits (bytes, a side, pixels): the whole request is
    refused, unlike a crop that is merely unreadable."""


class ImageTooSmall(InvalidInput):
    """An image below the smallest side the settings accept; a crop like that is TOO_SMALL."""


class Unauthenticated(CallerError):
    """Credentials missing or wrong. The public message never says which."""


class PermissionDenied(CallerError):
    """Authenticated, but not allowed to do this."""


class NotFound(CallerError):
    """The named thing does not exist for this tenant (or exists only for another)."""


class AlreadyExists(CallerError):
    """An idempotency key was reused with different content."""


class FailedPrecondition(CallerError):
    """The state forbids this now (no consent, opted out, opt-out pending)."""


class DependencyError(BioauthError):
    """Something bioauth depends on failed; the request fails closed."""


class Unavailable(DependencyError):
    """A dependency cannot be reached or refused to work."""


class StoreUnavailable(Unavailable):
    """The template store (SQLite or PostgreSQL) is not usable."""


class KeyProviderUnavailable(Unavailable):
    """The HSM, Vault or key file is not usable: no decision and no token."""


class Overloaded(DependencyError):
    """A bounded queue or a rate limit is full; retry later."""


class DeadlineExceeded(DependencyError):
    """The request's deadline passed before its work could run."""


class Cancelled(DependencyError):
    """The caller cancelled the request."""


class IntegrityError(BioauthError):
    """Stored data failed an integrity check."""


class DecryptionFailed(IntegrityError):
    """A template or wrapped key does not open under its key and AAD (moved, tampered, shredded)."""


class NotImplementedYet(BioauthError):
    """An RPC whose implementation has not landed yet."""


class InternalError(BioauthError):
    """A bug in bioauth."""
