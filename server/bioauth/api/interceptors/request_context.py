"""The one per-request state: who calls (tenant), which call (request id, method), until when.

The authentication interceptor opens it once per call, as soon as the caller is known; the
deadline interceptor enforces its deadline; servicers read it (``current_request``) and pass what
they need (tenant, deadline) into the service layer explicitly. Nothing below the API layer reads
this ContextVar, so services stay free of gRPC.
"""

from __future__ import annotations

import contextvars
import time
import uuid
from dataclasses import dataclass

import structlog

from bioauth.config import TenantSettings
from bioauth.errors import DeadlineExceeded, InternalError

__all__ = ["RequestContext", "current_request", "open_request"]


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


def open_request(
    tenant: TenantSettings,
    method: str,
    *,
    client_remaining: float | None,
    default_deadline_s: float,
) -> RequestContext:
    """Set the call's context and bind its fields to every log line of the call.

    ``client_remaining`` is the client's budget (None when it sent no deadline: the server's
    default then applies). Each call runs in its own task, so nothing is restored afterwards:
    the log fields stay bound for the outcome line the error mapping writes once the call ends.
    """
    budget = client_remaining if client_remaining is not None else default_deadline_s
    ctx = RequestContext(
        tenant=tenant,
        request_id=uuid.uuid4().hex,
        method=method,
        deadline=time.monotonic() + budget,
    )
    _CURRENT.set(ctx)
    structlog.contextvars.bind_contextvars(
        request_id=ctx.request_id, tenant=tenant.id, method=method
    )
    return ctx
