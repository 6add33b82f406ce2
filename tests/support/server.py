"""The real server in its own process on a free loopback port, for end-to-end tests.

``running_server`` is the one way the end-to-end tests get a server: it writes the settings file
(tenants, store, calibration, whatever sections the test adds), starts the process, waits until
health says SERVING and stops it afterwards. A module keeps only what is specific to it.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bioauth.client import AsyncClient
from bioauth.matching.operating_points import Calibration
from tests.support.calibration import write_calibration
from tests.support.environment import REPO_ROOT

__all__ = [
    "DEFAULT_TENANTS",
    "Sections",
    "ServerProcess",
    "ServerStartError",
    "Tenant",
    "running_server",
    "write_config",
]

Sections = Mapping[str, Mapping[str, Any]]
"""Settings by TOML table: ``{"tokens": {"issuer": "x"}}``."""


@dataclass(frozen=True)
class Tenant:
    """One ``[[tenants]]`` entry; the server is given only the SHA-256 of ``api_key``."""

    id: str
    api_key: str
    verify_operating_point: str | None = None
    identify_fpir_target: float | None = None

    def settings(self) -> dict[str, Any]:
        from bioauth.config import hash_api_key

        table: dict[str, Any] = {"id": self.id, "api_key_sha256": [hash_api_key(self.api_key)]}
        if self.verify_operating_point is not None:
            table["verify_operating_point"] = self.verify_operating_point
        if self.identify_fpir_target is not None:
            table["identify_fpir_target"] = self.identify_fpir_target
        return table


DEFAULT_TENANTS = (Tenant("tenant-a", "key-tenant-a"), Tenant("tenant-b", "key-tenant-b"))


class ServerStartError(RuntimeError):
    """The server exited before it served; ``returncode`` is its exit status."""

    def __init__(self, returncode: int, logs: str) -> None:
        super().__init__(f"server exited with {returncode}:\n{logs}")
        self.returncode = returncode


class ServerProcess:
    """A server subprocess; ``target`` is ``127.0.0.1:<port>`` once started."""

    def __init__(
        self,
        directory: Path,
        config: Path,
        *,
        api_keys: Mapping[str, str],
        argv: Sequence[str] | None = None,
    ) -> None:
        self.directory = directory
        self.config = config
        self.api_keys = dict(api_keys)
        """Tenant id -> API key, for the tenants in ``config``."""
        self.argv = list(argv) if argv is not None else [sys.executable, "-m", "bioauth.cli.main"]
        self.log_path = directory / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, tenant: str, **options: Any) -> AsyncClient:
        """An SDK client authenticated as ``tenant`` (``options`` go to ``AsyncClient``)."""
        return AsyncClient(self.target, api_key=self.api_keys[tenant], **options)

    def start(self, timeout_s: float = 120.0) -> ServerProcess:
        """Start the process and return once it serves (its port file written, health SERVING).

        Raises:
            ServerStartError: the process exited first.
            TimeoutError: it did not serve within ``timeout_s`` (it is stopped).
        """
        port_file = self.directory / "port"
        port_file.unlink(missing_ok=True)
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [*self.argv, "--config", str(self.config), "serve"],
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if port_file.is_file() and port_file.read_text().strip():
                self.port = int(port_file.read_text())
                self._wait_serving(deadline)
                return self
            if self.process.poll() is not None:
                raise ServerStartError(self.process.returncode, self.logs())
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"server did not start within {timeout_s} s:\n{self.logs()}")

    def _wait_serving(self, deadline: float) -> None:
        """The port file is written once health is SERVING; checked here so that a test never
        starts against a server that is not."""
        request = health_pb2.HealthCheckRequest(service="")
        with grpc.insecure_channel(self.target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                request, timeout=max(1.0, deadline - time.monotonic())
            )
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            self.stop()
            raise TimeoutError(f"server answers health {reply.status}:\n{self.logs()}")

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


@contextlib.contextmanager
def running_server(
    directory: Path,
    *,
    tenants: Sequence[Tenant] = DEFAULT_TENANTS,
    store_url: str | None = None,
    calibration: Calibration | None = None,
    settings: Sections | None = None,
    argv: Sequence[str] | None = None,
    timeout_s: float = 120.0,
) -> Iterator[ServerProcess]:
    """A started server whose files live under ``directory``; stopped on exit.

    ``store_url``: default an SQLite file in ``directory``. ``calibration``: written beside the
    config and served instead of the committed one. ``settings``: more tables, or keys that
    replace the defaults below. ``argv``: another entry point taking ``--config PATH serve``.
    """
    config = write_config(
        directory, tenants=tenants, store_url=store_url, calibration=calibration, settings=settings
    )
    server = ServerProcess(
        directory, config, api_keys={t.id: t.api_key for t in tenants}, argv=argv
    )
    try:
        yield server.start(timeout_s)
    finally:
        server.stop()


def write_config(
    directory: Path,
    *,
    tenants: Sequence[Tenant] = DEFAULT_TENANTS,
    store_url: str | None = None,
    calibration: Calibration | None = None,
    settings: Sections | None = None,
) -> Path:
    """The settings file of a throwaway server, ``directory / "bioauth.toml"``."""
    tables: dict[str, dict[str, Any]] = {
        "server": {
            "host": "127.0.0.1",
            "port": 0,
            "port_file": directory / "port",
            "grace_period_s": 5.0,
            "drain_delay_s": 0.3,
            "default_deadline_s": 2.0,
        },
        "store": {"url": store_url or f"sqlite:///{directory / 'bioauth.sqlite3'}"},
        "keys": {"provider": "local", "local_path": directory / "dev-keys.json"},
        "logging": {"level": "INFO"},
    }
    if calibration is not None:
        path = write_calibration(directory / "calibration.json", calibration)
        tables.setdefault("matching", {})["calibration"] = path
    for name, values in (settings or {}).items():
        tables.setdefault(name, {}).update(values)
    lines: list[str] = []
    for name, values in tables.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml(value)}" for key, value in values.items())
        lines.append("")
    for tenant in tenants:
        lines.append("[[tenants]]")
        lines.extend(f"{key} = {_toml(value)}" for key, value in tenant.settings().items())
        lines.append("")
    config = directory / "bioauth.toml"
    config.write_text("\n".join(lines))
    return config


def _toml(value: object) -> str:
    """A TOML value (the few kinds a test config holds)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # a JSON string is a TOML basic string
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")
