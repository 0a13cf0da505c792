"""The shape of reinit/ a reader can hold in their head (issue 24): no import cycle among its
modules, and no function or method longer than about 60 lines. Both read the source with ast."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "reinit"
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.glob("*.py"))}


def _imported(tree: ast.Module, names: set[str]) -> set[str]:
    """The reinit modules one module imports anywhere: at the top, in a function, or under
    TYPE_CHECKING (a cycle a reader must follow is a cycle, whenever Python resolves it)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("reinit.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "reinit":
                found |= {a.name for a in node.names}
            elif node.module.startswith("reinit."):
                found.add(node.module.split(".")[1])
    return found & names


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(tree, set(modules)) - {name} for name, tree in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path [a, b, ..., a], or None (a depth-first walk)."""
    state: dict[str, str] = {}  # "open" while on the path, "done" after

    def walk(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := walk(nxt, path + [node])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := walk(start, [])):
            return cycle
    return None


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    assert find_cycle({"x": {"y"}, "y": {"y2"}, "y2": {"y"}}) == ["y", "y2", "y"]


def test_the_import_graph_is_read_from_every_kind_of_import():
    tree = ast.parse("import reinit.log\nfrom reinit import flow\nfrom reinit.ecs import X\n"
                     "def f():\n    from reinit.fleet import y\n"
                     "if TYPE_CHECKING:\n    from reinit.app import App\n")
    assert _imported(tree, {"log", "flow", "ecs", "fleet", "app", "other"}) == {"log", "flow", "ecs", "fleet", "app"}


def test_no_import_cycle_among_reinit_modules():
    graph = import_graph()
    assert graph["context"] >= {"idempotency", "config"} and "result" in graph["idempotency"]  # real edges
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def long_functions(limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Every function or method in reinit/ longer than limit lines (decorators and docstring included)."""
    long = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                lines = node.end_lineno - start + 1
                if lines > limit:
                    long.append(f"reinit/{name}.py:{node.lineno} {node.name} ({lines} lines)")
    return long


def test_long_functions_are_found():
    assert any(" load_config " in f for f in long_functions(limit=20))  # the walk reaches real functions


def test_no_function_in_reinit_is_over_60_lines():
    assert long_functions() == []


def test_make_test_runs_the_type_checker():
    """`make test` depends on `make typecheck`, which runs the pinned mypy over reinit/."""
    root = PACKAGE.parent
    makefile = (root / "Makefile").read_text()
    rules = dict(line.split(":", 1) for line in makefile.splitlines() if line.startswith(("test:", "typecheck:")))
    assert "typecheck" in rules["test"].split()
    recipe = makefile.split("\ntypecheck:", 1)[1].split("\n\n", 1)[0]
    assert "-m mypy" in recipe
    assert any(line.startswith("mypy==") for line in (root / "requirements-dev.txt").read_text().splitlines())
    assert 'files = ["reinit"]' in (root / "pyproject.toml").read_text()
