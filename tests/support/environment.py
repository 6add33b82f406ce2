"""Finding what the tests need, and what to do when it is missing.

In CI (``CI=true``) a missing service or data set is a failure: CI must run the integration
tests, not skip them. Elsewhere a test skips with a message that says how to get what it needs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(what: str, how: str) -> NoReturn:
    """Fail in CI, skip elsewhere, saying how to get ``what``."""
    message = f"{what} is not available: {how}"
    if in_ci():
        pytest.fail(message + " (CI=true: required)", pytrace=False)
    pytest.skip(message)
