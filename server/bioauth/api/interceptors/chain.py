"""The interceptor chain every bioauth call passes through, in its one order.

Authentication first: a refused call runs nothing else (no servicer, no outcome line). Error
mapping next, outside the deadline, so a server default deadline that expires is mapped and
counted like any other error. The deadline innermost, nearest to the servicer it bounds.
"""

from __future__ import annotations

from collections.abc import Sequence

from grpc import aio

from bioauth.api.interceptors.authentication import AuthenticationInterceptor, TenantDirectory
from bioauth.api.interceptors.deadline import DeadlineInterceptor
from bioauth.api.interceptors.error_mapping import ErrorMappingInterceptor
from bioauth.config import TenantSettings

__all__ = ["interceptor_chain"]


def interceptor_chain(
    tenants: Sequence[TenantSettings], *, default_deadline_s: float, drain_s: float
) -> list[aio.ServerInterceptor]:
    """The interceptors for ``aio.server``, outermost first.

    ``default_deadline_s``: the deadline of a call whose client sent none; ``drain_s``: how long
    a failing client-streaming call reads what the client still sends (see ``drain``).
    """
    return [
        AuthenticationInterceptor(
            TenantDirectory(tenants), default_deadline_s=default_deadline_s, drain_s=drain_s
        ),
        ErrorMappingInterceptor(drain_s=drain_s),
        DeadlineInterceptor(default_deadline_s),
    ]
