"""The default deadline: what counts as spending it, and what is only a timeout from below."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from grpc import aio

from bioauth.api.interceptors.deadline import DeadlineInterceptor
from bioauth.api.interceptors.request_context import current_request, open_request
from bioauth.config import TenantSettings
from bioauth.errors import DeadlineExceeded

METHOD = "/bioauth.v1.BioAuth/Verify"


class _NoClientDeadline:
    def time_remaining(self) -> float | None:
        return None


@pytest.fixture(autouse=True)
def _request() -> None:
    """What the authentication interceptor does before the deadline interceptor runs."""
    open_request(
        TenantSettings(id="bank-a"), METHOD, client_remaining=None, default_deadline_s=0.05
    )


def _around(default_deadline_s: float = 0.05) -> Any:
    return DeadlineInterceptor(default_deadline_s)._unary(METHOD)


async def _run(behaviour: Any, default_deadline_s: float = 0.05) -> Any:
    context = cast(aio.ServicerContext[Any, Any], _NoClientDeadline())
    return await _around(default_deadline_s)(behaviour, object(), context)


async def test_a_call_past_the_default_deadline_is_deadline_exceeded() -> None:
    async def slow(_request: object, _context: object) -> None:
        await asyncio.sleep(5)

    with pytest.raises(DeadlineExceeded, match="default deadline"):
        await _run(slow)


async def test_the_deadline_enforced_is_the_request_contexts() -> None:
    """The interceptor holds the call to the one deadline in the request context, the same
    absolute value the servicer passes down, not to a second default counted from later."""

    async def slow(_request: object, _context: object) -> None:
        await asyncio.sleep(5)

    started = asyncio.get_running_loop().time()
    with pytest.raises(DeadlineExceeded):
        await _run(slow, default_deadline_s=5.0)
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_a_timeout_raised_below_is_not_taken_for_the_deadline() -> None:
    """A store or provider TimeoutError within budget stays what it is (an internal error)."""

    async def broken(_request: object, _context: object) -> None:
        raise TimeoutError("a socket below timed out")

    with pytest.raises(TimeoutError, match="socket below"):
        await _run(broken)


async def test_the_call_sees_its_tenant_and_absolute_deadline() -> None:
    async def look(_request: object, _context: object) -> tuple[str, float]:
        ctx = current_request()
        return ctx.tenant.id, ctx.deadline - asyncio.get_running_loop().time()

    tenant, left = await _run(look)
    assert tenant == "bank-a"
    assert 0 < left <= 0.05 + 1e-3
