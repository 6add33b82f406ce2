"""The committed stubs are exactly what scripts/gen_protos.py makes from the committed protos."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.environment import REPO_ROOT

GENERATED = REPO_ROOT / "protos" / "python"


def _generate(out: Path, proto_root: Path) -> dict[str, bytes]:
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "gen_protos.py"),
            "--out",
            str(out),
            "--proto-root",
            str(proto_root),
        ],
        check=True,
        capture_output=True,
    )
    return _stubs(out)


def _stubs(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted((root / "bioauth").rglob("*"))
        if p.is_file() and p.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))
    }


def _stale(committed: dict[str, bytes], fresh: dict[str, bytes]) -> list[str]:
    names = sorted(set(committed) | set(fresh))
    return [n for n in names if committed.get(n) != fresh.get(n)]


def test_committed_stubs_match_the_protos(tmp_path: Path) -> None:
    """Regenerating from protos/ reproduces the committed stubs byte for byte (run `make protos`)."""
    fresh = _generate(tmp_path / "out", REPO_ROOT / "protos")
    committed = _stubs(GENERATED)
    assert committed, "no committed stubs found"
    assert _stale(committed, fresh) == [], "stubs are stale: run `make protos` and commit"


def test_a_changed_proto_makes_the_stubs_stale(tmp_path: Path) -> None:
    """The check above can fail: an edited .proto no longer matches the committed stubs."""
    protos = tmp_path / "protos"
    shutil.copytree(REPO_ROOT / "protos" / "bioauth", protos / "bioauth")
    proto = protos / "bioauth" / "v1" / "bioauth.proto"
    proto.write_text(
        proto.read_text().replace(
            "message GetJwksRequest {}", "message GetJwksRequest { string kid = 1; }"
        )
    )
    fresh = _generate(tmp_path / "out", protos)
    assert "bioauth/v1/bioauth_pb2.py" in _stale(_stubs(GENERATED), fresh)
