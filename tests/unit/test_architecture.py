"""The package's import graph has no cycle, counting imports inside functions (a function-level
import hides a cycle from Python, not from the design: both modules then know each other)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module name -> the package's modules it imports (top level and inside functions, relative
    imports resolved; `from a import b` counts a.b when b is a module, else a). A package's
    __init__ importing its own children is left out: that is how a package is put together."""
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for target in targets:
                found = owner(target)
                if found and found != name and not (is_package and found.startswith(name + ".")):
                    graph[name].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_tfpipe_has_no_import_cycle():
    found = cycles(import_graph(REPO / "tfpipe"))
    assert not found, "import cycles (function-level imports count): " + "; ".join(" <-> ".join(c) for c in found)


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    """The check itself: two modules that know each other only inside a function are a cycle."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg import a\n")
    (package / "a.py").write_text("from pkg.sub.b import helper\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def helper():\n    from .. import a\n    return a\n")
    (package / "c.py").write_text("from pkg import a\n")  # imports into the cycle, not part of it
    assert cycles(import_graph(package)) == [["pkg.a", "pkg.sub.b"]]


def floors(package: Path) -> list[list[str]]:
    """The floor order written in the package's docstring: one floor a line, bottom first."""
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
    block = doc.split("Floors, bottom up")[1].split("\n\n")[1]
    return [line.split() for line in block.strip().splitlines()]


def upward_imports(graph: dict[str, set[str]], order: list[list[str]]) -> list[str]:
    """Imports from a module to one on a higher floor. A module's floor is that of its first name
    below the package (a `__main__` module is a command: the top floor); the package itself, which
    only sets environment switches, is the ground."""
    top = len(order) - 1
    rooms = {room: level for level, names in enumerate(order) for room in names}

    def floor(module: str) -> int:
        parts = module.split(".")[1:]
        if not parts:
            return -1
        if parts[-1] == "__main__":
            return top
        if parts[0] not in rooms:
            raise AssertionError(f"{module}: its room {parts[0]!r} is on no floor of the package docstring")
        return rooms[parts[0]]

    return [f"{module} ({order[floor(module)][0]} floor) imports {target} ({order[floor(target)][0]} floor)"
            for module in sorted(graph) for target in sorted(graph[module]) if floor(target) > floor(module)]


def test_every_import_goes_down_the_floors_of_the_package_docstring():
    graph = import_graph(REPO / "tfpipe")
    upward = upward_imports(graph, floors(REPO / "tfpipe"))
    assert not upward, "imports against the floor order in tfpipe/__init__.py:\n" + "\n".join(upward)


def test_an_upward_import_is_found(tmp_path):
    """The check itself: a low floor reaching up, even inside a function, fails; down is fine."""
    package = tmp_path / "pkg"
    (package / "low").mkdir(parents=True)
    (package / "__init__.py").write_text('"""Floors, bottom up:\n\n    low\n    high\n"""\n')
    (package / "low" / "__init__.py").write_text("")
    (package / "low" / "a.py").write_text("def f():\n    from pkg.high import g\n")
    (package / "high.py").write_text("from pkg.low import a\n")
    (package / "__main__.py").write_text("from pkg import high\n")
    graph = import_graph(package)
    assert floors(package) == [["low"], ["high"]]
    assert upward_imports(graph, floors(package)) == ["pkg.low.a (low floor) imports pkg.high (high floor)"]
