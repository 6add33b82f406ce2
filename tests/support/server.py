"""Start the real server in its own process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.environment import REPO_ROOT

TEST_API_KEYS: dict[str, str] = {"tenant-a": "key-tenant-a", "tenant-b": "key-tenant-b"}


def tenant_toml(
    tenant: str,
    api_key: str,
    *,
    verify_operating_point: str | None = None,
    identify_fpir_target: float | None = None,
) -> str:
    """One ``[[tenants]]`` table for a test config (the key stored only as its SHA-256)."""
    from bioauth.config import hash_api_key

    lines = [f'[[tenants]]\nid = "{tenant}"\napi_key_sha256 = ["{hash_api_key(api_key)}"]\n']
    if verify_operating_point is not None:
        lines.append(f'verify_operating_point = "{verify_operating_point}"\n')
    if identify_fpir_target is not None:
        lines.append(f"identify_fpir_target = {identify_fpir_target}\n")
    return "".join(lines)


def write_test_config(directory: Path, extra_toml: str = "") -> Path:
    """A settings file for a throwaway server: files under ``directory``, two tenants."""
    tenants = "\n".join(tenant_toml(tenant, key) for tenant, key in TEST_API_KEYS.items())
    config = directory / "bioauth.toml"
    config.write_text(
        f"""
[server]
host = "127.0.0.1"
port = 0
port_file = "{directory / "port"}"
grace_period_s = 5.0
drain_delay_s = 0.3
default_deadline_s = 2.0

[store]
url = "sqlite:///{directory / "bioauth.sqlite3"}"

[keys]
provider = "local"
local_path = "{directory / "dev-keys.json"}"

[logging]
level = "INFO"

{tenants}
{extra_toml}
"""
    )
    return config


class ServerProcess:
    """A server subprocess; ``target`` is ``127.0.0.1:<port>`` once started."""

    def __init__(
        self,
        directory: Path,
        *,
        config: Path | None = None,
        argv: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.config = config or write_test_config(directory)
        self.argv = list(argv) if argv is not None else [sys.executable, "-m", "bioauth.cli.main"]
        self.env = {**os.environ, **(env or {})}
        self.log_path = directory / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> ServerProcess:
        port_file = self.directory / "port"
        port_file.unlink(missing_ok=True)
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [*self.argv, "--config", str(self.config), "serve"],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if port_file.is_file() and port_file.read_text().strip():
                self.port = int(port_file.read_text())
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.logs()}")
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"server did not start within {timeout_s} s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout_s)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
