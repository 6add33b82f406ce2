"""A private SoftHSM2 token for the test run, in a temporary directory.

The PKCS#11 library reads ``SOFTHSM2_CONF`` once, when the first provider loads it, and
python-pkcs11 keeps one library per process; so the token is made once per process (whatever
number of fixture instances ask for it) before anything loads the library, and tests share it
with unique key ids. Tests that must break a token (remove it, wrong PIN) make their own with
``make_token`` and run in a subprocess.

Use it from a conftest: ``from tests.support.softhsm import softhsm_token  # noqa: F401``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.environment import missing

LIBRARY_CANDIDATES = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/local/lib/softhsm/libsofthsm2.so"),
)
_HOW = "apt-get install -y softhsm2"


@dataclass(frozen=True)
class SoftHsmToken:
    """Where the token is and how to log in to it."""

    library: Path
    conf: Path
    token_dir: Path
    label: str
    user_pin: str
    so_pin: str

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should see this token."""
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}

    def settings_env(self) -> dict[str, str]:
        """The server's settings for this token, as environment variables."""
        return {
            "BIOAUTH_KEYS__PROVIDER": "pkcs11",
            "BIOAUTH_KEYS__PKCS11__LIBRARY": str(self.library),
            "BIOAUTH_KEYS__PKCS11__TOKEN_LABEL": self.label,
            "BIOAUTH_KEYS__PKCS11__USER_PIN": self.user_pin,
        }


def find_library() -> Path | None:
    for candidate in LIBRARY_CANDIDATES:
        if candidate.is_file():
            return candidate
    return None


def make_token(
    directory: Path,
    *,
    label: str = "bioauth-test",
    user_pin: str = "1234",
    for_bioauth: bool = True,
) -> SoftHsmToken:
    """Initialise a fresh token in ``directory`` (fails/skips when SoftHSM2 is not installed),
    and unless ``for_bioauth`` is False, mark it as bioauth's the way an operator does, with
    ``bioauth keys init`` (in a subprocess: the library reads its configuration once)."""
    library = find_library()
    util = shutil.which("softhsm2-util")
    if library is None or util is None:
        missing("SoftHSM2 (softhsm2-util and libsofthsm2.so)", _HOW)
    token_dir = directory / "tokens"
    token_dir.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {token_dir}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    token = SoftHsmToken(
        library=library,
        conf=conf,
        token_dir=token_dir,
        label=label,
        user_pin=user_pin,
        so_pin="so-" + user_pin,
    )
    subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            token.so_pin,
            "--pin",
            user_pin,
        ],
        env=token.env(),
        check=True,
        capture_output=True,
        timeout=30,
    )
    if for_bioauth:
        subprocess.run(
            [sys.executable, "-m", "bioauth.cli.main", "keys", "init"],
            env={**token.env(), **token.settings_env()},
            check=True,
            capture_output=True,
            timeout=60,
        )
    return token


_PROCESS_TOKEN: list[SoftHsmToken] = []


def process_token() -> SoftHsmToken:
    """The one token of this test process; sets ``SOFTHSM2_CONF`` for the in-process library."""
    if not _PROCESS_TOKEN:
        directory = Path(tempfile.mkdtemp(prefix="bioauth-softhsm-"))
        atexit.register(shutil.rmtree, directory, True)
        token = make_token(directory)
        os.environ["SOFTHSM2_CONF"] = str(token.conf)
        _PROCESS_TOKEN.append(token)
    return _PROCESS_TOKEN[0]


@pytest.fixture(scope="session")
def softhsm_token() -> SoftHsmToken:
    """The test run's private SoftHSM2 token (shared; use unique key ids)."""
    return process_token()
