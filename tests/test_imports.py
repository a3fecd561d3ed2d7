"""The packages' layering: what may import what.

For every package: no import cycle between its modules (TYPE_CHECKING imports too, and the
package `__init__` a submodule import runs first). For a package laid out in sub-packages
(`LAYERED`): a private module (`_name.py`) is used only inside its own sub-package, which
reaches it through its curated `__init__`; importing the package loads none of its heavy
dependencies; and each room (sub-package or top-level module) imports only rooms listed
before it. A package joins a rule by being added to its table below.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def import_graph(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """{module: project modules it imports anywhere in its source}, names relative to the root.

    Importing `a.b.c` from outside `a.b` first runs `a.b`'s `__init__`, so it counts as
    importing `a.b` as well (from inside `a.b` that `__init__` is already running).
    """
    graph: dict[str, set[str]] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_init = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_init else parts)
        here = parts[:-1]  # the package this module lives in
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):  # every block, TYPE_CHECKING too
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets.add(prefix)
                targets.update(f"{prefix}.{alias.name}" for alias in node.names)
        graph[module] = {t for t in targets if t.split(".")[0] == package}
    known = set(graph)
    for module, targets in graph.items():
        for target in list(targets):
            parent = target.rpartition(".")[0]
            if parent in known and not f"{module}.".startswith(f"{parent}."):
                targets.add(parent)  # its package's __init__ runs first
    return {m: {t for t in ts if t in known and t != m and t != package} for m, ts in graph.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle found by a depth-first walk (each reported once, from where it closed)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def private_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, private module) for each private module imported from outside its own package.

    A module `p._x` is private to package `p`: any module inside `p` (at any depth) may import
    it, nothing else may.
    """
    crossing = []
    for module, targets in graph.items():
        for target in targets:
            owner, _, name = target.rpartition(".")
            if name.startswith("_") and not name.startswith("__") and not f"{module}.".startswith(f"{owner}."):
                crossing.append((module, target))
    return sorted(crossing)


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_a_submodule_import_runs_its_package_init_first(tmp_path):
    """pkg.b._n imports pkg.a.public: that runs pkg/a/__init__, which imports pkg.b: a cycle."""
    files = {"__init__.py": "", "a/__init__.py": "from ._m import M\n", "a/_m.py": "from ..b import N\nM = 1\n",
             "a/public.py": "P = 1\n", "b/__init__.py": "from ._n import N\n", "b/_n.py": "from ..a.public import P\nN = 1\n"}
    for name, text in files.items():
        (tmp_path / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    graph = import_graph("pkg", tmp_path)
    assert graph["pkg.b._n"] == {"pkg.a.public", "pkg.a"}
    assert graph["pkg.a._m"] == {"pkg.b"}  # its own package's __init__ is not an edge
    assert cycles(graph) == [["pkg.a", "pkg.a._m", "pkg.b", "pkg.b._n", "pkg.a"]]


def test_the_private_rule_sees_a_private_module_used_across_packages():
    graph = {"p.a": {"p._x", "p.q._y"}, "p.q.b": {"p.q._y", "p._x"}, "p.r": {"p.q"}}
    assert private_imports(graph) == [("p.a", "p.q._y")]


# edges each package is known to have: proves the graph was read, not found empty, and that
# the modules the Interface and the journal are split into are in it
KNOWN_EDGES = {"softioc": [("softioc.server._ioc", "softioc.server._control"),
                           ("softioc.server._ioc", "softioc.config"),
                           ("softioc.config._tables", "softioc.model"),
                           ("softioc.faults._base", "softioc.model"),
                           ("softioc.machine._machine", "softioc.server")],
               "epics_pva": [("epics_pva.core._interface", "epics_pva.errors"),
                             ("epics_pva.core._interface", "epics_pva.core._read_path"),
                             ("epics_pva.core._interface", "epics_pva.core._set_path"),
                             ("epics_pva.core._set_path", "epics_pva.journal"),
                             ("epics_pva.journal", "epics_pva.journal._reader"),
                             ("epics_pva.journal._restore", "epics_pva.journal._format")]}


@pytest.mark.parametrize("package", sorted(KNOWN_EDGES))
def test_no_import_cycle(package):
    graph = import_graph(package)
    for importer, imported in KNOWN_EDGES[package]:
        assert imported in graph[importer], (importer, imported)
    assert cycles(graph) == []


# packages laid out in sub-packages behind curated __init__s, and the modules importing each
# must not load (its lightest entry points stay light: softioc's pytest plugin loads in every
# pytest session of an environment holding it)
LAYERED = {"softioc": ("p4p", "numpy"), "epics_pva": ("argparse", "epics_pva.tools")}

# the rooms of each layered package, lowest first: a room may import the rooms of its own
# group and of the groups before it (the package's own __init__ re-exports from any)
ROOMS = {"softioc": [("errors", "_guard", "child_process"), ("model",), ("faults",), ("config",), ("server",),
                     ("machine",), ("testing",), ("view",), ("cli", "__main__"),
                     ("pytest_plugin", "epics_base", "fault_base")],
         # epics_pva: core <- tools <- integrations; the journal and the transport below the core
         "epics_pva": [("errors", "results", "_version", "_cancel", "_fork"), ("transport",), ("journal",),
                       ("core",), ("tools",), ("badger", "preflight")]}


def upward_imports(graph: dict[str, set[str]], package: str, rooms: list[tuple[str, ...]]) -> list[tuple[str, str]]:
    """(importer, imported) for each import of a room listed after the importer's room."""
    rank = {room: n for n, group in enumerate(rooms) for room in group}

    def room(module: str) -> str:
        return module.split(".")[1]

    return sorted((m, t) for m, ts in graph.items() if m != package for t in ts if rank[room(t)] > rank[room(m)])


def test_the_room_rule_sees_an_import_pointing_up():
    graph = {"p": {"p.a"}, "p.a._x": {"p.b"}, "p.b": {"p.a"}, "p.c": {"p.a", "p.b"}}
    assert upward_imports(graph, "p", [("a",), ("b", "c")]) == [("p.a._x", "p.b")]


@pytest.mark.parametrize("package", sorted(LAYERED))
def test_no_private_module_is_used_outside_its_package(package):
    graph = import_graph(package)
    assert len(graph) > 10  # the package was read
    assert private_imports(graph) == []


@pytest.mark.parametrize("package", sorted(ROOMS))
def test_each_room_imports_only_the_rooms_below_it(package):
    graph = import_graph(package)
    listed = {room for group in ROOMS[package] for room in group}
    assert {m.split(".")[1] for m in graph if m != package} == listed  # every room is placed
    assert upward_imports(graph, package, ROOMS[package]) == []


@pytest.mark.parametrize("package", sorted(LAYERED))
def test_importing_the_package_loads_none_of_its_heavy_dependencies(package):
    heavy = LAYERED[package]
    code = f"import sys, {package}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
