"""The runtime package's modules import each other without a cycle.

A cycle is how a package stops being readable from the bottom up: each module of it can only be
understood together with the others. Every import counts, also those inside functions and under
``TYPE_CHECKING``, since a reader follows those too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_batch_executor"
NAME = PACKAGE.name


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports (``from x import y`` counts y when y is a module)."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    own = module_name(path)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = own.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name in modules and name != own}


def graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imports_of(path, set(paths)) for name, path in paths.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
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


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_relative_and_absolute_imports_are_both_seen(tmp_path):
    assert f"{NAME}.job_contract" in graph()[f"{NAME}.rules.outcome"]


def test_the_runtime_package_has_no_import_cycle():
    assert cycles(graph()) == []


PURE = ("rules", "requests.sizing", "requests.merging", "requests.naming", "status.reducer", "job_contract")
DOES_IO = ("aws.clients", "aws.gateway", "aws.queue_gateway", "workloads.handoff", "workloads.objects")


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_pure_rule_modules_reach_nothing_that_does_io():
    edges = graph()
    io = {f"{NAME}.{name}" for name in DOES_IO}
    pure = [m for m in edges if any(m == f"{NAME}.{p}" or m.startswith(f"{NAME}.{p}.") for p in PURE)]
    assert pure
    assert {m: sorted(reachable(edges, m) & io) for m in pure if reachable(edges, m) & io} == {}
