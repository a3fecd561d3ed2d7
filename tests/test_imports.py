"""The packages' structure: no import cycle between modules (TYPE_CHECKING imports too), no oversized module."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def import_graph(package: str) -> dict[str, set[str]]:
    """{module: project modules it imports anywhere in its source}, names relative to the root."""
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
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


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# edges each package is known to have: proves the graph was read, not found empty, and that
# the modules the Interface and the journal are split into are in it
KNOWN_EDGES = {"softioc": [("softioc.server", "softioc.control")],
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


MAX_MODULE_LINES = 400  # a module past this does more than one job: split it by job


@pytest.mark.parametrize("package", sorted(KNOWN_EDGES))
def test_no_module_is_over_the_size_limit(package):
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines())
             for path in (ROOT / package).rglob("*.py")}
    assert len(sizes) > 10  # the package was read
    assert {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES} == {}
