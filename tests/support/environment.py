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


def faces_dir() -> Path:
    path = Path(os.environ.get("BIOAUTH_FACES_DIR", REPO_ROOT.parent / "shared" / "faces"))
    if not (path / "faces.json").is_file():
        missing(
            f"face set at {path}",
            "set BIOAUTH_FACES_DIR to the folder holding faces.json and chips/",
        )
    return path


def lfw_dir() -> Path:
    path = Path(os.environ.get("BIOAUTH_LFW_DIR", REPO_ROOT.parent / "shared" / "lfw"))
    if not (path / "lfw.json").is_file():
        missing(
            f"LFW set at {path}", "set BIOAUTH_LFW_DIR to the folder holding lfw.json and chips/"
        )
    return path
