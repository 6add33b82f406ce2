"""Who is calling: the gateway's credentials become a tenant, or the call is refused.

Development uses API keys in the ``x-api-key`` metadata, matched by SHA-256 against the tenants
in settings (the store records only tenant ids). mTLS identities come later through the same
``TenantDirectory``. Refusal happens before any servicer code runs, with one opaque message;
the cause is only logged. An accepted call gets its request context here, once (tenant, request
id, method, deadline), since this is where the caller becomes known.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from grpc import aio

from bioauth.api.interceptors.drain import abort_after_drain
from bioauth.api.interceptors.request_context import open_request
from bioauth.api.interceptors.wrapping import (
    PUBLIC_SERVICES,
    StreamAround,
    UnaryAround,
    wrap_handler,
)
from bioauth.config import TenantSettings, hash_api_key
from bioauth.errors import Unauthenticated
from bioauth.observability.logging import get_logger
from bioauth.wire import API_KEY_HEADER

__all__ = ["AuthenticationInterceptor", "TenantDirectory"]

_LOGGER = get_logger(__name__)
_MAX_API_KEY_LENGTH = 256


class TenantDirectory:
    """Maps credentials to tenants; built once from settings."""

    def __init__(self, tenants: Sequence[TenantSettings]) -> None:
        self._by_digest = {digest: t for t in tenants for digest in t.api_key_sha256}

    def authenticate_api_key(self, api_key: str | None) -> TenantSettings:
        if not api_key:
            raise Unauthenticated("no API key")
        if len(api_key) > _MAX_API_KEY_LENGTH:
            raise Unauthenticated("API key too long")
        # A dict look-up of the key's SHA-256: timing can reveal at most something about a
        # digest, which gives no way back to a key.
        tenant = self._by_digest.get(hash_api_key(api_key))
        if tenant is None:
            raise Unauthenticated("unknown API key")
        return tenant


class AuthenticationInterceptor(aio.ServerInterceptor):
    """Rejects unauthenticated calls with UNAUTHENTICATED; opens the request context for the rest.

    ``default_deadline_s`` is the deadline a call gets when its client sent none (the deadline
    interceptor enforces it); ``drain_s`` bounds how long a refused client-streaming call is read
    before its status goes out (see ``drain``).
    """

    def __init__(
        self, directory: TenantDirectory, *, default_deadline_s: float, drain_s: float = 1.0
    ) -> None:
        self._directory = directory
        self._default_deadline_s = default_deadline_s
        self._drain_s = drain_s

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method
        if method.startswith(PUBLIC_SERVICES):
            return await continuation(handler_call_details)
        metadata = {m.key: m.value for m in handler_call_details.invocation_metadata or ()}
        api_key = metadata.get(API_KEY_HEADER)
        handler = await continuation(handler_call_details)
        try:
            tenant = self._directory.authenticate_api_key(
                api_key if isinstance(api_key, str) else None
            )
        except Unauthenticated as exc:
            _LOGGER.warning("authentication_failed", method=method, cause=exc.message)
            return _abort_handler(handler, self._drain_s)
        if handler is None:
            return handler
        unary, stream = self._opening(tenant, method)
        return wrap_handler(handler, unary, stream)

    def _opening(self, tenant: TenantSettings, method: str) -> tuple[UnaryAround, StreamAround]:
        """Arounds that open the call's request context before its behaviour runs."""
        default = self._default_deadline_s

        async def unary(
            call: Callable[..., Awaitable[Any]],
            request: Any,
            context: aio.ServicerContext[Any, Any],
        ) -> Any:
            open_request(
                tenant,
                method,
                client_remaining=context.time_remaining(),
                default_deadline_s=default,
            )
            return await call(request, context)

        async def stream(
            call: Callable[..., AsyncIterator[Any]],
            request: Any,
            context: aio.ServicerContext[Any, Any],
        ) -> AsyncIterator[Any]:
            open_request(
                tenant,
                method,
                client_remaining=context.time_remaining(),
                default_deadline_s=default,
            )
            async for item in call(request, context):
                yield item

        return unary, stream


_REFUSAL = (grpc.StatusCode.UNAUTHENTICATED, "authentication failed")


def _abort_handler(handler: grpc.RpcMethodHandler | None, drain_s: float) -> grpc.RpcMethodHandler:
    """An aborting handler of the same streaming kind as the real one.

    No deserializer: a refused call's messages are drained as bytes, never parsed. An aio abort
    handler must be async and await abort (grpc/grpc#37518).
    """

    async def refuse(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await abort_after_drain(request, context, *_REFUSAL, drain_s=drain_s)

    async def refuse_stream(
        request: Any, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        await abort_after_drain(request, context, *_REFUSAL, drain_s=drain_s)
        yield None  # pragma: no cover - abort raises

    if handler is None or handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(refuse)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(refuse_stream)
    return grpc.stream_stream_rpc_method_handler(refuse_stream)
