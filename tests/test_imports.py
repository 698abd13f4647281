"""The shape of the library: no import cycle anywhere in ``spdf_lib``, and every public module says what it
exports.

The import graph is read from the source with ``ast``: every ``import`` and ``from ... import`` of a module
counts, at its top, inside functions and under ``if TYPE_CHECKING:`` alike, because an import hidden in a
function is still a dependency, only a later one. An import of ``spdf_lib.a.b`` from outside the package
``spdf_lib.a`` also depends on ``spdf_lib/a/__init__.py``, which Python runs first; an import between two
modules of the same package does not (the package is already being imported).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "spdf_lib"


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module of the package at ``root`` (``pkg/__init__.py`` is ``pkg``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if "__pycache__" in parts:
            continue
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def imported_modules(name: str, path: Path, modules: set[str]) -> set[str]:
    """The modules of ``modules`` that module ``name`` (source file ``path``) imports, anywhere in its code."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in modules else source)
    edges = set()
    for target in targets:
        while target and target not in modules:  # ``import a.b.attr`` or a name that is not a module
            target = target.rpartition(".")[0]
        if not target or target == name:
            continue
        edges.add(target)
        # The packages above the target run first, unless the importer is inside them already.
        parts = target.split(".")
        edges |= {p for p in (".".join(parts[:i]) for i in range(1, len(parts)))
                  if p in modules and not _inside(name, p)}
    return edges


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = module_names(root)
    return {name: imported_modules(name, path, set(modules)) for name, path in modules.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle ``[a, b, ..., a]`` per strongly connected group of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    cycles = []
    for group in groups:  # a shortest path back to the group's first module, for the message
        start, members = group[0], set(group)
        paths, seen = [[start]], {start}
        while paths:
            path = paths.pop(0)
            nxt = sorted(graph[path[-1]] & members)
            if start in nxt:
                cycles.append(path + [start])
                break
            for w in nxt:
                if w not in seen:
                    seen.add(w)
                    paths.append(path + [w])
    return cycles


def test_spdf_lib_has_no_import_cycle():
    cycles = import_cycles(import_graph(ROOT))
    assert not cycles, "import cycles in spdf_lib:\n" + "\n".join("  " + " -> ".join(c) for c in cycles)


# ------------------------------------------------------------------------------ the graph reader itself

def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_a_cycle_through_an_import_inside_a_function_is_found_and_named(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from . import b\n",
        "b.py": "def f():\n    from .c import g\n    return g\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import X\n",
        "d.py": "import pkg.a\n",
    })
    assert import_cycles(import_graph(root)) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]


def test_siblings_of_a_package_are_no_cycle_but_an_outsider_depends_on_the_package(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "",
        "sub/__init__.py": "from .x import X\nfrom .y import Y\n",
        "sub/x.py": "X = 1\n",
        "sub/y.py": "from .x import X\nfrom . import x\nY = X\n",
        "out.py": "from pkg.sub.y import Y\n",
        "back.py": "from .sub import X\n",
    })
    graph = import_graph(root)
    assert graph["pkg.sub.y"] == {"pkg.sub.x"} and graph["pkg.out"] == {"pkg.sub.y", "pkg.sub"}
    assert import_cycles(graph) == []
    (root / "sub" / "x.py").write_text("from ..back import Z\nX = 1\n", encoding="utf-8")
    assert import_cycles(import_graph(root)) == [["pkg.back", "pkg.sub", "pkg.sub.x", "pkg.back"]]


# ------------------------------------------------------------------------------ __all__

def _public_names(path: Path) -> list[str]:
    """The names a module offers: those it defines at its top level without a leading underscore, and
    for a package, also those its ``__init__.py`` imports (a package re-exports its modules' names)."""
    names = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.ImportFrom) and path.name == "__init__.py" and node.module != "__future__":
            names += [alias.asname or alias.name for alias in node.names]
    return [n for n in names if not n.startswith("_")]


# Public modules: no part of the name starts with "_"; a module that offers no public name at all (the
# top-level package, which holds only ``__version__``) has nothing to declare.
PUBLIC = sorted(name for name, path in module_names(ROOT).items()
                if not any(p.startswith("_") for p in name.split(".")) and _public_names(path))


@pytest.mark.parametrize("name", PUBLIC)
def test_public_module_declares_all_and_every_name_in_it_exists(name):
    path = module_names(ROOT)[name]
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} ({path.relative_to(ROOT.parent)}) declares no __all__"
    assert isinstance(exported, (list, tuple)) and all(isinstance(n, str) for n in exported), \
        f"{name}.__all__ must be a list of names"
    assert len(set(exported)) == len(exported), f"{name}.__all__ lists a name twice"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ lists names the module does not have: {missing}"
