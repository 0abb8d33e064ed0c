"""No import cycles anywhere in dspex, function-level imports included.

The graph is built from the source with ``ast`` (nothing is imported): an edge
``a -> b`` for every ``import``/``from ... import`` in module ``a`` that names
dspex module ``b``, at module level or inside a function; imports under
``if TYPE_CHECKING:`` never run, so they are left out. Importing ``p.q.r``
first runs ``p/__init__`` and ``p.q/__init__``, so ``a`` also gets an edge to
each package above ``b`` that is not above ``a`` itself (those are already
running when ``a`` runs). A cycle is a strongly connected component of more
than one module.

Scope: all of ``dspex``. Besides, ``dspex._http`` must not reach ``dspex.lm``
``dspex.flows`` must not reach ``dspex.engines``, ``dspex.sources`` must not
reach ``dspex.sinks`` and ``dspex._ws`` neither of them, at all (those
dependencies are one-way), and no module imports a dspex module inside a
function (third-party imports may be late: optional extras and heavy ones,
as STYLE.md allows; lazy public names go through ``importlib`` by name).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: any depth, minus ``if TYPE_CHECKING:`` bodies."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                todo.extend(child.orelse)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            todo.append(child)
    return found


def _targets(node: ast.Import | ast.ImportFrom, package: str, modules: set[str]) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    if node.level:
        base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    out: set[str] = set()
    for alias in node.names:
        sub = f"{target}.{alias.name}"  # ``from pkg import submodule``
        if sub in modules:
            out.add(sub)
        elif target in modules:
            out.add(target)
    return out


def _packages_run(importer: str, target: str, modules: set[str]) -> set[str]:
    """Return the packages importing ``target`` runs first that ``importer`` is not inside."""
    parts = target.split(".")
    above = {".".join(parts[:i]) for i in range(1, len(parts))}
    return {
        p for p in above
        if p in modules and p != importer and not importer.startswith(p + ".")
    }


def import_graph(root: Path) -> dict[str, set[str]]:
    """Map each module under ``root`` to the modules under ``root`` it imports (parent packages too)."""
    paths = {_module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    modules = set(paths)
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            edges |= _targets(node, package, modules)
        for target in list(edges):
            edges |= _packages_run(name, target, modules)
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
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
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_anywhere() -> None:
    found = cycles(import_graph(SRC))
    assert not found, f"import cycles (function-level imports count): {found}"


def _reach(graph: dict[str, set[str]], prefix: str) -> set[str]:
    """Every module the package or module ``prefix`` reaches through imports, itself included."""
    seen: set[str] = set()
    todo = [m for m in graph if m == prefix or m.startswith(prefix + ".")]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    return seen


def test_the_http_client_never_reaches_lm() -> None:
    seen = _reach(import_graph(SRC), "dspex._http")
    assert not [m for m in seen if m.startswith("dspex.lm")]
    assert "dspex._http._pool" in seen  # the walk did cover the package


#: Every package and top-level module: none imports a dspex module inside a function.
EAGER = tuple(sorted({".".join(p.relative_to(SRC).with_suffix("").parts[:2])
                      for p in (SRC / "dspex").rglob("*.py")} - {"dspex.__init__"}))


def _function_level_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            found.extend(n for n in ast.walk(fn) if isinstance(n, ast.Import | ast.ImportFrom))
    return found


@pytest.mark.parametrize("package", EAGER)
def test_no_function_level_imports_of_dspex_modules(package: str) -> None:
    folder = SRC.joinpath(*package.split("."))
    paths = sorted(folder.rglob("*.py")) if folder.is_dir() else [folder.with_suffix(".py")]
    assert paths, package
    assert all(p.is_file() for p in paths), package
    late = []
    for path in paths:
        for node in _function_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            relative = isinstance(node, ast.ImportFrom) and node.level > 0
            if relative or any(n == "dspex" or n.startswith("dspex.") for n in names):
                late.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not late, f"function-level imports of dspex modules: {late}"


def test_function_level_imports_are_found() -> None:
    tree = ast.parse("import os\ndef f():\n    from . import a\n    import json\n")
    assert [type(n).__name__ for n in _function_level_imports(tree)] == ["ImportFrom", "Import"]


def test_flows_never_reach_the_engines() -> None:
    seen = _reach(import_graph(SRC), "dspex.flows")
    assert not [m for m in seen if m.startswith("dspex.engines")]
    assert {"dspex.flows._runner", "dspex.operators._map", "dspex.sinks"} <= seen


def test_sources_never_reach_the_sinks() -> None:
    seen = _reach(import_graph(SRC), "dspex.sources")
    assert not [m for m in seen if m == "dspex.sinks" or m.startswith("dspex.sinks.")]
    assert {"dspex.sources._websocket", "dspex._ws._conn"} <= seen  # the walk covered the WebSocket source


def test_the_websocket_io_reaches_neither_sinks_nor_sources() -> None:
    seen = _reach(import_graph(SRC), "dspex._ws")
    assert not [m for m in seen if m.startswith(("dspex.sinks", "dspex.sources"))]
    assert "dspex._ws._conn" in seen


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_graph_finds_function_level_cycles_and_skips_type_checking(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from .b import x\n",
            "pkg/b.py": "def f():\n    from . import a\n    return a\nx = 1\n",
            "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import y\n",
            "pkg/d.py": "from pkg.c import TYPE_CHECKING as y\n",
            "pkg/sub/__init__.py": "from .. import e\n",
            "pkg/e.py": "import pkg.sub\n",
            # parent packages: importing low.leaf runs low/__init__, which imports high
            "pkg/low/__init__.py": "from ..high import top\n",
            "pkg/low/leaf.py": "from . import sibling\n",
            "pkg/low/sibling.py": "",
            "pkg/high/__init__.py": "",
            "pkg/high/top.py": "from ..low.leaf import x\n",
        },
    )
    graph = import_graph(tmp_path)
    assert graph["pkg.b"] == {"pkg.a"}
    assert graph["pkg.c"] == set()
    assert graph["pkg.high.top"] == {"pkg.low", "pkg.low.leaf"}
    assert graph["pkg.low.leaf"] == {"pkg.low.sibling"}  # its own package is already running
    assert cycles(graph) == [
        ["pkg.a", "pkg.b"], ["pkg.e", "pkg.sub"], ["pkg.high.top", "pkg.low"],
    ]


@pytest.mark.parametrize("package", EAGER)
def test_each_package_is_in_the_graph(package: str) -> None:
    assert any(m == package or m.startswith(package + ".") for m in import_graph(SRC))
