"""The SDK installs from its wheels into an empty virtual environment and works without the server.

A gateway team installs ``bioauth-client`` (and ``bioauth-api``) alone; nothing of
``bioauth-server`` may be needed, or even present. Dependencies come from the package index (or
the local pip cache and wheel mirrors); with no index reachable the test skips, except in CI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

from tests.support.environment import REPO_ROOT, missing

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROBE = textwrap.dedent(
    """
    import importlib.util, json, sys
    from pathlib import Path
    import bioauth.client, bioauth.client.cli, bioauth.client.replay, bioauth.client.testing
    from bioauth.client.tokens import TokenVerifier
    from bioauth.v1 import types_pb2
    from google.protobuf.timestamp_pb2 import Timestamp
    from bioauth.wire import transaction_hash_b64

    server_modules = ["bioauth.service", "bioauth.config", "bioauth.errors", "bioauth.crypto",
                      "bioauth.api", "bioauth.app", "bioauth.inference"]
    vector = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))["vectors"][0]
    context = {k: v for k, v in vector["context"].items() if k != "timestamp"}
    tx = types_pb2.TransactionContext(**context)
    tx.timestamp.CopyFrom(Timestamp(**vector["context"]["timestamp"]))
    print(json.dumps({
        "client_file": bioauth.client.__file__,
        "server_importable": [m for m in server_modules if importlib.util.find_spec(m)],
        "txn_matches_vector": transaction_hash_b64(tx) == vector["txn_b64url"],
        "exports": len(bioauth.client.__all__),
        "verifier": TokenVerifier.__name__,
    }))
    """
)


def test_sdk_wheels_install_and_import_alone(tmp_path: Path) -> None:
    """bioauth-api + bioauth-client wheels in an empty venv: the SDK imports, the server does not."""
    dist = tmp_path / "dist"
    wheels = []
    for source in (REPO_ROOT / "protos" / "python", REPO_ROOT / "clients" / "python"):
        work = tmp_path / source.parent.name
        work.mkdir()
        before = set(dist.glob("*.whl")) if dist.exists() else set()
        _build_wheel_into(source, work, dist)
        [wheel] = set(dist.glob("*.whl")) - before
        wheels.append(wheel)
    assert sorted(w.name.split("-")[0] for w in wheels) == ["bioauth_api", "bioauth_client"]

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *map(str, wheels)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if install.returncode != 0:
        unreachable = any(sign in install.stderr for sign in _NO_INDEX_SIGNS)
        if not unreachable:  # a packaging bug (an unsatisfiable requirement): never a skip
            pytest.fail("pip could not install the SDK wheels:\n" + install.stderr[-2000:])
        missing(
            "a package index for grpcio, protobuf, pyjwt and rfc8785",
            "allow pip to reach PyPI or fill the local pip cache; pip said: "
            + install.stderr.strip()[-500:],
        )

    vectors = REPO_ROOT / "protos" / "bioauth" / "v1" / "testdata" / "transaction_vectors.json"
    probe = subprocess.run(
        [str(python), "-I", "-c", PROBE, str(vectors)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=tmp_path,  # not the checkout: nothing may be imported from the source tree
    )
    report = json.loads(probe.stdout)
    assert report["client_file"].startswith(str(env_dir))
    assert report["server_importable"] == []
    assert report["txn_matches_vector"] is True
    assert report["exports"] > 0

    cli = subprocess.run(
        [str(env_dir / "bin" / "bioauth-client"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "token" in cli.stdout


# What pip prints when it cannot reach an index at all (as opposed to not finding a version).
_NO_INDEX_SIGNS = (
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Could not fetch URL",
    "ProxyError",
)


def _build_wheel_into(source: Path, work: Path, dist: Path) -> None:
    copy = work / "src"
    shutil.copytree(
        source, copy, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__")
    )
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)],
        cwd=copy,
        check=True,
        capture_output=True,
        timeout=300,
    )
