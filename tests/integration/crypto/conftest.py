"""Fixtures for the key-provider integration tests: a private SoftHSM2 token, an OpenBao server."""

from __future__ import annotations

from tests.support.openbao import openbao_server  # noqa: F401
from tests.support.softhsm import softhsm_token  # noqa: F401
