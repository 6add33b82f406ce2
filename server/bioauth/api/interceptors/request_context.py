"""Per-request state that interceptors establish and servicers read.

The servicer passes what it needs (tenant, deadline) into the service layer explicitly; nothing
below the API layer reads this ContextVar, so services stay free of gRPC.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass

from bioauth.config import TenantSettings
from bioauth.errors import DeadlineExceeded, InternalError

__all__ = ["RequestContext", "current_request", "request_scope"]


@dataclass(frozen=True)
class RequestContext:
    tenant: TenantSettings
    request_id: str
    method: str
    deadline: float
    """Absolute ``time.monotonic()`` deadline: the client's, or the server's default."""

    def remaining(self) -> float:
        """Seconds left; raises when already spent so no work starts after the deadline."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("deadline exceeded before the work could run")
        return left


_CURRENT: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "bioauth_request", default=None
)


def current_request() -> RequestContext:
    ctx = _CURRENT.get()
    if ctx is None:
        raise InternalError("no request context: the interceptor chain did not run")
    return ctx


def request_scope(ctx: RequestContext) -> contextvars.Token[RequestContext | None]:
    return _CURRENT.set(ctx)
