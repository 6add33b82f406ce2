"""The default deadline: what counts as spending it, and what is only a timeout from below."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from grpc import aio

from bioauth.config import TenantSettings
from bioauth.errors import DeadlineExceeded
from bioauth.security import authentication
from bioauth.security.context import current_request
from bioauth.security.deadline import DeadlineInterceptor


class _NoClientDeadline:
    def time_remaining(self) -> float | None:
        return None


@pytest.fixture(autouse=True)
def _tenant() -> None:
    authentication._TENANT.set(TenantSettings(id="bank-a"))


def _around() -> Any:
    return DeadlineInterceptor(0.05)._unary("/bioauth.v1.BioAuth/Verify")


async def _run(behaviour: Any) -> Any:
    context = cast(aio.ServicerContext[Any, Any], _NoClientDeadline())
    return await _around()(behaviour, object(), context)


async def test_a_call_past_the_default_deadline_is_deadline_exceeded() -> None:
    async def slow(_request: object, _context: object) -> None:
        await asyncio.sleep(5)

    with pytest.raises(DeadlineExceeded, match="default deadline"):
        await _run(slow)


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
