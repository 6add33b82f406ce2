"""The converter and the offline evaluation stay off the request path, and the converter reaches
into the server only for what it must share with it (manifest schema, exact preprocessing).

Read from the source (every import statement, those inside functions too), so an import that only
runs on some code path is caught as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.environment import REPO_ROOT

SERVER = REPO_ROOT / "server" / "bioauth"
REQUEST_PATH = (
    "api",
    "service",
    "matching",
    "store",
    "crypto",
    "inference",
    "security",
    "observability",
)
OFF_THE_REQUEST_PATH = ("bioauth.modelbuild", "bioauth.evaluation")
CONVERTER_MAY_IMPORT = (
    "bioauth.modelbuild",
    "bioauth.inference.manifest",
    "bioauth.inference.preprocess",
    "bioauth.inference.decode",
    "bioauth.config",
    "bioauth.errors",
)


def _bioauth_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("bioauth.")}


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


@pytest.mark.parametrize("room", REQUEST_PATH)
def test_request_path_imports_neither_converter_nor_evaluation(room: str) -> None:
    offending = {
        f"{path.relative_to(SERVER)}: {name}"
        for path in sorted((SERVER / room).rglob("*.py"))
        for name in _bioauth_imports(path)
        if _within(name, OFF_THE_REQUEST_PATH)
    }
    assert not offending


def test_converter_imports_only_what_it_shares_with_the_server() -> None:
    offending = {
        f"{path.relative_to(SERVER)}: {name}"
        for path in sorted((SERVER / "modelbuild").rglob("*.py"))
        for name in _bioauth_imports(path)
        if not _within(name, CONVERTER_MAY_IMPORT)
    }
    assert not offending
