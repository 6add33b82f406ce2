"""The real server plus one slow RPC that only tests register (production code has no hooks).

``/bioauth.test.Slow/Sleep`` takes the number of seconds to sleep as ASCII bytes and answers
with the budget it saw: ``<seconds remaining at start>``. It passes through the same
interceptors as every bioauth RPC.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from bioauth.api.interceptors.request_context import current_request
from bioauth.app import serve
from bioauth.config import load_settings

SLOW_METHOD = "/bioauth.test.Slow/Sleep"
SLOW_CALL_STARTED = "slow_call_started"
"""Written to stderr (the server log) as each slow call enters its handler."""


async def _sleep(request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
    print(SLOW_CALL_STARTED, file=sys.stderr, flush=True)
    remaining = current_request().remaining()
    await asyncio.sleep(float(request.decode("ascii")))
    return f"{remaining:.3f}".encode("ascii")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("command", choices=["serve"])
    args = parser.parse_args()
    handler = grpc.method_handlers_generic_handler(
        "bioauth.test.Slow", {"Sleep": grpc.unary_unary_rpc_method_handler(_sleep)}
    )
    return asyncio.run(serve(load_settings(args.config), extra_handlers=[handler]))


if __name__ == "__main__":
    sys.exit(main())
