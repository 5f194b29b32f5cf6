"""Imports point one way: no cycles, and no import from a lower layer into a higher one.

Every import counts: at module level, inside functions and under ``TYPE_CHECKING``.
The layers are those of docs/architecture.md, lowest first.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "facematch"

#: Lowest first. A module may import from its own room and from any lower layer.
LAYERS: list[set[str]] = [
    {"errors"},
    {"records", "files"},
    {"sources", "models"},
    {"detect"},
    {"encode"},
    {"neighbours"},
    {"store"},
    {"matching"},
    {"run"},
    {"output"},
    {"privacy", "evaluate"},
    {"api"},
    {"cli"},
    {"__init__", "__main__"},
]
RANK = {room: rank for rank, rooms in enumerate(LAYERS) for room in rooms}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported(path: Path, modules: set[str]) -> Iterator[tuple[str, int]]:
    """Every facematch module that ``path`` imports, with the line of the import."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("facematch."):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("facematch"):
                continue
            for alias in node.names:
                # ``from facematch.x import y`` imports the module x.y when there is one.
                sub = f"{target}.{alias.name}"
                yield (sub if sub in modules else target), node.lineno


def graph() -> dict[str, dict[str, int]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    edges: dict[str, dict[str, int]] = {}
    for path in paths:
        source = module_name(path)
        targets = edges.setdefault(source, {})
        for target, line in imported(path, modules):
            if target != source and target != "facematch":
                targets.setdefault(target, line)
    return edges


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in edges:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_room_has_a_layer() -> None:
    rooms = {room(module) for module in graph()}
    assert rooms <= set(RANK), f"rooms without a layer: {sorted(rooms - set(RANK))}"


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_imports_point_down() -> None:
    upward = [
        f"{source} -> {target} (line {line})"
        for source, targets in graph().items()
        for target, line in targets.items()
        if room(source) != room(target) and RANK[room(target)] >= RANK[room(source)]
    ]
    assert upward == []


def test_the_check_sees_a_cycle_and_an_upward_import() -> None:
    edges = {"facematch.a": {"facematch.b": 1}, "facematch.b": {"facematch.a": 2}}
    assert cycles(edges) == [["facematch.a", "facematch.b"]]
    assert RANK["store"] > RANK["encode"]
