"""The import graph of every distribution, read from the source (AST), never by importing it.

Three rules keep the house one-way (``docs/design.md``, "Rooms"): no import cycle between modules;
each room of the server imports only the rooms drawn below it; and every third-party import is
declared by the distribution that ships the importing module (a module-level import by its
required dependencies, an import inside a function at least by one of its extras). Imports inside
functions and under ``TYPE_CHECKING`` count like any other: they are still an arrow in the design.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[3]
DISTRIBUTIONS = (".", "protos/python", "clients/python", "models")
"""Folders that hold a ``pyproject.toml``; a folder without one is not a distribution."""

# What each room may import besides itself. A room is ``bioauth.<first part>``; the server's rooms
# are drawn in docs/design.md with the same arrows. Keep the two together.
ROOMS: dict[str, frozenset[str]] = {
    "bioauth.v1": frozenset(),
    "bioauth.wire": frozenset({"bioauth.v1"}),
    "bioauth.client": frozenset({"bioauth.v1", "bioauth.wire"}),
    "bioauth.errors": frozenset(),
    "bioauth.config": frozenset({"bioauth.errors", "bioauth.wire"}),
    "bioauth.observability": frozenset({"bioauth.config", "bioauth.errors"}),
    "bioauth.matching": frozenset({"bioauth.errors"}),
    "bioauth.inference": frozenset({"bioauth.config", "bioauth.errors", "bioauth.observability"}),
    "bioauth.crypto": frozenset(
        {"bioauth.config", "bioauth.errors", "bioauth.observability", "bioauth.wire"}
    ),
    "bioauth.store": frozenset(
        {"bioauth.config", "bioauth.crypto", "bioauth.errors", "bioauth.observability"}
    ),
    "bioauth.service": frozenset(
        {
            "bioauth.config",
            "bioauth.crypto",
            "bioauth.errors",
            "bioauth.inference",
            "bioauth.matching",
            "bioauth.observability",
            "bioauth.store",
            "bioauth.wire",
        }
    ),
    "bioauth.api": frozenset(
        {
            "bioauth.config",
            "bioauth.errors",
            "bioauth.inference",
            "bioauth.matching",
            "bioauth.observability",
            "bioauth.service",
            "bioauth.v1",
            "bioauth.wire",
        }
    ),
    "bioauth.modelbuild": frozenset({"bioauth.config", "bioauth.errors", "bioauth.inference"}),
    "bioauth.evaluation": frozenset(
        {
            "bioauth.config",
            "bioauth.errors",
            "bioauth.inference",
            "bioauth.matching",
            "bioauth.modelbuild",
        }
    ),
}
# The composition root, the command line and the test seams may import any server room.
COMPOSERS = frozenset({"bioauth.app", "bioauth.cli", "bioauth.testing"})
REQUEST_PATH = frozenset(
    {
        "bioauth.api",
        "bioauth.service",
        "bioauth.inference",
        "bioauth.matching",
        "bioauth.store",
        "bioauth.crypto",
        "bioauth.observability",
        "bioauth.config",
        "bioauth.errors",
    }
)
CONVERTER = "bioauth.modelbuild"
OFFLINE = frozenset({CONVERTER, "bioauth.evaluation"})
"""Rooms that build or measure a model: never imported on the request path."""


@dataclass(frozen=True)
class Distribution:
    name: str
    root: Path
    required: frozenset[str]
    optional: frozenset[str]


@dataclass(frozen=True)
class Import:
    module: str
    """The importing module."""
    target: str
    """The imported module (bioauth) or top-level name (anything else)."""
    line: int
    in_function: bool


@cache
def distributions() -> tuple[Distribution, ...]:
    found = []
    for folder in DISTRIBUTIONS:
        pyproject = REPO / folder / "pyproject.toml"
        if not pyproject.is_file():
            continue
        document = tomllib.loads(pyproject.read_text())
        project = document["project"]
        where = document["tool"]["setuptools"]["packages"]["find"]["where"]
        extras = project.get("optional-dependencies", {}).values()
        found.append(
            Distribution(
                name=canonicalize_name(project["name"]),
                root=(pyproject.parent / where[0]).resolve(),
                required=frozenset(_names(project.get("dependencies", []))),
                optional=frozenset(name for extra in extras for name in _names(extra)),
            )
        )
    return tuple(found)


def _names(requirements: list[str]) -> Iterator[str]:
    return (canonicalize_name(Requirement(line).name) for line in requirements)


@cache
def modules() -> dict[str, tuple[Path, Distribution]]:
    """Every first-party module, by dotted name."""
    found: dict[str, tuple[Path, Distribution]] = {}
    for dist in distributions():
        for path in (dist.root / "bioauth").rglob("*.py"):
            parts = path.relative_to(dist.root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = (path, dist)
    return found


def _resolve(name: str) -> str:
    """The longest known module that ``name`` names or lies in (``from pkg import name``)."""
    known = modules()
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _function_lines(tree: ast.Module) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside.update(
                child.lineno
                for child in ast.walk(node)
                if isinstance(child, ast.Import | ast.ImportFrom)
            )
    return inside


@cache
def imports_of(module: str) -> tuple[Import, ...]:
    return tuple(_walk(module))


def _walk(module: str) -> Iterator[Import]:
    path, _ = modules()[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    in_function = _function_lines(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            if base == "__future__":
                continue
            # ``from pkg import sub`` imports the submodule when there is one.
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            top = target.split(".")[0]
            resolved = _resolve(target) if top == "bioauth" else top
            yield Import(module, resolved, node.lineno, node.lineno in in_function)


def first_party_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for name in modules():
        for imp in imports_of(name):
            if imp.target in graph and imp.target != name:
                graph[name].add(imp.target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def room(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_the_graph_is_read() -> None:
    """Guards the other tests against passing on an empty walk."""
    assert {"bioauth.app", "bioauth.client", "bioauth.wire.transaction"} <= set(modules())
    graph = first_party_graph()
    assert sum(len(targets) for targets in graph.values()) > 200


def test_no_import_cycle_between_modules() -> None:
    assert cycles(first_party_graph()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_every_room_imports_only_the_rooms_below_it() -> None:
    wrong = []
    for module in modules():
        source = room(module)
        if source in COMPOSERS:
            continue
        allowed = ROOMS.get(source)
        if allowed is None:
            wrong.append(f"{module}: room {source} is not drawn in ROOMS (docs/design.md)")
            continue
        for imp in imports_of(module):
            target = room(imp.target)
            if imp.target.startswith("bioauth.") and target != source and target not in allowed:
                wrong.append(f"{module}:{imp.line} imports {imp.target} ({source} -> {target})")
    assert wrong == []


def test_the_request_path_imports_neither_the_converter_nor_the_evaluation() -> None:
    importers = sorted(
        f"{imp.module}:{imp.line} imports {imp.target}"
        for module in modules()
        if room(module) in REQUEST_PATH
        for imp in imports_of(module)
        if room(imp.target) in OFFLINE
    )
    assert importers == []


def test_the_converter_imports_only_what_it_shares_with_the_server() -> None:
    """The one direction between server and converter: the converter reads the manifest schema,
    the preprocessing, settings and errors; the server never reaches into the converter."""
    converter_imports = {
        room(imp.target)
        for module in modules()
        if room(module) == CONVERTER
        for imp in imports_of(module)
        if imp.target.startswith("bioauth.")
    }
    assert converter_imports <= ROOMS[CONVERTER] | {CONVERTER}
    assert {"bioauth.inference", "bioauth.config"} <= converter_imports


@cache
def _installed() -> dict[str, frozenset[str]]:
    return {
        name: frozenset(canonicalize_name(d) for d in dists)
        for name, dists in packages_distributions().items()
    }


def _distribution_of_import(name: str) -> frozenset[str]:
    return _installed().get(name, frozenset())


@pytest.mark.parametrize("dist", distributions(), ids=lambda d: d.name)
def test_third_party_imports_are_declared(dist: Distribution) -> None:
    undeclared = []
    for module, (_, owner) in modules().items():
        if owner != dist:
            continue
        for imp in imports_of(module):
            top = imp.target.split(".")[0]
            if top == "bioauth" or top in sys.stdlib_module_names:
                continue
            provided_by = _distribution_of_import(top)
            if not provided_by:
                undeclared.append(f"{module}:{imp.line} imports {top}: no installed distribution")
                continue
            declared = dist.required | (dist.optional if imp.in_function else frozenset())
            if not provided_by & declared:
                where = "inside a function" if imp.in_function else "at module level"
                undeclared.append(
                    f"{module}:{imp.line} imports {top} {where} "
                    f"({'/'.join(sorted(provided_by))} not declared by {dist.name})"
                )
    assert undeclared == []


def test_first_party_imports_stay_inside_declared_distributions() -> None:
    """A module may import bioauth code from its own distribution or one it requires."""
    by_name = {dist.name: dist for dist in distributions()}
    wrong = []
    for module, (_, owner) in modules().items():
        reachable = {owner.name} | (owner.required & by_name.keys())
        for imp in imports_of(module):
            if imp.target in modules():
                target_dist = modules()[imp.target][1].name
                if target_dist not in reachable:
                    wrong.append(f"{module}:{imp.line} imports {imp.target} from {target_dist}")
    assert wrong == []


def _design_rooms() -> dict[str, frozenset[str]]:
    """The "Rooms" table of docs/design.md: room -> the rooms its row says it may import."""
    text = (REPO / "docs" / "design.md").read_text()
    section = text.split("## Rooms", 1)[1].split("\n## ", 1)[0]
    drawn: dict[str, frozenset[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        may_import = re.findall(r"`([a-z0-9_]+)`", cells[2])
        drawn[f"bioauth.{cells[0].strip('`')}"] = frozenset(
            f"bioauth.{name}" for name in may_import
        )
    return drawn


def test_the_design_document_draws_the_same_arrows() -> None:
    drawn = _design_rooms()
    assert set(drawn) == set(ROOMS) | COMPOSERS
    assert {name: drawn[name] for name in ROOMS} == ROOMS
